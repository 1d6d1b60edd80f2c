"""FAISS vector files: caches derived from SQLite, stamped with its generation.

A ``.faiss`` file sits next to a ``.faiss.json`` stamp naming the SQLite
generation and vector count it was built from. Both are written to temp files
and moved into place with ``os.replace``; a missing, stale or unreadable cache
is rebuilt from the vectors stored in SQLite.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np

__all__ = ["VectorCache", "FAISS_FLAT"]

FAISS_FLAT = "IDMap2,Flat(IP)"


class VectorCache:
    """An inner-product FAISS index over unit vectors, keyed by chunk id."""

    def __init__(self, path: Path, dim: int) -> None:
        self.path = Path(path)
        self.stamp_path = self.path.with_name(self.path.name + ".json")
        self.dim = dim
        self.index: Any = None
        self.generation = -1

    def load(self, generation: int, count: int) -> bool:
        """Load the file if its stamp matches ``generation`` and ``count``."""
        import faiss

        try:
            stamp = json.loads(self.stamp_path.read_text())
            if stamp.get("generation") != generation or stamp.get("count") != count:
                return False
            index = faiss.read_index(str(self.path))
        except (OSError, ValueError, RuntimeError):
            return False
        if index.ntotal != count or index.d != self.dim:
            return False
        self.index, self.generation = index, generation
        return True

    def rebuild(self, rows: Iterable[tuple[int, bytes]], generation: int) -> None:
        """Build from ``(chunk_id, float32 blob)`` rows and write atomically."""
        import faiss

        index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        ids: list[int] = []
        vecs: list[np.ndarray] = []
        for chunk_id, blob in rows:
            ids.append(chunk_id)
            vecs.append(np.frombuffer(blob, dtype=np.float32))
            if len(ids) >= 65536:
                index.add_with_ids(np.vstack(vecs), np.asarray(ids, dtype=np.int64))
                ids, vecs = [], []
        if ids:
            index.add_with_ids(np.vstack(vecs), np.asarray(ids, dtype=np.int64))
        self.index = index
        self.save(generation)

    def update(self, add_ids: np.ndarray, add_vecs: np.ndarray, remove_ids: list[int], generation: int) -> None:
        """Apply one committed write to the loaded index and save it."""
        if remove_ids:
            self.index.remove_ids(np.asarray(remove_ids, dtype=np.int64))
        if len(add_ids):
            self.index.add_with_ids(np.ascontiguousarray(add_vecs, dtype=np.float32), np.asarray(add_ids, dtype=np.int64))
        self.save(generation)

    def save(self, generation: int) -> None:
        import faiss

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-", suffix=".faiss")
        os.close(fd)
        try:
            faiss.write_index(self.index, tmp)
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        _write_json_atomic(self.stamp_path, {"generation": generation, "count": int(self.index.ntotal),
                                             "dim": self.dim, "type": FAISS_FLAT})
        self.generation = generation

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top ``k`` (chunk id, cosine) pairs, optionally only among ``allowed`` ids."""
        import faiss

        if self.index is None or self.index.ntotal == 0 or k <= 0:
            return []
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        params = None
        if allowed is not None:
            if len(allowed) == 0:
                return []
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64)))
        k = min(k, int(self.index.ntotal))
        scores, ids = self.index.search(q, k, params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]


def _write_json_atomic(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)
