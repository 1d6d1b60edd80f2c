"""Page orientation and skew: turn a scanned page upright before OCR.

Angle convention, used by every function here: **degrees clockwise as seen on
screen** (image y axis pointing down). A page "at 90" shows its text turned a
quarter turn clockwise; ``rotate(image, 90)`` turns an image a quarter turn
clockwise. :func:`estimate_orientation` returns the clockwise turn to *apply*
and :func:`estimate_skew` the clockwise tilt *found* (lines descending to the
right are positive), so a page is straightened by
``rotate(rotate(img, orientation)[0], -skew)`` — which is what :func:`upright`
does, returning one back-map from the upright pixels to the original ones.

Back-maps are 2x3 affine matrices on continuous pixel coordinates (the
top-left corner of the image is ``(0, 0)``, its bottom-right ``(W, H)``), the
convention of :class:`docrag.io.Raster`'s ``to_points``; so
``compose_affine(raster.to_points, back)`` maps upright pixels to PDF points.

>>> img = np.full((40, 100, 3), 255, np.uint8)
>>> turned, back = rotate(img, 90)
>>> turned.shape, back.round(6).tolist()
((100, 40, 3), [[0.0, 1.0, 0.0], [-1.0, 0.0, 40.0]])
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    from docrag.detect import Detector
    from docrag.recognize import Recognized, Recognizer

__all__ = [
    "estimate_skew", "estimate_orientation", "rotate", "upright", "upright_with_lines", "compose_affine", "map_points",
]

MAX_SKEW = 10.0
# Below this many degrees a page is not resampled (nor detected a second time):
# each line's quad is cut out and straightened on its own, so the recognizer reads
# a slightly tilted line as well as a level one, and resampling blurs the glyphs.
# bench/ocr.py, all 25 pages: 0.5 reads as well as 0.15 or better for both engines
# (ocr-dev CER 0.0011 -> 0.0009) and ppocr is 13-27 % faster; at 1.0 two long
# lines tilted 0.6° lose a letter each (fixtures CER 0.0000 -> 0.0003).
MIN_DESKEW = 0.5
# Lines are found on a copy whose longer side is this many pixels, and these
# same lines are what the recognizer reads (the page is detected once). Chosen
# by bench/ocr.py: at 1024 px ppocr's CER is lower than with boxes found at
# 2000 px (ocr-dev 0.0011 vs 0.0047, fixtures 0.0000 vs 0.0006: whole lines
# come out as one box, fewer words split or glued) at a quarter of the cost.
ORIENTATION_SIDE = 1024
# Quads this much wider than tall count as lines when measuring skew.
_WIDE = 3.0
# Orientation reads strips of a line this many line-heights long.
_STRIP = 8.0
# Upside-down text reads at ~0.5-0.75 mean confidence with PP-OCR; above this
# the page is taken as upright without reading it turned.
_SURE_UPRIGHT = 0.9
# Projection-profile skew works on at most this many foreground pixels.
_MAX_POINTS = 150_000


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2x3 affine ``outer ∘ inner`` (apply ``inner`` first).

    >>> shift = np.array([[1.0, 0, 5], [0, 1, 0]]); scale = np.array([[2.0, 0, 0], [0, 2, 0]])
    >>> compose_affine(scale, shift).tolist()
    [[2.0, 0.0, 10.0], [0.0, 2.0, 0.0]]
    """
    a = np.vstack([np.asarray(outer, np.float64), [0.0, 0.0, 1.0]])
    b = np.vstack([np.asarray(inner, np.float64), [0.0, 0.0, 1.0]])
    return (a @ b)[:2]


def map_points(affine: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Apply a 2x3 ``affine`` to an ``(..., 2)`` array of points (float64 out).

    >>> map_points(np.array([[0.0, 1, 0], [-1, 0, 40]]), np.array([[10.0, 5.0]])).tolist()
    [[5.0, 30.0]]
    """
    m = np.asarray(affine, np.float64)
    return np.asarray(xy, np.float64) @ m[:, :2].T + m[:, 2]


def rotate(image: np.ndarray, angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Turn ``image`` clockwise by ``angle_deg``; return it and the back-map.

    Multiples of 90° are exact (``np.rot90``, no resampling). Other angles are
    resampled bicubically onto a canvas grown to hold the whole page, with a
    white border. The back-map takes pixel coordinates of the returned image
    to pixel coordinates of ``image``.

    >>> img = np.zeros((30, 50, 3), np.uint8)
    >>> out, back = rotate(img, 180)
    >>> map_points(back, np.array([[0.0, 0.0]])).tolist()
    [[50.0, 30.0]]
    >>> rotate(img, 5.0)[0].shape
    (35, 53, 3)
    """
    image = np.asarray(image)
    h, w = image.shape[:2]
    a = float(angle_deg) % 360.0
    quarter = round(a / 90.0)
    if abs(a - 90.0 * quarter) < 1e-9:
        a = 90.0 * (quarter % 4)
        out = np.ascontiguousarray(np.rot90(image, -(quarter % 4)))  # rot90 turns counter-clockwise
        nh, nw = out.shape[:2]
    else:
        out = None
        c, s = abs(math.cos(math.radians(a))), abs(math.sin(math.radians(a)))
        nw, nh = int(math.ceil(w * c + h * s - 1e-6)), int(math.ceil(w * s + h * c - 1e-6))
    t = math.radians(a)
    # In y-down coordinates this matrix turns clockwise on screen.
    r = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    if out is not None:
        r = np.round(r)  # exact 0/±1 for quarter turns
    centre, new_centre = np.array([w / 2.0, h / 2.0]), np.array([nw / 2.0, nh / 2.0])
    back = np.hstack([r.T, (centre - r.T @ new_centre)[:, None]])
    if out is None:
        out = _warp(image, back, nw, nh)
    return out, back


def _warp(image: np.ndarray, back: np.ndarray, nw: int, nh: int) -> np.ndarray:
    """Resample ``image`` so that output pixel ``p`` shows input point ``back(p)``."""
    import cv2

    # cv2 indexes pixel centres: continuous u = index + 0.5 on both sides.
    m = back.copy()
    m[:, 2] += back[:, :2] @ [0.5, 0.5] - 0.5
    border = (255,) * (image.shape[2] if image.ndim == 3 else 1)
    return cv2.warpAffine(image, m, (nw, nh), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=border)


def estimate_skew(image: np.ndarray, quads: np.ndarray | None = None, max_skew: float = MAX_SKEW) -> float:
    """Clockwise tilt of the text lines in degrees, within ``±max_skew``.

    Positive means lines descend to the right; undo it with
    ``rotate(image, -skew)``. With detector ``quads`` (of this image) the
    length-weighted median angle of the long edges of wide quads is used;
    otherwise, or with fewer than three wide quads, a projection profile of
    the binarized page is searched. A page without text gives 0.0.

    >>> estimate_skew(np.full((200, 300, 3), 255, np.uint8))
    0.0
    """
    image = np.asarray(image)
    if quads is not None:
        found = _skew_from_quads(np.asarray(quads, np.float64).reshape(-1, 4, 2), max_skew)
        if found is not None:
            # Box edges are good to ~0.05°; the ink profile, searched near
            # them, is finer still where the page has clean text lines.
            refined = _skew_from_profile(image, max_skew, around=found)
            return refined if refined is not None else found
    return _skew_from_profile(image, max_skew) or 0.0


def _skew_from_quads(quads: np.ndarray, max_skew: float) -> float | None:
    """Weighted median angle of the wide quads, or None when fewer than three."""
    # The long edges, whatever the corner labels say.
    n1 = np.linalg.norm(quads[:, 1] - quads[:, 0], axis=1)
    n2 = np.linalg.norm(quads[:, 2] - quads[:, 1], axis=1)
    along = (quads[:, 1] + quads[:, 2]) - (quads[:, 0] + quads[:, 3])
    down = (quads[:, 2] + quads[:, 3]) - (quads[:, 0] + quads[:, 1])
    direction = np.where((n1 >= n2)[:, None], along, down)
    direction[direction[:, 0] < 0] *= -1
    width, height = np.maximum(n1, n2), np.minimum(n1, n2)
    angles = np.degrees(np.arctan2(direction[:, 1], direction[:, 0]))
    keep = (width > _WIDE * np.maximum(height, 1e-6)) & (np.abs(angles) <= max_skew + 2.0)
    if keep.sum() < 3:
        return None
    angles, weights = angles[keep], width[keep]
    order = np.argsort(angles)
    cum = np.cumsum(weights[order])
    median = float(angles[order][np.searchsorted(cum, 0.5 * cum[-1])])
    # Average the lines that agree with the median: short words' rectangles
    # are coarse, long lines are precise, so weight by length again.
    near = np.abs(angles - median) <= 0.5
    value = float(np.average(angles[near], weights=weights[near]))
    return float(np.clip(round(value, 3), -max_skew, max_skew)) + 0.0


def _skew_from_profile(image: np.ndarray, max_skew: float, around: float | None = None) -> float | None:
    """Angle maximising the sharpness of the row profile of the ink.

    With ``around``, only ``around ± 0.5°`` is searched and None is returned
    when the best angle lies on the edge of that window (no clear peak).
    """
    import cv2

    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    scale = min(1.0, 1600.0 / max(gray.shape))
    if scale < 1.0:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    if int(gray.max()) - int(gray.min()) < 40:  # blank or flat page
        return None if around is not None else 0.0
    _, ink = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    ys, xs = np.nonzero(ink)
    if len(xs) < 50 or len(xs) > 0.5 * ink.size:
        return None if around is not None else 0.0
    if len(xs) > _MAX_POINTS:
        pick = np.random.default_rng(0).choice(len(xs), _MAX_POINTS, replace=False)
        xs, ys = xs[pick], ys[pick]
    xs = xs.astype(np.float64) - xs.mean()
    ys = ys.astype(np.float64)

    def score(deg: float) -> float:
        t = math.radians(deg)
        rows = ys * math.cos(t) - xs * math.sin(t)  # undoes a clockwise tilt of `deg`
        hist = np.bincount((rows - rows.min()).astype(np.int64))
        return float(np.dot(hist, hist))

    if around is not None:
        window = np.arange(around - 0.5, around + 0.5 + 1e-9, 0.02)
        k = int(np.argmax([score(d) for d in window]))
        if k in (0, len(window) - 1):
            return None
        return float(np.clip(round(float(window[k]), 3), -max_skew, max_skew)) + 0.0
    coarse = np.arange(-max_skew, max_skew + 1e-9, 0.25)
    scores = np.array([score(d) for d in coarse])
    if scores.max() < 1.05 * np.median(scores):  # no line structure: not text
        return 0.0
    best = float(coarse[scores.argmax()])
    fine = np.arange(best - 0.3, best + 0.3 + 1e-9, 0.02)
    best = float(fine[np.argmax([score(d) for d in fine])])
    return float(np.clip(round(best, 3), -max_skew, max_skew)) + 0.0


def estimate_orientation(image: np.ndarray, detector: Detector, recognizer: Recognizer, sample: int = 12) -> int:
    """The clockwise turn (0, 90, 180 or 270) that makes the page upright.

    Lines are found on a copy scaled to ``ORIENTATION_SIDE`` pixels. When most
    of their length runs vertically the page lies on its side and is turned
    90° and detected again. Upright versus upside down is then settled by
    reading the ``sample`` widest lines both ways (two recognizer calls) and
    keeping the more confident reading. A page without text gives 0.

    >>> from docrag.detect import get_detector
    >>> from docrag.recognize import get_recognizer
    >>> blank = np.full((300, 200, 3), 255, np.uint8)
    >>> estimate_orientation(blank, get_detector("dbnet"), get_recognizer("ppocr"))
    0
    """
    return _orient(_check(image), detector, recognizer, sample)[0]


def _orient(image: np.ndarray, detector: Detector, recognizer: Recognizer, sample: int) -> tuple[int, np.ndarray]:
    """Orientation, and the quads of the page once turned by it (full-size pixels)."""
    turn, quads = _probe(image, detector)
    page = rotate(image, turn)[0] if turn else image
    if len(quads) and _upside_down(page, quads, recognizer, sample):
        turn, quads = (turn + 180) % 360, _half_turn(quads, page.shape)
    return turn, quads


def _probe(image: np.ndarray, detector: Detector) -> tuple[int, np.ndarray]:
    """Quarter turn (0 or 90) that lays the lines flat, and their quads on the turned page (full-size pixels)."""
    import cv2

    h, w = image.shape[:2]
    scale = min(1.0, ORIENTATION_SIDE / max(h, w))
    small = image if scale == 1.0 else cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                  interpolation=cv2.INTER_AREA)
    sx, sy = w / small.shape[1], h / small.shape[0]
    quads = detector.detect(small).astype(np.float64) * [sx, sy]
    turn = 0
    if len(quads) and _mostly_vertical(quads):
        turn = 90
        turned, _ = rotate(small, 90)
        quads = detector.detect(turned).astype(np.float64) * [sy, sx]
    if len(quads) == 0:
        return 0, np.zeros((0, 4, 2), np.float32)
    return turn, quads.astype(np.float32)


def _half_turn(quads: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The same boxes on the page turned by 180 degrees (``shape``: the page's height, width)."""
    from docrag.detect.dbnet import sort_quads

    ph, pw = shape[:2]
    return sort_quads((np.array([pw, ph], np.float32) - np.asarray(quads, np.float32)[:, [2, 3, 0, 1]]))


def _mostly_vertical(quads: np.ndarray) -> bool:
    """True when boxes running up and down hold more of the text's length than level ones."""
    # Measured from the edges themselves, not the corner names: a tall box
    # tilted a few degrees may come with its corners labelled as if it lay flat.
    one, two = quads[:, 1] - quads[:, 0], quads[:, 2] - quads[:, 1]
    n1, n2 = np.linalg.norm(one, axis=1), np.linalg.norm(two, axis=1)
    long_edge = np.where((n1 >= n2)[:, None], one, two)
    length = np.maximum(n1, n2)
    # Single letters and digits are taller than wide even upright: weighing
    # each box by its long side lets lines, not specks, decide.
    vertical = np.abs(long_edge[:, 1]) > np.abs(long_edge[:, 0])
    return float(length[vertical].sum()) > float(length[~vertical].sum())


def _upside_down(
    page: np.ndarray, quads: np.ndarray, recognizer: Recognizer, sample: int, upright_conf: float | None = None
) -> bool:
    """Whether the widest lines read more confidently turned by 180°.

    ``upright_conf``, when the page's lines were read already, stands in for
    reading the strips upright.
    """
    across = np.linalg.norm(quads[:, 1] - quads[:, 0], axis=1)
    down = np.linalg.norm(quads[:, 3] - quads[:, 0], axis=1)
    wide = np.flatnonzero(across >= down)
    if len(wide) == 0:
        return False
    pick = wide[np.argsort(-across[wide], kind="stable")[:sample]]
    # A dozen characters tell up from down as well as a whole line does, at a
    # fraction of the recognizer's time: read only the first part of each line.
    keep = np.minimum(1.0, _STRIP * down[pick] / np.maximum(across[pick], 1e-6))[:, None]
    chosen = quads[pick].copy()
    chosen[:, 1] = chosen[:, 0] + keep * (chosen[:, 1] - chosen[:, 0])
    chosen[:, 2] = chosen[:, 3] + keep * (chosen[:, 2] - chosen[:, 3])
    # Only the region holding the strips is handed over (and turned).
    x0, y0 = np.maximum(0, np.floor(chosen.reshape(-1, 2).min(0)).astype(int) - 2)
    x1, y1 = np.ceil(chosen.reshape(-1, 2).max(0)).astype(int) + 2
    region = page[y0:y1, x0:x1]
    chosen = (chosen - [x0, y0]).astype(np.float32)
    if upright_conf is None:
        upright_conf = _mean_confidence(recognizer.recognize(np.ascontiguousarray(region), chosen))
    if upright_conf >= _SURE_UPRIGHT:
        return False
    rh, rw = region.shape[:2]
    flipped = (np.array([rw, rh], np.float32) - chosen)[:, [2, 3, 0, 1]]
    flipped_conf = _mean_confidence(recognizer.recognize(np.ascontiguousarray(region[::-1, ::-1]), flipped))
    return flipped_conf > upright_conf


def _mean_confidence(found: list) -> float:
    # An empty reading counts as zero: upside-down text often decodes to nothing.
    return float(np.mean([r.confidence if r.text.strip() else 0.0 for r in found])) if found else 0.0


def upright(
    image: np.ndarray,
    detector: Detector,
    recognizer: Recognizer,
    deskew: bool = True,
    max_skew: float = MAX_SKEW,
) -> tuple[np.ndarray, np.ndarray, int, float]:
    """The page turned upright and levelled, for OCR.

    Returns ``(image, back, orientation, skew)``: the upright image, the 2x3
    back-map from its pixels to ``image``'s pixels, the clockwise quarter turn
    applied (see :func:`estimate_orientation`) and the clockwise tilt removed
    (see :func:`estimate_skew`; 0.0 when below ``MIN_DESKEW`` or ``deskew`` is
    false, in which case the page is not resampled).

    >>> from docrag.detect import get_detector
    >>> from docrag.recognize import get_recognizer
    >>> page = np.full((300, 200, 3), 255, np.uint8)
    >>> out, back, turn, skew = upright(page, get_detector("dbnet"), get_recognizer("ppocr"))
    >>> out.shape, turn, skew
    ((300, 200, 3), 0, 0.0)
    """
    return upright_with_lines(image, detector, recognizer, deskew, max_skew)[:4]  # type: ignore[return-value]


def upright_with_lines(
    image: np.ndarray,
    detector: Detector,
    recognizer: Recognizer,
    deskew: bool = True,
    max_skew: float = MAX_SKEW,
    read: Callable[[np.ndarray, np.ndarray], list[Recognized]] | None = None,
) -> tuple[np.ndarray, np.ndarray, int, float, np.ndarray | None, list[Recognized] | None]:
    """:func:`upright`, plus the text lines found (and read) on the way, in the upright image's pixels.

    Returns ``(image, back, orientation, skew, quads, lines)``. The quads are
    the orientation probe's own detections, carried exactly through quarter
    turns, so the recognizer can read them without a second pass of the
    detector: ``(N, 4, 2)`` float32, corners TL, TR, BR, BL, sorted top to
    bottom. They are None when the page was levelled (resampled) and not
    read here: boxes found on the tilted page and turned with it read worse
    than boxes found on the level page (bench/ocr.py: fixtures CER 0.0004 vs
    0.0000), so the level page is detected again (here, with ``read``).

    With ``read`` (``read(image, quads) -> lines``, the page's own
    recognizer), the page's lines are read before the upside-down check and
    that reading settles it when its widest lines are read confidently: no
    strips are read twice. ``lines`` is that reading of the final upright
    page (None without ``read``).

    >>> from docrag.detect import get_detector
    >>> from docrag.recognize import get_recognizer
    >>> page = np.full((300, 200, 3), 255, np.uint8)
    >>> upright_with_lines(page, get_detector("dbnet"), get_recognizer("ppocr"))[4].shape
    (0, 4, 2)
    """
    from docrag.detect.dbnet import sort_quads

    image = _check(image)
    turn, quads = _probe(image, detector)
    page, back = rotate(image, turn) if turn else (image, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    if read is None and len(quads) and _upside_down(page, quads, recognizer, sample=12):
        turn, quads = (turn + 180) % 360, _half_turn(quads, page.shape)
        page, back = rotate(image, turn)
    skew = estimate_skew(page, quads if len(quads) else None, max_skew=max_skew) if deskew else 0.0
    if abs(skew) < MIN_DESKEW:
        skew, quads = 0.0, sort_quads(quads)
    else:
        page, back_level = rotate(page, -skew)
        back = compose_affine(back, back_level)
        quads = detector.detect(page) if read is not None else None
    if read is None or quads is None:
        return page, back, turn, skew, quads, None
    if not len(quads):
        return page, back, turn, skew, quads, read(page, quads)
    # The widest lines first: if they read confidently the page is upright and
    # the rest is read; if not, only they were read in vain.
    first = np.argsort(-np.linalg.norm(quads[:, 1] - quads[:, 0], axis=1), kind="stable")[:12]
    wide = read(page, quads[first])
    known = _mean_confidence(wide)
    if known < _SURE_UPRIGHT and _upside_down(page, quads, recognizer, 12, upright_conf=known):
        page, half = rotate(page, 180)
        back, turn = compose_affine(back, half), (turn + 180) % 360
        quads = _half_turn(quads, page.shape)
        return page, back, turn, skew, quads, read(page, quads)
    rest = np.setdiff1d(np.arange(len(quads)), first)
    lines: list = [None] * len(quads)
    for i, r in zip(first, wide):
        lines[i] = r
    for i, r in zip(rest, read(page, quads[rest]) if len(rest) else []):
        lines[i] = r
    return page, back, turn, skew, quads, lines


def _check(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    return image
