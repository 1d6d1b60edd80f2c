"""Layout on real pages: reading-order text, words kept, regions found (docrag vs Tesseract).

Pages: ``../shared/data/layout-dev`` (16 born-digital pages, read through their
text layer, and 23 image-only scans of them, OCR'd) and ``../shared/data/ocr-dev``
(6 image-only pages). docrag reads each file with ``docrag.ocr(path,
IngestOptions())`` (default options: ``ocr="auto"``); its text is what
``docrag ocr FILE --text`` prints (``page.text``). Tesseract, the reference, reads
the page rendered by PyMuPDF at 300 dpi: ``tesseract IMG - --psm 1`` (one thread).

Per page, and pooled per group (``born``: pages/, ``scan``: ``_scan``,
``bilevel``: ``_bilevel``, ``rotated``: ``_rot90``/``_rot180``, ``ocr-dev``):

* CER against ``gt/NAME.txt`` (NFKC, whitespace collapsed, case-sensitive; edits
  over the group's gt characters). Reading order counts.
* word coverage, "nothing lost": bag-of-words recall of the gt words (runs of
  letters/digits after NFKC + casefold) in docrag's lines (all of ``page.lines``),
  in those plus its regions' ``inner_text`` (``+reg``: what left the lines for a
  figure/table but was kept there), in the searchable PDF (``write_searchable_pdf``, what ``docrag ocr FILE --pdf``
  writes, read back with PyMuPDF ``get_text()``) and in Tesseract's text; with
  the number of pages at >= 97 %.
* regions: recall of the gt boxes (``regions.jsonl``; ``scans/regions_scans.jsonl``
  for scans) by ``page.regions`` at IoU >= 0.5, matched greedily by descending
  IoU, ignoring kind (also per gt kind, and with docrag's kind required to fit:
  photo/diagram -> figure, chart -> chart, table -> table; box never fits);
  predicted regions covering > 60 % of a page whose gt has > 300 words.
* pages/s of docrag (open, render, OCR, regions) and Tesseract (render + read).

Usage:
    python bench/layout.py                                # every set, tables on stdout
    python bench/layout.py --sets scan bilevel -v          # per-page rows too
    python bench/layout.py --pages manual_note_box spec_sheet --json /tmp/layout.json --dump /tmp/out
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
DATA = ROOT.parent / "shared" / "data"
LAYOUT_DEV, OCR_DEV = DATA / "layout-dev", DATA / "ocr-dev"
SETS = ("born", "scan", "bilevel", "rotated", "ocr-dev")
GT_KINDS = ("table", "photo", "chart", "box", "diagram")
FITS = {"table": "table", "photo": "figure", "diagram": "figure", "chart": "chart"}  # gt kind -> docrag kind
MIN_IOU, FULL_COVERAGE, BIG_REGION, MANY_WORDS = 0.5, 0.97, 0.6, 300

from machine import machine  # noqa: E402  (bench/machine.py: the machine line)
from ocr import edit_distance  # noqa: E402  (bench/ocr.py: numpy Levenshtein)
from tests.textmetrics import normalize  # noqa: E402  (the evaluation's normalisation)

Box = tuple[float, float, float, float]


# ---------------------------------------------------------------- scoring (importable)


def words(text: str) -> list[str]:
    """Runs of letters/digits after NFKC and casefold.

    >>> words("FIgure 3-b: 12,5 kN")
    ['figure', '3', 'b', '12', '5', 'kn']
    """
    return re.findall(r"[^\W_]+", unicodedata.normalize("NFKC", text).casefold())


def word_hits(gt_text: str, text: str) -> tuple[int, int]:
    """(gt words found in ``text``, gt words), counted as bags (a word twice in gt must appear twice)."""
    want = Counter(words(gt_text))
    return sum((want & Counter(words(text))).values()), sum(want.values())


def word_coverage(gt_text: str, text: str) -> float:
    """Bag-of-words recall of ``gt_text``'s words in ``text`` (1.0 when gt has none).

    >>> word_coverage("The cat saw the dog", "the DOG, the cat")
    0.8
    """
    hit, total = word_hits(gt_text, text)
    return hit / total if total else 1.0


def cer_counts(text: str, gt_text: str) -> tuple[int, int]:
    """(edits, gt characters) after NFKC and whitespace collapsing; case and order count."""
    got, want = normalize(text), normalize(gt_text)
    return edit_distance(got, want), len(want)


def iou(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def match_regions(gt: list[tuple[str, Box]], pred: list[tuple[str, Box]], min_iou: float = MIN_IOU,
                  same_kind: bool = False) -> list[tuple[int, int]]:
    """Greedy one-to-one matches (gt index, pred index) by descending IoU, each at least ``min_iou``.

    ``same_kind`` requires the predicted kind to fit the gt kind (``FITS``).
    """
    pairs = sorted(((iou(g, p), i, j) for i, (gk, g) in enumerate(gt) for j, (pk, p) in enumerate(pred)
                    if not same_kind or FITS.get(gk) == pk), reverse=True)
    used_g: set[int] = set()
    used_p: set[int] = set()
    out = []
    for score, i, j in pairs:
        if score >= min_iou and i not in used_g and j not in used_p:
            used_g.add(i); used_p.add(j); out.append((i, j))  # noqa: E702
    return out


def region_recall(gt: list[tuple[str, Box]], pred: list[tuple[str, Box]], min_iou: float = MIN_IOU,
                  same_kind: bool = False) -> float:
    """Share of gt regions ``(kind, bbox)`` matched by a predicted one (1.0 when gt has none)."""
    return len(match_regions(gt, pred, min_iou, same_kind)) / len(gt) if gt else 1.0


# ---------------------------------------------------------------- pages


@dataclass
class BenchPage:
    group: str
    name: str
    path: Path
    truth: str
    regions: list[tuple[str, Box]] | None  # None: no region gt for this page


def _regions(path: Path) -> dict[str, list[tuple[str, Box]]]:
    out: dict[str, list[tuple[str, Box]]] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        out.setdefault(row["page"], []).append((row["kind"], tuple(row["bbox"])))
    return out


def load_pages(sets: list[str], names: list[str] | None) -> list[BenchPage]:
    gt = lambda d, n: (d / "gt" / f"{n}.txt").read_text(encoding="utf-8")  # noqa: E731
    pages: list[BenchPage] = []
    if (LAYOUT_DEV / "regions.jsonl").exists():
        born = _regions(LAYOUT_DEV / "regions.jsonl")
        for pdf in sorted((LAYOUT_DEV / "pages").glob("*.pdf")):
            pages.append(BenchPage("born", pdf.stem, pdf, gt(LAYOUT_DEV, pdf.stem), born.get(pdf.stem, [])))
        scans = _regions(LAYOUT_DEV / "scans" / "regions_scans.jsonl")
        for line in (LAYOUT_DEV / "scans" / "manifest.jsonl").read_text().splitlines():
            row = json.loads(line)
            stem = Path(row["scan"]).stem
            group = "rotated" if "_rot" in stem else stem.rsplit("_", 1)[1]
            pages.append(BenchPage(group, stem, LAYOUT_DEV / "scans" / row["scan"], gt(LAYOUT_DEV, row["page"]),
                                   scans.get(stem, [])))
    else:
        print(f"note: {LAYOUT_DEV} not found; layout-dev skipped", file=sys.stderr)
    if (OCR_DEV / "manifest.jsonl").exists():
        for line in (OCR_DEV / "manifest.jsonl").read_text().splitlines():
            name = json.loads(line)["name"]
            pages.append(BenchPage("ocr-dev", name, OCR_DEV / "pdf" / f"{name}.pdf", gt(OCR_DEV, name), None))
    return [p for p in pages if p.group in sets and (not names or any(n in p.name for n in names))]


# ---------------------------------------------------------------- readers


def read_docrag(path: Path, out_pdf: Path) -> dict:
    """docrag's text, lines, searchable-PDF text and regions of one file, and its seconds."""
    import pymupdf

    import docrag
    from docrag.config import IngestOptions
    from docrag.integrations.searchable_pdf import write_searchable_pdf

    t0 = time.perf_counter()
    pages = list(docrag.ocr(path, IngestOptions()))
    seconds = time.perf_counter() - t0
    write_searchable_pdf(path, pages, out_pdf)
    with pymupdf.open(out_pdf) as doc:
        pdf_text = "\n".join(p.get_text() for p in doc)
    return {
        "seconds": seconds,
        "text": "\n".join(p.text for p in pages),  # `docrag ocr FILE --text`, less its form feeds
        "lines": "\n".join(ln.text for p in pages for ln in p.lines),
        "inner": "\n".join(getattr(r, "inner_text", "") or "" for p in pages for r in p.regions),
        "pdf": pdf_text,
        "regions": [(r.kind, tuple(r.bbox)) for p in pages for r in p.regions],
        "area": sum(p.width * p.height for p in pages),
        "method": ",".join(sorted({p.method for p in pages})),
        "notes": [p.error for p in pages if p.error] + [w for p in pages for w in p.warnings],
    }


TESS_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "docrag" / "bench-tesseract"
"""Tesseract's texts by file hash: its timing is the first run's (say so when comparing speed)."""


def read_tesseract(path: Path, tmp: Path, dpi: int = 300) -> tuple[str, float]:
    """Tesseract's text (``--psm 1``) of every page rendered at ``dpi``, and the seconds (render included)."""
    import pymupdf

    key = hashlib.sha256(path.read_bytes() + f"{dpi}".encode()).hexdigest()[:24]
    cached = TESS_CACHE / f"{key}.json"
    if cached.is_file():  # Tesseract's reading of the same bytes does not change between runs
        hit = json.loads(cached.read_text())
        return hit["text"], hit["seconds"]
    t0 = time.perf_counter()
    texts = []
    with pymupdf.open(path) as doc:
        for page in doc:
            img = tmp / "page.png"
            page.get_pixmap(dpi=dpi, alpha=False).save(img)
            done = subprocess.run(["tesseract", str(img), "-", "--psm", "1"], capture_output=True, text=True,
                                  env={**os.environ, "OMP_THREAD_LIMIT": "1"}, check=False)
            texts.append(done.stdout)
    text, seconds = "\n".join(texts), time.perf_counter() - t0
    TESS_CACHE.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps({"text": text, "seconds": seconds}))
    return text, seconds


# ---------------------------------------------------------------- run


@dataclass
class Row:
    group: str
    page: str
    method: str
    chars: int
    edits: int
    tess_edits: int
    gt_words: int
    hit_lines: int
    hit_reg: int
    hit_pdf: int
    hit_tess: int
    seconds: float
    tess_seconds: float
    gt_regions: int
    pred_regions: int
    matched: int
    matched_kind: int
    big_regions: int
    kinds: dict[str, tuple[int, int]] = field(default_factory=dict)  # gt kind -> (matched, gt)
    notes: list[str] = field(default_factory=list)  # page errors and warnings


def score_page(page: BenchPage, tmp: Path, dump: Path | None = None) -> Row:
    d = read_docrag(page.path, tmp / "searchable.pdf")
    tess, tess_s = read_tesseract(page.path, tmp)
    if dump:
        for suffix in ("text", "lines", "inner", "pdf"):
            (dump / f"{page.name}.{suffix}.txt").write_text(d[suffix], encoding="utf-8")
        (dump / f"{page.name}.tess.txt").write_text(tess, encoding="utf-8")
        (dump / f"{page.name}.regions.json").write_text(json.dumps(d["regions"]), encoding="utf-8")
    edits, chars = cer_counts(d["text"], page.truth)
    tess_edits, _ = cer_counts(tess, page.truth)
    (hit_lines, n_words), (hit_reg, _), (hit_pdf, _), (hit_tess, _) = (
        word_hits(page.truth, t) for t in (d["lines"], d["lines"] + "\n" + d["inner"], d["pdf"], tess))
    gt_r, pred = page.regions or [], d["regions"]
    matches = match_regions(gt_r, pred)
    kinds = {k: (sum(gt_r[i][0] == k for i, _ in matches), sum(g[0] == k for g in gt_r)) for k in GT_KINDS}
    big = sum((b[2] - b[0]) * (b[3] - b[1]) > BIG_REGION * d["area"] for _, b in pred) if n_words > MANY_WORDS else 0
    return Row(page.group, page.name, d["method"], chars, edits, tess_edits, n_words, hit_lines, hit_reg, hit_pdf,
               hit_tess, d["seconds"], tess_s, len(gt_r), len(pred), len(matches),
               len(match_regions(gt_r, pred, same_kind=True)), big, {k: v for k, v in kinds.items() if v[1]},
               d["notes"])


def _pct(a: float, b: float) -> str:
    return f"{a / b:.4f}" if b else "-"


def summary(rows: list[Row]) -> dict:
    s = lambda attr: sum(getattr(r, attr) for r in rows)  # noqa: E731
    full = lambda attr: sum(getattr(r, attr) >= FULL_COVERAGE * r.gt_words for r in rows)  # noqa: E731
    hits = ("lines", "reg", "pdf", "tess")
    return {
        "pages": len(rows), "cer": s("edits") / max(1, s("chars")), "tess_cer": s("tess_edits") / max(1, s("chars")),
        **{f"cov_{h}": s(f"hit_{h}") / max(1, s("gt_words")) for h in hits},
        **{f"full_{h}": full(f"hit_{h}") for h in hits},
        "gt_regions": s("gt_regions"), "pred_regions": s("pred_regions"), "matched": s("matched"),
        "matched_kind": s("matched_kind"), "big_regions": s("big_regions"),
        "many_word_pages": sum(r.gt_words > MANY_WORDS for r in rows),
        "kinds": {k: [sum(r.kinds.get(k, (0, 0))[i] for r in rows) for i in (0, 1)] for k in GT_KINDS},
        "pages_per_s": len(rows) / max(1e-9, s("seconds")),
        "tess_pages_per_s": len(rows) / max(1e-9, s("tess_seconds")),
    }


def print_tables(groups: dict[str, dict]) -> None:
    print("\n## text: CER (pooled), pages/s")
    print(f"{'group':<8} {'pages':>5}  {'docrag':>7}  {'tess':>7}  {'docrag/s':>8}  {'tess/s':>7}")
    for g, f in groups.items():
        print(f"{g:<8} {f['pages']:>5}  {f['cer']:>7.4f}  {f['tess_cer']:>7.4f}  "
              f"{f['pages_per_s']:>8.3f}  {f['tess_pages_per_s']:>7.3f}")
    print(f"\n## words kept: gt word recall (pooled) and pages >= {FULL_COVERAGE:.0%}")
    print(f"{'group':<8} {'pages':>5}  {'lines':>6}  {'+reg':>6}  {'pdf':>6}  {'tess':>6}  "
          f"{'>=97 lines':>10}  {'+reg':>4}  {'pdf':>4}  {'tess':>4}")
    for g, f in groups.items():
        print(f"{g:<8} {f['pages']:>5}  {f['cov_lines']:>6.4f}  {f['cov_reg']:>6.4f}  {f['cov_pdf']:>6.4f}  "
              f"{f['cov_tess']:>6.4f}  {f['full_lines']:>10}  {f['full_reg']:>4}  {f['full_pdf']:>4}  "
              f"{f['full_tess']:>4}")
    print(f"\n## regions: gt boxes matched at IoU >= {MIN_IOU} (any kind), per gt kind matched/gt")
    print(f"{'group':<8} {'gt':>3} {'pred':>4} {'match':>5}  {'recall':>6}  {'kind_ok':>7}  {'prec':>6}  "
          + "  ".join(f"{k:>7}" for k in GT_KINDS) + f"  {'big':>3}")
    for g, f in groups.items():
        if not f["gt_regions"] and g == "ocr-dev":
            continue
        kinds = "  ".join(f"{f'{m}/{n}':>7}" for m, n in f["kinds"].values())
        print(f"{g:<8} {f['gt_regions']:>3} {f['pred_regions']:>4} {f['matched']:>5}  "
              f"{_pct(f['matched'], f['gt_regions']):>6}  {_pct(f['matched_kind'], f['gt_regions']):>7}  "
              f"{_pct(f['matched'], f['pred_regions']):>6}  {kinds}  {f['big_regions']:>3}")


def print_rows(rows: list[Row]) -> None:
    print("\n## pages (CER; word recall lines / +reg / pdf / tess; regions matched/gt pred big; seconds)")
    print(f"{'page':<36} {'method':<6} {'CER':>6} {'tess':>6}  {'words':>5} {'lines':>6} {'+reg':>6} {'pdf':>6} "
          f"{'tess':>6}  "
          f"{'reg':>5} {'pred':>4} {'big':>3}  {'s':>5} {'tess_s':>6}")
    for r in rows:
        cov = "".join(f" {h / max(1, r.gt_words):>6.3f}" for h in (r.hit_lines, r.hit_reg, r.hit_pdf, r.hit_tess))
        reg = f"{r.matched}/{r.gt_regions}" if r.group != "ocr-dev" else "-"
        print(f"{r.page:<36} {r.method:<6} {r.edits / max(1, r.chars):>6.3f} {r.tess_edits / max(1, r.chars):>6.3f}  "
              f"{r.gt_words:>5}{cov}  {reg:>5} {r.pred_regions:>4} {r.big_regions:>3}  "
              f"{r.seconds:>5.2f} {r.tess_seconds:>6.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS), help="page groups to run")
    parser.add_argument("--pages", nargs="+", metavar="NAME", help="only pages whose name contains one of these")
    parser.add_argument("--json", metavar="OUT", help="also write the figures and per-page rows to OUT")
    parser.add_argument("--dump", metavar="DIR", type=Path, help="write each page's texts and regions to DIR")
    parser.add_argument("-v", "--verbose", action="store_true", help="per-page rows (progress on stderr)")
    args = parser.parse_args(argv)

    pages = load_pages(args.sets, args.pages)
    if args.dump:
        args.dump.mkdir(parents=True, exist_ok=True)
    if not pages:
        print("nothing to run: no pages (data missing or filtered out)", file=sys.stderr)
        return 1
    before = machine("docrag default options", "reference=tesseract --psm 1")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        warm = next((p for p in pages if p.group != "born"), pages[0])
        read_docrag(warm.path, Path(tmp) / "warm.pdf")  # load the models before timing
        for page in pages:
            rows.append(score_page(page, Path(tmp), args.dump))
            if args.verbose:
                r = rows[-1]
                print(f"  {r.page:<36} CER {r.edits / max(1, r.chars):.3f}  words {r.hit_lines}/{r.gt_words}  "
                      f"{r.seconds:5.2f} s", file=sys.stderr)
    groups = {g: summary([r for r in rows if r.group == g]) for g in SETS if any(r.group == g for r in rows)}
    groups["all"] = summary(rows)

    print(f"# layout bench\n{before}\n# load avg after: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print_tables(groups)
    many = [r for r in rows if r.gt_words > MANY_WORDS and r.group != "ocr-dev"]
    big = [f"{r.page} ({r.big_regions})" for r in many if r.big_regions]
    print(f"\nacceptance: {sum(r.big_regions for r in many)} predicted regions cover > {BIG_REGION:.0%} of a page "
          f"on the {len(many)} pages with > {MANY_WORDS} gt words{': ' + ', '.join(big) if big else ''}")
    low = [r for r in rows if r.hit_lines < FULL_COVERAGE * r.gt_words]
    print(f"acceptance: {len(rows) - len(low)}/{len(rows)} pages keep >= {FULL_COVERAGE:.0%} of gt words "
          f"in docrag's lines; {sum(r.hit_pdf >= FULL_COVERAGE * r.gt_words for r in rows)}/{len(rows)} "
          f"in the searchable PDF")
    if args.verbose:
        print_rows(rows)
    for r in rows:
        for note in r.notes:
            print(f"note: {r.page}: {note}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": before, "groups": groups, "pages": [asdict(r) for r in rows]},
                                              indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
