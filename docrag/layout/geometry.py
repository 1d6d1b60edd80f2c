"""Region candidates read from a born-digital page's own objects (no model).

* placed raster images (``get_image_info``), clipped to the page; tiny and blank ones dropped;
* visible vector paths (``get_drawings``) and their clusters: charts and diagrams,
  minus clusters that hold text like a framed note or a decorated page;
* boxed notes: tinted or framed rectangles holding text lines, and a pair of equal
  horizontal rules enclosing a few lines (Sphinx and LaTeX admonitions).

The learned layout (:mod:`docrag.layout.learned`) fuses these with the model's
boxes. Distances are in points and generic, not tuned to a page.

>>> draw = [Drawing((100.0, 100.0, 300.0, 150.0), (0.9, 0.9, 1.0), False, ("re",))]
>>> box_candidates(draw, [Line("Note: keep dry", (110, 110, 200, 122))], 612, 792)
[(100.0, 100.0, 300.0, 150.0)]
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from docrag.layout.regions import GAP, MIN_SIDE, clipped_paths, clusters
from docrag.types import BBox, Line, area, inside_share, iou, union

__all__ = ["Drawing", "image_boxes", "drawings", "vector_clusters", "box_candidates", "big_enough", "area"]

# Share of the page a box candidate may cover at most (a page frame is no note).
BOX_MAX_COVER = 0.6
# A path this close to the page's size is a background, not content.
BACKGROUND_COVER = 0.8
# Crops flatter than this (grey-level standard deviation) are blank panels.
BLANK_STD = 6.0


class Drawing(NamedTuple):
    """A visible vector path: its box (points), fill colour (None: unfilled or white), whether
    it is stroked in a visible colour, and its item types (``l`` line, ``re`` rect, ``qu`` quad, ``c`` curve)."""

    box: BBox
    fill: tuple[float, ...] | None
    stroked: bool
    items: tuple[str, ...]


def big_enough(b: BBox) -> bool:
    """At least a figure's size: smaller things are icons, rules and bullets.

    >>> big_enough((0, 0, 40, 40)), big_enough((0, 0, 200, 2))
    (True, False)
    """
    return b[2] - b[0] >= MIN_SIDE and b[3] - b[1] >= MIN_SIDE / 2 and area(b) >= MIN_SIDE ** 2


def image_boxes(page: Any, placed: list[BBox]) -> list[BBox]:
    """Of the raster images ``placed`` on a PyMuPDF page (``PageSource.image_boxes``: clipped to
    the page), those big enough and not blank.

    An image drawn twice at one spot (or inside a bigger copy) counts once.
    """
    out = [b for b in placed if big_enough(b) and not _blank(page, b)]
    keep: list[BBox] = []
    for b in sorted(out, key=lambda b: -area(b)):
        if not any(iou(b, k) > 0.9 for k in keep):
            keep.append(b)
    return keep


def _blank(page: Any, b: BBox) -> bool:
    """A near-uniform crop: a white panel placed as an image, a flat colour band."""
    import pymupdf

    pix = page.get_pixmap(clip=pymupdf.Rect(b), dpi=36, colorspace=pymupdf.csGRAY, alpha=False)
    a = np.frombuffer(pix.samples, np.uint8)
    return a.size == 0 or float(a.std()) < BLANK_STD


def drawings(paths: list[dict], width: float, height: float) -> list[Drawing]:
    """The visible paths among PyMuPDF ``get_drawings(extended=True)`` output, cut to their clip
    (:func:`~docrag.layout.regions.clipped_paths`) and the page.

    White or unfilled paths that are not stroked in a visible colour, and page
    backgrounds, are left out.

    >>> import pymupdf
    >>> page = pymupdf.open().new_page()
    >>> _ = page.draw_rect((72, 72, 200, 150), fill=(0, 0, 1))  # a blue panel; a white one is invisible
    >>> _ = page.draw_rect((72, 200, 200, 250), color=(1, 1, 1), fill=(1, 1, 1))
    >>> [(d.box, d.items) for d in drawings(page.get_drawings(extended=True), 612, 792)]
    [((72.0, 72.0, 200.0, 150.0), ('re',))]
    """
    out = []
    for p, clip in clipped_paths(paths, (0.0, 0.0, width, height)):
        fill, color = p.get("fill"), p.get("color")
        white_fill = fill is None or min(fill) > 0.95
        stroked = "s" in (p.get("type") or "") and color is not None and min(color) < 0.95
        if white_fill and not stroked:
            continue
        r = p["rect"]
        raw = (float(r.x0), float(r.y0), float(r.x1), float(r.y1))
        b = _intersect(clip, raw)
        if b[2] < b[0] or b[3] < b[1] or area(raw) > BACKGROUND_COVER * width * height:
            continue
        out.append(Drawing(b, None if white_fill else tuple(fill), stroked, tuple(it[0] for it in p["items"])))
    return out


def _intersect(a: tuple, b: tuple) -> BBox:
    return (float(max(a[0], b[0])), float(max(a[1], b[1])), float(min(a[2], b[2])), float(min(a[3], b[3])))


def vector_clusters(draw: list[Drawing], lines: list[Line]) -> list[BBox]:
    """Boxes of clusters of paths that may be charts or diagrams.

    Left out: one or two paths around text (a framed or tinted note: a box
    candidate), and clusters holding six or more long lines (prose in a
    decorated frame, not a figure's labels).

    >>> bars = [Drawing((100.0 + 30 * i, 200.0 - 20 * i, 120.0 + 30 * i, 300.0), (0.2, 0.4, 0.8), False, ("re",))
    ...         for i in range(4)]
    >>> vector_clusters(bars, [])
    []
    >>> vector_clusters(bars + [Drawing((95.0, 140.0, 235.0, 301.0), None, True, ("l", "l"))], [])
    [(95.0, 140.0, 235.0, 301.0)]
    """
    elems = [d.box for d in draw]
    out = []
    for members in clusters(elems, GAP):
        b = union([elems[m] for m in members])
        if not big_enough(b):
            continue
        inside = [ln for ln in lines if inside_share(ln.bbox, b) > 0.5]
        text_cover = sum(area(ln.bbox) for ln in inside) / area(b)
        if len(members) <= 2 and text_cover > 0.25:
            continue
        if len(inside) >= 6 and np.mean([len(ln.text) for ln in inside]) >= 25:
            continue
        out.append(b)
    return out


def box_candidates(draw: list[Drawing], lines: list[Line], width: float, height: float) -> list[BBox]:
    """Boxed notes: a tinted or framed rectangle holding text, or two equal rules around a few lines."""
    out = []
    for d in draw:
        b = d.box
        if not big_enough(b) or area(b) > BOX_MAX_COVER * width * height:
            continue
        rectish = d.items in (("re",), ("qu",)) or (len(d.items) in (4, 5) and set(d.items) <= {"l"})
        if not rectish:
            continue
        inside = [ln for ln in lines if inside_share(ln.bbox, b) > 0.8]
        if len(inside) >= 2 or (inside and (d.fill is not None or d.stroked)):
            if sum(area(ln.bbox) for ln in inside) / area(b) > 0.05:  # text, not a photo's frame
                out.append(b)
    out += _rule_pairs(draw, lines, width)
    keep: list[BBox] = []
    for b in sorted(out, key=lambda b: -area(b)):  # a box inside a bigger box is part of it
        if not any(inside_share(b, k) > 0.9 for k in keep):
            keep.append(b)
    return keep


def _rule_pairs(draw: list[Drawing], lines: list[Line], width: float) -> list[BBox]:
    """Two horizontal rules of one extent with one to four text lines between them and nothing else."""
    rules = sorted((d.box for d in draw if d.box[3] - d.box[1] <= 2.0 and d.box[2] - d.box[0] >= 0.3 * width),
                   key=lambda b: b[1])
    vrules = [d.box for d in draw if d.box[2] - d.box[0] <= 2.0 and d.box[3] - d.box[1] >= 8.0]
    out = []
    for a, c in zip(rules, rules[1:]):
        if abs(a[0] - c[0]) > 2 or abs(a[2] - c[2]) > 2:
            continue
        if any(v[0] >= a[0] - 2 and v[2] <= a[2] + 2 and v[1] < c[1] and v[3] > a[3] for v in vrules):
            continue  # a ruled grid's row, not a note
        span = (a[0], a[1], a[2], c[3])
        inside = [ln for ln in lines if inside_share(ln.bbox, span) > 0.8]
        if 4 < c[1] - a[3] <= 60 and 1 <= len(inside) <= 4:
            out.append(span)
    return out
