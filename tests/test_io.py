"""Opening files: pages, sizes, rotation, rasters, text-layer routing and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pymupdf
import pytest
from bad_inputs import make_bad_inputs

from docrag.errors import LoadError
from docrag.io import assess_text_layer, open_document, sniff
from docrag.types import Word


def test_sniff_by_content(fixtures_dir: Path) -> None:
    assert sniff(fixtures_dir / "report.pdf") == "pdf"
    assert sniff(fixtures_dir / "page_scan.png") == "png"
    assert sniff(fixtures_dir / "pages_scan.tiff") == "tiff"


def test_pdf_pages_stream_with_words_in_points(fixtures_dir: Path) -> None:
    with open_document(fixtures_dir / "report.pdf") as doc:
        assert doc.page_count == 3 and len(doc.doc_id) == 64
        page = next(doc.pages())
        assert (page.width, page.height) == (612.0, 792.0)
        words = page.words()
        assert words and all(0 <= w.bbox[0] < w.bbox[2] <= 612 for w in words)


def test_tiff_frames_are_pages_sized_by_dpi(fixtures_dir: Path) -> None:
    with open_document(fixtures_dir / "pages_scan.tiff") as doc:
        assert doc.page_count == 2
        pages = list(doc.pages())
        assert pages[1].number == 2
        assert abs(pages[0].width - 612) < 2 and abs(pages[0].height - 792) < 2  # 200 dpi letter
        raster = pages[0].render()
        assert raster.image.dtype == np.uint8 and raster.image.shape[2] == 3
        assert raster.box_points(np.array([[0, 0], [raster.image.shape[1], raster.image.shape[0]]]))[2] == pytest.approx(pages[0].width)


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_raster_maps_back_to_unrotated_points(tmp_path: Path, rotation: int) -> None:
    doc = pymupdf.open()
    page = doc.new_page(width=400, height=600)
    page.draw_rect(pymupdf.Rect(50, 100, 150, 140), color=(0, 0, 0), fill=(0, 0, 0))
    page.set_rotation(rotation)
    path = tmp_path / f"rot{rotation}.pdf"
    doc.save(path)
    with open_document(path) as d:
        src = d.page(1)
        assert (src.width, src.height, src.rotation) == (400, 600, rotation)
        raster = src.render(dpi=72)
        ys, xs = np.nonzero(raster.image[:, :, 0] < 128)
        quad = np.array([[xs.min(), ys.min()], [xs.max() + 1, ys.max() + 1]])
        box = raster.box_points(quad)
    assert box == pytest.approx((50, 100, 150, 140), abs=1.5)


def test_text_layer_verdicts() -> None:
    good = [Word("Revenue", (0, 0, 40, 10)), Word("grew", (45, 0, 70, 10))] * 10
    assert assess_text_layer(good, 612, 792, []).usable
    soup = [Word("\ufffd\ufffd\ufffd", (0, 0, 40, 10))] * 20
    assert "unprintable" in assess_text_layer(soup, 612, 792, []).reason
    symbols = [Word("#$%&*", (0, 0, 40, 10))] * 20
    assert "glyph soup" in assess_text_layer(symbols, 612, 792, []).reason
    stamp = [Word("CONFIDENTIAL", (0, 0, 60, 10)), Word("Page 3 of 12", (0, 780, 50, 790))]
    verdict = assess_text_layer(stamp, 612, 792, [(0, 0, 612, 792)])
    assert not verdict.usable and verdict.image_cover == 1.0


def test_bad_inputs_raise_load_error_naming_the_file(tmp_path: Path, fixtures_dir: Path) -> None:
    for name, (path, pattern) in make_bad_inputs(tmp_path, fixtures_dir / "report.pdf").items():
        with pytest.raises(LoadError, match=pattern) as info:
            open_document(path)
        message = str(info.value)
        assert str(path) in message and "\n" not in message, (name, message)


def test_huge_page_is_downscaled_with_a_warning(tmp_path: Path) -> None:
    doc = pymupdf.open()
    doc.new_page(width=14400, height=14400)  # 200 x 200 inches
    doc.save(tmp_path / "huge.pdf")
    with open_document(tmp_path / "huge.pdf") as d:
        src = d.page(1)
        raster = src.render(dpi=300)
    assert raster.image.shape[0] * raster.image.shape[1] <= 60_000_000
    assert src.warnings and "instead of 300" in src.warnings[0]
    assert raster.box_points(np.array([[0, 0], [raster.image.shape[1], raster.image.shape[0]]]))[2] == pytest.approx(14400)


def test_huge_image_is_downscaled_and_a_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    from PIL import Image

    big = tmp_path / "big.png"
    Image.new("L", (9000, 8000), 255).save(big)  # 72 MP, cheap to write (flat)
    with open_document(big) as d:
        src = d.page(1)
        raster = src.render()
    assert raster.image.shape[:2] == (4000, 4500) and "downscaled 2x" in src.warnings[0]
    bomb = tmp_path / "bomb.png"
    with open(big, "rb") as fh:
        data = bytearray(fh.read())
    data[16:24] = (30000).to_bytes(4, "big") + (30000).to_bytes(4, "big")  # IHDR width/height: 900 MP
    import zlib

    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # keep the header's CRC valid
    bomb.write_bytes(bytes(data))
    with pytest.raises(LoadError, match="900 MP"):
        open_document(bomb)


@pytest.mark.slow
def test_blank_scan_page_gives_no_lines(tmp_path: Path) -> None:
    from docrag.config import IngestOptions
    from docrag.pipeline import process_page

    doc = pymupdf.open()
    page = doc.new_page()
    pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 1700, 2200), False)
    pix.clear_with(255)
    page.insert_image(page.rect, pixmap=pix)
    doc.save(tmp_path / "blank.pdf")
    with open_document(tmp_path / "blank.pdf") as d:
        result = process_page(d.page(1), IngestOptions(ocr="always"))
    assert result.lines == [] and result.method == "ocr"
