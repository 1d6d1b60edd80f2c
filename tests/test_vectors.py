"""VectorCache: the FAISS type follows size, stamps guard loads, updates and filters stay correct."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from docrag.index.vectors import FAISS_FLAT, VectorCache

DIM = 64
THRESHOLD = 2_000  # lowered so ~10k vectors take the approximate path in a fast test


def clustered(n: int, seed: int, centres: int = 50) -> np.ndarray:
    """Unit vectors around shared centres (fixed seed 0), noisy enough that IVF must probe."""
    c = np.random.default_rng(0).standard_normal((centres, DIM)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    x = c[rng.integers(0, centres, n)] + 0.12 * rng.standard_normal((n, DIM)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def exact(vecs: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    scores = vecs @ q
    order = np.argsort(-scores, kind="stable")[:k]
    return ids[order].tolist()


def build(tmp_path: Path, n: int, threshold: int = THRESHOLD, name: str = "t.faiss") -> tuple[VectorCache, np.ndarray, np.ndarray]:
    vecs = clustered(n, seed=n)
    ids = np.arange(1, n + 1, dtype=np.int64) * 7  # sparse ids, like rowids after deletes
    cache = VectorCache(tmp_path / name, DIM, threshold=threshold)
    cache.rebuild(((int(i), v.tobytes()) for i, v in zip(ids, vecs)), generation=3)
    return cache, ids, vecs


@pytest.fixture(scope="module")
def ivf(tmp_path_factory: pytest.TempPathFactory) -> tuple[VectorCache, np.ndarray, np.ndarray]:
    return build(tmp_path_factory.mktemp("ivf"), 10_000)


@pytest.fixture(params=["flat", "ivf"])
def cache_of_kind(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[VectorCache, np.ndarray, np.ndarray]:
    return build(tmp_path, 1_000 if request.param == "flat" else 6_000)


def stamp(cache: VectorCache) -> dict:
    return json.loads(cache.stamp_path.read_text())


def test_flat_below_threshold(tmp_path: Path) -> None:
    cache, ids, vecs = build(tmp_path, 1_500)
    assert cache.kind == FAISS_FLAT == stamp(cache)["type"]
    q = clustered(5, seed=99)
    for qi in q:
        assert [i for i, _ in cache.search(qi, 10)] == exact(vecs, ids, qi, 10)


def test_approximate_above_threshold_keeps_recall(ivf: tuple[VectorCache, np.ndarray, np.ndarray]) -> None:
    cache, ids, vecs = ivf
    assert cache.kind.startswith("IVF") and cache.kind.endswith(f"nprobe={cache.index.nprobe}")
    s = stamp(cache)
    assert s["type"] == cache.kind and s["count"] == 10_000 and s["trained_on"] == 10_000
    assert s["nlist"] == 400 and 0.95 <= s["recall_at_10"] <= 1.0
    queries = clustered(200, seed=123)
    hits = [len(set(i for i, _ in cache.search(q, 10)) & set(exact(vecs, ids, q, 10))) for q in queries]
    assert sum(hits) / (10 * len(queries)) >= 0.95


def test_load_checks_the_stamp(ivf: tuple[VectorCache, np.ndarray, np.ndarray], tmp_path: Path) -> None:
    cache, _, _ = ivf
    fresh = VectorCache(cache.path, DIM, threshold=THRESHOLD)
    assert fresh.load(3, 10_000) and fresh.kind == cache.kind and fresh.trained_on == 10_000
    assert not VectorCache(cache.path, DIM).load(4, 10_000)  # stale generation
    assert not VectorCache(cache.path, DIM).load(3, 9_999)  # count differs
    assert not VectorCache(cache.path, DIM + 1).load(3, 10_000)  # other embedder dimension
    # A stamp naming another type (e.g. written by a different build) is refused.
    copy = VectorCache(tmp_path / "copy.faiss", DIM)
    copy.path.write_bytes(cache.path.read_bytes())
    s = stamp(cache)
    copy.stamp_path.write_text(json.dumps({**s, "type": FAISS_FLAT}))
    assert not copy.load(3, 10_000)
    copy.stamp_path.write_text(json.dumps(s))
    assert copy.load(3, 10_000)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing"])
def test_corrupt_file_is_refused(tmp_path: Path, damage: str) -> None:
    cache, _, _ = build(tmp_path, 500)
    data = cache.path.read_bytes()
    if damage == "garbage":
        cache.path.write_bytes(b"not a faiss index" * 10)
    elif damage == "truncated":
        cache.path.write_bytes(data[: len(data) // 2])
    else:
        cache.path.unlink()
    assert not VectorCache(cache.path, DIM).load(3, 500)


def test_update_adds_and_removes(cache_of_kind: tuple[VectorCache, np.ndarray, np.ndarray]) -> None:
    cache, ids, vecs = cache_of_kind
    kind, n = cache.kind, len(ids)
    gone = ids[:20].tolist()
    new_ids = np.arange(1, 11, dtype=np.int64) * 7 + 1_000_000
    new_vecs = clustered(10, seed=7)
    assert cache.update(new_ids, new_vecs, gone, generation=4) is False
    assert cache.kind == kind and cache.index.ntotal == n - 20 + 10
    for j, v in enumerate(vecs[:20]):
        assert gone[j] not in [i for i, _ in cache.search(v, 10)]
    for i, v in zip(new_ids, new_vecs):
        top, score = cache.search(v, 1)[0]
        assert top == i and score == pytest.approx(1.0, abs=1e-5)
    again = VectorCache(cache.path, DIM, threshold=THRESHOLD)
    assert again.load(4, n - 10) and again.kind == kind


def test_update_rebuilds_when_size_leaves_the_type(tmp_path: Path) -> None:
    cache, ids, vecs = build(tmp_path, 1_500)
    more = clustered(1_000, seed=5)
    more_ids = np.arange(1, 1_001, dtype=np.int64) + 10_000_000
    assert cache.update(more_ids, more, [], generation=4) is True  # crossed the threshold
    assert cache.kind.startswith("IVF") and stamp(cache)["trained_on"] == 2_500
    assert cache.search(more[3], 1)[0][0] == more_ids[3]
    assert cache.update(np.zeros(0, np.int64), np.zeros((0, DIM), np.float32), more_ids.tolist(), 5) is False
    assert cache.kind.startswith("IVF")  # 1500 left: hysteresis keeps IVF above threshold / 2
    assert cache.update(np.zeros(0, np.int64), np.zeros((0, DIM), np.float32), ids[:600].tolist(), 6) is True
    assert cache.kind == FAISS_FLAT and cache.index.ntotal == 900
    q = clustered(1, seed=11)[0]
    assert [i for i, _ in cache.search(q, 10)] == exact(vecs[600:], ids[600:], q, 10)


@pytest.mark.parametrize("fraction", [0.002, 0.02, 0.5])
def test_filtered_search_returns_the_allowed_best(cache_of_kind: tuple[VectorCache, np.ndarray, np.ndarray],
                                                   fraction: float) -> None:
    cache, ids, vecs = cache_of_kind
    rng = np.random.default_rng(3)
    pos = np.sort(rng.choice(len(ids), max(2, int(len(ids) * fraction)), replace=False))
    queries = clustered(30, seed=77)
    hits = 0
    for q in queries:
        got = [i for i, _ in cache.search(q, 10, allowed=ids[pos])]
        want = exact(vecs[pos], ids[pos], q, 10)
        assert len(got) == min(10, len(pos)) and set(got) <= set(ids[pos].tolist())
        if cache.kind == FAISS_FLAT or len(pos) / len(ids) < cache.exact_filter_fraction:
            assert got == want  # exact: Flat, or IVF scanning every list for a selective filter
        hits += len(set(got) & set(want))
    assert hits / (len(queries) * min(10, len(pos))) >= 0.95


def test_empty_and_bad_queries(tmp_path: Path) -> None:
    cache, ids, _ = build(tmp_path, 100)
    q = clustered(1, seed=1)[0]
    assert cache.search(q, 10, allowed=np.zeros(0, np.int64)) == []
    assert len(cache.search(q, 500)) == 100
    with pytest.raises(ValueError, match="dimension"):
        cache.search(np.zeros(DIM + 1, np.float32), 3)
    with pytest.raises(ValueError, match="bytes"):
        cache.rebuild([(1, b"\0" * 12)], generation=1)


def test_caches_of_one_process_share_a_loaded_index_and_copy_it_before_changing_it(tmp_path: Path) -> None:
    # A server's readers each had their own copy of the FAISS file in memory (3 at 2 cores).
    path = tmp_path / "text.faiss"
    VectorCache(path, dim=4).build(np.arange(3), np.eye(3, 4, dtype=np.float32), generation=1)
    reader, writer = VectorCache(path, dim=4), VectorCache(path, dim=4)
    assert reader.load(1, 3) and writer.load(1, 3) and reader.index is writer.index
    writer.update(np.array([7]), np.eye(1, 4, k=3, dtype=np.float32), [], generation=2)
    assert writer.index is not reader.index and reader.index.ntotal == 3 and writer.index.ntotal == 4
    assert reader.search(np.eye(1, 4, k=1, dtype=np.float32)[0], k=1) == [(1, 1.0)]
    later = VectorCache(path, dim=4)
    assert later.load(2, 4) and later.index is not reader.index and later.search(
        np.eye(1, 4, k=3, dtype=np.float32)[0], k=1) == [(7, 1.0)]
    assert not reader.load(2, 3)  # a stamp that does not match is no file to share
