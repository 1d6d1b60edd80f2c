"""Memory bounds (issue #17): large images read at reduced scale, their boxes in full-size space, OCR in bands.

The caps are lowered here so that small images exercise the mechanisms; bench/memory.py
measures the real sizes (a 30,000 px PNG, a 14,400-pt page, a 500-page scan).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

import docrag.io.document as document
import docrag.io.reduced as reduced
import docrag.recognize.engine as engine
from docrag.errors import LoadError
from docrag.io import open_document


def _page_image(width: int, height: int) -> np.ndarray:
    """White paper with a dark block at x 60-150, y 30-90 (of 300 x 200; scaled with the size) and noise
    (so that it does not compress to nothing)."""
    rng = np.random.default_rng(7)
    img = np.full((height, width), 235, np.uint8) + rng.integers(0, 20, (height, width), dtype=np.uint8)
    img[height * 30 // 200: height * 90 // 200, width * 60 // 300: width * 150 // 300] = 10
    return img


def _dark_box(raster) -> tuple[float, float, float, float]:  # Raster -> page-point box of its dark pixels
    ys, xs = np.nonzero(raster.image.min(axis=2) < 100)
    return raster.box_points(np.array([[xs.min(), ys.min()], [xs.max() + 1, ys.max() + 1]]))


def test_png_over_the_cap_is_read_in_strips_with_boxes_in_full_size_points(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(document, "MAX_RASTER_PIXELS", 10_000)
    monkeypatch.setattr(reduced, "STRIP_BYTES", 2_000)  # a few rows a strip: many strip boundaries
    path = tmp_path / "big.png"
    Image.fromarray(_page_image(300, 200)).save(path)
    loaded: list[tuple[int, int]] = []
    real_load = ImageFile.ImageFile.load

    def spy(self):  # every PNG decode, by size: the 300x200 image itself must never be decoded
        loaded.append(self.size)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    with open_document(path) as doc:
        page = doc.page(1)
        raster = page.render()
        again = page.render(dpi=144)  # the figure crops' render: the same image, not decoded again
    assert raster.image.shape == (67, 100, 3)  # 60,000 px over a 10,000 cap: 1/3 scale, sides rounded up
    assert "downscaled 3x" in page.warnings[0]
    assert loaded and max(h for _, h in loaded) < 200, loaded
    assert again is raster
    assert (page.width, page.height) == (300.0, 200.0)  # no dpi: a pixel is a point
    assert _dark_box(raster) == pytest.approx((60.0, 30.0, 150.0, 90.0), abs=3.0)


def test_jpeg_over_the_cap_is_decoded_at_reduced_scale_with_boxes_in_full_size_points(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(document, "MAX_RASTER_PIXELS", 30_000)
    path = tmp_path / "big.jpg"
    Image.fromarray(_page_image(800, 600)).save(path, quality=95, dpi=(144, 144))
    with open_document(path) as doc:
        page = doc.page(1)
        raster = page.render()
    assert raster.image.shape == (150, 200, 3) and "downscaled 4x" in page.warnings[0]
    assert (page.width, page.height) == (400.0, 300.0)  # 144 dpi: two pixels a point
    assert _dark_box(raster) == pytest.approx((80.0, 45.0, 200.0, 135.0), abs=4.0)  # pixels 160-400 x 90-270


def test_bilevel_tiff_over_the_cap_is_reduced_not_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Pillow cannot reduce mode "1" (nor "P", nor 16-bit): such frames are made reducible a strip at a time.
    monkeypatch.setattr(document, "MAX_RASTER_PIXELS", 10_000)
    path = tmp_path / "big.tiff"
    Image.fromarray(_page_image(300, 200)).point(lambda v: 255 if v > 128 else 0).convert("1").save(
        path, compression="group4")
    with open_document(path) as doc:
        page = doc.page(1)
        raster = page.render()
    assert raster.image.shape == (67, 100, 3)
    assert _dark_box(raster) == pytest.approx((60.0, 30.0, 150.0, 90.0), abs=3.0)


@pytest.mark.parametrize("compression, strip_size", [("tiff_lzw", 4000), ("tiff_jpeg", 4000), ("raw", 2**24)])
def test_colour_tiff_over_the_byte_bound_is_read_a_band_of_strips_at_a_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compression: str, strip_size: int) -> None:
    # An RGB TIFF that main read whole (up to 400 MP) is read in bands, not refused: compressed strips
    # a few at a time, one uncompressed strip cut where its rows lie.
    monkeypatch.setattr(document, "MAX_RASTER_PIXELS", 10_000)
    monkeypatch.setattr(document, "MAX_DECODE_BYTES", 100_000)
    monkeypatch.setattr(reduced, "STRIP_BYTES", 20_000)
    monkeypatch.setattr(reduced, "READ_BYTES", 5_000)
    path = tmp_path / "colour.tiff"
    Image.fromarray(np.dstack([_page_image(300, 200)] * 3)).save(path, compression=compression.replace(
        "tiff_jpeg", "jpeg"), strip_size=strip_size)
    with open_document(path) as doc:
        page = doc.page(1)
        raster = page.render()
    with Image.open(path) as whole:
        expected = reduced.reduce_image(whole, 3)
    assert raster.image.shape == (67, 100, 3) and "downscaled 3x" in page.warnings[0]
    assert np.abs(raster.image.astype(int) - expected.astype(int)).max() == 0
    assert _dark_box(raster) == pytest.approx((60.0, 30.0, 150.0, 90.0), abs=4.0)


def test_image_decoded_whole_is_refused_over_the_byte_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(document, "MAX_RASTER_PIXELS", 10_000)
    monkeypatch.setattr(document, "MAX_DECODE_BYTES", 100_000)
    path = tmp_path / "colour.tiff"
    # RGB (4 bytes a pixel once decoded) in one compressed strip: it cannot be read a band at a time.
    Image.fromarray(np.dstack([_page_image(300, 200)] * 3)).save(path, compression="tiff_lzw", strip_size=2**24)
    with pytest.raises(LoadError, match="decoded whole") as info:
        open_document(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_png_cut_short_fails_its_page_naming_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(document, "MAX_RASTER_PIXELS", 10_000)
    path = tmp_path / "cut.png"
    Image.fromarray(_page_image(300, 200)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # still plausible (noise does not compress), but half the rows
    with open_document(path) as doc:
        with pytest.raises(LoadError, match="unreadable") as info:
            doc.page(1).render()
    assert str(path) in str(info.value) and "page 1" in str(info.value)


def test_png_whose_data_cannot_hold_its_size_is_refused_from_its_chunks(tmp_path: Path) -> None:
    import struct
    import zlib

    path = tmp_path / "bomb.png"
    Image.new("L", (300, 200), 255).save(path)  # a flat image: ~100 bytes of compressed data
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", 40_000, 40_000)  # 1,600 MP declared (under the refusal limit)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    with pytest.raises(LoadError, match="1600 MP.*decompression bomb"):
        open_document(path)


def _save_png(img: Image.Image, path: Path, writer: str, bits: int | None) -> None:
    if writer == "cv2":
        import cv2

        arr = np.asarray(img)
        cv2.imwrite(str(path), cv2.cvtColor(arr, cv2.COLOR_RGB2BGR) if arr.ndim == 3 else arr)
    else:
        img.save(path, **({"bits": bits} if bits else {}))


@pytest.mark.parametrize("mode, bits, writer", [
    ("L", None, "pil"), ("L", 2, "pil"), ("L", 4, "pil"), ("RGB", None, "pil"), ("RGB", None, "cv2"),
    ("RGBA", None, "pil"), ("LA", None, "pil"), ("1", None, "pil"), ("P", None, "pil"), ("P", 4, "pil"),
    ("P", 1, "pil"), ("I;16", None, "pil"),
])
def test_png_read_in_strips_equals_the_whole_image_reduced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           mode: str, bits: int | None, writer: str) -> None:
    # Strips of a few rows: every PNG row filter (sub, up, average, paeth) meets a strip's first row.
    monkeypatch.setattr(reduced, "STRIP_BYTES", 1_500)
    grey = _page_image(203, 157)
    grey[:, 50:70] = np.arange(157, dtype=np.uint8)[:, None]
    rgb = np.dstack([grey, grey[::-1], grey[:, ::-1]])
    img = {"L": Image.fromarray(grey), "RGB": Image.fromarray(rgb), "RGBA": Image.fromarray(np.dstack([rgb, grey])),
           "LA": Image.merge("LA", [Image.fromarray(grey), Image.fromarray(np.ascontiguousarray(grey[::-1]))]),
           "1": Image.fromarray(grey).convert("1"), "P": Image.fromarray(rgb).quantize(2 ** (bits or 8)),
           "I;16": Image.fromarray(grey.astype(np.uint16) * 257 + 3)}[mode]
    path = tmp_path / "img.png"
    _save_png(img, path, writer, bits)
    info = reduced.read_png_info(path)
    assert reduced.streamable(info) and reduced.plausible(info)
    whole = Image.open(path)
    for factor in (1, 3, 4):
        expected = np.asarray(reduced.to_reducible(whole).reduce(factor).convert("RGB"))
        assert np.array_equal(reduced.read_png_reduced(path, factor, info), expected), factor


def test_interlaced_png_is_not_read_in_strips(tmp_path: Path) -> None:
    path = tmp_path / "interlaced.png"
    import cv2

    cv2.imwrite(str(path), _page_image(64, 48))  # OpenCV writes plain PNGs: set the interlace flag by hand
    info = reduced.read_png_info(path)
    info.interlaced = True
    assert not reduced.streamable(info)
    with pytest.raises(ValueError, match="interlaced"):
        reduced.read_png_reduced(path, 2, info)


class _RowDetector:
    """A stand-in detector: one quad per run of inked rows (a "line"), spanning its inked columns.

    Records the detector-input pixels of every call (the image scaled by ``limit_side_len``).
    """

    limit_side_len = 100

    def __init__(self) -> None:
        self.inputs: list[float] = []

    def detect(self, image: np.ndarray, limit_side_len: int | None = None) -> np.ndarray:
        h, w = image.shape[:2]
        scale = min(1.0, (limit_side_len or self.limit_side_len) / max(h, w))
        self.inputs.append(h * w * scale * scale)
        inked = image.min(axis=(1, 2)) < 128
        quads, y = [], 0
        while y < h:
            if not inked[y]:
                y += 1
                continue
            y1 = y
            while y1 < h and inked[y1]:
                y1 += 1
            cols = np.nonzero(image[y:y1].min(axis=(0, 2)) < 128)[0]
            x0, x1 = float(cols.min()), float(cols.max() + 1)
            quads.append([[x0, y], [x1, y], [x1, y1], [x0, y1]])
            y = y1
        return np.asarray(quads, np.float32).reshape(-1, 4, 2)


def test_closer_look_at_a_large_region_is_detected_in_bands_finding_each_line_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    page = np.full((1200, 400, 3), 255, np.uint8)
    for top in range(20, 1180, 37):  # 32 "lines" 14 px tall, some across any band edge
        page[top:top + 14, 30 + top % 50: 360] = 0
    detector = _RowDetector()
    whole = engine._detect_in_bands(detector, page, 0.5)
    assert len(detector.inputs) == 1
    monkeypatch.setattr(engine, "_TILE_PIXELS", 20_000)  # 120,000 detector-input pixels: several bands
    monkeypatch.setattr(engine, "_TILE_OVERLAP", 10)  # 20 px of the page: more than a line
    detector = _RowDetector()
    banded = engine._detect_in_bands(detector, page, 0.5)
    assert len(detector.inputs) > 4 and max(detector.inputs) <= 20_000
    key = lambda q: tuple(q.reshape(-1).tolist())  # noqa: E731
    assert sorted(map(key, banded)) == sorted(map(key, whole))


@pytest.mark.slow
def test_dbnet_in_bands_finds_the_lines_it_finds_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import ImageDraw, ImageFont

    from docrag.detect import get_detector

    img = Image.new("RGB", (560, 660), "white")
    draw, font = ImageDraw.Draw(img), ImageFont.load_default(size=18)
    for n in range(16):
        draw.text((30, 20 + n * 40), f"Line {n + 1}: samples from the northern basin, station {n * 7}", fill="black",
                  font=font)
    page = np.asarray(img)
    detector = get_detector("dbnet")
    whole = engine._detect_in_bands(detector, page, 1.0)
    monkeypatch.setattr(engine, "_TILE_PIXELS", 120_000)  # bands of ~214 rows
    banded = engine._detect_in_bands(detector, page, 1.0)
    assert len(whole) == len(banded) == 16
    for a, b in zip(sorted(whole, key=lambda q: q[:, 1].mean()), sorted(banded, key=lambda q: q[:, 1].mean())):
        assert np.abs(a.mean(axis=0) - b.mean(axis=0)).max() < 4  # the same line, the same place


def test_mupdf_image_cache_is_emptied_when_another_page_is_rendered(fixtures_dir: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import pymupdf

    shrunk: list[int] = []
    monkeypatch.setattr(pymupdf.TOOLS, "store_shrink", lambda percent: shrunk.append(percent))
    with open_document(fixtures_dir / "report_scan.pdf") as doc:
        first = doc.page(1)
        first.render(dpi=72)
        first.render(dpi=72)  # OCR, regions and crops render the same page: its images stay cached
        n = len(shrunk)
        doc.page(2).render(dpi=72)  # a long scan's other pages never come back: the cache is emptied
    assert shrunk[n:] == [100]


def test_crops_leave_memory_as_their_pages_arrive_and_reach_the_index(tmp_path: Path) -> None:
    from docrag.chunk.assemble import assemble, crop_name
    from docrag.ingest import _CropFiles
    from docrag.types import Page, Region

    png = b"\x89PNG-a-crop"
    page = Page(number=2, width=612, height=792,
                regions=[Region(kind="figure", bbox=(72, 100, 300, 300), subtype="photo", png=png)])
    crops = _CropFiles(tmp_path)
    crops.take(page)
    assert page.regions[0].png is None and (tmp_path / crop_name(png)).read_bytes() == png
    built = assemble([page], "d", "doc.pdf", written=crops.names)
    figure = [c for c in built.chunks if c.kind == "figure"]
    assert [c.image for c in figure] == [f"crops/{crop_name(png)}"] and not built.crops
    assert crops.files(built.chunks) == {crop_name(png): tmp_path / crop_name(png)}


def test_box_search_on_a_page_rasterized_below_13_dpi_does_not_fail() -> None:
    from docrag.layout.raster_boxes import find_boxes

    image = np.full((300, 400, 3), 255, np.uint8)
    image[50:200, 50:350] = (200, 220, 250)
    assert find_boxes(image, 0.1) == []  # 7 dpi: OpenCV's threshold window would be 1 pixel


def test_trim_heap_is_harmless_on_any_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    from docrag import workers

    workers.trim_heap()
    workers._malloc_trim.cache_clear()
    monkeypatch.setattr(workers.sys, "platform", "darwin")
    try:
        assert workers._malloc_trim() is None
        workers.trim_heap()
    finally:
        workers._malloc_trim.cache_clear()
