"""OCR accuracy and speed of every available engine on the same pages.

Each page goes through the real pipeline, ``process_page(page,
IngestOptions(ocr="always", ocr_engine=..., lang=..., dpi=...))``, and the
page's lines in reading order are scored against human or generated ground
truth with the evaluation's normalisation (Unicode NFKC, whitespace runs
collapsed). Page sets:

* ``ocr-dev``: ``../shared/data/ocr-dev`` (6 real pages; skipped if missing).
* ``layout-scans``: the 23 image-only scans of ``../shared/data/layout-dev/scans``
  (degraded, bilevel, rotated real pages) against ``layout-dev/gt`` (reading-order
  text; text inside figures is left out of it, so CER counts figure labels as edits
  for every engine alike; ``bench/layout.py`` scores these pages the way
  ``docrag ocr --text`` prints them).
* ``fixtures``: the degraded fixtures (``report_scan.pdf``, ``mixed.pdf`` p2,
  ``page_scan.png``, ``pages_scan.tiff``) against ``fixtures/data/gt``.
* ``variants``: ``report_scan.pdf`` pages 1 and 2 (two columns) with a
  /Rotate 90/180/270 flag, and their raster turned by +-5 degrees.
* ``accents``: a French and a German page (Latin-1 accents), degraded like the
  fixtures; Tesseract reads them with ``fra`` / ``deu``.

Metrics are pooled over a set's pages (edits over reference length):
CER, CER without whitespace, WER, order-free word F1; pages/s is pages over
the summed wall time of ``process_page`` (render included, models loaded and
warmed up beforehand). Engines run page by page in turn, so a change in the
machine's load hits all of them alike. Prints one table per set, a summary

    engine  dpi  set  pages  CER  CER_nows  WER  wordF1  pages/s

and the acceptance check (default engine vs Tesseract, the reference).

Usage:
    python bench/ocr.py                               # all sets, ppocr + tesseract, 300 dpi
    python bench/ocr.py --sets ocr-dev fixtures --dpi 200 300 --json
    python bench/ocr.py --engines ppocr florence2 --florence2-model DIR
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
FIXTURES = ROOT / "fixtures" / "data"
OCR_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "ocr-dev"
LAYOUT_DEV = OCR_DEV.parent / "layout-dev"
SETS = ("ocr-dev", "layout-scans", "fixtures", "variants", "accents")
REFERENCE = "tesseract"

from machine import machine  # noqa: E402  (bench/machine.py: the machine line)
from tests.textmetrics import normalize  # noqa: E402  (the tests' and evaluation's normalisation)


# ---------------------------------------------------------------- metrics


def edit_distance(a: list[str] | str, b: list[str] | str) -> int:
    """Levenshtein distance of two sequences (characters or words), row by row in numpy.

    Same result as ``tests.textmetrics.levenshtein``, fast enough for whole pages.

    >>> edit_distance("kitten", "sitting"), edit_distance("a b".split(), "a c b".split())
    (3, 1)
    """
    vocab: dict[str, int] = {}
    x = np.array([vocab.setdefault(t, len(vocab)) for t in a], np.int64)
    y = np.array([vocab.setdefault(t, len(vocab)) for t in b], np.int64)
    if len(x) == 0 or len(y) == 0:
        return max(len(x), len(y))
    cols = np.arange(len(y) + 1, dtype=np.int64)
    prev = cols.copy()
    for i, tok in enumerate(x, 1):
        cur = np.empty_like(prev)
        cur[0] = i
        cur[1:] = np.minimum(prev[1:] + 1, prev[:-1] + (y != tok))
        # insertions along the row: cur[j] = min_k cur[k] + (j - k), a running minimum
        prev = np.minimum.accumulate(cur - cols) + cols
    return int(prev[-1])


@dataclass
class Score:
    """Pooled counts of one engine on one set."""

    pages: int = 0
    seconds: float = 0.0
    char_err: int = 0
    chars: int = 0
    nows_err: int = 0
    nows: int = 0
    word_err: int = 0
    words: int = 0
    hit: int = 0
    got_words: int = 0
    failed: list[str] = field(default_factory=list)

    def add(self, got: str, want: str, seconds: float) -> dict[str, float]:
        got, want = normalize(got), normalize(want)
        g_nows, w_nows = got.replace(" ", ""), want.replace(" ", "")
        gw, ww = got.split(), want.split()
        row = {
            "cer": edit_distance(got, want), "chars": len(want),
            "cer_nows": edit_distance(g_nows, w_nows), "nows": len(w_nows),
            "wer": edit_distance(gw, ww), "words": len(ww),
            "hit": sum((Counter(gw) & Counter(ww)).values()), "got_words": len(gw),
        }
        self.pages += 1
        self.seconds += seconds
        self.char_err += row["cer"]; self.chars += row["chars"]  # noqa: E702
        self.nows_err += row["cer_nows"]; self.nows += row["nows"]  # noqa: E702
        self.word_err += row["wer"]; self.words += row["words"]  # noqa: E702
        self.hit += row["hit"]; self.got_words += row["got_words"]  # noqa: E702
        return {"cer": row["cer"] / max(1, len(want)), "seconds": seconds}

    def figures(self) -> dict[str, float]:
        p = self.hit / max(1, self.got_words)
        r = self.hit / max(1, self.words)
        return {
            "pages": self.pages,
            "cer": self.char_err / max(1, self.chars),
            "cer_nows": self.nows_err / max(1, self.nows),
            "wer": self.word_err / max(1, self.words),
            "word_f1": 2 * p * r / (p + r) if p + r else 0.0,
            "pages_per_s": self.pages / self.seconds if self.seconds else 0.0,
        }


# ---------------------------------------------------------------- page sets


@dataclass
class BenchPage:
    set: str
    name: str
    path: Path
    number: int
    truth: str
    lang: str = "eng"  # Tesseract's language for this page


def ocr_dev_pages() -> list[BenchPage]:
    if not (OCR_DEV / "manifest.jsonl").exists():
        print(f"note: {OCR_DEV} not found; set ocr-dev skipped", file=sys.stderr)
        return []
    pages = []
    for line in (OCR_DEV / "manifest.jsonl").read_text().splitlines():
        name = json.loads(line)["name"]
        truth = (OCR_DEV / "gt" / f"{name}.txt").read_text(encoding="utf-8")
        pages.append(BenchPage("ocr-dev", name, OCR_DEV / "pdf" / f"{name}.pdf", 1, truth))
    return pages


def layout_scan_pages() -> list[BenchPage]:
    scans = sorted((LAYOUT_DEV / "scans").glob("*.pdf"))
    if not scans:
        print(f"note: {LAYOUT_DEV / 'scans'} not found; set layout-scans skipped", file=sys.stderr)
        return []
    pages = []
    for path in scans:
        base = re.sub(r"_(scan|bilevel|rot90|rot180|rot270)$", "", path.stem)
        truth = (LAYOUT_DEV / "gt" / f"{base}.txt").read_text(encoding="utf-8")
        pages.append(BenchPage("layout-scans", path.stem, path, 1, truth))
    return pages


def _fixture_truth(stem: str) -> dict[int, str]:
    gt = json.loads((FIXTURES / "gt" / f"{stem}.json").read_text(encoding="utf-8"))
    return {p["page"]: "\n".join(ln["text"] for ln in p["lines"]) for p in gt["pages"]}


def fixture_pages() -> list[BenchPage]:
    pages = []
    for file, numbers in (("report_scan.pdf", (1, 2, 3)), ("mixed.pdf", (2,)),
                          ("page_scan.png", (1,)), ("pages_scan.tiff", (1, 2))):
        truth = _fixture_truth(Path(file).stem)
        for n in numbers:
            pages.append(BenchPage("fixtures", f"{Path(file).stem}_p{n}", FIXTURES / file, n, truth[n]))
    return pages


def variant_pages(tmp: Path) -> list[BenchPage]:
    """report_scan.pdf p1 and p2 with /Rotate flags and with the raster turned +-5 degrees."""
    import cv2
    import pymupdf

    truth = _fixture_truth("report_scan")
    src = pymupdf.open(FIXTURES / "report_scan.pdf")
    pages = []
    for n in (1, 2):
        for rot in (90, 180, 270):
            doc = pymupdf.open()
            doc.insert_pdf(src, from_page=n - 1, to_page=n - 1)
            doc[0].set_rotation(rot)
            path = tmp / f"report_scan_p{n}_rot{rot}.pdf"
            doc.save(path)
            pages.append(BenchPage("variants", path.stem, path, 1, truth[n]))
        xref = src[n - 1].get_images()[0][0]
        info = src.extract_image(xref)
        img = cv2.imdecode(np.frombuffer(info["image"], np.uint8), cv2.IMREAD_GRAYSCALE)
        px_per_pt = img.shape[1] / src[n - 1].rect.width
        for angle in (5, -5):
            turned = _turn(img, angle)
            doc = pymupdf.open()
            page = doc.new_page(width=turned.shape[1] / px_per_pt, height=turned.shape[0] / px_per_pt)
            page.insert_image(page.rect, stream=cv2.imencode(".png", turned)[1].tobytes())
            path = tmp / f"report_scan_p{n}_skew{angle:+d}.pdf"
            doc.save(path)
            pages.append(BenchPage("variants", path.stem, path, 1, truth[n]))
    return pages


def _turn(gray: np.ndarray, angle: float) -> np.ndarray:
    """``gray`` turned ``angle`` degrees counter-clockwise on a canvas grown to hold it, white fill."""
    import cv2

    h, w = gray.shape
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(round(w * c + h * s)), int(round(w * s + h * c))
    m[:, 2] += ((nw - w) / 2, (nh - h) / 2)
    return cv2.warpAffine(gray, m, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=255)


ACCENTED = {
    "fra": ("Rapport régional sur les transports",
            "Le réseau ferroviaire a connu une année difficile. Après la grève de décembre, les trains régionaux "
            "ont été remplacés par des autocars sur plusieurs lignes. À Besançon, le garçon du café de l'Hôtel de "
            "Ville nous a expliqué que la fréquentation avait baissé de près de vingt pour cent. Les élèves, qui se "
            "rendent chaque matin au lycée Molière, préfèrent désormais le vélo : « c'est plus sûr et plus rapide », "
            "déclare Noël, âgé de dix-sept ans. La région prévoit néanmoins d'améliorer la desserte dès l'été "
            "prochain, grâce à une aide de l'État et à la rénovation des gares de Dôle, Pontarlier et Montbéliard. "
            "Les travaux coûteront environ 12,5 millions d'euros ; la première tranche sera achevée en août."),
    "deu": ("Bericht über den Zustand der Brücken",
            "Die Überprüfung der Brücken in Süddeutschland hat gezeigt, dass viele Bauwerke dringend saniert werden "
            "müssen. Laut dem Straßenbauamt in München sind über fünfzig Brücken älter als sechzig Jahre. Für die "
            "Arbeiten werden im nächsten Jahr zusätzliche Mittel benötigt, schätzungsweise 48 Millionen Euro. "
            "Bürgermeisterin Jürgens äußerte sich zufrieden: Die Gemeinden könnten nun größere Vorhaben planen. "
            "Während der Bauphase müssen Pendler mit Umleitungen rechnen; die Öffnungszeiten der Fähre über den "
            "Fluss werden deshalb verlängert. Weitere Auskünfte erteilt das Büro für Verkehrsplanung in Würzburg, "
            "geöffnet montags bis freitags von 8 bis 16 Uhr."),
}


def accent_pages(tmp: Path) -> list[BenchPage]:
    """A French and a German page, scanned like the fixtures (200 dpi, skew, blur, noise, JPEG)."""
    import cv2
    import pymupdf

    sys.path.insert(0, str(ROOT / "fixtures"))
    import make_fixtures as F

    rng = np.random.default_rng(7)
    pages = []
    for (lang, (title, body)), font, angle in zip(ACCENTED.items(), ("helv", "tiro"), (0.5, -0.6)):
        doc = pymupdf.open()
        page = doc.new_page(width=612, height=792)
        page.insert_text((72, 96), title, fontname=font, fontsize=17)
        left = page.insert_textbox(pymupdf.Rect(72, 120, 540, 720), body, fontname=font, fontsize=11.5)
        assert left >= 0, "accented text overflows its box"
        truth = page.get_text(sort=True)
        pix = page.get_pixmap(dpi=F.DPI, colorspace=pymupdf.csGRAY)
        clean = np.frombuffer(pix.samples, np.uint8).reshape(pix.h, pix.w)
        m = F.skew_matrix(angle, ((pix.w - 1) / 2, (pix.h - 1) / 2))
        img = cv2.warpAffine(clean, m, (pix.w, pix.h), flags=cv2.INTER_LINEAR, borderValue=255)
        img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), F.BLUR_SIGMA)
        img = img * (F.PAPER_TONE / 255.0) + rng.normal(0.0, F.NOISE_SIGMA, img.shape)
        img = np.clip(np.rint((img - F.BLACK_POINT) * (255.0 / (F.WHITE_POINT - F.BLACK_POINT))), 0, 255)
        scan = pymupdf.open()
        scan.new_page(width=612, height=792).insert_image(pymupdf.Rect(0, 0, 612, 792),
                                                          stream=F.jpeg_bytes(img.astype(np.uint8)))
        path = tmp / f"accents_{lang}.pdf"
        scan.save(path)
        pages.append(BenchPage("accents", f"accents_{lang}", path, 1, truth, lang=lang))
    return pages


def load_sets(names: list[str], tmp: Path) -> list[BenchPage]:
    makers = {"ocr-dev": ocr_dev_pages, "layout-scans": layout_scan_pages, "fixtures": fixture_pages,
              "variants": lambda: variant_pages(tmp), "accents": lambda: accent_pages(tmp)}
    return [p for name in names for p in makers[name]()]


# ---------------------------------------------------------------- engines


@dataclass(frozen=True)
class Engine:
    name: str
    dpi: int
    model: str | None = None

    @property
    def label(self) -> str:
        return self.name

    def options(self, page: BenchPage):  # -> IngestOptions
        from docrag.config import IngestOptions

        lang = page.lang if self.name == "tesseract" else None
        return IngestOptions(ocr="always", ocr_engine=self.name, ocr_model=self.model, lang=lang, dpi=self.dpi)


def available_engines(wanted: list[str] | None, dpis: list[int], florence2_model: str | None) -> list[Engine]:
    from docrag.recognize import RECOGNIZERS, _load_builtin_engines

    _load_builtin_engines()
    names = wanted or sorted(RECOGNIZERS.names())
    engines = []
    for name in names:
        if name == "tesseract" and shutil.which("tesseract") is None:
            print("note: tesseract binary not found; engine skipped", file=sys.stderr)
            continue
        if name == "florence2" and florence2_model is None:
            print("note: florence2 skipped (pass --florence2-model DIR to run it)", file=sys.stderr)
            continue
        engines += [Engine(name, dpi, florence2_model if name == "florence2" else None) for dpi in dpis]
    return engines


def page_text(page: BenchPage, engine: Engine) -> tuple[str, float, str | None]:
    """The page's OCR text (lines in reading order), seconds spent, and an error if it failed."""
    from docrag.io.document import open_document
    from docrag.pipeline import process_page

    with open_document(page.path) as doc:
        src = doc.page(page.number)
        t0 = time.perf_counter()
        try:
            result = process_page(src, engine.options(page))
        except Exception as exc:  # one broken engine/page must not stop the bench
            return "", time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - t0
    return "\n".join(line.text for line in result.lines), seconds, None


# ---------------------------------------------------------------- run and print


def run(pages: list[BenchPage], engines: list[Engine], verbose: bool) -> tuple[dict, list[dict]]:
    scores: dict[tuple[Engine, str], Score] = {}
    rows = []
    # Warm-up: load each engine's models (and each Tesseract language) on one page.
    for engine in engines:
        for lang in sorted({p.lang for p in pages}):
            sample = next(p for p in pages if p.lang == lang)
            page_text(sample, engine)
    for page in pages:
        for engine in engines:
            text, seconds, error = page_text(page, engine)
            score = scores.setdefault((engine, page.set), Score())
            if error:
                score.failed.append(f"{page.name}: {error}")
            row = score.add(text, page.truth, seconds)
            rows.append({"set": page.set, "page": page.name, "engine": engine.label, "dpi": engine.dpi,
                         "cer": round(row["cer"], 4), "seconds": round(seconds, 3), "error": error})
            if verbose:
                print(f"  {page.set:<12} {page.name:<34} {engine.label:<10} {engine.dpi:>4}  "
                      f"CER {row['cer']:.3f}  {seconds:6.2f} s{'  ' + error if error else ''}", file=sys.stderr)
    return scores, rows


HEADER = f"{'engine':<10} {'dpi':>4}  {'set':<12} {'pages':>5}  {'CER':>7}  {'CER_nows':>8}  {'WER':>7}  " \
         f"{'wordF1':>6}  {'pages/s':>7}"


def fmt(engine: Engine, set_name: str, f: dict[str, float]) -> str:
    return (f"{engine.label:<10} {engine.dpi:>4}  {set_name:<12} {f['pages']:>5}  {f['cer']:>7.4f}  "
            f"{f['cer_nows']:>8.4f}  {f['wer']:>7.4f}  {f['word_f1']:>6.3f}  {f['pages_per_s']:>7.3f}")


def acceptance(scores: dict, default: str) -> list[str]:
    """Default engine vs Tesseract per set: CER no higher, pages/s at least twice."""
    out = []
    for (engine, set_name), score in scores.items():
        if engine.name != default:
            continue
        ref = next((s for (e, n), s in scores.items() if e.name == REFERENCE and n == set_name
                    and e.dpi == engine.dpi), None)
        if ref is None:
            continue
        a, b = score.figures(), ref.figures()
        ok_cer, ok_speed = a["cer"] <= b["cer"], a["pages_per_s"] >= 2 * b["pages_per_s"]
        gate = " (acceptance)" if set_name in ("ocr-dev", "layout-scans", "fixtures") else ""
        out.append(f"{set_name:<12} dpi {engine.dpi}: CER {a['cer']:.4f} vs {b['cer']:.4f} "
                   f"{'ok' if ok_cer else 'FAIL'}; speed {a['pages_per_s'] / max(b['pages_per_s'], 1e-9):.2f}x "
                   f"{'ok' if ok_speed else 'FAIL'}{gate}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS), help="page sets to run")
    parser.add_argument("--engines", nargs="+", help="recognizers to run (default: every one available)")
    parser.add_argument("--dpi", nargs="+", type=int, default=[300], help="raster dpi (several: each is run)")
    parser.add_argument("--florence2-model", help="local Florence-2 model directory (runs florence2)")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON object")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each page's CER and time on stderr")
    args = parser.parse_args(argv)

    from docrag.config import IngestOptions

    default = IngestOptions().ocr_engine
    before = machine(f"default={default}", f"reference={REFERENCE}")  # the load while the pages run, too
    engines = available_engines(args.engines, args.dpi, args.florence2_model)
    with tempfile.TemporaryDirectory() as tmp:
        pages = load_sets(args.sets, Path(tmp))
        if not pages or not engines:
            print("nothing to run: no pages or no engine available", file=sys.stderr)
            return 1
        scores, rows = run(pages, engines, args.verbose)

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    print(f"# OCR bench\n{before}\n# load avg after: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    set_names = [s for s in args.sets if any(p.set == s for p in pages)]
    for set_name in set_names:
        print(f"\n## {set_name}\n{HEADER}")
        for engine in engines:
            if (engine, set_name) in scores:
                print(fmt(engine, set_name, scores[(engine, set_name)].figures()))
    print(f"\n## summary\n{HEADER}")
    for engine in engines:
        total = Score()
        for set_name in set_names:
            s = scores.get((engine, set_name))
            if s is None:
                continue
            print(fmt(engine, set_name, s.figures()))
            for k in vars(total):
                if k != "failed":
                    setattr(total, k, getattr(total, k) + getattr(s, k))
        print(fmt(engine, "all", total.figures()))
    print(f"\n## acceptance: {default} vs {REFERENCE} (CER no higher, >= 2x pages/s)")
    for line in acceptance(scores, default):
        print(line)
    failures = [f"{e.label}@{e.dpi} {msg}" for (e, _), s in scores.items() for msg in s.failed]
    for msg in failures:
        print(f"failed: {msg}")
    if args.json:
        print(json.dumps({
            "cpu": cpu, "default": default, "reference": REFERENCE,
            "results": [{"engine": e.label, "dpi": e.dpi, "set": n, **{k: round(v, 4) for k, v in s.figures().items()}}
                        for (e, n), s in scores.items()],
            "pages": rows, "failures": failures,
        }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
