"""OCR engines: every registered detector and recognizer on rendered and real pages.

Test images are rendered with PyMuPDF at 300 dpi, so the ground truth (text and
word rectangles) comes from the same page. Models load once per session.
"""

from __future__ import annotations

import collections
import importlib.util
import re
import unicodedata
from pathlib import Path

import cv2
import numpy as np
import pytest

import shutil

from textmetrics import levenshtein

import docrag.detect.dbnet  # noqa: F401  (registers "dbnet")
from docrag.detect import DETECTORS, Detector
from docrag.errors import ModelError
from docrag.recognize import RECOGNIZERS, Recognizer, _load_builtin_engines
from docrag.recognize.engine import ocr_image

pymupdf = pytest.importorskip("pymupdf")

pytestmark = pytest.mark.slow

DPI = 300
SHARED = Path(__file__).resolve().parents[2] / "shared"
OCR_DEV = SHARED / "data" / "ocr-dev"

SHORT = "Invoice number 4711 due 2024-03-15"
LONG = (
    "The quick brown fox jumps over the lazy dog while 42 curious onlookers "
    "watch closely from the riverbank, amazed."
)
TWO = ["Retrieval augmented generation needs clean text.", "Second line: OCR quality matters (a lot)!"]

# name -> (lines, page width in points, font size)
CASES = {
    "short": ([SHORT], 300, 12),
    "long": ([LONG], 620, 10),
    "two_lines": (TWO, 360, 11),
}


# ---------------------------------------------------------------- helpers


def norm(text: str) -> str:
    """The evaluation's normalisation: NFKC, whitespace runs collapsed."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip()


def cer(pred: str, truth: str) -> float:
    pred, truth = norm(pred), norm(truth)
    return levenshtein(pred, truth) / max(1, len(truth))


def word_f1(pred: str, truth: str) -> float:
    """Order-free word F1 over word multisets."""
    p, t = collections.Counter(norm(pred).split()), collections.Counter(norm(truth).split())
    tp = sum((p & t).values())
    if tp == 0:
        return 0.0
    precision, recall = tp / sum(p.values()), tp / sum(t.values())
    return 2 * precision * recall / (precision + recall)


def to_rgb(pix: "pymupdf.Pixmap") -> np.ndarray:
    arr = np.frombuffer(pix.samples, np.uint8).reshape(pix.h, pix.w, pix.n)
    return np.ascontiguousarray(arr[:, :, :3])


def render(lines: list[str], width: float, fontsize: float) -> tuple[np.ndarray, np.ndarray]:
    """RGB image of ``lines`` and the true word boxes ``(N, 4)`` in pixels."""
    doc = pymupdf.open()
    page = doc.new_page(width=width, height=fontsize * (2.0 * len(lines) + 4))
    for k, line in enumerate(lines):
        page.insert_text((20, fontsize * (3 + 2.0 * k)), line, fontsize=fontsize)
    words = np.array([w[:4] for w in page.get_text("words")], np.float64) * DPI / 72
    return to_rgb(page.get_pixmap(dpi=DPI)), words


def rotate(image: np.ndarray, words: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """``image`` turned about its centre, and the axis-aligned hulls of the turned word boxes."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    out = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_CUBIC, borderValue=(255, 255, 255))
    corners = words[:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(-1, 4, 2)
    turned = corners @ m[:, :2].T + m[:, 2]
    return out, np.concatenate([turned.min(1), turned.max(1)], axis=1)


def inside(point: np.ndarray, quad: np.ndarray) -> bool:
    return cv2.pointPolygonTest(quad.astype(np.float32), (float(point[0]), float(point[1])), False) >= 0


def iou(a: tuple[float, ...], b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area if area > 0 else 0.0


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def detectors() -> dict[str, Detector]:
    return {name: DETECTORS.create(name) for name in DETECTORS.names()}


_load_builtin_engines()  # every registered recognizer is parametrized below


def _unavailable(name: str) -> str | None:
    """Why engine ``name`` cannot run here, or None."""
    if name == "florence2":
        return "needs Florence-2 weights; its code path runs on a tiny model in test_florence2.py"
    if name == "tesseract" and shutil.which("tesseract") is None:
        return "tesseract is not installed (apt-get install tesseract-ocr)"
    return None


class _Recognizers(dict):
    def __missing__(self, name: str) -> Recognizer:
        reason = _unavailable(name)
        if reason:
            pytest.skip(reason)
        self[name] = RECOGNIZERS.create(name)
        return self[name]


@pytest.fixture(scope="session")
def recognizers() -> dict[str, Recognizer]:
    return _Recognizers()


@pytest.fixture(scope="session")
def samples() -> dict[str, tuple[np.ndarray, np.ndarray, str]]:
    """name -> (image, word boxes, text) for the rendered cases and their 1.5° turns."""
    out = {}
    for name, (lines, width, size) in CASES.items():
        image, words = render(lines, width, size)
        out[name] = (image, words, "\n".join(lines))
        if name != "short":
            turned, turned_words = rotate(image, words, 1.5)
            out[name + "_rot1.5"] = (turned, turned_words, "\n".join(lines))
    return out


SAMPLE_NAMES = ["short", "long", "long_rot1.5", "two_lines", "two_lines_rot1.5"]


def _page(path: Path) -> np.ndarray:
    with pymupdf.open(path) as doc:
        return to_rgb(doc[0].get_pixmap(dpi=DPI))


# ---------------------------------------------------------------- detectors


def test_engines_registered() -> None:
    assert "dbnet" in DETECTORS.names()
    assert "ppocr" in RECOGNIZERS.names()


@pytest.mark.parametrize("det_name", DETECTORS.names())
def test_detector_contract(det_name: str, detectors: dict, samples: dict) -> None:
    det = detectors[det_name]
    assert isinstance(det, Detector) and det.name == det_name

    blank = det.detect(np.full((200, 300, 3), 255, np.uint8))
    assert blank.shape == (0, 4, 2) and blank.dtype == np.float32

    image, _, _ = samples["two_lines"]
    quads = det.detect(image)
    assert quads.ndim == 3 and quads.shape[1:] == (4, 2) and quads.dtype == np.float32
    assert len(quads) == 2
    # TL, TR, BR, BL and top-to-bottom order.
    assert np.all(quads[:, 1, 0] > quads[:, 0, 0]) and np.all(quads[:, 3, 1] > quads[:, 0, 1])
    assert quads[0, :, 1].mean() < quads[1, :, 1].mean()
    h, w = image.shape[:2]
    assert quads[..., 0].min() >= 0 and quads[..., 0].max() <= w - 1
    assert quads[..., 1].min() >= 0 and quads[..., 1].max() <= h - 1

    with pytest.raises(ValueError):
        det.detect(np.zeros((10, 10), np.uint8))


@pytest.mark.parametrize("det_name", DETECTORS.names())
@pytest.mark.parametrize("case", SAMPLE_NAMES)
def test_quads_lie_on_text(det_name: str, case: str, detectors: dict, samples: dict) -> None:
    image, words, text = samples[case]
    quads = detectors[det_name].detect(image)
    assert len(quads) == len(text.splitlines())
    centres = (words[:, :2] + words[:, 2:]) / 2
    # Every word's centre falls in a quad ...
    assert all(any(inside(c, q) for q in quads) for c in centres)
    # ... and each quad hugs its words: no taller than two text lines, not much wider than them.
    for q in quads:
        mine = words[[inside(c, q) for c in centres]]
        assert len(mine)
        line_h = (mine[:, 3] - mine[:, 1]).max()
        quad_h = np.linalg.norm(q[0] - q[3])
        assert quad_h < 2 * line_h
        quad_w = np.linalg.norm(q[0] - q[1])
        assert quad_w < 1.1 * (mine[:, 2].max() - mine[:, 0].min()) + line_h


# ---------------------------------------------------------------- recognizers


@pytest.mark.parametrize("rec_name", RECOGNIZERS.names())
def test_recognizer_contract(rec_name: str, detectors: dict, recognizers: dict, samples: dict) -> None:
    rec = recognizers[rec_name]
    assert isinstance(rec, Recognizer) and rec.name == rec_name
    image, _, _ = samples["two_lines"]
    assert rec.recognize(image, np.zeros((0, 4, 2), np.float32)) == []

    quads = detectors["dbnet"].detect(image)
    forward = rec.recognize(image, quads)
    backward = rec.recognize(image, quads[::-1])
    assert [r.text for r in forward] == [r.text for r in backward][::-1]
    for r, q in zip(forward, quads):
        assert np.allclose(r.quad, q) and 0.0 <= r.confidence <= 1.0


@pytest.mark.parametrize("det_name", DETECTORS.names())
@pytest.mark.parametrize("rec_name", RECOGNIZERS.names())
@pytest.mark.parametrize("case", SAMPLE_NAMES)
def test_text_read(det_name: str, rec_name: str, case: str, detectors: dict, recognizers: dict, samples: dict) -> None:
    image, _, text = samples[case]
    lines = ocr_image(image, detectors[det_name], recognizers[rec_name])
    got = "\n".join(r.text for r in lines)
    assert cer(got, text) <= 0.02, got
    assert all(r.confidence >= 0.5 for r in lines)


@pytest.mark.parametrize("rec_name", RECOGNIZERS.names())
@pytest.mark.parametrize("case", ["long", "long_rot1.5", "two_lines"])
def test_word_boxes(rec_name: str, case: str, detectors: dict, recognizers: dict, samples: dict) -> None:
    image, words, text = samples[case]
    lines = recognizers[rec_name].recognize(image, detectors["dbnet"].detect(image))
    placed = [w for r in lines for w in r.words]
    if not placed:
        pytest.skip(f"{rec_name} does not place words")
    assert [w for w, _ in placed] == text.split()
    # Engines differ in box height (ink-tight for Tesseract, line height for the
    # truth), so a box is "on its word" when it spans the same x-range (IoU along
    # x) and its vertical centre lies inside the word. Boxes of the turned page are
    # hulls of turned words (loose), so ask less of them there.
    need = 0.4 if "rot" in case else 0.6
    for (_, box), truth in zip(placed, words):
        x_iou = max(0.0, min(box[2], truth[2]) - max(box[0], truth[0])) / (max(box[2], truth[2]) - min(box[0], truth[0]))
        assert x_iou >= need, (box, truth)
        assert truth[1] <= (box[1] + box[3]) / 2 <= truth[3], (box, truth)


def test_tall_crop_single_character(detectors: dict, recognizers: dict) -> None:
    """A lone "1" (a page number) is taller than wide and must not be read sideways."""
    image, _ = render(["1"], 60, 14)
    lines = ocr_image(image, detectors["dbnet"], recognizers["ppocr"])
    assert [r.text for r in lines] == ["1"]


@pytest.mark.parametrize("turns", [1, 3])
def test_vertical_line_reads(turns: int, detectors: dict, recognizers: dict, samples: dict) -> None:
    """A line turned 90° either way (a spine, a table header) reads without a classifier."""
    image, _, text = samples["short"]
    turned = np.ascontiguousarray(np.rot90(image, turns))
    lines = ocr_image(turned, detectors["dbnet"], recognizers["ppocr"])
    assert len(lines) == 1 and cer(lines[0].text, text) <= 0.02, lines
    x0, y0 = lines[0].quad.min(0) - 5
    x1, y1 = lines[0].quad.max(0) + 5
    for _, (a, b, c, d) in lines[0].words:
        assert x0 <= a < c <= x1 and y0 <= b < d <= y1


def test_min_confidence_filters(detectors: dict, recognizers: dict, samples: dict) -> None:
    image, _, _ = samples["short"]
    assert ocr_image(image, detectors["dbnet"], recognizers["ppocr"], min_confidence=1.01) == []
    assert ocr_image(np.full((64, 64, 3), 255, np.uint8), detectors["dbnet"], recognizers["ppocr"]) == []


def test_missing_model_raises_model_error(tmp_path: Path) -> None:
    from docrag.detect.dbnet import DBNetDetector
    from docrag.recognize.ppocr import PPOCRRecognizer

    with pytest.raises(ModelError):
        DBNetDetector(model_path=tmp_path / "nope.onnx").detect(np.full((64, 64, 3), 255, np.uint8))
    quad = np.array([[[0, 0], [10, 0], [10, 5], [0, 5]]], np.float32)
    with pytest.raises(ModelError):
        PPOCRRecognizer(model_path=tmp_path / "nope.onnx").recognize(np.zeros((8, 12, 3), np.uint8), quad)


# ---------------------------------------------------------------- real pages


@pytest.mark.skipif(not OCR_DEV.is_dir(), reason=f"OCR dev set not found at {OCR_DEV}")
@pytest.mark.parametrize("det_name", DETECTORS.names())
@pytest.mark.parametrize("rec_name", RECOGNIZERS.names())
@pytest.mark.parametrize("page", ["sf_multicolumn_p1", "sf_pdflatex_image_p1"])
def test_dev_page_word_f1(det_name: str, rec_name: str, page: str, detectors: dict, recognizers: dict) -> None:
    image = _page(OCR_DEV / "pdf" / f"{page}.pdf")
    truth = (OCR_DEV / "gt" / f"{page}.txt").read_text(encoding="utf-8")
    lines = ocr_image(image, detectors[det_name], recognizers[rec_name])
    f1 = word_f1("\n".join(r.text for r in lines), truth)
    assert f1 >= 0.9, f"{page}: word F1 {f1:.3f}"


@pytest.mark.parametrize("fontsize", [5, 10])
def test_small_text_on_a_full_page(fontsize: float, detectors: dict, recognizers: dict) -> None:
    """Text too small for the 1024-px pass (5 pt on a 300-dpi letter page) is found by a closer look."""
    body = ("The committee reviewed the quarterly figures and found that revenue grew by 4.2 percent, "
            "while operating costs fell slightly. ") * 3
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    page.insert_textbox(pymupdf.Rect(72, 72, 540, 720), body, fontsize=fontsize)
    truth = page.get_text(sort=True)
    image = to_rgb(page.get_pixmap(dpi=DPI))
    lines = ocr_image(image, detectors["dbnet"], recognizers["ppocr"])
    got = " ".join(r.text for r in sorted(lines, key=lambda r: float(r.quad[:, 1].mean())))
    assert cer(got, truth) <= 0.02, got


def test_read_once_matches_the_strip_check(detectors: dict, recognizers: dict, samples: dict) -> None:
    """With ``read``, the page's own reading settles upside down as the strips do, and is returned."""
    from docrag.recognize.orientation import upright_with_lines

    image, _, text = samples["long"]
    h, w = image.shape[:2]
    page = np.full((4 * h, w + 100, 3), 255, np.uint8)  # two copies of the line, one above the other
    page[h:2 * h, 50:50 + w] = image
    page[2 * h:3 * h, 50:50 + w] = image
    flipped = np.ascontiguousarray(page[::-1, ::-1])

    def read(img: np.ndarray, quads: np.ndarray) -> list:
        return recognizers["ppocr"].recognize(img, quads) if len(quads) else []

    for img, turn in ((page, 0), (flipped, 180)):
        _, _, got_turn, _, quads, lines = upright_with_lines(img, detectors["dbnet"], recognizers["ppocr"], read=read)
        assert got_turn == turn and len(lines) == len(quads) == 2
        assert all(cer(r.text, text) <= 0.02 for r in lines), [r.text for r in lines]


# ---------------------------------------------------------------- runtimes


def test_runtime_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from docrag.detect.sessions import session_runtime
    from docrag.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown OCR runtime 'tensorrt'"):
        session_runtime("tensorrt")
    monkeypatch.delenv("DOCRAG_OCR_RUNTIME", raising=False)
    assert session_runtime() == "onnxruntime"  # the default
    monkeypatch.setenv("DOCRAG_OCR_RUNTIME", "openvino")
    if importlib.util.find_spec("openvino") is None:
        with pytest.raises(ConfigError, match="pip install openvino"):
            session_runtime()
    else:
        assert session_runtime() == "openvino"


def test_openvino_reads_as_onnxruntime_does(samples: dict) -> None:
    """The same detector and recognizer on OpenVINO find the same lines and read the same text."""
    pytest.importorskip("openvino", reason="pip install openvino")
    from docrag.detect.dbnet import DBNetDetector
    from docrag.detect.sessions import OpenVinoSession
    from docrag.recognize.ppocr import PPOCRRecognizer

    engines = {}
    for runtime in ("onnxruntime", "openvino"):
        det, rec = DBNetDetector(num_threads=1), PPOCRRecognizer(num_threads=2)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("DOCRAG_OCR_RUNTIME", runtime)
            det._get_session(), rec._load()
        engines[runtime] = (det, rec)
    assert isinstance(engines["openvino"][1]._session, OpenVinoSession)
    assert engines["openvino"][1]._chars == engines["onnxruntime"][1]._chars  # the dictionary from the metadata
    for name in ("long", "two_lines_rot1.5"):
        image, _, text = samples[name]
        read = {rt: ocr_image(image, det, rec) for rt, (det, rec) in engines.items()}
        assert len(read["openvino"]) == len(read["onnxruntime"]) == len(text.splitlines())
        for a, b in zip(read["onnxruntime"], read["openvino"]):
            assert cer(b.text, a.text) <= 0.02, (a.text, b.text)
            assert np.abs(a.quad - b.quad).max() <= 4.0  # pixels at 300 dpi

