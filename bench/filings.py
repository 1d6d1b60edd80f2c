"""Page-level retrieval on real filings: filings-dev's two QA sets against one cached index.

Ingests ``../shared/data/filings-dev/pdfs`` (7 real 10-Q/10-K filings, 535 pages)
into an index directory once (reused when it holds all seven), then runs
:func:`docrag.evaluate.evaluate` on ``qa.jsonl`` and ``qa-hard.jsonl``. The hard
set is split by a fixed rule into a development part and a held-out part: every
third question (0-based line index ``i % 3 == 2``) is held out, the rest are
``dev``. Tune on ``dev``; read ``held`` only as a check. Prints one line per
set and per question type (pages are scored: ``group="page"``), then the search
latency at k=5 (default options, evidence located) for chunk and page grouping:

    set        mode    n   R@1    R@5    R@10   MRR    docR@1

``--explain`` lists the misses of ``qa`` and ``hard-dev`` (never of the held-out
part) with the gold page's rank and the top page's context header.
``--region-context`` measures a proposed ingest change (tables and figures get
the section path of the text above them); use a fresh ``--index`` with it.

Usage:
    python bench/filings.py                                  # cached index at /tmp/filings-ix
    python bench/filings.py --index /tmp/ix2 --modes hybrid bm25 dense --json
    python bench/filings.py --search cues=false --explain    # SearchOptions overrides (KEY=VALUE)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "filings-dev"

from docrag import Index  # noqa: E402
from docrag.config import IngestOptions, SearchOptions  # noqa: E402
from docrag.evaluate import evaluate, explain_misses, load_qa  # noqa: E402

HELD_OUT_EVERY = 3
"""Every third hard question (0-based index ``i % 3 == 2``) is held out from tuning."""


def hard_split(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(dev, held-out) parts of the hard set by the fixed rule above."""
    dev = [r for i, r in enumerate(rows) if i % HELD_OUT_EVERY != HELD_OUT_EVERY - 1]
    held = [r for i, r in enumerate(rows) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    return dev, held


def region_context() -> None:
    """Give table and figure chunks the section path of the text above them at ingest.

    What ``docrag.chunk.assemble`` would do with :func:`docrag.chunk.context.region_sections`
    (a proposed change, measured here by wrapping ``assemble`` in this process only).
    """
    import docrag.ingest as ingest
    from docrag.chunk.context import context_header, region_sections, section_of_blocks
    from docrag.chunk.visual import visual_regions

    original = ingest.assemble

    def wrapped(pages, doc_id, source, metadata=None, options=None, tags=None,  # type: ignore[no-untyped-def]
                ocr_engine="ocr"):
        out = original(pages, doc_id, source, metadata, options, tags, ocr_engine)
        if options is not None and not options.context_headers:
            return out
        carried, by_page = "", {}
        for page in pages:
            paths, carried = section_of_blocks(page, carried)
            by_page[page.number] = region_sections(page, paths, visual_regions(page))
        seen: dict[int, int] = {}
        for chunk in out.chunks:
            if chunk.kind != "text" and by_page.get(chunk.page):
                i = seen.get(chunk.page, 0)
                seen[chunk.page] = i + 1
                if i < len(by_page[chunk.page]):
                    chunk.context = context_header(out.profile, by_page[chunk.page][i])
        return out

    ingest.assemble = wrapped


def open_index(path: Path, data: Path, embedder: str, workers: int) -> Index:
    """The index at ``path``, ingesting the filings first when it lacks any of them."""
    pdfs = sorted((data / "pdfs").glob("*.pdf"))
    index = Index(path, IngestOptions(embedder=embedder, workers=workers))
    have = {Path(d["source"]).name for d in index.documents()} if index.exists else set()
    missing = [p for p in pdfs if p.name not in have]
    if missing:
        t0 = time.perf_counter()
        report = index.ingest([str(p) for p in missing])
        pages = sum(f.pages for f in report.files)
        print(f"# ingested {len(missing)} files ({pages} pages) in {time.perf_counter() - t0:.0f} s", flush=True)
    return index


def with_types(rows: list[dict[str, Any]], detail: Path) -> list[dict[str, Any]]:
    """QA rows with the ``type`` of the same question in the detailed file (when it exists)."""
    if not detail.exists():
        return rows
    types = {}
    for line in detail.read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            types[d["question"]] = (d.get("type"), d.get("id"))
    return [{**r, "type": types.get(r["question"], (None, None))[0], "id": types.get(r["question"], (None, None))[1]}
            for r in rows]


def row_line(name: str, mode: str, n: int, m: dict[str, float]) -> str:
    return (f"{name:<28} {mode:<7} {n:>3}  {m['recall@1']:.3f}  {m['recall@5']:.3f}  {m['recall@10']:.3f}  "
            f"{m['mrr@10']:.3f}  {m['doc_recall@1']:.3f}")


def explain(index: Index, rows: list[dict[str, Any]], opts: dict[str, Any], mode: str) -> None:
    """Each miss at 5: question, gold page, its rank, and the top page with its context header."""
    for miss in explain_misses(index, rows, mode, k=5, **opts):
        print(f"  MISS [{miss['type'] or ''}] gold={Path(miss['gold']).name} rank={miss['gold_rank']} :: "
              f"{miss['question']}")
        print(f"       top={miss['top']} ctx={(miss['top_context'] or '')[:160]!r}")


def latency(index: Index, queries: list[str], opts: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """p50 and p95 milliseconds of ``Index.search(q, k=5)`` per grouping, after one warm-up pass."""
    out = {}
    for group in ("chunk", "page"):
        kw = {**opts, "group": group}
        for q in queries[:10]:
            index.search(q, k=5, **kw)
        times = []
        for q in queries:
            t0 = time.perf_counter()
            index.search(q, k=5, **kw)
            times.append(1000 * (time.perf_counter() - t0))
        times.sort()
        out[group] = (times[len(times) // 2], times[int(0.95 * (len(times) - 1))])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", default="/tmp/filings-ix", help="index directory (ingested once, then reused)")
    ap.add_argument("--data", default=str(DATA), help="the filings-dev directory")
    ap.add_argument("--embedder", default="minilm-onnx-int8")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--modes", nargs="+", default=["hybrid"])
    ap.add_argument("--search", nargs="*", default=[], metavar="KEY=VALUE", help="SearchOptions overrides")
    ap.add_argument("--explain", action="store_true", help="list misses at 5 (qa and hard-dev only)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--region-context", action="store_true",
                    help="at ingest, give table/figure chunks the section path of the text above them "
                    "(a proposed docrag.chunk.assemble change, measured here)")
    args = ap.parse_args()
    if args.region_context:
        region_context()

    data = Path(args.data)
    print(machine(), flush=True)
    opts: dict[str, Any] = {}
    for item in args.search:
        key, _, value = item.partition("=")
        opts[key] = json.loads(value) if value[:1] in "[{0123456789tfn" and value not in ("t", "f") else value
    SearchOptions(**opts)  # fail early on a bad override
    index = open_index(Path(args.index), data, args.embedder, args.workers)
    qa = with_types(load_qa(data / "qa.jsonl"), data / "questions.jsonl")
    hard = with_types(load_qa(data / "qa-hard.jsonl"), data / "questions-hard.jsonl")
    dev, held = hard_split(hard)
    sets = {"qa": qa, "hard": hard, "hard-dev": dev, "hard-held": held}
    out: dict[str, Any] = {}
    print(f"{'set':<28} {'mode':<7} {'n':>3}  R@1    R@5    R@10   MRR    docR@1")
    t0 = time.perf_counter()
    for name, rows in sets.items():
        res = evaluate(index, rows, args.modes, **opts)
        out[name] = res["modes"]
        for mode in args.modes:
            print(row_line(name, mode, len(rows), res["modes"][mode]), flush=True)
            if args.explain and name in ("qa", "hard-dev"):
                explain(index, rows, opts, mode)
        if name in ("qa", "hard"):
            for mode in args.modes:
                for t, m in res.get("per_type", {}).get(mode, {}).items():
                    print(row_line(f"{name}:{t}", mode, m["questions"], {**m, "doc_recall@1": float("nan")}))
            out[f"{name}-per-type"] = res.get("per_type", {})
    print(f"# eval {time.perf_counter() - t0:.1f} s")
    out["latency"] = latency(index, [r["question"] for r in qa + hard], opts)
    for group, (p50, p95) in out["latency"].items():
        print(f"# search k=5 group={group} (locate on): p50 {p50:.1f} ms, p95 {p95:.1f} ms "
              f"over {len(qa + hard)} queries")
    if args.json:
        print(json.dumps(out, indent=1))
    index.close()


if __name__ == "__main__":
    main()
