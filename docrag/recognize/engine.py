"""Detection then recognition on one page image.

>>> from docrag.detect import get_detector
>>> from docrag.recognize import get_recognizer
>>> blank = np.full((64, 64, 3), 255, np.uint8)
>>> ocr_image(blank, get_detector("dbnet"), get_recognizer("ppocr"))
[]
"""

from __future__ import annotations

import numpy as np

from docrag.detect import Detector
from docrag.recognize import Recognized, Recognizer

__all__ = ["ocr_image", "keep_and_retry"]

# A box that reads badly is detected again at this many times the first
# pass's resolution (up to full size): text too small for the page-wide pass
# (under ~7 pt on a letter page at 1024 px) merges lines into one box there.
_RETRY_ZOOM = 3.0
# ...if its short side holds at least this many pixels of the image (smaller
# is a speck), and the image has at least this much contrast (else blank).
_RETRY_MIN_SIDE = 12
_MIN_CONTRAST = 40
# Uncovered ink narrower than this many pixels at the first pass's scale is
# punctuation, a speck or a rule's end, not a missed run of text.
_MIN_RUN = 12
# Ink within this share of the median line height of a found line (at least a pixel at the
# first pass's scale) is that line's own: the box DBNet draws cuts the tips of some letters.
_EDGE = 0.15
# A closer look at a whole page detects at up to 3,072 px a side, and DBNet holds ~145-240 bytes
# of activations per input pixel: 1.4 GB (bench/memory.py). A region whose detector input would
# exceed half a megapixel (~75-125 MB of activations) is detected in horizontal bands instead,
# so no closer look takes more memory than the first pass (a letter page at 1024 px: 0.8 MP).
# With 1 MP bands the closer look set a page worker's peak (709 MB over 12 scan pages, against
# 607 with half; bench/ocr.py's CER, WER and pages/s the same on ocr-dev and layout-dev scans).
_TILE_PIXELS = 512 * 1024
# Bands overlap by this many detector-input pixels: a line up to this tall lies whole in one band.
_TILE_OVERLAP = 96


def ocr_image(
    image: np.ndarray,
    detector: Detector,
    recognizer: Recognizer,
    min_confidence: float = 0.5,
    quads: np.ndarray | None = None,
    closer: bool = True,
) -> list[Recognized]:
    """Text lines of an ``(H, W, 3)`` uint8 RGB ``image``, in the detector's order.

    Lines that read as empty or below ``min_confidence`` are dropped: they are
    mostly specks, rules and picture fragments the detector took for text.
    ``quads`` already found on this image (``(N, 4, 2)``, pixels; e.g. by the
    orientation step) are read as they are instead of detecting again.

    Detection is multi-scale where it needs to be: a box that reads badly, or
    the whole image when nothing was found on it, is detected again at a
    higher resolution (for a detector with ``limit_side_len``) and its lines
    read; they replace the box when they read well.
    """
    if quads is None:
        quads = detector.detect(image)
    quads = np.asarray(quads, np.float32).reshape(-1, 4, 2)
    lines = recognizer.recognize(image, quads) if len(quads) else []
    return keep_and_retry(image, quads, lines, detector, recognizer, min_confidence, closer)


def keep_and_retry(
    image: np.ndarray,
    quads: np.ndarray,
    lines: list[Recognized],
    detector: Detector,
    recognizer: Recognizer,
    min_confidence: float = 0.5,
    closer: bool = True,
) -> list[Recognized]:
    """The second half of :func:`ocr_image`: keep the ``lines`` read in ``quads``, look closer where they failed
    (unless ``closer`` is False)."""
    side = getattr(detector, "limit_side_len", None)
    closer = closer and side is not None and max(image.shape[:2]) > side  # only where the first pass ran downscaled
    if len(quads) == 0:
        if not closer or _flat(image):
            return []
        whole = (0, 0, image.shape[1], image.shape[0])
        return _good(_read_closer(image, [whole], detector, recognizer, side)[0], min_confidence)
    out: list[Recognized] = []
    retry: list[tuple[int, int, int, int]] = []
    for r in lines:
        if _ok(r, min_confidence):
            out.append(r)
            continue
        if not closer:
            continue
        x0, y0 = np.floor(r.quad.min(0)).astype(int)
        x1, y1 = np.ceil(r.quad.max(0)).astype(int)
        if min(x1 - x0, y1 - y0) >= _RETRY_MIN_SIDE:
            retry.append((x0, y0, x1, y1))
    if not closer:
        return out
    # Every closer look of the page is read in one recognizer call: its crops then
    # fill the recognizer's threads (one box's few lines at a time would not).
    ink = _unread_ink(image, quads, side)
    found = _read_closer(image, retry + ink, detector, recognizer, side)
    for more in found[: len(retry)]:
        out += _good(more, min_confidence)
    for more in found[len(retry):]:
        more = _good(more, min_confidence)
        out += [r for r in more if not any(_overlap(r.quad, o.quad) > 0.5 for o in out)]
    return out


def _unread_ink(image: np.ndarray, quads: np.ndarray, side: int) -> list[tuple[int, int, int, int]]:
    """Boxes (full-size pixels) of text-like ink that no quad covers, judged at the first pass's scale.

    Text too small for the first pass leaves its ink outside every box:
    clusters of it that look like lines of type (wide, short strokes, not a
    solid picture) are worth a closer look.
    """
    import cv2

    h, w = image.shape[:2]
    scale = side / max(h, w)
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    small = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    if int(small.max()) - int(small.min()) < _MIN_CONTRAST:
        return []
    _, ink = cv2.threshold(small, 0, 1, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    if len(quads):
        small_quads = [np.round(q * scale).astype(np.int32) for q in quads]
        covered = np.zeros_like(ink)
        cv2.fillPoly(covered, small_quads, 1)
        # Ink at a found line's edge (an ascender, a descender, the letters the box
        # cut short) belongs to that line, which was read: only ink farther away than
        # a share of a line's height is unread.
        heights = [float(np.ptp(q[:, 1])) for q in small_quads]
        r = max(1, round(_EDGE * float(np.median(heights))))
        covered = cv2.dilate(covered, np.ones((2 * r + 1, 2 * r + 1), np.uint8))
        ink[covered > 0] = 0
    # Letters of one line of small type join into a bar; words into a block.
    grouped = cv2.morphologyEx(ink, cv2.MORPH_CLOSE, np.ones((3, 7), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(grouped, connectivity=8)
    boxes = []
    for x, y, bw, bh, area in stats[1:]:
        dots = int(ink[y:y + bh, x:x + bw].sum())
        # A run of type: at least a few letters wide, and ink not solid (a photo, a bar).
        if bw < _MIN_RUN or dots < _MIN_RUN or dots > 0.6 * bw * bh:
            continue
        boxes.append((int(x / scale), int(y / scale), int(np.ceil((x + bw) / scale)), int(np.ceil((y + bh) / scale))))
    return boxes


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Share of quad ``a``'s bounding box inside quad ``b``'s."""
    ax0, ay0, ax1, ay1 = *a.min(0), *a.max(0)
    bx0, by0, bx1, by1 = *b.min(0), *b.max(0)
    iw, ih = max(0.0, min(ax1, bx1) - max(ax0, bx0)), max(0.0, min(ay1, by1) - max(ay0, by0))
    return float(iw * ih / max((ax1 - ax0) * (ay1 - ay0), 1e-6))


def _ok(r: Recognized, min_confidence: float) -> bool:
    return bool(r.text.strip()) and r.confidence >= min_confidence


def _good(lines: list[Recognized], min_confidence: float) -> list[Recognized]:
    return [r for r in lines if _ok(r, min_confidence)]


def _flat(image: np.ndarray) -> bool:
    """True for an image without contrast (a blank page): nothing to find closer either."""
    step = max(1, max(image.shape[:2]) // 512)
    g = image[::step, ::step].min(axis=2)
    return int(g.max()) - int(g.min()) < _MIN_CONTRAST


def _read_closer(
    image: np.ndarray, boxes: list[tuple[int, int, int, int]], detector: Detector, recognizer: Recognizer,
    side: int,
) -> list[list[Recognized]]:
    """The lines of each of ``boxes`` (pixels), detected again at ``_RETRY_ZOOM`` times the first pass's scale.

    Each box is detected on its own; the quads found in all of them are read in one call.
    """
    h, w = image.shape[:2]
    first_scale = side / max(h, w)
    found: list[np.ndarray] = []
    for x0, y0, x1, y1 in boxes:
        pad = max(4, (y1 - y0) // 4)
        x0, y0, x1, y1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
        region = np.ascontiguousarray(image[y0:y1, x0:x1])
        quads = _detect_in_bands(detector, region, min(1.0, _RETRY_ZOOM * first_scale))
        found.append(quads + np.array([x0, y0], np.float32))
    every = np.concatenate(found) if found else np.zeros((0, 4, 2), np.float32)
    read = iter(recognizer.recognize(image, every) if len(every) else [])
    return [[next(read) for _ in range(len(quads))] for quads in found]


def _detect_in_bands(detector: Detector, region: np.ndarray, scale: float) -> np.ndarray:
    """Quads (pixels of ``region``) detected at ``scale`` times its size, in horizontal bands when the
    detector's input would exceed ``_TILE_PIXELS``.

    Every band is detected at the same ``scale``, and bands overlap by ``_TILE_OVERLAP``
    input pixels, so a line that a band edge cuts lies whole in the next band. A band
    keeps the quads its edges do not cut (or cut but too tall to be whole in any band),
    less those found again in the overlap with the band above.
    """
    h, w = region.shape[:2]

    def detect(part: np.ndarray) -> np.ndarray:
        limit = max(32, int(scale * max(part.shape[:2])))
        return np.asarray(detector.detect(part, limit_side_len=limit),  # type: ignore[call-arg]
                          np.float32).reshape(-1, 4, 2)

    if h * w * scale * scale <= _TILE_PIXELS:
        return detect(region)
    overlap = int(np.ceil(_TILE_OVERLAP / scale))
    band = max(2 * overlap + 1, int(_TILE_PIXELS / (w * scale * scale)))
    edge = 2  # a quad this close to an inner band edge was cut by it (the detector clips to the image)
    out: list[np.ndarray] = []
    above = np.zeros((0, 4, 2), np.float32)
    top = 0
    while True:
        bottom = min(h, top + band)
        quads = detect(np.ascontiguousarray(region[top:bottom])) + np.array([0, top], np.float32)
        y0, y1 = quads[:, :, 1].min(axis=1), quads[:, :, 1].max(axis=1)
        whole = ((top == 0) | (y0 > top + edge)) & ((bottom == h) | (y1 < bottom - 1 - edge))
        quads = quads[whole | (y1 - y0 >= overlap - 2 * edge)]
        shared = [p for p in above if p[:, 1].max() > top]  # the band above's quads in the overlap
        quads = quads[[not any(_overlap(q, p) > 0.5 for p in shared) for q in quads]] if shared else quads
        out.append(quads)
        if bottom >= h:
            break
        above, top = quads, bottom - overlap
    return np.concatenate(out)
