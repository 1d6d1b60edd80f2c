"""Page orientation and deskew: turned and tilted pages read upright, boxes mapped back.

Test pages are rendered with PyMuPDF, turned by the renderer itself
(``Matrix.prerotate``, clockwise on screen like docrag's convention), so the
truth — angle, text and line boxes in page points — comes from the PDF and not
from the code under test. Models load once per session.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from docrag.recognize.orientation import compose_affine, estimate_orientation, estimate_skew, map_points, rotate, upright
from docrag.types import iou

pymupdf = pytest.importorskip("pymupdf")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from textmetrics import cer  # noqa: E402

OCR_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "ocr-dev"
DPI = 200
PROSE = (
    "Retrieval augmented generation systems depend on clean text. When a scanned page arrives "
    "tilted or upside down, the recognizer reads nonsense, and the index fills with noise that no "
    "amount of clever ranking can repair. A careful pipeline therefore looks at the page first, "
    "decides which way is up, measures the small tilt left by the scanner, and straightens the image "
    "before any character is read. The boxes found on the straightened page are then mapped back, "
    "so that every word still points at the right place in the original document. Nothing here is "
    "difficult, but every step must agree on which way angles turn and where the pixels begin."
)


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="session")
def engines():
    from docrag.detect import get_detector
    from docrag.recognize import get_recognizer

    return get_detector("dbnet"), get_recognizer("ppocr")


@pytest.fixture(scope="session")
def page():
    """A letter page of 10.5-pt prose; and its text lines (text, box in points)."""
    doc = pymupdf.open()
    pg = doc.new_page(width=612, height=792)
    pg.insert_textbox(pymupdf.Rect(72, 72, 540, 400), PROSE, fontsize=10.5, fontname="helv")
    pg.insert_textbox(pymupdf.Rect(72, 430, 540, 720), PROSE, fontsize=11, fontname="tiro")
    lines = []
    for block in pg.get_text("dict")["blocks"]:
        for line in block.get("lines", []):
            text = "".join(span["text"] for span in line["spans"]).strip()
            if text:
                lines.append((text, tuple(line["bbox"])))
    yield pg, lines
    doc.close()


def render(pg, angle: float, dpi: int = DPI) -> tuple[np.ndarray, np.ndarray]:
    """The page turned clockwise by ``angle``; and the map from its pixels to page points."""
    mat = pymupdf.Matrix(dpi / 72, dpi / 72).prerotate(angle)
    pix = pg.get_pixmap(matrix=mat)
    img = np.frombuffer(pix.samples, np.uint8).reshape(pix.height, pix.width, pix.n)[:, :, :3].copy()
    irect = (pg.rect * mat).irect
    inv = ~mat
    lin = np.array([[inv.a, inv.c], [inv.b, inv.d]])
    # pixel v -> device point v + irect origin -> page point
    shift = lin @ [irect.x0, irect.y0] + [inv.e, inv.f]
    return img, np.hstack([lin, shift[:, None]])


# ---------------------------------------------------------------- geometry (no models)


@pytest.mark.parametrize("angle", [90, 180, 270, -90, 3.5, -7.25, 95])
def test_rotate_back_map_finds_original_pixels(angle):
    img = np.full((120, 200, 3), 255, np.uint8)
    img[30:36, 150:156] = 0  # a dot centred at (153, 33)
    out, back = rotate(img, angle)
    ys, xs = np.nonzero(out[:, :, 0] < 128)
    centre = map_points(back, np.array([xs.mean() + 0.5, ys.mean() + 0.5]))
    assert np.allclose(centre, [153, 33], atol=1.0)
    if angle % 90 == 0:
        assert sorted(out.shape[:2]) == sorted(img.shape[:2])
        assert (out == 0).sum() == (img == 0).sum()  # exact, no resampling


def test_rotate_uses_a_white_expanded_canvas():
    img = np.zeros((100, 300, 3), np.uint8)
    out, _ = rotate(img, 10)
    assert out.shape[0] > 100 and out.shape[1] > 300
    assert (out[0, 0] == 255).all() and (out[-1, -1] == 255).all()


def test_compose_affine_matches_sequential_mapping():
    img = np.zeros((50, 80, 3), np.uint8)
    a_img, a = rotate(img, 90)
    _, b = rotate(a_img, -4)
    p = np.array([[10.0, 20.0], [33.0, 7.0]])
    assert np.allclose(map_points(compose_affine(a, b), p), map_points(a, map_points(b, p)))


@pytest.mark.parametrize("angle", [0, 2, -2, 5, -5, 9, -9])
def test_skew_from_the_page_profile(page, angle):
    img, _ = render(page[0], angle)
    assert estimate_skew(img) == pytest.approx(angle, abs=0.3)


def test_skew_of_a_blank_page_is_zero():
    assert estimate_skew(np.full((800, 600, 3), 255, np.uint8)) == 0.0
    noise = np.random.default_rng(0).integers(0, 256, (400, 300, 3), dtype=np.uint8)
    assert abs(estimate_skew(noise)) <= 10.0


# ---------------------------------------------------------------- with the real engines


@pytest.mark.slow
@pytest.mark.parametrize("angle", [-9, -5, 2, 9])
def test_skew_from_detector_quads(page, engines, angle):
    img, _ = render(page[0], angle)
    quads = engines[0].detect(img)
    assert estimate_skew(img, quads) == pytest.approx(angle, abs=0.3)


@pytest.mark.slow
@pytest.mark.parametrize("angle", [0, 90, 180, 270, 184, 87])
def test_estimate_orientation(page, engines, angle):
    img, _ = render(page[0], angle)
    want = (360 - round(angle / 90) * 90) % 360
    assert estimate_orientation(img, *engines) == want


@pytest.mark.slow
# Whole-page OCR per case is the suite's most expensive loop: the quarter turns and
# +-5 degrees run end to end in test_orientation_pipeline.py, so here the extremes.
@pytest.mark.parametrize("angle", [0, 270, 9, -9, 275])
def test_upright_reads_and_boxes_land_on_the_text(page, engines, angle):
    from docrag.recognize.engine import ocr_image

    pg, truth = page
    img, to_points = render(pg, angle)
    out, back, turn, skew = upright(img, *engines)
    quarter = round(angle / 90) * 90
    assert turn == (360 - quarter) % 360
    assert skew == pytest.approx(angle - quarter, abs=0.3)
    if abs(angle - quarter) < 0.15:
        assert out.shape[:2] in (img.shape[:2], img.shape[1::-1])  # turned, not resampled
    found = ocr_image(out, *engines)
    assert cer(" ".join(r.text for r in found), " ".join(t for t, _ in truth)) <= 0.02
    to_page = compose_affine(to_points, back)
    for r in found:
        pts = map_points(to_page, r.quad)
        box = (*pts.min(0), *pts.max(0))
        best = max(iou(box, b) for _, b in truth)
        assert best > 0.5, (r.text, box)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, want",
    # As rendered, rot90 shows its text turned a quarter turn counter-clockwise
    # (lines run bottom to top): a clockwise quarter turn puts it upright.
    [("dl_ocr_test", 0), ("dl_ocr_test_rot90", 90), ("dl_ocr_test_rot180", 180), ("dl_ocr_test_rot270", 270)],
)
def test_real_rotated_pages_read_upright(engines, name, want):
    from docrag.io import open_document
    from docrag.recognize.engine import ocr_image

    pdf = OCR_DEV / "pdf" / f"{name}.pdf"
    if not pdf.is_file():
        pytest.skip(f"shared OCR dev data not found at {OCR_DEV}")
    with open_document(pdf) as doc:
        raster = doc.page(1).render(300)
    out, back, turn, _ = upright(raster.image, *engines)
    assert turn == want
    found = ocr_image(out, *engines)
    truth = (OCR_DEV / "gt" / f"{name}.txt").read_text()
    assert cer(" ".join(r.text for r in found), truth) <= 0.02
    # The back-map lands on the raster: every box inside the original image.
    h, w = raster.image.shape[:2]
    for r in found:
        pts = map_points(back, r.quad)
        assert (pts >= -2).all() and (pts[:, 0] <= w + 2).all() and (pts[:, 1] <= h + 2).all()
