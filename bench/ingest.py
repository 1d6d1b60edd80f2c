"""Ingest throughput and peak memory on generated corpora, and embedding speed against plain torch.

Each case runs in its own process, so its peak memory is its own. A case makes
a corpus (the report fixture's pages repeated, born-digital or scanned, distinct
bytes), ingests a short warm-up document of the same kind into a fresh index
(models load, page workers start: ``warm_s``), then ingests the corpus, timing:

- ``pages/s``: pages of the corpus over the wall time of ``Index.ingest``;
- ``emb_chunks/s``: chunks over the time spent in the embedder during that ingest;
- ``ocr_pages/s``: OCR'd pages over the same wall time (scanned cases: all pages);
- ``rss_mb``: peak RSS of the whole process tree (this process + page workers,
  sampled every 50 ms and summed: an upper bound, shared pages count once per
  process); ``main_mb``: the main process's own peak (``VmHWM``, exact).

Then, in one more process, the chunk texts the born-digital case embedded
(exactly as embedded: context header + text) go through the plain
sentence-transformers torch path (``SentenceTransformer(dir).encode(texts)``,
default settings: what a user of the library gets) and through docrag's ONNX
embedders, taking turns on slices so a change in machine load hits all alike:
chunks/s, speed-up over torch, cosine to the torch vectors.

    case     engine  pages  chunks  warm_s  ingest_s  pages/s  emb_chunks/s  ocr_pages/s  rss_mb  main_mb

Usage:
    python bench/ingest.py                                   # digital 100 and 1000, scanned 100 (~20 min)
    python bench/ingest.py --digital 30 --scanned 0 --json
    python bench/ingest.py --digital 100 --scanned 0 --engines local ray
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine as _machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FIXTURES = ROOT / "fixtures" / "data"


def make_corpus(kind: str, pages: int, out: Path, tag: str = "") -> Path:
    """A PDF of ``pages`` pages cycling through the digital or scanned report fixture."""
    import pymupdf

    src = pymupdf.open(FIXTURES / ("report.pdf" if kind == "digital" else "report_scan.pdf"))
    doc = pymupdf.open()
    while doc.page_count < pages:
        doc.insert_pdf(src, to_page=min(src.page_count, pages - doc.page_count) - 1)
    # Distinct bytes per corpus so nothing is deduplicated by content hash.
    doc.set_metadata({"title": f"bench {kind} {pages} {tag} {time.time()}"})
    path = out / f"{kind}-{pages}{tag}.pdf"
    doc.save(path, garbage=3, deflate=True)
    return path


class TreeRss:
    """Samples the summed RSS of this process and its descendants; ``peak_mb`` after ``stop()``."""

    def __init__(self, every_s: float = 0.05) -> None:
        import psutil

        self._me = psutil.Process()
        self._every = every_s
        self._stop = threading.Event()
        self.peak = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> int:
        import psutil

        total = 0
        for proc in [self._me, *self._me.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:  # exited between listing and reading
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self._every)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())
        return self.peak / 2**20


def own_peak_mb() -> float:
    """This process's peak RSS (``VmHWM``), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(kind: str, pages: int, engine: str, texts_out: str | None) -> dict:
    """Run one case in this process and return its figures."""
    from docrag import Index, IngestOptions
    from docrag.config import options_from_env
    from docrag.embed import get_embedder
    from docrag.workers import MIN_POOL_PAGES

    rss = TreeRss()
    options = options_from_env(IngestOptions).model_copy(update={"engine": engine})  # DOCRAG_* variables apply
    with tempfile.TemporaryDirectory() as tmp:
        corpus = make_corpus(kind, pages, Path(tmp))
        warm = make_corpus(kind, MIN_POOL_PAGES, Path(tmp), tag="-warm")
        index = Index(Path(tmp) / "ix", options)
        t0 = time.perf_counter()
        emb = get_embedder(options.embedder, options.batch_size)  # the instance Index will use (cached)
        index.ingest([warm])
        warm_s = time.perf_counter() - t0

        embedded: list[str] = []
        spent = [0.0]
        plain = emb.embed_documents

        def timed(texts: list[str]):  # type: ignore[no-untyped-def]
            t = time.perf_counter()
            try:
                return plain(texts)
            finally:
                spent[0] += time.perf_counter() - t
                embedded.extend(texts)

        emb.embed_documents = timed  # type: ignore[method-assign]
        t1 = time.perf_counter()
        report = index.ingest([corpus])
        ingest_s = time.perf_counter() - t1
        emb.embed_documents = plain  # type: ignore[method-assign]
        index.close()  # stops the page workers
        totals = report.totals()
    tree_mb = rss.stop()
    if texts_out:
        Path(texts_out).write_text(json.dumps(embedded))
    return {
        "case": kind, "engine": engine, "embedder": emb.name,
        "pages": totals["pages"], "pages_ocr": totals["pages_ocr"], "chunks": totals["chunks"],
        "page_errors": totals["page_errors"],
        "warm_s": round(warm_s, 2), "ingest_s": round(ingest_s, 2),
        "pages_per_s": round(totals["pages"] / ingest_s, 2),
        "emb_chunks_per_s": round(len(embedded) / spent[0], 1) if spent[0] else None,
        "ocr_pages_per_s": round(totals["pages_ocr"] / ingest_s, 3) if totals["pages_ocr"] else None,
        "rss_mb": round(tree_mb, 1), "main_mb": round(own_peak_mb(), 1),
    }


def run_embed(texts_file: str, slices: int) -> dict:
    """Plain sentence-transformers (torch) against the ONNX embedders on the same texts."""
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    from docrag.config import IngestOptions
    from docrag.embed import get_embedder
    from docrag.embed.sentence import minilm_path

    texts = json.loads(Path(texts_file).read_text())
    default = IngestOptions().embedder
    model = SentenceTransformer(minilm_path(), device="cpu")
    engines = {"torch (sentence-transformers)": lambda t: model.encode(t)}
    for name in dict.fromkeys([default, "minilm-onnx", "minilm-onnx-int8"]):
        emb = get_embedder(name)
        if emb.name != "minilm":  # the registered torch path is the baseline itself
            engines[name] = emb.embed_documents
    for fn in engines.values():  # warm-up: first-call allocations, lazy inits
        fn(texts[:32])
    seconds = dict.fromkeys(engines, 0.0)
    vectors: dict[str, list] = {k: [] for k in engines}
    keys = list(engines)
    bounds = np.linspace(0, len(texts), slices + 1).astype(int)
    for s in range(slices):
        part = texts[bounds[s]:bounds[s + 1]]
        for key in keys[s % len(keys):] + keys[:s % len(keys)]:  # rotate who goes first
            t = time.perf_counter()
            vectors[key].append(np.asarray(engines[key](part), dtype=np.float32))
            seconds[key] += time.perf_counter() - t
    ref = np.concatenate(vectors[keys[0]])
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)  # encode() does not normalize by default
    base = len(texts) / seconds[keys[0]]
    rows = []
    for key in keys:
        vecs = np.concatenate(vectors[key])
        cos = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True) * ref).sum(1)
        rate = len(texts) / seconds[key]
        rows.append({"engine": key, "default": key == default, "chunks_per_s": round(rate, 1),
                     "speedup": round(rate / base, 2), "mean_cos": round(float(cos.mean()), 4),
                     "min_cos": round(float(cos.min()), 4)})
    return {"texts": len(texts), "distinct": len(set(texts)), "torch_threads": torch.get_num_threads(), "rows": rows}


def subprocess_json(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if out.returncode:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"bench/ingest.py {' '.join(args)} failed (exit {out.returncode})")
    return json.loads(out.stdout.strip().splitlines()[-1])


def acceptance(rows: list[dict], embed: dict | None) -> list[str]:
    """Issue #8's checks on these figures, and issue #4's scanned-memory check."""
    lines = []
    if embed:
        best = next((r for r in embed["rows"] if r["default"]), None)
        if best is None:
            lines.append("embedding: default embedder is the torch path itself: ratio 1.00x FAIL")
        else:
            ok = best["speedup"] >= 3.0
            lines.append(f"embedding {best['engine']}: {best['speedup']:.2f}x torch chunks/s (>= 3x) "
                         f"{'ok' if ok else 'FAIL'}; cosine mean {best['mean_cos']:.4f} min {best['min_cos']:.4f}")
    for r in rows:
        if r["case"] == "digital":
            ok = r["pages_per_s"] >= 10
            lines.append(f"digital {r['pages']} {r['engine']}: {r['pages_per_s']:.2f} pages/s end to end (>= 10) "
                         f"{'ok' if ok else 'FAIL'}")
    # Issue #8: 1,000 vs 100 born-digital pages within 1.3x; issue #4: 100 vs 10 scanned pages within 1.5x.
    for engine in dict.fromkeys(r["engine"] for r in rows):
        for case, bound in (("digital", 1.3), ("scanned", 1.5)):
            sizes = {r["pages"]: r for r in rows if r["case"] == case and r["engine"] == engine}
            small, big = (sizes.get(min(sizes)), sizes.get(max(sizes))) if sizes else (None, None)
            if small and big and big["pages"] >= 10 * small["pages"]:
                ratio = big["rss_mb"] / small["rss_mb"]
                lines.append(f"peak RSS {engine}: {big['pages']} / {small['pages']} {case} pages = {ratio:.2f}x "
                             f"(<= {bound}) {'ok' if ratio <= bound else 'FAIL'}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--digital", type=int, nargs="*", default=[100, 1000], help="born-digital corpus sizes (pages)")
    parser.add_argument("--scanned", type=int, nargs="*", default=[100], help="scanned corpus sizes (pages, OCR)")
    parser.add_argument("--engines", nargs="+", default=["local"], help="page engines: local, ray")
    parser.add_argument("--slices", type=int, default=4, help="turns the embedders take in the embedding comparison")
    parser.add_argument("--no-embed", action="store_true", help="skip the torch-vs-ONNX embedding comparison")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--_case", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--_texts", help=argparse.SUPPRESS)
    parser.add_argument("--_embed", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._case:
        print(json.dumps(run_case(args._case[0], int(args._case[1]), args._case[2], args._texts)))
        return
    if args._embed:
        print(json.dumps(run_embed(args._embed, args.slices)))
        return

    machine = _machine()
    rows: list[dict] = []
    embed = None
    with tempfile.TemporaryDirectory() as tmp:
        texts = str(Path(tmp) / "texts.json")
        for engine in args.engines:
            if engine == "ray":
                try:
                    import ray  # noqa: F401
                except ImportError:
                    print("# ray not installed: skipping --engines ray", file=sys.stderr)
                    continue
            cases = [("digital", n) for n in args.digital] + [("scanned", n) for n in args.scanned]
            for kind, pages in cases:
                if pages <= 0:
                    continue
                extra = ["--_texts", texts] if kind == "digital" and not Path(texts).exists() else []
                rows.append(subprocess_json("--_case", kind, str(pages), engine, *extra))
                if not args.json:
                    print(f"# done: {kind} {pages} {engine}: {rows[-1]['pages_per_s']} pages/s", file=sys.stderr)
        if not args.no_embed and Path(texts).exists():
            embed = subprocess_json("--_embed", texts, "--slices", str(args.slices))
    machine_after = _machine()
    checks = acceptance(rows, embed)
    if args.json:
        print(json.dumps({"machine": machine, "machine_after": machine_after, "rows": rows, "embed": embed,
                          "acceptance": checks}, indent=1))
        return
    print(machine)
    cols = [("case", 8), ("engine", 7), ("pages", 6), ("chunks", 7), ("warm_s", 7), ("ingest_s", 9),
            ("pages_per_s", 8), ("emb_chunks_per_s", 13), ("ocr_pages_per_s", 12), ("rss_mb", 8), ("main_mb", 8)]
    print("".join(f"{c.replace('_per_s', '/s'):>{w}}" for c, w in cols))
    for r in rows:
        print("".join(f"{'-' if r[c] is None else r[c]:>{w}}" for c, w in cols))
    if embed:
        print(f"# embedding: the born-digital case's {embed['texts']} chunk texts ({embed['distinct']} distinct), "
              f"{args.slices} interleaved slices; torch {embed['torch_threads']} threads, encode() defaults")
        print(f"{'engine':<32}{'chunks/s':>9}{'speedup':>9}{'mean_cos':>10}{'min_cos':>9}")
        for r in embed["rows"]:
            mark = "  (default)" if r["default"] else ""
            print(f"{r['engine']:<32}{r['chunks_per_s']:>9.1f}{r['speedup']:>8.2f}x{r['mean_cos']:>10.4f}"
                  f"{r['min_cos']:>9.4f}{mark}")
    print("acceptance (issues #8 and #4):")
    for line in checks:
        print("  " + line)
    print(machine_after)


if __name__ == "__main__":
    main()
