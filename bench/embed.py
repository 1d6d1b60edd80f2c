"""Text-embedding throughput: sentence-transformers (torch) against onnxruntime fp32 and int8.

Chunks are made from the fixtures' ground-truth text (``fixtures/data/gt/*.txt``):
lines joined into ~150-200-token chunks, cycling through the corpus with the
numbers perturbed so repeats are not identical. The baseline is plain
sentence-transformers, ``SentenceTransformer(dir).encode(texts)`` with its
defaults (what a user of the library gets). Every engine is warmed up, then
the chunks are embedded in slices, the engines taking turns on each slice, so a
change in machine load hits them all alike. Prints:

    engine  threads  chunks/s  speedup  mean_cos_vs_torch  min_cos

where ``threads`` is ``N batches`` (docrag's way: N single-threaded batches at
once) or ``N intra-op`` (one batch at a time on N onnxruntime threads), then
the token lengths of product-sized chunks, then the truncation caps (``--caps``:
ONNX fp32 at each ``max_tokens``, cosine to torch, which truncates at 256) and
page-level retrieval on ``fixtures/data/qa.jsonl``: each engine embeds the
chunks of the ground-truth pages (the product's chunker, no OCR) and the
questions, and recall@1/@5 is counted over distinct (document, page) hits.

Usage:
    python bench/embed.py                        # 2000 chunks, ONNX at 1 and 2 threads
    python bench/embed.py --chunks 500 --threads 2 --caps 128 192 256 --json
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine as _machine  # noqa: E402

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FIXTURES = ROOT / "fixtures" / "data"

from docrag.chunk import approx_tokens, chunk_page  # noqa: E402
from docrag.types import Block, Line, Page  # noqa: E402


def make_chunks(n: int, seed: int = 0) -> list[str]:
    """``n`` chunks of ~150-200 approximate tokens from the ground-truth text lines."""
    lines = [ln.strip() for f in sorted((FIXTURES / "gt").glob("*.txt")) for ln in f.read_text().splitlines() if ln.strip()]
    rng = random.Random(seed)
    out, i = [], 0
    while len(out) < n:
        target, cur, used = rng.randint(150, 200), [], 0
        while used < target:
            line = re.sub(r"\d{1,8}", lambda m: str(int(m.group()) + rng.randint(0, 9)), lines[i % len(lines)])
            cur.append(line)
            used += approx_tokens(line)
            i += 1
        out.append("\n".join(cur))
        i += rng.randint(0, 7)  # vary where the next chunk starts
    return out


def gt_chunks() -> list[tuple[str, int, str]]:
    """(source, page, text) for the product's chunks of every ground-truth page."""
    out = []
    for f in sorted((FIXTURES / "gt").glob("*.json")):  # pages without text lines (figures only) are skipped
        gt = json.loads(f.read_text())
        for p in gt["pages"]:
            lines = [Line(ln["text"], tuple(ln["bbox"])) for ln in p.get("lines", [])]
            if not lines:
                continue
            page = Page(number=p["page"], width=p["width"], height=p["height"], blocks=[Block(lines, (0, 0, p["width"], p["height"]))])
            for c in chunk_page(page, doc_id=gt["file"], source=gt["file"]):
                out.append((gt["file"], p["page"], c.text))
    return out


def page_recall(emb, chunks: list[tuple[str, int, str]], qa: list[dict]) -> dict[str, float]:  # type: ignore[no-untyped-def]
    vecs = emb.embed_documents([c[2] for c in chunks])
    hits = {1: 0, 5: 0}
    for row in qa:
        gold = {(row["source"], row["page"])} | {(a["source"], a["page"]) for a in row.get("also_in", [])}
        scores = vecs @ emb.embed_query(row["question"])
        pages: list[tuple[str, int]] = []
        for j in np.argsort(-scores, kind="stable"):
            key = (chunks[j][0], chunks[j][1])
            if key not in pages:
                pages.append(key)
        for k in hits:
            hits[k] += any(p in gold for p in pages[:k])
    return {f"recall@{k}": v / len(qa) for k, v in hits.items()}


def machine() -> str:
    import onnxruntime
    import torch

    return _machine(f"torch {torch.__version__} ({torch.get_num_threads()} threads)",
                    f"onnxruntime {onnxruntime.__version__}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=2000)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="concurrent batches to try")
    ap.add_argument("--intra-op", type=int, nargs="*", default=[2], help="also: onnxruntime intra-op threads (int8)")
    ap.add_argument("--caps", type=int, nargs="*", default=[128, 160, 192, 224, 256], help="max_tokens to try (fp32)")
    ap.add_argument("--slices", type=int, default=4, help="turns the engines take (interleaving)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from sentence_transformers import SentenceTransformer

    from docrag.embed.onnx import OnnxEmbedder
    from docrag.embed.sentence import SentenceEmbedder, minilm_path

    texts = make_chunks(args.chunks)
    model = SentenceTransformer(minilm_path(), device="cpu")
    engines = {("torch", "sentence-transformers"): lambda t: model.encode(t)}
    for quant in (False, True):
        for th in args.threads:
            emb = OnnxEmbedder(quantize=quant, num_threads=th, batch_size=32)
            engines[(emb.name, f"{th} batches")] = emb.embed_documents
    for th in args.intra_op:
        emb = OnnxEmbedder(quantize=True, num_threads=1, intra_op_threads=th, batch_size=32)
        engines[(emb.name, f"{th} intra-op")] = emb.embed_documents
    for n in args.caps:
        emb = OnnxEmbedder(max_tokens=n, num_threads=max(args.threads), batch_size=32)
        engines[(f"minilm-onnx max_tokens={n}", f"{max(args.threads)} batches")] = emb.embed_documents
    warm = texts[:64]
    for fn in engines.values():
        fn(warm)

    seconds = {key: 0.0 for key in engines}
    vectors: dict[tuple[str, str], list[np.ndarray]] = {key: [] for key in engines}
    bounds = np.linspace(0, len(texts), args.slices + 1).astype(int)
    keys = list(engines)
    for s in range(args.slices):
        part = texts[bounds[s]:bounds[s + 1]]
        for key in keys[s % len(keys):] + keys[:s % len(keys)]:  # rotate who goes first
            t0 = time.perf_counter()
            vectors[key].append(np.asarray(engines[key](part), dtype=np.float32))
            seconds[key] += time.perf_counter() - t0

    ref_key = keys[0]
    ref = np.concatenate(vectors[ref_key])
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)  # encode() does not normalize by default
    base = len(texts) / seconds[ref_key]
    rows = []
    for key in keys:
        vecs = np.concatenate(vectors[key])
        cos = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True) * ref).sum(1)
        rate = len(texts) / seconds[key]
        rows.append({"engine": key[0], "threads": key[1], "chunks_per_s": rate, "speedup": rate / base,
                     "mean_cos_vs_torch": float(cos.mean()), "min_cos": float(cos.min())})

    untruncated = OnnxEmbedder(max_tokens=8192, num_threads=1)
    bench_len = untruncated.token_lengths(texts)
    chunks = gt_chunks()
    prod_len = untruncated.token_lengths([c[2] for c in chunks])
    qa = [json.loads(ln) for ln in (FIXTURES / "qa.jsonl").read_text().splitlines() if ln.strip()]
    retrieval = {"torch": page_recall(SentenceEmbedder(minilm_path(), name="minilm"), chunks, qa)}
    for quant in (False, True):
        emb = OnnxEmbedder(quantize=quant, num_threads=max(args.threads))
        retrieval[emb.name] = page_recall(emb, chunks, qa)

    if args.json:
        print(json.dumps({"machine": machine(), "chunks": len(texts), "rows": rows, "retrieval": retrieval,
                          "tokens_bench": bench_len.tolist(), "tokens_product": prod_len.tolist()}, indent=1))
        return
    print(machine())
    print(f"# {len(texts)} chunks, {args.slices} interleaved slices, batch 32, torch: encode() defaults")
    print(f"{'engine':<28}{'threads':>22}{'chunks/s':>10}{'speedup':>9}{'mean_cos_vs_torch':>19}{'min_cos':>9}")
    for r in rows:
        print(f"{r['engine']:<28}{r['threads']:>22}{r['chunks_per_s']:>10.1f}{r['speedup']:>8.2f}x"
              f"{r['mean_cos_vs_torch']:>19.4f}{r['min_cos']:>9.4f}")
    for label, lens in (("bench chunks", bench_len), (f"product chunks of the fixtures ({len(chunks)})", prod_len)):
        p50, p95, p99 = np.percentile(lens, [50, 95, 99])
        print(f"# tokens, {label}: p50 {p50:.0f}  p95 {p95:.0f}  p99 {p99:.0f}  max {lens.max()}  "
              + "  ".join(f"over {n}: {(lens > n).mean():.0%}" for n in sorted(set(args.caps)) or [256]))
    print(f"# page retrieval on qa.jsonl ({len(qa)} questions, ground-truth text chunks)")
    print(f"{'engine':<18}{'recall@1':>10}{'recall@5':>10}")
    for name, r in retrieval.items():
        print(f"{name:<18}{r['recall@1']:>10.3f}{r['recall@5']:>10.3f}")
    print(machine())


if __name__ == "__main__":
    main()
