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
