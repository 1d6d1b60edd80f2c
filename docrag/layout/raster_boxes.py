"""Boxed notes and rule-stack tables on a page image (OpenCV, no model).

The raster counterpart of :func:`docrag.layout.geometry.box_candidates`, for scans:

* ``frame``: a ruled rectangle (four sides of thin dark lines, no inner rules) holding glyphs;
* ``tint``: a large flat light-coloured rectangle (a sidebar's tint) holding text rows;
* ``rules``: two long horizontal rules of one extent with one to four text rows between
  them and no vertical rules (admonitions);
* ``stack``: three or more horizontal rules of one extent, each gap holding text, no
  vertical rules between (booktabs tables, key/value tables ruled under every row).

All sizes are in points, turned into pixels with the image's scale.

>>> import numpy as np
>>> find_boxes(np.full((400, 300), 255, np.uint8), 150 / 72)
[]
"""

from __future__ import annotations

import numpy as np

from docrag.layout.regions import MIN_SIDE
from docrag.types import area, inside_share

__all__ = ["find_boxes"]

PxBox = tuple[float, float, float, float]

# Glyphs: connected components 3-20 pt tall and at most 30 pt wide.
GLYPH_MIN_H, GLYPH_MAX_H, GLYPH_MAX_W = 3.0, 20.0, 30.0
# A rule: a run of ink at least this long (points) surviving an opening along it.
RULE_LENGTH = 30.0
# No box covers more than this share of the page (a page border is no note).
MAX_COVER = 0.6
# Rules of a stack are at most this far apart (points).
STACK_GAP = 80.0


def find_boxes(image: np.ndarray, scale: float) -> list[tuple[str, PxBox]]:
    """``(kind, box)`` of the boxed notes and rule-stack tables on an upright page image.

    Args:
        image: RGB or grey uint8 page image, upright and levelled.
        scale: Pixels per point.

    Boxes are in the image's pixels; a box mostly inside a bigger one is left out.
    """
    import cv2

    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    # Ink: clearly darker than the local background (thin blurred rules on grey paper stay visible).
    dark = cv2.adaptiveThreshold(grey, 1, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, int(12 * scale) | 1, 25)
    glyphs = _glyphs(dark, scale)
    length = max(15, int(RULE_LENGTH * scale))
    hmask = cv2.morphologyEx(cv2.dilate(dark, np.ones((3, 1), np.uint8)), cv2.MORPH_OPEN, np.ones((1, length), np.uint8))
    vmask = cv2.morphologyEx(cv2.dilate(dark, np.ones((1, 3), np.uint8)), cv2.MORPH_OPEN, np.ones((length, 1), np.uint8))
    _, _, stats, _ = cv2.connectedComponentsWithStats(hmask, connectivity=8)
    hrules = [(int(x), int(y), int(x + w), int(y + h)) for x, y, w, h, _ in stats[1:] if h <= 4 * scale]
    out = _frames(hmask, vmask, glyphs, scale)
    if image.ndim == 3:
        out += _tints(image, glyphs, scale)
    out += _rule_pairs(hrules, vmask, glyphs, scale, grey.shape[1])
    out += _stacks(hrules, vmask, glyphs, scale)
    keep: list[tuple[str, PxBox]] = []
    for kind, b in sorted(out, key=lambda kb: -area(kb[1])):
        if not any(inside_share(b, o) > 0.9 for _, o in keep):
            keep.append((kind, tuple(float(v) for v in b)))  # type: ignore[misc]
    return keep


def _frames(hmask: np.ndarray, vmask: np.ndarray, glyphs: np.ndarray, scale: float) -> list:
    """Closed rectangles of rules with no inner rules (a ruled grid is a table) and some glyphs inside."""
    import cv2

    h_img, w_img = hmask.shape
    min_px = MIN_SIDE * scale
    band = max(2, int(2 * scale))
    rules = cv2.dilate(hmask | vmask, np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(rules, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    out = []
    for c in contours:
        x, y, w, h = cv2.boundingRect(c)
        if w < min_px or h < min_px / 2 or w * h > MAX_COVER * w_img * h_img:
            continue
        sides = [hmask[y:y + band, x:x + w].any(axis=0).mean(), hmask[y + h - band:y + h, x:x + w].any(axis=0).mean(),
                 vmask[y:y + h, x:x + band].any(axis=1).mean(), vmask[y:y + h, x + w - band:x + w].any(axis=1).mean()]
        if min(sides) < 0.9:
            continue
        x0, y0, x1, y1 = x + band, y + band, x + w - band, y + h - band
        inner_h = hmask[y0 + band:y1 - band, x0:x1].any(axis=1).sum()
        inner_v = vmask[y0:y1, x0 + band:x1 - band].any(axis=0).sum()
        if inner_h > 3 * band or inner_v > 3 * band:
            continue
        if _glyph_count(glyphs, (x0, y0, x1, y1)) >= 5:
            out.append(("frame", (x, y, x + w, y + h)))
    return out


def _tints(image: np.ndarray, glyphs: np.ndarray, scale: float) -> list:
    """Rectangles of one light colour that is not the paper's, holding two or more text rows.

    Colours are quantised (32 levels a channel) and each frequent light,
    coloured one is tried on its own, so a tinted sidebar does not merge with
    page bands or photos of another colour.
    """
    import cv2

    h_img, w_img = image.shape[:2]
    min_px = MIN_SIDE * scale
    q = (cv2.GaussianBlur(image, (0, 0), 1.0 * scale) // 32).astype(np.int32)
    code = q[:, :, 0] * 64 + q[:, :, 1] * 8 + q[:, :, 2]
    counts = np.bincount(code.ravel(), minlength=512)
    paper = int(np.argmax(counts))
    k = max(3, int(4 * scale))
    out = []
    for c in np.argsort(-counts)[:8]:
        if c == paper or counts[c] < 0.02 * w_img * h_img:
            continue
        rgb = ((c // 64) * 32 + 16, ((c // 8) % 8) * 32 + 16, (c % 8) * 32 + 16)
        if min(rgb) < 140 or max(rgb) - min(rgb) < 20:
            continue  # a dark colour, or a grey (uneven paper) rather than a tint
        mask = (code == c).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((2 * k, 2 * k), np.uint8))  # text holes filled
        _, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
        for x, y, w, h, a in stats[1:]:
            if w < 2 * min_px or h < min_px or w * h > MAX_COVER * w_img * h_img or a < 0.5 * w * h:
                continue
            if _text_rows(glyphs, (x, y, x + w, y + h), scale) >= 2:
                out.append(("tint", (x, y, x + w, y + h)))
    return out


def _rule_pairs(hrules: list, vmask: np.ndarray, glyphs: np.ndarray, scale: float, width: int) -> list:
    """Two long rules of one extent, one to four text rows between them, no vertical rules."""
    rules = sorted((r for r in hrules if r[2] - r[0] >= 0.3 * width), key=lambda r: r[1])
    out = []
    for a, c in zip(rules, rules[1:]):
        if abs(a[0] - c[0]) > 4 * scale or abs(a[2] - c[2]) > 4 * scale:
            continue
        if not 4 * scale < c[1] - a[3] <= 60 * scale:
            continue
        span = (min(a[0], c[0]), a[1], max(a[2], c[2]), c[3])
        if vmask[a[3] + 1:c[1], span[0]:span[2]].any():
            continue
        if 1 <= _text_rows(glyphs, span, scale) <= 4:
            out.append(("rules", span))
    return out


def _stacks(hrules: list, vmask: np.ndarray, glyphs: np.ndarray, scale: float) -> list:
    """Runs of three or more rules of one extent with text in every gap and no vertical rules."""
    rules = sorted((r for r in hrules if r[2] - r[0] >= 2 * MIN_SIDE * scale), key=lambda r: r[1])
    tol = 4 * scale
    used: set[int] = set()
    out = []
    for i, r in enumerate(rules):
        if i in used:
            continue
        run = [r]
        for j in range(i + 1, len(rules)):
            q = rules[j]
            if j in used or abs(q[0] - r[0]) > tol or abs(q[2] - r[2]) > tol:
                continue
            if q[1] - run[-1][3] > STACK_GAP * scale:
                break
            run.append(q)
            used.add(j)
        for part in _split_run(run):
            box = (min(q[0] for q in part), part[0][1], max(q[2] for q in part), part[-1][3])
            if vmask[box[1]:box[3], box[0] + int(tol):box[2] - int(tol)].any():
                continue  # a ruled grid: the grid-table finder's
            if all(_text_rows(glyphs, (box[0], a[3], box[2], b[1]), scale) >= 1 for a, b in zip(part, part[1:])):
                out.append(("stack", box))
    return out


def _split_run(run: list) -> list[list]:
    """A run of rules cut where a gap is far wider than its usual row gap (a heading between two tables)."""
    if len(run) < 3:
        return []
    gaps = [b[1] - a[3] for a, b in zip(run, run[1:])]
    med = float(np.median(gaps))
    parts, cur = [], [run[0]]
    for q, g in zip(run[1:], gaps):
        if len(run) >= 5 and g > 2.5 * med:
            parts.append(cur)
            cur = [q]
        else:
            cur.append(q)
    parts.append(cur)
    return [p for p in parts if len(p) >= 3]


def _glyphs(dark: np.ndarray, scale: float) -> np.ndarray:
    """``(x, y, w, h, area)`` rows of the glyph-sized ink components."""
    import cv2

    _, _, stats, _ = cv2.connectedComponentsWithStats(dark, connectivity=8)
    g = stats[1:]
    h, w = g[:, 3] / scale, g[:, 2] / scale
    return g[(h >= GLYPH_MIN_H) & (h <= GLYPH_MAX_H) & (w <= GLYPH_MAX_W)]


def _centres_in(glyphs: np.ndarray, box: tuple) -> np.ndarray:
    """Vertical centres of the glyphs whose centre lies in ``box``."""
    x0, y0, x1, y1 = box
    gx, gy = glyphs[:, 0] + glyphs[:, 2] / 2, glyphs[:, 1] + glyphs[:, 3] / 2
    return gy[(gx > x0) & (gx < x1) & (gy > y0) & (gy < y1)]


def _glyph_count(glyphs: np.ndarray, box: tuple) -> int:
    return int(_centres_in(glyphs, box).size)


def _text_rows(glyphs: np.ndarray, box: tuple, scale: float) -> int:
    """Distinct text rows in ``box``: glyph centres more than 4 pt apart start a new row."""
    ys = np.sort(_centres_in(glyphs, box))
    return int(1 + (np.diff(ys) > 4 * scale).sum()) if ys.size else 0
