"""Turned and skewed scans through the whole page pipeline: reading order, CER and word boxes in PDF points."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pymupdf
import pytest
from textmetrics import cer, normalize

from docrag.config import IngestOptions
from docrag.io import open_document
from docrag.pipeline import process_page
from docrag.types import BBox, iou

pytestmark = pytest.mark.slow
DPI = 200


def _truth(fixtures_dir: Path) -> tuple[str, list[tuple[str, BBox]], np.ndarray]:
    doc = pymupdf.open(fixtures_dir / "report.pdf")
    page = doc[0]
    with open_document(fixtures_dir / "report.pdf") as d:
        gt_page = process_page(d.page(1), IngestOptions(ocr="never"))
    words = [(w[4], (w[0], w[1], w[2], w[3])) for w in page.get_text("words")]
    pix = page.get_pixmap(dpi=DPI, colorspace=pymupdf.csRGB)
    img = np.frombuffer(pix.samples, np.uint8).reshape(pix.height, pix.width, 3).copy()
    return " ".join(ln.text for ln in gt_page.lines), words, img


def _scan_pdf(img: np.ndarray, path: Path, rotate_flag: int = 0) -> Path:
    ok, png = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    page.insert_image(page.rect, stream=png.tobytes())
    page.set_rotation(rotate_flag)
    doc.save(path)
    return path


def _skew(img: np.ndarray, deg: float) -> tuple[np.ndarray, np.ndarray]:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
    out = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_CUBIC, borderValue=(255, 255, 255))
    return out, m


def _move(box: BBox, m: np.ndarray) -> BBox:
    s = DPI / 72.0
    pts = np.array([[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]]]) * s
    moved = (np.c_[pts, np.ones(4)] @ m.T) / s
    return (moved[:, 0].min(), moved[:, 1].min(), moved[:, 0].max(), moved[:, 1].max())


@pytest.fixture(scope="module")
def variants(fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    text, words, img = _truth(fixtures_dir)
    tmp = tmp_path_factory.mktemp("variants")
    out = {}
    identity = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    for flag in (0, 90, 180, 270):
        out[f"rotate{flag}"] = (_scan_pdf(img, tmp / f"r{flag}.pdf", flag), identity)
    for deg in (5.0, -5.0):
        skewed, m = _skew(img, deg)
        out[f"skew{deg:+.0f}"] = (_scan_pdf(skewed, tmp / f"s{deg}.pdf"), m)
    return text, words, out


def _read(path: Path):
    with open_document(path) as d:
        return process_page(d.page(1), IngestOptions(ocr="always", dpi=DPI))


@pytest.fixture(scope="module")
def upright_cer(variants) -> float:
    """CER of the upright scan, the bar every turned one is held to (read once for all of them)."""
    text, _, pdfs = variants
    upright = _read(pdfs["rotate0"][0])
    return cer(" ".join(ln.text for ln in upright.lines), text)


@pytest.mark.parametrize("name", ["rotate90", "rotate180", "rotate270", "skew+5", "skew-5"])
def test_turned_page_reads_like_the_upright_one(variants, upright_cer: float, name: str) -> None:
    text, words, pdfs = variants
    base = upright_cer
    path, m = pdfs[name]
    page = _read(path)
    got = cer(" ".join(ln.text for ln in page.lines), text)
    assert got <= base + 0.01, (name, got, base)
    assert (page.orientation, round(page.skew)) != (0, 0) or name == "rotate0"
    ocr_words = [(normalize(w.text), w.bbox) for ln in page.lines for w in ln.words]
    hits = 0
    for t, box in words:
        want = _move(box, m)
        best = max((iou(want, b) for tw, b in ocr_words if tw == normalize(t)), default=0.0)
        hits += best > 0.5
    assert hits / len(words) >= 0.9, (name, hits, len(words))
