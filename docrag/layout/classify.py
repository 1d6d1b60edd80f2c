"""What kind of figure a crop shows: photo, diagram, or a bar, line, scatter or pie chart.

Simple image measures, no model: the share of white, long axis lines, solid bars,
same-sized markers, one large round shape.

>>> import numpy as np
>>> classify_image(np.full((100, 100, 3), 30, np.uint8))
('figure', 'photo')
"""

from __future__ import annotations

import numpy as np

from docrag.types import RegionKind

__all__ = ["classify_image"]


def classify_image(image: np.ndarray) -> tuple[RegionKind, str]:
    """Kind and subtype of a figure crop (RGB or grey uint8) from simple measures.

    White share under 30% -> photo. Long thin horizontal and vertical lines
    (axes) -> chart: solid rectangles -> bar, many same-sized dots -> scatter,
    otherwise line. No axes: one large round shape -> pie, else diagram.
    """
    return _classify(image)



def _classify(image: np.ndarray) -> tuple[RegionKind, str]:
    import cv2

    g = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    if g.size == 0:
        return "figure", "diagram"
    scale = 400.0 / max(g.shape)
    g = cv2.resize(g, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    h, w = g.shape
    if float(np.mean(g > 225)) < 0.3:
        return "figure", "photo"
    ink = (g < 200).astype(np.uint8)
    hl, vl = _long_lines(ink, 0.6), _long_lines(ink.T, 0.6).T
    if hl.any() and vl.any():
        lines_mask = hl | vl
        rest = ink & ~cv2.dilate(lines_mask, np.ones((3, 3), np.uint8))
        n, _, stats, _ = cv2.connectedComponentsWithStats(rest, connectivity=8)
        bars, dots = 0, []
        for _, _, bw, bh, a in stats[1:]:
            extent = a / float(bw * bh)
            if extent >= 0.75 and min(bw, bh) >= 4 and a >= 0.004 * w * h:
                bars += 1
            elif extent >= 0.55 and 0.6 <= bw / bh <= 1.6 and 8 <= a <= 0.002 * w * h:
                dots.append(a)
        if bars >= 2:
            return "chart", "bar"
        med = float(np.median(dots)) if dots else 0.0
        alike = sum(0.6 * med <= a <= 1.6 * med for a in dots)  # markers share one size; glyphs do not
        return "chart", "scatter" if alike >= 25 else "line"
    shape = cv2.morphologyEx((g < 225).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    contours, _ = cv2.findContours(shape, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if contours:
        c = max(contours, key=cv2.contourArea)
        a, p = cv2.contourArea(c), cv2.arcLength(c, True)
        if a >= 0.12 * w * h and p > 0 and 4 * np.pi * a / (p * p) >= 0.7:
            return "chart", "pie"
    return "figure", "diagram"


def _long_lines(ink: np.ndarray, frac: float) -> np.ndarray:
    """Horizontal strokes at least ``frac`` of the width long that are lines or
    edges (white on one side at least), not the inside of a solid shape."""
    import cv2

    length = max(3, int(frac * ink.shape[1]))
    along = np.ones((1, length), np.uint8)
    d = cv2.dilate(ink, np.ones((3, 1), np.uint8))  # a slightly skewed line stays one run
    run = cv2.morphologyEx(d, cv2.MORPH_OPEN, along)
    up, down = np.zeros_like(d), np.zeros_like(d)
    up[4:], down[:-4] = d[:-4], d[4:]
    edge = cv2.morphologyEx(run & ~(up & down), cv2.MORPH_CLOSE, np.ones((1, 9), np.uint8))  # tick marks cross it
    return cv2.morphologyEx(edge, cv2.MORPH_OPEN, along)
