"""PP-OCR text recognition (CTC) with the ONNX model shipped in ``rapidocr``.

Each quad is cut out with a perspective warp, scaled to height 48 and read by the
network in width-sorted batches; a greedy CTC decode gives the text, and the
timesteps of the emitted characters place each word back on the page.

No text-direction classifier is used: rapidocr's flips long English lines by
mistake. Upright lines need none; a tall crop is read upright and turned 90°
both ways, and the most confident reading wins (see ``recognize``).

from docrag.recognize import RECOGNIZERS
>>> import docrag.recognize.ppocr
>>> "ppocr" in RECOGNIZERS.names()
True
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from docrag.config import default_threads
from docrag.detect.dbnet import rapidocr_model_path
from docrag.detect.sessions import make_session
from docrag.errors import ModelError
from docrag.recognize import RECOGNIZERS, Recognized
from docrag.recognize.crop import crop_quad

__all__ = ["PPOCRRecognizer"]

_HEIGHT = 48  # the network's fixed input height
_OUTPUT_BUDGET = 48 * 2**20  # bytes of network output per batch
_MIN_WIDTH = 320  # PaddleOCR's rec_img_shape width: narrower batches read worse
# Crops taller than wide by this much may be vertical text, or just a short word
# such as "l" or "1": both readings are tried and the more confident one kept.
_MAYBE_VERTICAL = 1.5
_SURELY_VERTICAL = 4.0


class PPOCRRecognizer:
    """Reads text lines with PP-OCR's CTC recognizer; see :class:`docrag.recognize.Recognizer`.

    Args:
        batch_size: Crops per network call (crops are batched by aspect ratio).
            1 by default: padding crops to a shared width changes what the
            network reads (its attention sees the padding: a line read
            `62percent` in a batch reads `62 percent` alone) and costs time;
            the calls run concurrently instead (bench/ocr.py: fixtures CER
            0.0003 -> 0.0000, pages/s +10-30 %).
        num_threads: Batches run at once, each on one onnxruntime thread.
        model_path: An ONNX recognition model with a ``character`` metadata
            entry; rapidocr's default when None.

    >>> rec = PPOCRRecognizer()
    >>> rec.recognize(np.zeros((10, 10, 3), np.uint8), np.zeros((0, 4, 2), np.float32))
    []
    """

    name = "ppocr"

    def __init__(
        self,
        batch_size: int = 1,
        num_threads: int | None = None,
        model_path: str | Path | None = None,
    ) -> None:
        self.batch_size = int(batch_size)
        self.num_threads = num_threads or default_threads()
        self.model_path = Path(model_path) if model_path else None
        self._session: Any = None
        self._chars: list[str] = []
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def _load(self) -> Any:
        with self._lock:
            if self._session is None:
                path = self.model_path or rapidocr_model_path("rec")
                if not path.is_file():
                    raise ModelError(f"recognition model {path} not found; check model_path")
                # One thread per run: parallelism comes from batches run concurrently,
                # which holds up on a loaded machine where intra-op threads wait on each other.
                sess = make_session(path, 1, streams=self.num_threads)
                self._pool = ThreadPoolExecutor(self.num_threads, thread_name_prefix="docrag-ppocr")
                meta = sess.get_modelmeta().custom_metadata_map
                if "character" not in meta:
                    raise ModelError(f"{path} has no 'character' dictionary in its metadata")
                # split("\n"), not splitlines(): the dictionary holds characters such as
                # U+2028 that splitlines() would treat as line breaks.
                chars = meta["character"].split("\n")
                # CTC classes: blank, the dictionary, then the space token.
                self._chars = ["", *chars, " "]
                self._session = sess
        return self._session

    def recognize(self, image: np.ndarray, quads: np.ndarray) -> list[Recognized]:
        """One :class:`Recognized` per quad of ``quads``, in the same order."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        quads = np.asarray(quads, np.float32).reshape(-1, 4, 2)
        if len(quads) == 0:
            return []
        bgr = np.ascontiguousarray(image[:, :, ::-1])  # PP-OCR was trained on BGR
        crops, inv = zip(*(crop_quad(bgr, q) for q in quads))
        # Tall crops: read upright and turned both ways (np.rot90 k=1 turns
        # counter-clockwise, k=3 clockwise); keep the most confident reading.
        jobs: list[tuple[int, int]] = []
        for i, c in enumerate(crops):
            ratio = c.shape[0] / c.shape[1]
            turns = (1, 3) if ratio >= _SURELY_VERTICAL else (0, 1, 3) if ratio >= _MAYBE_VERTICAL else (0,)
            jobs += [(i, k) for k in turns]
        reads = self._read([np.rot90(crops[i], k) for i, k in jobs])
        best: dict[int, tuple[tuple[str, float, list], int]] = {}
        for (i, k), r in zip(jobs, reads):
            if i not in best or r[1] > best[i][0][1]:
                best[i] = (r, k)
        out = []
        for i, q in enumerate(quads):
            (text, conf, spans), k = best[i]
            h, w = crops[i].shape[:2]
            words = [(t, _to_image(a, b, w, h, k, inv[i])) for t, a, b in spans]
            out.append(Recognized(text=text, confidence=conf, quad=q.copy(), words=words))
        return out

    def _read(self, crops: list[np.ndarray]) -> list[tuple[str, float, list]]:
        """(text, confidence, word spans as fractions of the crop width) per crop."""
        sess = self._load()
        name = sess.get_inputs()[0].name
        ratios = np.array([c.shape[1] / c.shape[0] for c in crops])
        order = np.argsort(ratios, kind="stable")  # similar widths share a batch: less padding
        res: list[Any] = [None] * len(crops)

        # A runtime that prepares its kernels per input shape (OpenVINO) gets widths in steps of its own:
        # a few more pixels of the padding every batch narrower than _MIN_WIDTH has anyway.
        step = int(getattr(sess, "shape_step", 1))

        def run(idx: np.ndarray) -> None:
            width = max(_MIN_WIDTH, max(int(math.ceil(_HEIGHT * ratios[i])) for i in idx))
            width = -(-width // step) * step
            batch = np.zeros((len(idx), 3, _HEIGHT, width), np.float32)  # zero = mid-grey pad
            widths = []
            for k, i in enumerate(idx):
                rw = min(width, int(math.ceil(_HEIGHT * ratios[i])))
                img = cv2.resize(crops[i], (rw, _HEIGHT), interpolation=cv2.INTER_LINEAR)
                batch[k, :, :, :rw] = (img.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)
                widths.append(rw)
            probs = sess.run(None, {name: batch})[0]
            for k, i in enumerate(idx):
                res[i] = self._decode(probs[k], widths[k] / width)

        batches = self._batches(order, ratios)
        if self._pool is None or len(batches) == 1:
            for idx in batches:
                run(idx)
        else:
            list(self._pool.map(run, batches))  # list(): re-raise a failed batch's error
        return res

    def _batches(self, order: np.ndarray, ratios: np.ndarray) -> list[np.ndarray]:
        """Split crops (sorted by width) into batches under a memory budget.

        The network emits (batch, width/8, 18710) float32 probabilities: 16 long
        lines would be ~300 MB. Batches are capped so that output stays under
        ``_OUTPUT_BUDGET`` bytes as well as at ``batch_size`` crops.
        """
        # At least one batch per thread where there are crops enough: they run concurrently.
        size = max(1, min(self.batch_size, math.ceil(len(order) / self.num_threads)))
        batches, current, widest = [], [], 0
        for i in order.tolist():
            w = max(_MIN_WIDTH, int(math.ceil(_HEIGHT * ratios[i])))
            cost = (len(current) + 1) * max(widest, w) / 8 * max(len(self._chars), 1) * 4
            if current and (len(current) >= size or cost > _OUTPUT_BUDGET):
                batches.append(np.asarray(current))
                current, widest = [], 0
            current.append(i)
            widest = max(widest, w)
        if current:
            batches.append(np.asarray(current))
        return batches

    def _decode(self, probs: np.ndarray, used: float) -> tuple[str, float, list]:
        """Greedy CTC decode of ``(T, C)`` probabilities.

        ``used`` is the share of the batch width covered by this crop; word spans
        come back as fractions of the crop's own width.
        """
        ids = probs.argmax(1)
        keep = np.ones(len(ids), bool)
        keep[1:] = ids[1:] != ids[:-1]
        keep &= ids != 0
        steps = np.flatnonzero(keep)
        if len(steps) == 0:
            return "", 0.0, []
        chars = [self._chars[i] for i in ids[steps]]
        conf = float(probs[steps, ids[steps]].mean())
        # Position of timestep t as a fraction of the crop: the network's output
        # spans the whole padded batch width, of which this crop fills `used`.
        frac = 1.0 / (len(ids) * used)
        spans, word, first, last = [], "", 0, 0
        for ch, t in zip([*chars, " "], [*steps.tolist(), -1]):
            if ch.isspace():
                if word:
                    # A character's peak sits inside its glyph; pad each side by half
                    # the word's mean character pitch to cover the whole glyphs.
                    pad = 0.5 * max(1.0, (last - first) / max(1, len(word) - 1))
                    a = max(0.0, (first - pad + 0.5) * frac)
                    b = min(1.0, (last + pad + 0.5) * frac)
                    spans.append((word, a, b))
                word = ""
                continue
            if not word:
                first = t
            word, last = word + ch, t
        text = " ".join(w for w, _, _ in spans) if spans else "".join(chars).strip()
        return text, conf, spans


def _to_image(a: float, b: float, w: int, h: int, turns: int, inv: np.ndarray) -> tuple[float, float, float, float]:
    """Axis-aligned image box of the strip ``[a, b]`` (fractions of the reading width).

    ``turns`` is the ``np.rot90`` count applied to the ``w`` x ``h`` crop before reading.
    """
    if turns == 1:
        # Turned counter-clockwise (its top edge went left): reading left to
        # right in the turned crop runs top to bottom in the crop.
        pts = [[0, a * h], [w, a * h], [w, b * h], [0, b * h]]
    elif turns == 3:
        # Turned clockwise: reading runs bottom to top in the crop.
        pts = [[0, (1 - a) * h], [w, (1 - a) * h], [w, (1 - b) * h], [0, (1 - b) * h]]
    else:
        pts = [[a * w, 0], [b * w, 0], [b * w, h], [a * w, h]]
    p = cv2.perspectiveTransform(np.array([pts], np.float64), inv)[0]
    x0, y0 = p.min(0)
    x1, y1 = p.max(0)
    return float(x0), float(y0), float(x1), float(y1)


@RECOGNIZERS.register("ppocr")
def _make(**kwargs: Any) -> PPOCRRecognizer:
    return PPOCRRecognizer(**kwargs)
