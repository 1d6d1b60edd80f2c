"""DBNet text-line detection with the PP-OCR ONNX model shipped in ``rapidocr``.

We run the model with onnxruntime ourselves (no ``RapidOCR()`` pipeline): our own
resize/normalize in front, and a compact Differentiable-Binarization post-process
behind (threshold -> contours -> min-area rectangles -> unclip with pyclipper).

>>> from docrag.detect import DETECTORS
>>> import docrag.detect.dbnet
>>> "dbnet" in DETECTORS.names()
True
"""

from __future__ import annotations

import functools
import threading
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from docrag.detect import DETECTORS
from docrag.config import default_threads
from docrag.detect.sessions import make_session
from docrag.errors import ModelError

__all__ = ["DBNetDetector", "rapidocr_model_path", "make_session"]


def rapidocr_model_path(task: str) -> Path:
    """The ONNX file ``rapidocr`` uses by default for ``task`` ("det" or "rec").

    The default model is read from rapidocr's ``config.yaml`` (version and size)
    and ``default_models.yaml`` (file name); if those cannot be read, the single
    ``*_{task}_*.onnx`` in its ``models`` folder is used. Nothing is downloaded.

    Raises:
        ModelError: rapidocr is not installed or ships no such model.

    >>> rapidocr_model_path("det").suffix
    '.onnx'
    """
    try:
        root = Path(str(resources.files("rapidocr")))
    except ModuleNotFoundError:
        raise ModelError("the PP-OCR models come with rapidocr; run `pip install rapidocr`") from None
    models = root / "models"
    name = _default_model_name(root, task)
    if name and (models / name).is_file():
        return models / name
    found = sorted(models.glob(f"*_{task}_*.onnx"))
    if not found:
        raise ModelError(
            f"no PP-OCR {task} model in {models}; reinstall rapidocr "
            "(`pip install --force-reinstall rapidocr`) or pass model_path="
        )
    return found[-1]


@functools.lru_cache(maxsize=None)
def _default_model_name(root: Path, task: str) -> str | None:
    """File name of rapidocr's configured default ``task`` model, or None (read once per process)."""
    try:
        import yaml

        # libyaml's loader where PyYAML has it: the pure-Python one takes ~0.5 s per file here.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        cfg = yaml.load((root / "config.yaml").read_text(), Loader=loader)  # noqa: S506 (a safe loader)
        sect = cfg["Det" if task == "det" else "Rec"]
        table = yaml.load((root / "default_models.yaml").read_text(), Loader=loader)  # noqa: S506
        entries = table["onnxruntime"][sect["ocr_version"]][task]
        suffix = f"_{task}_{sect['model_type']}"
        for key, entry in entries.items():
            if key.endswith(suffix):
                return Path(entry["model_dir"]).name
    except Exception:  # any layout change in rapidocr: fall back to globbing
        return None
    return None


class DBNetDetector:
    """Finds text lines with PP-OCR's DBNet; see :class:`docrag.detect.Detector`.

    Args:
        limit_side_len: The longer image side is scaled down to at most this many
            pixels before the network (never up). At 1024 a 300-dpi letter page
            (2550 x 3300) takes ~0.3 s on two cores and body text (7 pt and up)
            comes out one box per line; with boxes found at 2000 px ppocr read the
            bench pages worse (words split across boxes). Smaller text is found
            by a closer look at 3x this scale where a box reads badly or ink is
            left uncovered (see ``docrag.recognize.engine.ocr_image``).
        thresh: Probability above which a pixel counts as text.
        box_thresh: Minimum mean probability inside a box to keep it.
        unclip_ratio: How far the shrunk text kernel is grown back (DB's D = A*r/L).
            2.0 rather than PaddleOCR's 1.6: the recognizer drops fewer spaces
            when the crop keeps some margin above and below the glyphs.
        num_threads: onnxruntime intra-op threads.
        model_path: An ONNX detection model; rapidocr's default when None.

    >>> det = DBNetDetector(limit_side_len=960)
    >>> det.detect(np.full((100, 200, 3), 255, np.uint8)).shape
    (0, 4, 2)
    """

    name = "dbnet"

    def __init__(
        self,
        limit_side_len: int = 1024,
        thresh: float = 0.3,
        box_thresh: float = 0.5,
        unclip_ratio: float = 2.0,
        num_threads: int | None = None,
        model_path: str | Path | None = None,
    ) -> None:
        self.limit_side_len = int(limit_side_len)
        self.thresh = float(thresh)
        self.box_thresh = float(box_thresh)
        self.unclip_ratio = float(unclip_ratio)
        self.num_threads = num_threads or default_threads()
        self.model_path = Path(model_path) if model_path else None
        self._session: Any = None
        self._lock = threading.Lock()

    def _get_session(self) -> Any:
        with self._lock:
            if self._session is None:
                path = self.model_path or rapidocr_model_path("det")
                if not path.is_file():
                    raise ModelError(f"detection model {path} not found; check model_path")
                self._session = make_session(path, self.num_threads)
        return self._session

    def detect(self, image: np.ndarray, limit_side_len: int | None = None) -> np.ndarray:
        """Quads ``(N, 4, 2)`` float32 around the text lines of an RGB ``image``.

        ``limit_side_len`` overrides the detector's for this call (a second,
        closer look at a region).
        """
        image = _check_image(image)
        h, w = image.shape[:2]
        scale = min(1.0, (limit_side_len or self.limit_side_len) / max(h, w))
        # Round each side to a multiple of 32 (the network's stride); the tiny aspect
        # change this causes is undone exactly when boxes are scaled back below.
        rh, rw = (max(32, int(round(s * scale / 32)) * 32) for s in (h, w))
        # Resize, then flip RGB -> BGR (the model's order): resizing the flipped view costs 2-3x more.
        small = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_AREA)[:, :, ::-1]
        x = (small.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None]
        sess = self._get_session()
        prob = sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(x)})[0][0, 0]
        quads = self._boxes(prob, w / rw, h / rh)
        quads[..., 0] = np.clip(quads[..., 0], 0, w - 1)
        quads[..., 1] = np.clip(quads[..., 1], 0, h - 1)
        return sort_quads(quads)

    def _boxes(self, prob: np.ndarray, sx: float, sy: float) -> np.ndarray:
        """DB post-process: probability map -> quads scaled by (sx, sy)."""
        import pyclipper

        mask = cv2.dilate((prob > self.thresh).astype(np.uint8), np.ones((2, 2), np.uint8))
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        out = []
        for contour in contours[:1000]:
            box, short = _min_box(contour)
            if short < 3 or _box_score(prob, box) < self.box_thresh:
                continue
            # Grow the shrunk kernel back to the full text extent (DB paper, eq. 9).
            area, perim = cv2.contourArea(box), cv2.arcLength(box, True)
            if perim == 0:
                continue
            offset = pyclipper.PyclipperOffset()
            offset.AddPath(box.astype(np.int64).tolist(), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
            grown = offset.Execute(area * self.unclip_ratio / perim)
            if len(grown) != 1:
                continue
            box, short = _min_box(np.array(grown[0], np.float32).reshape(-1, 1, 2))
            if short < 5:
                continue
            out.append(box * np.array([sx, sy], np.float32))
        if not out:
            return np.zeros((0, 4, 2), np.float32)
        return np.stack(out).astype(np.float32)


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    return np.ascontiguousarray(image)


def _min_box(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Minimum-area rectangle of ``points`` as TL,TR,BR,BL and its short side."""
    rect = cv2.minAreaRect(points)
    return order_quad(cv2.boxPoints(rect)), float(min(rect[1]))


def order_quad(pts: np.ndarray) -> np.ndarray:
    """Corners ordered TL, TR, BR, BL (two leftmost are TL/BL, split by y).

    >>> order_quad(np.array([[10, 5], [0, 5], [0, 0], [10, 0]])).tolist()
    [[0.0, 0.0], [10.0, 0.0], [10.0, 5.0], [0.0, 5.0]]
    """
    pts = np.asarray(pts, np.float32)
    xs = pts[np.argsort(pts[:, 0], kind="stable")]
    tl, bl = xs[:2][np.argsort(xs[:2, 1], kind="stable")]
    tr, br = xs[2:][np.argsort(xs[2:, 1], kind="stable")]
    return np.array([tl, tr, br, bl], np.float32)


def _box_score(prob: np.ndarray, box: np.ndarray) -> float:
    """Mean probability inside ``box`` (the "fast" DB score)."""
    h, w = prob.shape
    x0, y0 = np.clip(np.floor(box.min(0)).astype(int), 0, [w - 1, h - 1])
    x1, y1 = np.clip(np.ceil(box.max(0)).astype(int), 0, [w - 1, h - 1])
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    cv2.fillPoly(mask, [(box - [x0, y0]).astype(np.int32)], 1)
    return float(cv2.mean(prob[y0 : y1 + 1, x0 : x1 + 1], mask)[0])


def sort_quads(quads: np.ndarray) -> np.ndarray:
    """Quads in reading order of rows: top to bottom, then left to right in a row.

    Two quads share a row when their vertical centres differ by less than half
    the smaller height, so a skewed page still reads row by row.

    >>> q = np.array([[[50, 0], [60, 0], [60, 10], [50, 10]], [[0, 2], [10, 2], [10, 12], [0, 12]]])
    >>> sort_quads(q.astype(np.float32))[:, 0, 0].tolist()
    [0.0, 50.0]
    """
    if len(quads) < 2:
        return quads
    cy = quads[:, :, 1].mean(1)
    hh = np.maximum(quads[:, 3, 1] - quads[:, 0, 1], 1.0)
    order = np.argsort(cy, kind="stable")
    rows: list[list[int]] = [[int(order[0])]]
    for i in order[1:]:
        first = rows[-1][0]
        if cy[i] - cy[first] < 0.5 * min(hh[i], hh[first]):
            rows[-1].append(int(i))
        else:
            rows.append([int(i)])
    flat = [i for row in rows for i in sorted(row, key=lambda j: quads[j, 0, 0])]
    return quads[flat]


@DETECTORS.register("dbnet")
def _make(**kwargs: Any) -> DBNetDetector:
    return DBNetDetector(**kwargs)
