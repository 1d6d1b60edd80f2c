"""Vector search latency and recall at scale, through the product's ``VectorCache``.

Random-but-clustered unit vectors: ``--centres`` Gaussian centres in 384-d,
each point ``centre + sigma·noise`` normalized, ``sigma`` drawn per point from
``[noise, 2·noise]`` (at the default 0.06 a point's cosine to its centre is
~0.4–0.65 and IVF needs real probing; at 0.03 every method scores 1.0).
Queries are drawn the same way and are not in the base set. For each size the
index is built with ``VectorCache.rebuild`` (the type it picks is the product's
choice), then single queries are timed one at a time after a warm-up, and
recall@10 is taken against exact inner-product search. Prints:

    n  index_type  build_s  p50_ms  p95_ms  recall@10  mem_mb

and a second table for filtered search (a random ``allowed`` subset).

With ``--index DIR`` it measures a real index instead (``bench/search_index.py``):
docrag's hybrid search against a hand-written dense search over the same chunks,
and BM25 alone (FTS5 against the in-memory term index).

Usage:
    python bench/search.py                          # 100k and 1M
    python bench/search.py --sizes 100000 --queries 1000 --json
    python bench/search.py --index /tmp/filings-ix  # a filings-dev index (bench/filings.py builds one)
    python bench/search.py --index /tmp/filings-ix --replicate 10   # the same, ~30k chunks
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine as _machine  # noqa: E402

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from docrag.index.vectors import VectorCache  # noqa: E402

DIM = 384
K = 10


def machine() -> str:
    import faiss

    return _machine(f"faiss {faiss.__version__}")


class Clusters:
    """Draws clustered unit vectors around fixed centres."""

    def __init__(self, centres: int, noise: float, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        c = self.rng.standard_normal((centres, DIM), dtype=np.float32)
        self.centres = c / np.linalg.norm(c, axis=1, keepdims=True)
        self.noise = noise

    def draw(self, m: int) -> np.ndarray:
        out = np.empty((m, DIM), dtype=np.float32)
        for s in range(0, m, 100_000):
            e = min(m, s + 100_000)
            sigma = self.rng.uniform(self.noise, 2 * self.noise, e - s).astype(np.float32)[:, None]
            x = self.centres[self.rng.integers(0, len(self.centres), e - s)]
            x = x + sigma * self.rng.standard_normal((e - s, DIM), dtype=np.float32)
            out[s:e] = x / np.linalg.norm(x, axis=1, keepdims=True)
        return out


def recall(got: list[list[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(g) & set(t.tolist())) / len(t) for g, t in zip(got, truth)]))


def time_queries(cache: VectorCache, queries: np.ndarray, allowed: np.ndarray | None = None) -> tuple[list[float], list[list[int]]]:
    for q in queries[:50]:  # warm-up: page in lists, settle caches
        cache.search(q, K, allowed)
    lat, got = [], []
    for q in queries:
        t0 = time.perf_counter()
        res = cache.search(q, K, allowed)
        lat.append((time.perf_counter() - t0) * 1e3)
        got.append([i for i, _ in res])
    return lat, got


def run_size(n: int, args: argparse.Namespace, tmp: Path) -> tuple[list[dict], list[dict]]:
    import faiss

    gen = Clusters(args.centres, args.noise, seed=n)
    base = gen.draw(n)
    queries = gen.draw(args.queries)
    ids = np.arange(1, n + 1, dtype=np.int64)  # chunk ids start at 1 like SQLite rowids
    cache = VectorCache(tmp / f"bench-{n}.faiss", DIM)
    t0 = time.perf_counter()
    cache.rebuild(((int(i), v.tobytes()) for i, v in zip(ids, base)), generation=1)
    build_s = time.perf_counter() - t0
    _, truth_pos = faiss.knn(queries, base, K, metric=faiss.METRIC_INNER_PRODUCT)
    truth = ids[truth_pos]
    mem_mb = cache.path.stat().st_size / 2**20
    rows = []
    for run in range(args.latency_runs):
        lat, got = time_queries(cache, queries)
        rows.append({"n": n, "index_type": cache.kind, "build_s": round(build_s, 1),
                     "p50_ms": round(float(np.percentile(lat, 50)), 3), "p95_ms": round(float(np.percentile(lat, 95)), 3),
                     "recall@10": round(recall(got, truth), 4), "mem_mb": round(mem_mb, 1), "run": run + 1,
                     "recall_est_at_build": cache.recall_estimate})
    filtered = []
    rng = np.random.default_rng(1)
    fq = queries[: min(200, len(queries))]
    for frac in args.filters:
        m = max(K, int(n * frac))
        pos = np.sort(rng.choice(n, m, replace=False))
        _, tp = faiss.knn(fq, np.ascontiguousarray(base[pos]), K, metric=faiss.METRIC_INNER_PRODUCT)
        lat, got = time_queries(cache, fq, ids[pos])
        filtered.append({"n": n, "allowed": m, "fraction": frac, "p50_ms": round(float(np.percentile(lat, 50)), 3),
                         "p95_ms": round(float(np.percentile(lat, 95)), 3),
                         "recall@10": round(recall(got, ids[pos][tp]), 4),
                         "full_k": all(len(g) == K for g in got)})
    del cache, base
    return rows, filtered


def main() -> None:
    if "--index" in sys.argv[1:]:
        from search_index import main as index_main

        index_main()
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100000,1000000", help="comma-separated vector counts")
    ap.add_argument("--queries", type=int, default=500, help="single queries timed per size (after 50 warm-up)")
    ap.add_argument("--centres", type=int, default=2000, help="Gaussian cluster centres")
    ap.add_argument("--noise", type=float, default=0.06, help="per-dimension noise sigma, drawn in [noise, 2*noise]")
    ap.add_argument("--filters", default="0.001,0.01,0.05,0.2,0.5", help="allowed fractions for the filtered table ('' for none)")
    ap.add_argument("--latency-runs", type=int, default=1, help="repeat the latency pass (noisy machines)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = ap.parse_args()
    args.filters = [float(f) for f in args.filters.split(",") if f]
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rows, filtered = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            r, f = run_size(n, args, Path(tmp))
            rows += r
            filtered += f
    if args.json:
        print(json.dumps({"machine": machine(), "rows": rows, "filtered": filtered}, indent=2))
        return
    print(machine())
    print(f"# clustered: {args.centres} centres, noise {args.noise}-{2 * args.noise}, {args.queries} single queries, k={K}")
    print(f"{'n':>8}  {'index_type':<28} {'build_s':>7} {'p50_ms':>7} {'p95_ms':>7} {'recall@10':>9} {'mem_mb':>7}")
    for r in rows:
        print(f"{r['n']:>8}  {r['index_type']:<28} {r['build_s']:>7.1f} {r['p50_ms']:>7.2f} {r['p95_ms']:>7.2f} "
              f"{r['recall@10']:>9.4f} {r['mem_mb']:>7.0f}")
    if filtered:
        print("# filtered search (random allowed subset), recall@10 vs exact over the allowed ids")
        print(f"{'n':>8}  {'allowed':>8} {'p50_ms':>7} {'p95_ms':>7} {'recall@10':>9} {'full_k':>6}")
        for f in filtered:
            print(f"{f['n']:>8}  {f['allowed']:>8} {f['p50_ms']:>7.2f} {f['p95_ms']:>7.2f} {f['recall@10']:>9.4f} {str(f['full_k']):>6}")


if __name__ == "__main__":
    main()
