"""Rerankers: re-score the top candidates of a search with a cross-encoder.

``get_reranker(name)`` takes a registered name or any sentence-transformers
``CrossEncoder`` hub id / local directory. Off by default.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from docrag.errors import ModelError
from docrag.registry import Registry

__all__ = ["Reranker", "RERANKERS", "CrossEncoderReranker", "get_reranker"]


@runtime_checkable
class Reranker(Protocol):
    """Scores (query, passage) pairs; higher is more relevant."""

    name: str

    def score(self, query: str, passages: list[str]) -> np.ndarray: ...


RERANKERS: Registry[Reranker] = Registry("reranker")


class CrossEncoderReranker:
    """A sentence-transformers ``CrossEncoder`` by hub id or local directory.

    >>> CrossEncoderReranker("/no/such/dir")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    docrag.errors.ModelError: cannot load reranker '/no/such/dir': no such directory
    """

    def __init__(self, model: str, device: str = "auto", batch_size: int = 32) -> None:
        self.name = model
        self.batch_size = batch_size
        try:
            from sentence_transformers import CrossEncoder
        except ImportError:
            raise ImportError("reranking needs sentence-transformers: pip install sentence-transformers") from None
        looks_local = model.startswith((".", "/", "~")) or Path(model).expanduser().exists()
        if looks_local and not Path(model).expanduser().is_dir():
            raise ModelError(f"cannot load reranker {model!r}: no such directory")
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self._model = CrossEncoder(str(Path(model).expanduser()) if looks_local else model, device=device,
                                       local_files_only=looks_local)
        except Exception as exc:
            raise ModelError(
                f"cannot load reranker {model!r} ({type(exc).__name__}); pass a local directory holding a "
                "sentence-transformers CrossEncoder, or a hub id when online"
            ) from None

    def score(self, query: str, passages: list[str]) -> np.ndarray:
        if not passages:
            return np.zeros(0, dtype=np.float32)
        scores = self._model.predict([(query, p) for p in passages], batch_size=self.batch_size,
                                     show_progress_bar=False, convert_to_numpy=True)
        return np.asarray(scores, dtype=np.float32).reshape(len(passages), -1)[:, -1]


@lru_cache(maxsize=4)
def get_reranker(name: str) -> Reranker:
    """The reranker ``name``: a registered engine or a CrossEncoder id/dir, loaded once."""
    if name in RERANKERS.names():
        return RERANKERS.create(name)
    return CrossEncoderReranker(name)
