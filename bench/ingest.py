"""Ingest throughput and peak memory on generated corpora.

Each case runs in its own process (so peak RSS is that case's alone): models
are loaded first and timed apart, then the corpus is ingested into a fresh
index. Prints one row per case:

    case        pages  chunks  load_s  ingest_s  pages/s  peak_rss_mb

Usage:
    python bench/ingest.py                      # digital 30 pages, scanned 6 pages
    python bench/ingest.py --digital 100 --scanned 20 --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures" / "data"


def make_corpus(kind: str, pages: int, out: Path) -> Path:
    """A PDF of ``pages`` pages cycling through the digital or scanned report fixture."""
    import pymupdf

    src = pymupdf.open(FIXTURES / ("report.pdf" if kind == "digital" else "report_scan.pdf"))
    doc = pymupdf.open()
    while doc.page_count < pages:
        doc.insert_pdf(src, to_page=min(src.page_count, pages - doc.page_count) - 1)
    # Distinct bytes per corpus so nothing is deduplicated by content hash.
    doc.set_metadata({"title": f"bench {kind} {pages} {time.time()}"})
    path = out / f"{kind}-{pages}.pdf"
    doc.save(path, garbage=3, deflate=True)
    return path


def run_case(kind: str, pages: int) -> dict:
    """Run one case in this process and return its figures."""
    from docrag import Index, IngestOptions
    from docrag.detect import get_detector
    from docrag.embed import get_embedder
    from docrag.recognize import get_recognizer

    with tempfile.TemporaryDirectory() as tmp:
        corpus = make_corpus(kind, pages, Path(tmp))
        t0 = time.perf_counter()
        get_embedder("minilm")
        if kind == "scanned":
            get_detector("dbnet")
            get_recognizer("ppocr")
        load_s = time.perf_counter() - t0
        from docrag.config import options_from_env

        index = Index(Path(tmp) / "ix", options_from_env(IngestOptions))  # DOCRAG_* variables apply
        t1 = time.perf_counter()
        report = index.ingest([corpus])
        ingest_s = time.perf_counter() - t1
        totals = report.totals()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "case": kind,
        "pages": totals["pages"],
        "pages_ocr": totals["pages_ocr"],
        "chunks": totals["chunks"],
        "load_s": round(load_s, 2),
        "ingest_s": round(ingest_s, 2),
        "pages_per_s": round(totals["pages"] / ingest_s, 2),
        "peak_rss_mb": round(peak_kb / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--digital", type=int, default=30, help="born-digital pages")
    parser.add_argument("--scanned", type=int, default=6, help="scanned pages (OCR)")
    parser.add_argument("--json", action="store_true", help="print JSON rows")
    parser.add_argument("--_case", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._case:
        print(json.dumps(run_case(args._case[0], int(args._case[1]))))
        return
    rows = []
    for kind, pages in (("digital", args.digital), ("scanned", args.scanned)):
        if pages <= 0:
            continue
        out = subprocess.run([sys.executable, __file__, "--_case", kind, str(pages)],
                             check=True, capture_output=True, text=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    machine = f"{platform.machine()}, {os.cpu_count()} cpu, python {platform.python_version()}"
    if args.json:
        print(json.dumps({"machine": machine, "rows": rows}, indent=2))
        return
    print(f"# bench/ingest.py  ({machine})")
    cols = ["case", "pages", "chunks", "load_s", "ingest_s", "pages_per_s", "peak_rss_mb"]
    print("  ".join(f"{c:>11}" for c in cols))
    for row in rows:
        print("  ".join(f"{row[c]:>11}" for c in cols))


if __name__ == "__main__":
    main()
