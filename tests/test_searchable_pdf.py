"""Searchable PDF export: the invisible text layer lands on the printed words, pages stay as they were."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image
from textmetrics import cer, normalize

from docrag.errors import LoadError
from docrag.integrations.searchable_pdf import write_searchable_pdf
from docrag.types import Line, Page, Word, iou, union

pymupdf = pytest.importorskip("pymupdf")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"
REPORT = FIXTURES / "report_scan.pdf"
MIXED = FIXTURES / "mixed.pdf"


# -- helpers -------------------------------------------------------------------


def _gt_text(name: str) -> str:
    from conftest import load_gt

    return "\n".join(line["text"] for page in load_gt(name)["pages"] for line in page["lines"])


def _ocr_words(page: Page) -> list[Word]:
    return [w for line in page.lines if line.source == "ocr" for w in line.words]


def _hit_rate(want: list[tuple], got: list[tuple], threshold: float = 0.5) -> float:
    """Share of ``want`` boxes with an extracted box overlapping at IoU > threshold."""
    hits = [max((iou(w, g) for g in got), default=0.0) > threshold for w in want]
    return float(np.mean(hits)) if hits else 1.0


def _extracted_lines(pdf_page) -> list[tuple]:
    """Boxes of the lines as MuPDF groups the extracted words."""
    groups: dict[tuple[int, int], list[tuple]] = {}
    for w in pdf_page.get_text("words", sort=False):
        groups.setdefault((w[5], w[6]), []).append(tuple(w[:4]))
    return [union(boxes) for boxes in groups.values()]


def _render(pdf_page, zoom: float = 1.0) -> np.ndarray:
    pix = pdf_page.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), colorspace=pymupdf.csRGB, alpha=False)
    return np.frombuffer(pix.samples, dtype=np.uint8).reshape(pix.height, pix.width, 3)


def _lines_from_words(words: list[tuple]) -> list[Line]:
    """OCR-like lines from ``get_text("words")`` tuples, grouped by (block, line)."""
    groups: dict[tuple[int, int], list[Word]] = {}
    for w in words:
        groups.setdefault((w[5], w[6]), []).append(Word(w[4], tuple(w[:4])))
    return [Line(" ".join(w.text for w in ws), union([w.bbox for w in ws]), words=ws, source="ocr")
            for ws in groups.values()]


def _page(number: int, pdf_page, lines: list[Line]) -> Page:
    from docrag.types import Block

    rect = pdf_page.cropbox
    return Page(number=number, width=rect.width, height=rect.height, method="ocr",
                rotation=pdf_page.rotation, blocks=[Block(lines=lines, bbox=union([l.bbox for l in lines]))])


# -- session fixtures: OCR once --------------------------------------------------


@pytest.fixture(scope="session")
def report_pages(ocr_pages: Callable[..., list[Page]], session_options) -> list[Page]:
    return ocr_pages(REPORT.name, session_options)  # the session index's reading of the scan


@pytest.fixture(scope="session")
def report_out(report_pages, tmp_path_factory) -> Path:
    return write_searchable_pdf(REPORT, report_pages, tmp_path_factory.mktemp("sp") / "report.pdf")


@pytest.fixture(scope="session")
def mixed_pages(ocr_pages: Callable[..., list[Page]]) -> list[Page]:
    # docrag.ocr OCRs every page, text-layer pages too: the writer must not double them.
    return ocr_pages(MIXED.name)


# -- scanned PDF -------------------------------------------------------------------


@pytest.mark.slow
def test_words_land_on_ocr_boxes(report_pages, report_out) -> None:
    with pymupdf.open(report_out) as doc:
        for page in report_pages:
            got = [tuple(w[:4]) for w in doc[page.number - 1].get_text("words")]
            want = [w.bbox for w in _ocr_words(page)]
            assert len(got) == len(want)
            assert _hit_rate(want, got) >= 0.9, f"page {page.number}"


@pytest.mark.slow
def test_lines_land_on_ground_truth_lines(report_out) -> None:
    from conftest import load_gt

    with pymupdf.open(report_out) as doc:
        for gt_page in load_gt("report_scan")["pages"]:
            got = _extracted_lines(doc[gt_page["page"] - 1])
            want = [tuple(line["bbox"]) for line in gt_page["lines"]]
            assert _hit_rate(want, got) >= 0.9, f"page {gt_page['page']}"


@pytest.mark.slow
def test_extracted_text_is_as_good_as_the_ocr(report_pages, report_out) -> None:
    want = _gt_text("report_scan")
    ocr_text = "\n".join(line.text for page in report_pages for line in page.lines)
    with pymupdf.open(report_out) as doc:
        extracted = "\n".join(page.get_text() for page in doc)
    assert cer(extracted, want) <= cer(ocr_text, want) + 1e-9
    # one extracted line per OCR line, words in order, separated by spaces
    with pymupdf.open(report_out) as doc:
        lines = [normalize(t) for page in doc for t in page.get_text().splitlines() if t.strip()]
    assert lines == [normalize(line.text) for page in report_pages for line in page.lines]


@pytest.mark.slow
def test_pages_are_unchanged(report_out) -> None:
    with pymupdf.open(REPORT) as src, pymupdf.open(report_out) as out:
        assert src.page_count == out.page_count
        for a, b in zip(src, out):
            assert np.array_equal(_render(a), _render(b))
            # the scans are the same bytes, not re-encoded
            for (xa, *_), (xb, *_) in zip(a.get_images(), b.get_images()):
                assert src.xref_stream_raw(xa) == out.xref_stream_raw(xb)


@pytest.mark.slow
def test_text_layer_pages_are_not_doubled(mixed_pages, tmp_path) -> None:
    out = write_searchable_pdf(MIXED, mixed_pages, tmp_path / "mixed.pdf")
    with pymupdf.open(MIXED) as src, pymupdf.open(out) as doc:
        for a, b, page in zip(src, doc, mixed_pages):
            before, after = a.get_text("words"), b.get_text("words")
            assert np.array_equal(_render(a), _render(b))
            if before:  # a text-layer page: its own text, exactly once, nothing added
                assert [w[:5] for w in after] == [w[:5] for w in before]
            else:
                want = [w.bbox for w in _ocr_words(page)]
                assert len(after) == len(want) and _hit_rate(want, [w[:4] for w in after]) >= 0.9


@pytest.mark.slow
def test_pdftotext_reads_lines(report_pages, report_out) -> None:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    want = _gt_text("report_scan")
    ocr_text = "\n".join(line.text for page in report_pages for line in page.lines)
    # -raw keeps the content stream's order, which is ours: lines whole, words spaced, in reading order.
    raw = subprocess.run(["pdftotext", "-raw", str(report_out), "-"], capture_output=True, text=True, check=True).stdout
    assert cer(raw, want) <= cer(ocr_text, want) + 0.005
    # The default mode orders blocks by its own layout analysis (a two-column paragraph
    # may move), so there it is the words that must all be found, each whole.
    text = subprocess.run(["pdftotext", str(report_out), "-"], capture_output=True, text=True, check=True).stdout
    got, truth = Counter(normalize(text).split()), Counter(normalize(want).split())
    ocr_words = Counter(normalize(ocr_text).split())
    assert sum((got & truth).values()) >= sum((ocr_words & truth).values()) - 2
    first = report_pages[0].lines[0].text
    assert normalize(first) in [normalize(t) for t in text.splitlines()]


# -- geometry without OCR ------------------------------------------------------------


def _text_and_scan(tmp_path: Path, rotation: int, cropbox: tuple | None) -> tuple[Path, Path]:
    """A text PDF and its image-only twin, both with the same cropbox and /Rotate."""
    text = pymupdf.open()
    page = text.new_page(width=420, height=560)
    for i, line in enumerate(["Invisible text on a turned page", "second line of 6 words here",
                              "Total 4,182 units - 7.4 %"]):
        page.insert_text((40 + 10 * i, 90 + 40 * i), line, fontsize=14 + 2 * i)
    scan = pymupdf.open()
    scan.new_page(width=420, height=560).insert_image(pymupdf.Rect(0, 0, 420, 560), pixmap=page.get_pixmap(dpi=150))
    for doc in (text, scan):
        if cropbox:
            doc[0].set_cropbox(pymupdf.Rect(cropbox))
        doc[0].set_rotation(rotation)
    paths = tmp_path / "text.pdf", tmp_path / "scan.pdf"
    text.save(paths[0])
    scan.save(paths[1])
    return paths


@pytest.mark.parametrize("rotation,cropbox", [(0, None), (90, None), (270, (12, 30, 400, 520)), (180, (5, 5, 415, 550))])
def test_rotated_and_cropped_pages(tmp_path, rotation, cropbox) -> None:
    text_pdf, scan_pdf = _text_and_scan(tmp_path, rotation, cropbox)
    with pymupdf.open(text_pdf) as doc:
        truth = doc[0].get_text("words")
        page = _page(1, doc[0], _lines_from_words(truth))
    out = write_searchable_pdf(scan_pdf, [page], tmp_path / "out.pdf")
    with pymupdf.open(scan_pdf) as src, pymupdf.open(out) as doc:
        got = doc[0].get_text("words")
        assert [w[4] for w in got] == [w[4] for w in truth]
        assert min(iou(tuple(g[:4]), tuple(t[:4])) for g, t in zip(got, truth)) > 0.9
        assert np.array_equal(_render(src[0]), _render(doc[0]))
        # in the displayed (rotated) page, every word box covers ink
        ink = _render(doc[0]).min(axis=2) < 128
        for w in got:
            r = pymupdf.Rect(w[:4]) * doc[0].rotation_matrix
            assert ink[int(r.y0):int(r.y1) + 1, int(r.x0):int(r.x1) + 1].any(), w[4]


def test_inherited_resources_and_unbalanced_content(tmp_path) -> None:
    text_pdf, scan_pdf = _text_and_scan(tmp_path, 0, None)
    with pymupdf.open(scan_pdf) as doc:
        pg = doc[0]
        # resources inherited from the page tree, and a `cm` the content never undoes
        _, res = doc.xref_get_key(pg.xref, "Resources")
        _, parent = doc.xref_get_key(pg.xref, "Parent")
        doc.xref_set_key(int(parent.split()[0]), "Resources", res)
        doc.xref_set_key(pg.xref, "Resources", "null")
        extra = doc.get_new_xref()
        doc.update_object(extra, "<<>>")
        doc.update_stream(extra, b"3 0 0 3 0 0 cm")
        kind, contents = doc.xref_get_key(pg.xref, "Contents")
        contents = contents if kind == "xref" else contents.strip()[1:-1]
        doc.xref_set_key(pg.xref, "Contents", f"[{contents} {extra} 0 R]")
        doc.save(tmp_path / "odd.pdf")
    with pymupdf.open(text_pdf) as doc:
        truth = doc[0].get_text("words")
        page = _page(1, doc[0], _lines_from_words(truth))
    out = write_searchable_pdf(tmp_path / "odd.pdf", [page], tmp_path / "out.pdf")
    with pymupdf.open(tmp_path / "odd.pdf") as src, pymupdf.open(out) as doc:
        assert np.array_equal(_render(src[0]), _render(doc[0]))
        assert _hit_rate([tuple(t[:4]) for t in truth], [tuple(g[:4]) for g in doc[0].get_text("words")], 0.9) == 1.0


def _gt_page(name: str, number: int, width: float, height: float) -> Page:
    """A page of ground-truth lines without word boxes (the writer splits them)."""
    from conftest import load_gt
    from docrag.types import Block

    gt = load_gt(name)["pages"][number - 1]
    lines = [Line(line["text"], tuple(line["bbox"]), source="ocr") for line in gt["lines"]]
    return Page(number=number, width=width, height=height, method="ocr",
                blocks=[Block(lines=lines, bbox=union([l.bbox for l in lines]))])


@pytest.mark.parametrize("name,fmt", [("page_scan", "png"), ("page_scan", "jpg"), ("pages_scan", "tiff")])
def test_image_inputs(tmp_path, name, fmt) -> None:
    from docrag.io import open_document

    src = FIXTURES / f"{name}.{'tiff' if fmt == 'tiff' else 'png'}"
    if fmt == "jpg":
        Image.open(src).convert("RGB").save(tmp_path / "scan.jpg", quality=85, dpi=(200, 200))
        src = tmp_path / "scan.jpg"
    with open_document(src) as document:
        sizes = [(p.width, p.height) for p in document.pages()]
    pages = [_gt_page(name, i + 1, w, h) for i, (w, h) in enumerate(sizes)]
    out = write_searchable_pdf(src, pages, tmp_path / "out.pdf")
    with pymupdf.open(out) as doc, Image.open(src) as img:
        assert doc.page_count == len(sizes)
        for i, (pdf_page, page) in enumerate(zip(doc, pages)):
            assert pdf_page.rect.width == pytest.approx(page.width) and pdf_page.rect.height == pytest.approx(page.height)
            img.seek(i)
            want = np.asarray(img.convert("RGB"), dtype=np.int16)
            got = _render(pdf_page, img.width / pdf_page.rect.width)
            assert got.shape == want.shape and np.abs(got - want).max() <= 2
            assert _hit_rate([l.bbox for l in page.lines], _extracted_lines(pdf_page)) >= 0.9
            assert normalize(pdf_page.get_text()) == normalize("\n".join(l.text for l in page.lines))
        if fmt == "jpg":  # JPEG bytes go in as they are
            assert doc.xref_stream_raw(doc[0].get_images()[0][0]) == src.read_bytes()


def test_write_is_atomic(tmp_path) -> None:
    text_pdf, scan_pdf = _text_and_scan(tmp_path, 0, None)
    out = tmp_path / "out" / "scan.pdf"
    out.parent.mkdir()
    out.write_bytes(b"old")
    with pytest.raises(LoadError):
        write_searchable_pdf(scan_pdf, [Page(number=7, width=420, height=560, method="ocr")], out)
    assert out.read_bytes() == b"old" and sorted(p.name for p in out.parent.iterdir()) == ["scan.pdf"]
    assert write_searchable_pdf(scan_pdf, [], out) == out
    assert sorted(p.name for p in out.parent.iterdir()) == ["scan.pdf"]
    with pymupdf.open(out) as doc, pymupdf.open(scan_pdf) as src:
        assert doc.page_count == 1 and not doc[0].get_text("words")
        assert np.array_equal(_render(src[0]), _render(doc[0]))


def test_words_of_an_upside_down_line_keep_their_boxes(tmp_path) -> None:
    """A page read upside down lists each line's words right to left: they are spaced in x order."""
    doc = pymupdf.open()
    pdf_page = doc.new_page(width=300, height=200)
    pdf_page.insert_text((40, 100), "alpha beta gamma 42", fontsize=14)
    truth = pdf_page.get_text("words")
    doc.save(tmp_path / "text.pdf")
    scan = pymupdf.open()
    scan.new_page(width=300, height=200).insert_image(pymupdf.Rect(0, 0, 300, 200), pixmap=pdf_page.get_pixmap(dpi=100))
    scan.save(tmp_path / "scan.pdf")
    (line,) = _lines_from_words(truth)
    line.words = line.words[::-1]  # reading order of the turned page
    out = write_searchable_pdf(tmp_path / "scan.pdf", [_page(1, pdf_page, [line])], tmp_path / "out.pdf")
    with pymupdf.open(out) as got:
        boxes = [tuple(w[:4]) for w in got[0].get_text("words")]
    assert len(boxes) == 4
    assert _hit_rate([tuple(w[:4]) for w in truth], boxes, threshold=0.9) == 1.0
