"""Text that a digital page holds only as an image (a pasted screenshot) is read by OCR; photos are not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pymupdf
import pytest

import docrag
from docrag.config import IngestOptions
from docrag.pipeline import looks_like_print

SCREENSHOT_TEXT = "Press the green button to restart the pump"


def _screenshot_png() -> bytes:
    """A strip of rendered text, as a screenshot pasted into a document would be."""
    doc = pymupdf.open()
    page = doc.new_page(width=330, height=30)
    page.insert_text((8, 20), SCREENSHOT_TEXT, fontsize=14)
    return page.get_pixmap(dpi=200).tobytes("png")


def _photo_png() -> bytes:
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 255, (120, 200, 3), dtype=np.uint8)
    return pymupdf.Pixmap(pymupdf.csRGB, 200, 120, noise.tobytes(), False).tobytes("png")


@pytest.fixture(scope="module")
def page_with_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    body = "The maintenance manual explains how the pump is serviced and restarted after a fault."
    for i in range(6):
        page.insert_text((72, 90 + 16 * i), body, fontsize=10)
    page.insert_image(pymupdf.Rect(72, 220, 402, 250), stream=_screenshot_png())
    page.insert_image(pymupdf.Rect(72, 300, 272, 420), stream=_photo_png())
    path = tmp_path_factory.mktemp("text-images") / "manual.pdf"
    doc.save(path)
    return path


@pytest.mark.slow
def test_a_screenshot_on_a_text_page_is_read_and_a_photo_is_not(page_with_images: Path) -> None:
    (page,) = list(docrag.ocr(str(page_with_images), IngestOptions(workers=1)))
    assert page.method == "text"
    read = [ln for ln in page.lines if ln.source == "ocr"]
    words = " ".join(ln.text for ln in read).lower().split()
    assert {"green", "button", "restart", "pump"} <= set(words)
    # Every OCR line lies on the screenshot, none on the photo.
    assert all(ln.bbox[1] >= 215 and ln.bbox[3] <= 255 for ln in read)
    assert "restart" in page.text


def test_print_is_told_from_a_photo() -> None:
    paper = np.full((40, 300, 3), 245, np.uint8)
    paper[14:26, 10:290:5] = 30  # strokes of ink
    assert looks_like_print(paper)
    gradient = np.dstack([np.tile(np.linspace(0, 255, 300, dtype=np.uint8), (40, 1))] * 3)
    assert not looks_like_print(gradient)
    colourful = np.zeros((40, 300, 3), np.uint8)
    colourful[..., 0] = 220
    colourful[::2, ::3, 2] = 200
    assert not looks_like_print(colourful)


def test_a_background_photo_under_the_text_layer_gets_no_closer_look(tmp_path: Path, monkeypatch) -> None:
    """A full-bleed photo with the text set on it: its own words are read, but the costly second look
    for small print (a page-sized region detected again at 3x) is kept for inserts without text over them."""
    import docrag.pipeline as pipeline

    sky = np.repeat(np.linspace(40, 220, 200, dtype=np.uint8)[:, None, None], 150, axis=1).repeat(3, axis=2)
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    page.insert_image(page.rect, stream=pymupdf.Pixmap(pymupdf.csRGB, 150, 200, sky.tobytes(), False).tobytes("png"))
    for i in range(4):
        page.insert_text((72, 300 + 40 * i), "Annual report of the pump works", fontsize=24, color=(1, 1, 1))
    path = tmp_path / "background.pdf"
    doc.save(path)
    looks: list[bool] = []
    plain = pipeline.ocr_lines
    monkeypatch.setattr(pipeline, "ocr_lines", lambda *a, closer=True, **k: looks.append(closer) or plain(*a, **k))
    pages = list(docrag.ocr(path, IngestOptions(figures=False)))
    assert [p.method for p in pages] == ["mixed"]
    assert looks == [False]  # the background, under four text-layer lines
    assert "Annual report of the pump works" in pages[0].text  # the text layer's words, all kept


def test_a_chart_is_not_read_only_lines_of_text_are(tmp_path: Path, monkeypatch) -> None:
    """A print-like chart (axes, ticks, short labels) is left to the figure stage without being read;
    a screenshot of text lines is read."""
    import docrag.pipeline as pipeline
    from docrag.io import open_document

    doc = pymupdf.open()
    chart = doc.new_page(width=300, height=200)
    chart.draw_line((40, 20), (40, 170))
    chart.draw_line((40, 170), (290, 170))
    for i, label in enumerate(["0", "10", "20", "30", "40"]):
        chart.insert_text((18, 172 - 35 * i), label, fontsize=9)
        chart.insert_text((40 + 55 * i, 185), str(2019 + i), fontsize=9)
    chart_png = chart.get_pixmap(dpi=200).tobytes("png")
    page = doc.new_page(width=612, height=792)
    page.insert_text((72, 80), "The pump manual, with its chart of yearly faults and a screenshot.", fontsize=10)
    page.insert_image(pymupdf.Rect(72, 120, 372, 320), stream=chart_png)
    page.insert_image(pymupdf.Rect(72, 400, 402, 430), stream=_screenshot_png())
    pdf = pymupdf.open()
    pdf.insert_pdf(doc, from_page=1, to_page=1)
    pdf.save(tmp_path / "manual.pdf")
    read: list[tuple] = []
    plain = pipeline.ocr_lines
    monkeypatch.setattr(pipeline, "ocr_lines", lambda raster, *a, **k: read.append(raster.image.shape) or
                        plain(raster, *a, **k))
    with open_document(tmp_path / "manual.pdf") as opened:
        src = opened.page(1)
        lines = pipeline.text_in_images(src, src.image_boxes(), pipeline.text_layer_lines(src), IngestOptions())
    assert len(read) == 1 and read[0][1] > 5 * read[0][0]  # the screenshot strip only
    assert "restart" in " ".join(ln.text for ln in lines)
