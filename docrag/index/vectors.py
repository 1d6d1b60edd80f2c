"""FAISS vector files: caches derived from SQLite, stamped with its generation.

A ``.faiss`` file sits next to a ``.faiss.json`` stamp naming the SQLite
generation, vector count, byte size and FAISS type it was built from. Both are
written to temp files and moved into place with ``os.replace``; a missing,
stale, mismatched or unreadable cache is rebuilt from the vectors in SQLite.

The FAISS type follows the size, chosen at (re)build time:

* up to ``threshold`` vectors (default :data:`FLAT_MAX`): ``IDMap2,Flat(IP)``,
  exact inner product on unit vectors;
* above it: ``IVF{nlist},Flat(IP)`` with ``nlist ≈ 4·sqrt(n)`` and ``nprobe``
  tuned at build time to reach :data:`TUNE_RECALL` recall@10 against exact
  search on held-in sample queries (the measured figure is in the stamp).
  IVF-Flat was chosen over HNSW by measurement: on 2 cores an HNSW32 graph took
  39 s for 100k vectors (~8 min projected at 1M) against ~2 min for IVF at 1M,
  and HNSW cannot remove vectors, which every re-ingest and delete needs.
  IVF-Flat over IVF-PQ: recall ≥ 0.95 without a re-rank, at 1.5 KB a vector.

>>> import tempfile, numpy as np
>>> cache = VectorCache(Path(tempfile.mkdtemp()) / "text.faiss", dim=4)
>>> cache.build(np.arange(3), np.eye(3, 4, dtype=np.float32), generation=1)
>>> cache.kind, cache.search(np.array([0, 1, 0, 0], np.float32), k=1)
('IDMap2,Flat(IP)', [(1, 1.0)])
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

__all__ = ["VectorCache", "FAISS_FLAT", "FLAT_MAX", "TUNE_RECALL", "RETRAIN_GROWTH"]

FAISS_FLAT = "IDMap2,Flat(IP)"
FLAT_MAX = 200_000  # exact search up to here: ~25 ms a query single-threaded at 200k x 384
TUNE_RECALL = 0.97  # nprobe target on sample queries, a margin above the 0.95 promised
MIN_NPROBE = 8  # floor: sample queries are data points; real queries sit farther from the data
EXACT_FILTER_FRACTION = 0.05  # IVF scans every list when fewer than this share of ids is allowed
RETRAIN_GROWTH = 4.0  # retrain IVF once it holds this many times the vectors it was trained on
_NPROBES = tuple(p for p in (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512) if p >= MIN_NPROBE)
_TUNE_QUERIES = 256
_BLOCK = 65536

# FAISS indexes read from files, shared by every cache of this process that loads the same file at
# the same generation (a server's readers: one copy in memory, not one per reader). Read-only while
# shared: a cache about to change its index in place takes a copy first. The newest file of a few
# paths is kept, so a cache that loads what another already has finds it.
_LOADED: "OrderedDict[str, tuple[tuple, Any]]" = OrderedDict()
_LOADED_PATHS = 4
_LOADED_LOCK = threading.Lock()


class VectorCache:
    """An inner-product FAISS index over unit vectors, keyed by chunk id.

    Args:
        path: The ``.faiss`` file; its stamp is ``path + ".json"``.
        dim: Vector dimension.
        threshold: Largest vector count kept in an exact Flat index; above it
            an IVF index is built.
        threads: OpenMP threads for building and batch work (default: all
            cores). A single query always runs on one thread: FAISS splits
            IVF work by query, and for Flat a second thread measured slower
            (OpenMP wake-up and contention outweigh the split at these sizes).
        target_recall: Recall@10 the IVF ``nprobe`` is tuned to reach.
        exact_filter_fraction: With IVF, filters allowing fewer than this
            share of the vectors scan every list (an exact search over the
            allowed ids, whose cost is one bitmap test per vector plus the
            allowed ids' dot products).
    """

    def __init__(self, path: Path, dim: int, threshold: int = FLAT_MAX, threads: int | None = None,
                 target_recall: float = TUNE_RECALL, exact_filter_fraction: float = EXACT_FILTER_FRACTION) -> None:
        self.path = Path(path)
        self.stamp_path = self.path.with_name(self.path.name + ".json")
        self.dim = dim
        self.threshold = threshold
        self.threads = threads or os.cpu_count() or 1
        self.target_recall = target_recall
        self.exact_filter_fraction = exact_filter_fraction
        self.index: Any = None
        self.generation = -1
        self._shared = False  # self.index is the process's shared copy of the file (see _LOADED)
        self.trained_on = 0  # vectors at IVF training time (0 for Flat)
        self.recall_estimate: float | None = None  # measured at build for IVF

    # -- description ---------------------------------------------------------

    @property
    def kind(self) -> str:
        """The FAISS type and its search parameters, e.g. ``"IVF4000,Flat(IP) nprobe=16"``."""
        return _describe(self.index) if self.index is not None else FAISS_FLAT

    def _want_ivf(self, n: int) -> bool:
        return n > self.threshold

    # -- files ---------------------------------------------------------------

    def load(self, generation: int, count: int) -> bool:
        """Load the file if its stamp matches ``generation``, ``count``, dim, size and type."""
        import faiss

        try:
            stamp = json.loads(self.stamp_path.read_text())
            info = self.path.stat()
            if (stamp.get("generation") != generation or stamp.get("count") != count
                    or stamp.get("dim") != self.dim or stamp.get("bytes") != info.st_size):
                return False
            key, version = str(self.path.resolve()), (generation, count, info.st_size, info.st_mtime_ns, info.st_ino)
            with _LOADED_LOCK:
                have = _LOADED.get(key)
            index = have[1] if have is not None and have[0] == version else faiss.read_index(str(self.path))
        except (OSError, ValueError, RuntimeError, AttributeError):
            return False
        if index.ntotal != count or index.d != self.dim or _describe(index) != stamp.get("type"):
            return False
        with _LOADED_LOCK:
            _LOADED[key] = (version, index)
            _LOADED.move_to_end(key)
            while len(_LOADED) > _LOADED_PATHS:
                _LOADED.popitem(last=False)
        self.index, self.generation, self._shared = index, generation, True
        self.trained_on = int(stamp.get("trained_on", 0))
        self.recall_estimate = stamp.get("recall_at_10")
        return True

    def rebuild(self, rows: Iterable[tuple[int, bytes]], generation: int) -> None:
        """Build from ``(chunk_id, float32 blob)`` rows and write atomically."""
        id_blocks: list[np.ndarray] = []
        vec_blocks: list[np.ndarray] = []
        ids: list[int] = []
        blobs: list[bytes] = []
        for chunk_id, blob in rows:
            if len(blob) != 4 * self.dim:
                raise ValueError(f"chunk {chunk_id}: vector of {len(blob)} bytes, expected {4 * self.dim} (dim {self.dim})")
            ids.append(chunk_id)
            blobs.append(blob)
            if len(ids) >= _BLOCK:
                id_blocks.append(np.asarray(ids, dtype=np.int64))
                vec_blocks.append(np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(-1, self.dim))
                ids, blobs = [], []
        id_blocks.append(np.asarray(ids, dtype=np.int64))
        vec_blocks.append(np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(-1, self.dim))
        all_ids = np.concatenate(id_blocks)
        del id_blocks
        all_vecs = np.concatenate(vec_blocks) if len(vec_blocks) > 1 else vec_blocks[0]
        del vec_blocks
        self.build(all_ids, all_vecs, generation)

    def build(self, ids: np.ndarray, vecs: np.ndarray, generation: int) -> None:
        """Build the index type that suits ``len(ids)`` from arrays and write atomically."""
        ids, vecs = _check(ids, vecs, self.dim)
        self._shared = False
        with _omp_threads(self.threads):
            if self._want_ivf(len(ids)):
                self.index, self.recall_estimate = _build_ivf(ids, vecs, self.target_recall)
                self.trained_on = len(ids)
            else:
                self.index, self.recall_estimate, self.trained_on = _build_flat(ids, vecs), None, 0
        self.save(generation)

    def update(self, add_ids: np.ndarray, add_vecs: np.ndarray, remove_ids: list[int], generation: int) -> bool:
        """Apply one committed write to the loaded index and save it.

        Both types add and remove in place. When the size leaves what the
        index was built for (Flat grown past ``threshold``; IVF grown
        :data:`RETRAIN_GROWTH` times past its training size or shrunk below
        half the threshold), the index is rebuilt here from its own vectors
        (Flat and IVF-Flat hold them losslessly), so the caller need not
        re-read SQLite. Returns True when that rebuild happened.
        """
        add_ids, add_vecs = _check(add_ids, add_vecs, self.dim)
        if self._shared:  # other caches of this process search this very index: change a copy
            import faiss

            self.index, self._shared = faiss.clone_index(self.index), False
        if len(remove_ids):
            _remove(self.index, np.asarray(remove_ids, dtype=np.int64))
        if len(add_ids):
            with _omp_threads(self.threads):
                self.index.add_with_ids(add_vecs, add_ids)
        n = int(self.index.ntotal)
        if _is_ivf(self.index):
            retype = n > RETRAIN_GROWTH * self.trained_on or n < self.threshold // 2
        else:
            retype = self._want_ivf(n)
        if retype:
            self.build(*_extract(self.index, self.dim), generation)
        else:
            self.save(generation)
        return retype

    def save(self, generation: int) -> None:
        """Write the index and then its stamp, each atomically."""
        import faiss

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-", suffix=".faiss")
        os.close(fd)
        try:
            faiss.write_index(self.index, tmp)
            size = os.path.getsize(tmp)
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        stamp = {"generation": generation, "count": int(self.index.ntotal), "dim": self.dim,
                 "type": self.kind, "bytes": size}
        if _is_ivf(self.index):
            stamp.update(nlist=int(self.index.nlist), nprobe=int(self.index.nprobe),
                         trained_on=self.trained_on, recall_at_10=self.recall_estimate)
        _write_json_atomic(self.stamp_path, stamp)
        self.generation = generation

    # -- search --------------------------------------------------------------

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top ``k`` (chunk id, cosine) pairs, optionally only among ``allowed`` ids.

        With a filter, IVF probes ``nprobe / fraction allowed`` lists, and
        every list (an exact scan of the allowed ids) when the fraction is
        below ``exact_filter_fraction``: a selective filter's best matches lie
        outside the query's nearest lists. If fewer than ``min(k, len(allowed))``
        come back, every list is scanned, so ``k`` results are always returned
        when ``k`` allowed vectors exist. Flat is always exact.
        """
        import faiss

        if self.index is None or self.index.ntotal == 0 or k <= 0:
            return []
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if q.shape[1] != self.dim:
            raise ValueError(f"query has dimension {q.shape[1]}, index has {self.dim}")
        n = int(self.index.ntotal)
        k = min(k, n)
        with _omp_threads(1):
            if allowed is None:
                return _pairs(*self.index.search(q, k))
            allowed = _sorted_unique(allowed)
            if len(allowed) == 0:
                return []
            sel = _selector(allowed, n)
            if not _is_ivf(self.index):
                return _pairs(*self.index.search(q, k, params=faiss.SearchParameters(sel=sel)))
            nlist = int(self.index.nlist)
            fraction = len(allowed) / n
            nprobe = nlist if fraction < self.exact_filter_fraction else min(nlist, math.ceil(self.index.nprobe / fraction))
            found = _pairs(*self.index.search(q, k, params=faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)))
            if len(found) < min(k, len(allowed)) and nprobe < nlist:
                found = _pairs(*self.index.search(q, k, params=faiss.SearchParametersIVF(sel=sel, nprobe=nlist)))
            return found


def _sorted_unique(ids: np.ndarray) -> np.ndarray:
    ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
    if len(ids) > 1 and not bool(np.all(ids[1:] > ids[:-1])):  # SQLite usually hands them sorted
        ids = np.unique(ids)
    return ids


def _selector(allowed: np.ndarray, ntotal: int) -> Any:
    """An id filter: a bitmap when ids are dense enough (built in ~1 ms, one bit test a vector),
    else a hash set (IDSelectorBatch: ~0.2 us an id to build, 100+ ms for 500k ids)."""
    import faiss

    top = int(allowed[-1])
    if allowed[0] >= 0 and top < 64 * ntotal + (1 << 20):
        bits = np.zeros(top + 1, dtype=bool)
        bits[allowed] = True
        packed = np.packbits(bits, bitorder="little")
        sel = faiss.IDSelectorBitmap(len(packed), faiss.swig_ptr(packed))
        sel.referenced_objects = [packed]  # the selector only points at the bytes
        return sel
    return faiss.IDSelectorBatch(allowed)


# -- building -----------------------------------------------------------------


def _build_flat(ids: np.ndarray, vecs: np.ndarray) -> Any:
    import faiss

    index = faiss.IndexIDMap2(faiss.IndexFlatIP(vecs.shape[1]))
    for s in range(0, len(ids), _BLOCK):
        index.add_with_ids(vecs[s:s + _BLOCK], ids[s:s + _BLOCK])
    return index


def ivf_nlist(n: int) -> int:
    """Inverted lists for ``n`` vectors: ``4·sqrt(n)`` (4000 at 1M)."""
    return max(1, int(round(4 * math.sqrt(n))))


def _build_ivf(ids: np.ndarray, vecs: np.ndarray, target_recall: float) -> tuple[Any, float]:
    """Train IVF-Flat on a sample, add everything, tune ``nprobe``; returns (index, recall@10)."""
    import faiss

    n, dim = vecs.shape
    nlist = ivf_nlist(n)
    index = faiss.index_factory(dim, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
    # 32 points a centroid and 10 k-means rounds: FAISS's defaults (256 points,
    # 25 rounds) are ~20x the training work; with these the whole 1M build
    # (train, add, tune) took ~105 s on 2 cores, at recall@10 >= 0.99.
    rng = np.random.default_rng(0)
    sample = min(n, max(32 * nlist, 50_000))
    train = vecs if sample == n else vecs[np.sort(rng.choice(n, sample, replace=False))]
    index.cp.niter = 10
    index.cp.spherical = True  # unit centroids: inner product to a centroid is a cosine
    index.cp.max_points_per_centroid = max(256, math.ceil(sample / nlist))
    index.cp.min_points_per_centroid = min(32, sample // nlist)  # only a warning threshold
    index.train(train)
    del train
    for s in range(0, n, _BLOCK):
        index.add_with_ids(vecs[s:s + _BLOCK], ids[s:s + _BLOCK])
    index.nprobe, recall = _tune_nprobe(index, ids, vecs, target_recall, rng)
    return index, recall


def _tune_nprobe(index: Any, ids: np.ndarray, vecs: np.ndarray, target: float,
                 rng: np.random.Generator, k: int = 10) -> tuple[int, float]:
    """Smallest nprobe whose recall@k against exact search reaches ``target``.

    Sample base vectors serve as queries, each one's own id dropped from both
    result lists, so the figure is for a new query near the data, not for
    finding a vector itself.
    """
    import faiss

    pick = rng.choice(len(ids), min(_TUNE_QUERIES, len(ids)), replace=False)
    queries = np.ascontiguousarray(vecs[pick])
    _, exact_pos = faiss.knn(queries, vecs, k + 1, metric=faiss.METRIC_INNER_PRODUCT)
    truth = [set([i for i in ids[row[row >= 0]].tolist() if i != ids[p]][:k]) for row, p in zip(exact_pos, pick)]
    total = max(1, sum(len(t) for t in truth))
    chosen = (int(index.nlist), 1.0)
    for nprobe in _NPROBES:
        if nprobe >= index.nlist:
            chosen = (int(index.nlist), 1.0)  # exhaustive: exact
            break
        index.nprobe = nprobe
        _, got = index.search(queries, k + 1)
        hits = [len(set([i for i in row.tolist() if i != ids[p]][:k]) & t) for row, p, t in zip(got, pick, truth)]
        chosen = (nprobe, round(sum(hits) / total, 4))
        if chosen[1] >= target:
            break
    return chosen


# -- index internals -------------------------------------------------------------


def _is_ivf(index: Any) -> bool:
    import faiss

    return isinstance(index, faiss.IndexIVF)


def _describe(index: Any) -> str:
    import faiss

    if isinstance(index, faiss.IndexIVFFlat) and index.metric_type == faiss.METRIC_INNER_PRODUCT:
        return f"IVF{index.nlist},Flat(IP) nprobe={index.nprobe}"
    if isinstance(index, faiss.IndexIDMap2) and index.metric_type == faiss.METRIC_INNER_PRODUCT:
        return FAISS_FLAT
    return f"unsupported:{type(index).__name__}"


def _remove(index: Any, ids: np.ndarray) -> None:
    """Remove ids; IVF scans its lists once (no direct map to keep in memory or on disk)."""
    index.remove_ids(ids)


def _extract(index: Any, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """All (ids, vectors) held by a Flat-IDMap2 or IVF-Flat index, read losslessly."""
    import faiss

    if not _is_ivf(index):
        n = int(index.ntotal)
        return faiss.vector_to_array(index.id_map).astype(np.int64), index.index.reconstruct_n(0, n)
    lists = index.invlists
    id_parts, vec_parts = [], []
    for no in range(index.nlist):
        size = lists.list_size(no)
        if size:
            id_parts.append(faiss.rev_swig_ptr(lists.get_ids(no), size).copy())
            codes = faiss.rev_swig_ptr(lists.get_codes(no), size * dim * 4)
            vec_parts.append(np.frombuffer(codes, dtype=np.float32).reshape(size, dim).copy())
    if not id_parts:
        return np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
    return np.concatenate(id_parts), np.concatenate(vec_parts)


def _check(ids: np.ndarray, vecs: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
    vecs = np.ascontiguousarray(vecs, dtype=np.float32)
    if len(ids) == 0:
        return ids, vecs.reshape(0, dim)
    if vecs.shape != (len(ids), dim):
        raise ValueError(f"expected vectors of shape {(len(ids), dim)}, got {vecs.shape}")
    return ids, vecs


def _pairs(scores: np.ndarray, ids: np.ndarray) -> list[tuple[int, float]]:
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]


@contextlib.contextmanager
def _omp_threads(n: int) -> Iterator[None]:
    """Run FAISS with ``n`` OpenMP threads, then restore the process setting."""
    import faiss

    before = faiss.omp_get_max_threads()
    if n != before:
        faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        if n != before:
            faiss.omp_set_num_threads(before)


def _write_json_atomic(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)
