"""The Tesseract recognizer: page mode, crop mode, and clear errors without the binary.

Pages are rendered with PyMuPDF at 300 dpi so the truth (text, line boxes)
comes from the PDF. Tests that run tesseract skip when the binary is missing.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from docrag.errors import ModelError
from docrag.recognize import RECOGNIZERS, PageReader, Recognizer
from docrag.recognize.tesseract import INSTALL_HINT, TesseractRecognizer, parse_tsv
from docrag.types import iou

pymupdf = pytest.importorskip("pymupdf")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from textmetrics import cer  # noqa: E402

DPI = 300
LINES = [
    "Retrieval augmented generation needs clean text from every page.",
    "The recognizer reads each line and reports how sure it is (97%).",
    "Invoice number 4711 is due on 2024-03-15; please pay on time.",
    "A quick brown fox jumps over the lazy dog near the riverbank.",
]
needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None,
    reason="tesseract is not installed: apt-get install tesseract-ocr (Debian/Ubuntu) or brew install tesseract",
)


@pytest.fixture(scope="session")
def page():
    """A rendered page; its lines as (text, pixel box)."""
    doc = pymupdf.open()
    pg = doc.new_page(width=612, height=400)
    for i, text in enumerate(LINES):
        pg.insert_text((72, 90 + 24 * i), text, fontsize=11 if i % 2 else 10, fontname="helv")
    pix = pg.get_pixmap(dpi=DPI)
    img = np.frombuffer(pix.samples, np.uint8).reshape(pix.height, pix.width, pix.n)[:, :, :3].copy()
    s = DPI / 72
    truth = []
    for block in pg.get_text("dict")["blocks"]:
        for line in block.get("lines", []):
            x0, y0, x1, y1 = line["bbox"]
            truth.append(("".join(sp["text"] for sp in line["spans"]), (x0 * s, y0 * s, x1 * s, y1 * s)))
    doc.close()
    return img, truth


@pytest.fixture(scope="session")
def engine():
    if shutil.which("tesseract") is None:
        pytest.skip("tesseract is not installed: apt-get install tesseract-ocr")
    return RECOGNIZERS.create("tesseract", lang="eng")


def test_parse_tsv_keeps_words_with_their_lines():
    head = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext"
    rows = [
        "4\t1\t1\t1\t1\t0\t10\t20\t100\t12\t-1\t",
        "5\t1\t1\t1\t1\t1\t10\t20\t40\t12\t95\tHello",
        "5\t1\t1\t1\t1\t2\t60\t20\t50\t12\t85\tworld",
        "5\t1\t1\t1\t2\t1\t10\t40\t30\t12\t-1\t ",
    ]
    words = parse_tsv("\n".join([head, *rows]))
    assert [(w.text, w.line, w.box) for w in words] == [
        ("Hello", (1, 1, 1), (10, 20, 50, 32)),
        ("world", (1, 1, 1), (60, 20, 110, 32)),
    ]


def test_missing_binary_raises_model_error_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no tesseract on PATH
    with pytest.raises(ModelError) as err:
        RECOGNIZERS.create("tesseract")
    assert str(err.value) == INSTALL_HINT
    assert "apt-get install tesseract-ocr" in str(err.value) and "brew install tesseract" in str(err.value)


def test_module_imports_without_the_binary(tmp_path):
    import os
    import subprocess

    code = "import docrag.recognize as r; r._load_builtin_engines(); print('tesseract' in r.RECOGNIZERS.names())"
    env = {**os.environ, "PATH": str(tmp_path)}  # no tesseract anywhere on PATH
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


@needs_tesseract
def test_missing_language_pack_names_the_package():
    with pytest.raises(ModelError, match="tesseract-ocr-xyz"):
        TesseractRecognizer(lang="eng+xyz")


@needs_tesseract
def test_is_a_recognizer_and_page_reader(engine):
    assert isinstance(engine, Recognizer) and isinstance(engine, PageReader)
    assert engine.page_mode is True
    assert engine.read_page(np.full((64, 64, 3), 255, np.uint8)) == []
    assert engine.recognize(np.full((64, 64, 3), 255, np.uint8), np.zeros((0, 4, 2), np.float32)) == []


@needs_tesseract
def test_read_page_text_and_boxes(engine, page):
    img, truth = page
    lines = engine.read_page(img)
    assert cer(" ".join(r.text for r in lines), " ".join(t for t, _ in truth)) <= 0.03
    assert len(lines) == len(truth)
    for r in lines:
        assert 0.5 < r.confidence <= 1.0
        box = (*r.quad.min(0), *r.quad.max(0))
        assert max(iou(box, b) for _, b in truth) > 0.5, r.text
        for word, (x0, y0, x1, y1) in r.words:
            assert box[0] - 1 <= x0 < x1 <= box[2] + 1 and box[1] - 1 <= y0 < y1 <= box[3] + 1, word


@needs_tesseract
def test_recognize_crops_in_one_call(engine, page):
    img, truth = page
    pad = 8
    quads = np.array(
        [[[x0 - pad, y0 - pad], [x1 + pad, y0 - pad], [x1 + pad, y1 + pad], [x0 - pad, y1 + pad]] for _, (x0, y0, x1, y1) in truth],
        np.float32,
    )
    found = engine.recognize(img, quads)
    assert len(found) == len(truth)
    for r, (text, (x0, y0, x1, y1)), q in zip(found, truth, quads):
        assert cer(r.text, text) <= 0.03, (r.text, text)
        assert np.array_equal(r.quad, q)
        for _, (wx0, wy0, wx1, wy1) in r.words:  # words back in page pixels, on their line
            assert x0 - pad - 1 <= wx0 < wx1 <= x1 + pad + 1 and y0 - pad - 1 <= wy0 < wy1 <= y1 + pad + 1


@needs_tesseract
def test_recognize_a_tilted_quad(engine, page):
    """A perspective crop: the quad is straightened before reading."""
    import cv2

    img, truth = page
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), -4, 1.0)  # 4° clockwise on screen
    tilted = cv2.warpAffine(img, m, (w, h), borderValue=(255, 255, 255))
    text, (x0, y0, x1, y1) = truth[0]
    corners = np.array([[x0 - 8, y0 - 8], [x1 + 8, y0 - 8], [x1 + 8, y1 + 8], [x0 - 8, y1 + 8]], np.float64)
    quad = (corners @ m[:, :2].T + m[:, 2]).astype(np.float32)
    (r,) = engine.recognize(tilted, quad[None])
    assert cer(r.text, text) <= 0.03, r.text
