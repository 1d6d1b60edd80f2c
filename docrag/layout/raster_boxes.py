"""Boxed notes and rule-stack tables on a page image (OpenCV, no model).

The raster counterpart of :func:`docrag.layout.geometry.box_candidates`, for scans:

* ``frame``: a ruled rectangle (four sides of thin dark lines, no inner rules) holding glyphs;
* ``tint``: a large flat light-coloured rectangle (a sidebar's tint) holding text rows;
* ``rules``: two long horizontal rules of one extent with one to four text rows between
  them and no vertical rules (admonitions);
* ``stack``: three or more horizontal rules of one extent, each gap holding text, no
  vertical rules between (booktabs tables, key/value tables ruled under every row), cut
  at filled heading bands; a table ruled only *between* its rows takes in the rows just
  outside its first and last rules (then two rules do, when keys and values sit flush
  with the rules' ends).

``picture_share`` tells a picture's pixels (local contrast) from paper, tints and text.

All sizes are in points, turned into pixels with the image's scale.

>>> import numpy as np
>>> find_boxes(np.full((400, 300), 255, np.uint8), 150 / 72)
[]
"""

from __future__ import annotations

import numpy as np

from docrag.layout.regions import MIN_SIDE
from docrag.types import area, inside_share

__all__ = ["find_boxes", "picture_share"]

PxBox = tuple[float, float, float, float]

# Glyphs: connected components 3-20 pt tall and at most 30 pt wide.
GLYPH_MIN_H, GLYPH_MAX_H, GLYPH_MAX_W = 3.0, 20.0, 30.0
# A rule: a run of ink at least this long (points) surviving an opening along it.
RULE_LENGTH = 30.0
# No box covers more than this share of the page (a page border is no note).
MAX_COVER = 0.6
# Rules of a stack are at most this far apart (points).
STACK_GAP = 80.0
# A key/value table's keys (values) start (end) within this many points of its rules' left (right) end.
KEY_INDENT = 10.0
# A picture's pixels: grey levels over a 4-pt window spread this much (standard deviation); scan
# noise on paper stays under it (sigma 4-9 at 200-300 dpi, less at the 150 dpi searched).
PICTURE_CONTRAST = 8.0


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
    # The window is odd and at least 3 pixels (OpenCV's minimum: a huge page may be searched below 12 dpi).
    dark = cv2.adaptiveThreshold(grey, 1, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV,
                                 max(3, int(12 * scale) | 1), 25)
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
    # Filled bands (section heading bars): clearly darker than the paper over most of a pixel row.
    solid = (grey < 0.8 * float(np.median(grey))).astype(np.uint8)
    out += _stacks(hrules, vmask, glyphs, solid, scale)
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
    # Colour codes in 16 bits (2 bytes a pixel, not 4x3 + 4: 300 MB less on a 20 MP raster).
    q = cv2.GaussianBlur(image, (0, 0), 1.0 * scale) // 32
    code = q[:, :, 0].astype(np.uint16) * 64
    code += q[:, :, 1].astype(np.uint16) * 8
    code += q[:, :, 2]
    del q
    # Counted a band of rows at a time: bincount copies its input to 64-bit integers.
    counts = sum(np.bincount(code[top:top + 256].ravel(), minlength=512) for top in range(0, h_img, 256))
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


def _stacks(hrules: list, vmask: np.ndarray, glyphs: np.ndarray, solid: np.ndarray, scale: float) -> list:
    """Tables ruled between their rows: runs of rules of one extent with text in every gap, no vertical rules.

    Key/value tables ruled under every row but the last (spec sheets) have a
    row above the first rule and one below the last: the box takes them in
    (:func:`_outer_rows`). A run needs three rules, or two with such a row on
    both sides (three rows ruled apart).
    """
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
        for part in _split_run(run, solid, scale):
            box = (min(q[0] for q in part), part[0][1], max(q[2] for q in part), part[-1][3])
            if vmask[box[1]:box[3], box[0] + int(tol):box[2] - int(tol)].any():
                continue  # a ruled grid: the grid-table finder's
            inner = [_row_spans(glyphs, (box[0], a[3], box[2], b[1]), scale) for a, b in zip(part, part[1:])]
            if not all(inner):
                continue
            top, bottom = _outer_rows(part, inner, glyphs, solid, box, scale)
            grown = (box[0], top, box[2], bottom)
            if len(part) >= 3 or (top < box[1] and bottom > box[3] and _key_column(part, glyphs, vmask, grown, scale)):
                out.append(("stack", grown))
    return out


def _key_column(part: list, glyphs: np.ndarray, vmask: np.ndarray, box: tuple, scale: float) -> bool:
    """Whether two rules with a row above, between and below read as a key/value table.

    Each of the three cells holds text flush with the rules' left end (its key)
    and text flush with their right end (its value); no vertical rule closes
    the ends (two rules joined by sides are a frame, a boxed note). A heading
    between two page-wide rules, with body text above and below, is neither.
    """
    x0, y0, x1, y1 = box
    if vmask[part[0][1]:part[-1][3], max(0, int(x0 - KEY_INDENT * scale)):int(x1 + KEY_INDENT * scale)].any():
        return False
    reach = KEY_INDENT * scale
    for t, b in [(y0, part[0][1]), (part[0][3], part[1][1]), (part[-1][3], y1)]:  # the three cells
        g = _glyphs_in(glyphs, (x0, t, x1, b))
        if not g.size or g[:, 0].min() - x0 > reach or x1 - (g[:, 0] + g[:, 2]).max() > reach:
            return False
    return True


def _split_run(run: list, solid: np.ndarray, scale: float) -> list[list]:
    """A run of rules cut at a filled band (a section heading bar) and where a gap is far wider
    than its usual row gap (a heading between two tables); parts of two or more rules."""
    pieces, cur = [], [run[0]]
    for a, b in zip(run, run[1:]):
        if _band(solid, (min(a[0], b[0]), a[3], max(a[2], b[2]), b[1]), scale):
            pieces.append(cur)
            cur = [b]
        else:
            cur.append(b)
    pieces.append(cur)
    parts = []
    for piece in pieces:
        gaps = [b[1] - a[3] for a, b in zip(piece, piece[1:])]
        med = float(np.median(gaps)) if gaps else 0.0
        cur = [piece[0]]
        for q, g in zip(piece[1:], gaps):
            if len(piece) >= 5 and g > 2.5 * med:
                parts.append(cur)
                cur = [q]
            else:
                cur.append(q)
        parts.append(cur)
    return [p for p in parts if len(p) >= 2]


def _outer_rows(part: list, inner: list[list], glyphs: np.ndarray, solid: np.ndarray, box: tuple,
                scale: float) -> tuple[int, int]:
    """Top and bottom of a rule stack grown by the rows just outside its first and last rules.

    A row counts when it sits as close to the rule as rows inside the stack sit
    to theirs (a caption or body text above or below a booktabs table stands
    further off), and the lines of one cell follow at the cell's own leading,
    no more of them than a cell inside holds (at least three), never across a band.
    """
    pads = [r[0][0] - a[3] for a, r in zip(part, inner)] + [b[1] - r[-1][1] for b, r in zip(part[1:], inner)]
    pad = max(float(np.median(pads)), scale)
    leads = [q[0] - p[1] for rows in inner for p, q in zip(rows, rows[1:])]
    first, following = 1.5 * pad + 2 * scale, 1.5 * max(pad, float(np.median(leads)) if leads else 0.0) + scale
    most = max(3, max(len(rows) for rows in inner))
    x0, y0, x1, y1 = box
    above = _row_spans(glyphs, (x0, max(0, y0 - STACK_GAP * scale), x1, y0), scale)
    top = y0
    for k, (t, b) in enumerate(reversed(above[-most:])):
        if top - b > (first if k == 0 else following) or _band(solid, (x0, t, x1, top), scale):
            break
        top = t
    below = _row_spans(glyphs, (x0, y1, x1, y1 + STACK_GAP * scale), scale)
    bottom = y1
    for k, (t, b) in enumerate(below[:most]):
        if t - bottom > (first if k == 0 else following) or _band(solid, (x0, bottom, x1, b), scale):
            break
        bottom = b
    return int(top), int(bottom)


def _band(solid: np.ndarray, box: tuple, scale: float) -> bool:
    """Whether ``box`` holds a filled band: 3 pt or more of pixel rows mostly solid across it (text never is)."""
    x0, y0, x1, y1 = (int(v) for v in box)
    if y1 <= y0 or x1 <= x0:
        return False
    return int((solid[y0:y1, x0:x1].mean(axis=1) >= 0.6).sum()) >= 3 * scale


def _row_spans(glyphs: np.ndarray, box: tuple, scale: float) -> list[tuple[float, float]]:
    """``(top, bottom)`` of the text rows whose glyph centres lie in ``box``, top to bottom
    (glyph centres more than 4 pt apart start a new row)."""
    g = _glyphs_in(glyphs, box)
    g = g[np.argsort(g[:, 1] + g[:, 3] / 2)]
    rows: list[list[float]] = []
    last = -np.inf
    for x, y, w, h, _ in g:
        c = y + h / 2
        if c - last > 4 * scale:
            rows.append([float(y), float(y + h)])
        else:
            rows[-1] = [min(rows[-1][0], float(y)), max(rows[-1][1], float(y + h))]
        last = c
    return [(t, b) for t, b in rows]


def _glyphs(dark: np.ndarray, scale: float) -> np.ndarray:
    """``(x, y, w, h, area)`` rows of the glyph-sized ink components."""
    import cv2

    _, _, stats, _ = cv2.connectedComponentsWithStats(dark, connectivity=8)
    g = stats[1:]
    h, w = g[:, 3] / scale, g[:, 2] / scale
    return g[(h >= GLYPH_MIN_H) & (h <= GLYPH_MAX_H) & (w <= GLYPH_MAX_W)]


def _glyphs_in(glyphs: np.ndarray, box: tuple) -> np.ndarray:
    """The glyphs (rows of ``glyphs``) whose centre lies in ``box``."""
    x0, y0, x1, y1 = box
    gx, gy = glyphs[:, 0] + glyphs[:, 2] / 2, glyphs[:, 1] + glyphs[:, 3] / 2
    return glyphs[(gx > x0) & (gx < x1) & (gy > y0) & (gy < y1)]


def _glyph_count(glyphs: np.ndarray, box: tuple) -> int:
    return len(_glyphs_in(glyphs, box))


def _text_rows(glyphs: np.ndarray, box: tuple, scale: float) -> int:
    """Distinct text rows in ``box`` (:func:`_row_spans`)."""
    return len(_row_spans(glyphs, box, scale))


def picture_share(image: np.ndarray, box: PxBox, text: list[PxBox], scale: float) -> float:
    """Share of ``box`` (pixels) that looks like a picture: local contrast over 4 pt, outside the ``text`` boxes.

    A photo (or its halftone on a bilevel scan) varies almost everywhere; paper,
    flat tints and the space between labels do not, and text is left out, so a
    text column, a chart or a tinted note scores low.

    >>> import numpy as np
    >>> noise = np.random.default_rng(0).integers(0, 255, (200, 200)).astype(np.uint8)
    >>> paper = np.full((90, 90), 200, np.uint8)
    >>> picture_share(noise, (0, 0, 200, 200), [], 2.0), picture_share(paper, (0, 0, 90, 90), [], 2.0)
    (1.0, 0.0)
    """
    import cv2

    h, w = image.shape[:2]
    x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
    x1, y1 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    if x1 <= x0 or y1 <= y0:
        return 0.0
    grey = image[y0:y1, x0:x1]
    grey = (cv2.cvtColor(grey, cv2.COLOR_RGB2GRAY) if grey.ndim == 3 else grey).astype(np.float32)
    k = int(4 * scale) | 1
    mean, sq = cv2.blur(grey, (k, k)), cv2.blur(grey * grey, (k, k))
    varied = np.sqrt(np.maximum(sq - mean * mean, 0)) > PICTURE_CONTRAST
    pad = int(1.5 * scale)
    for t in text:
        varied[max(0, int(t[1]) - pad - y0):max(0, int(t[3]) + pad - y0),
               max(0, int(t[0]) - pad - x0):max(0, int(t[2]) + pad - x0)] = False
    return float(varied.mean())
