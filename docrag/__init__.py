"""docrag: PDFs (scanned, born-digital or mixed) into a searchable knowledge base.

Importing docrag is cheap: torch, transformers and onnxruntime load only when
an engine is first used.

>>> import docrag
>>> sorted(docrag.__all__)[:3]
['Chunk', 'ConfigError', 'DocragError']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from docrag.errors import ConfigError, DocragError, LoadError, ModelError, StoreError
from docrag.types import Chunk, Hit, Page

__version__ = "0.1.0"

__all__ = [
    "Index",
    "IngestOptions",
    "IngestReport",
    "ocr",
    "Hit",
    "Chunk",
    "Page",
    "DocragError",
    "LoadError",
    "ModelError",
    "StoreError",
    "ConfigError",
    "__version__",
]

if TYPE_CHECKING:
    from docrag.api import Index, IngestReport, ocr
    from docrag.config import IngestOptions

_LAZY = {
    "Index": "docrag.api",
    "IngestReport": "docrag.api",
    "ocr": "docrag.api",
    "IngestOptions": "docrag.config",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'docrag' has no attribute {name!r}")
