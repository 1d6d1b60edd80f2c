"""Figures, charts, tables and their captions on a page.

Born-digital pages are read from their content: embedded raster images,
clusters of vector drawings, ruled grids and aligned number columns among the
text lines. Scanned pages are read from the page image: large inked regions
that are not OCR text, and ruled grids found by morphology. Captions are linked
to the nearest region above or below them (:mod:`docrag.layout.captions`);
regions without one are kept. Borderless tables and Markdown rows come from
:mod:`docrag.layout.tables`, figure kinds from :mod:`docrag.layout.classify`.

>>> from docrag.types import Line
>>> lines_inside(Region("chart", (0, 0, 100, 100)), [Line("tick", (10, 10, 30, 20))])
[0]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from docrag.layout.captions import LABEL_MARGIN, absorb_labels, find_captions, link_captions, near
from docrag.layout.classify import classify_image
from docrag.layout.tables import borderless_tables
from docrag.types import BBox, Line, Region, Word, area, inside_share, union

if TYPE_CHECKING:
    from docrag.io.document import PageSource, Raster

__all__ = ["find_regions", "finish_regions", "lines_inside", "born_digital", "ruled_segments", "clipped_paths",
           "grid_tables", "clusters", "at_most", "upright_box", "page_to_frame", "framed_lines", "corners"]

# Distances in points.
GAP = 8.0             # vector paths closer than this belong to one figure
MIN_SIDE = 36.0       # smaller clusters are decorations or icons
# Scanned pages are searched for rules and pictures at no finer than this: the
# morphology costs ~0.2 s at 300 dpi and a quarter of it here, and a 0.5-pt
# rule is still a pixel wide.
SCAN_DPI = 150.0
# A raster turned less than this (radians, ~0.06 degrees: 0.5 pt across a page) against the page is level.
LEVEL = 1e-3


def find_regions(src: PageSource, lines: list[Line], raster: Raster | None = None) -> list[Region]:
    """Figures, charts and tables on one page, captions linked, top to bottom.

    Uses the page's content when it has a text layer (``lines`` from it), and
    the page image otherwise (``lines`` from OCR, in page points; ``raster``
    is rendered at 200 dpi when not given).

    >>> import os, pymupdf, tempfile; from docrag.io import open_document
    >>> d = pymupdf.open(); p = d.new_page(); _ = p.draw_rect((100, 100, 300, 250), fill=(0, 0, 1))
    >>> path = os.path.join(tempfile.mkdtemp(), "figure.pdf"); d.save(path)
    >>> with open_document(path) as doc:
    ...     [(r.kind, r.bbox) for r in find_regions(doc.page(1), [])]
    [('figure', (100.0, 100.0, 300.0, 250.0))]
    """
    captions = find_captions(lines)
    taken = {i for cap in captions for i in cap[0]}
    if born_digital(src, lines):
        regions = _digital_regions(src.pdf_page, lines, taken)
    else:
        raster = raster if raster is not None else src.render(200)
        regions = _scan_regions(raster, lines, taken)
    return finish_regions(regions, lines, raster)


def finish_regions(regions: list[Region], lines: list[Line], raster: Raster | None = None) -> list[Region]:
    """``regions`` plus borderless tables among the lines left free, captions linked, top to bottom.

    The last step of every region finder (heuristic or learned). ``raster``: the image the
    lines were read from, when that was turned or tilted against the page (a scan read
    upright and levelled); the table rows are then found where the lines were read, since
    a row tilted 0.7 degrees across a statement drops 6 pt from its label to its last figure.

    >>> from docrag.types import Line
    >>> [r.caption for r in finish_regions([Region("figure", (0, 0, 100, 80))], [Line("Figure 1: Map", (0, 85, 90, 95))])]
    ['Figure 1: Map']
    """
    # a caption's continuation never runs into the region it names (OCR boxes are loose)
    captions = find_captions(lines, exclude=[r.bbox for r in regions])
    taken = {i for cap in captions for i in cap[0]}
    free = [i for i in range(len(lines)) if i not in taken and not any(
        inside_share(lines[i].bbox, r.bbox) > 0.5 for r in regions)]
    regions = regions + _borderless([lines[i] for i in free], raster)
    link_captions(regions, captions, lines)
    return sorted(regions, key=lambda r: (r.bbox[1], r.bbox[0]))


def born_digital(src: PageSource, lines: list[Line]) -> bool:
    """Read the page's content (text layer present, or no page-sized scan) rather than its image."""
    if src.pdf_page is None:
        return False
    if any(ln.source == "text" for ln in lines):
        return True
    page_area = src.width * src.height
    return not any(area(b) > 0.8 * page_area for b in src.image_boxes())


# ---------------------------------------------------------------- geometry


def lines_inside(region: Region, lines: list[Line], min_overlap: float = 0.5) -> list[int]:
    """Indices of the lines that lie in the region (axis labels, legends, cells).

    >>> from docrag.types import Line
    >>> lines_inside(Region("chart", (0, 0, 100, 100)), [Line("a", (10, 10, 30, 20)), Line("b", (0, 120, 9, 130))])
    [0]
    """
    return [i for i, ln in enumerate(lines) if inside_share(ln.bbox, region.bbox) >= min_overlap]


# ---------------------------------------------------------------- born-digital pages


def _digital_regions(page: object, lines: list[Line], skip: set[int]) -> list[Region]:
    """Ruled tables, then images and vector-drawing clusters, on a PDF page."""
    import pymupdf

    hsegs, vsegs, paths = ruled_segments(page, page.get_drawings(extended=True))  # type: ignore[attr-defined]
    regions = grid_tables(hsegs, vsegs, lines, tol=2.0)
    images = [tuple(info["bbox"]) for info in page.get_image_info()]  # type: ignore[attr-defined]
    elems = [p for p in paths if not any(inside_share(_fat(p), _fat(t.bbox, 2.0)) > 0.8 for t in regions)]
    kinds = [0] * len(elems) + [1] * len(images)
    text_ids = {i for i in range(len(lines)) if any(inside_share(lines[i].bbox, t.bbox) > 0.5 for t in regions)}
    for members in clusters(elems + images, GAP):
        boxes = [(elems + images)[m] for m in members]
        box = union(boxes)
        has_image = any(kinds[m] for m in members)
        if box[2] - box[0] < MIN_SIDE or box[3] - box[1] < MIN_SIDE / 2 or (box[2] - box[0]) * (box[3] - box[1]) < MIN_SIDE ** 2:
            continue
        inside = [ln for ln in lines if inside_share(ln.bbox, box) > 0.5]
        text_cover = sum(area(ln.bbox) for ln in inside) / area(box)
        prose = len(inside) >= 6 and sum(len(ln.text) for ln in inside) / len(inside) >= 25
        if (not has_image and len(members) <= 2 and text_cover > 0.25) or (has_image and (text_cover > 0.3 or prose)):
            continue  # a shaded or framed text box, or a scanned text insert (lines of prose), not a figure
        if not has_image:
            box, taken = absorb_labels(box, lines, skip | text_ids)
        regions.append(Region("figure", box, score=0.8, source="image" if has_image else "vector"))
    regions = _merge(regions)
    for reg in regions:
        if reg.kind != "table":
            pix = page.get_pixmap(clip=pymupdf.Rect(reg.bbox), dpi=100, colorspace=pymupdf.csRGB, alpha=False)  # type: ignore[attr-defined]
            img = np.frombuffer(pix.samples, np.uint8).reshape(pix.h, pix.w, pix.n)[:, :, :3]
            reg.kind, reg.subtype = classify_image(img)
    return regions


def ruled_segments(page: object, drawings: list[dict]) -> tuple[list, list, list[BBox]]:
    """Horizontal and vertical rules, and the boxes of the visible paths, from ``get_drawings(extended=True)``.

    Rules are ``(x0, x1, y)`` and ``(y0, y1, x)`` in points; every box is cut to
    the clip path it is drawn in.
    """
    area = page.rect.width * page.rect.height  # type: ignore[attr-defined]
    hsegs: list = []
    vsegs: list = []
    paths: list[BBox] = []
    for path, clip in clipped_paths(drawings, (0.0, 0.0, page.rect.width, page.rect.height)):  # type: ignore[attr-defined]
        r = path["rect"]
        fill, color = path.get("fill"), path.get("color")
        inked = (fill is not None and min(fill) < 0.95) or (color is not None and "s" in (path.get("type") or ""))
        if not inked or r.width * r.height > 0.8 * area:
            continue  # invisible (white) fills and page backgrounds
        for item in path["items"]:
            if item[0] == "l":
                (a, b) = item[1], item[2]
                _add_segment(hsegs, vsegs, (min(a.x, b.x), min(a.y, b.y), max(a.x, b.x), max(a.y, b.y)))
            elif item[0] == "re":
                _add_segment(hsegs, vsegs, _intersect(clip, tuple(item[1])))
        box = _intersect(clip, (r.x0, r.y0, r.x1, r.y1))
        if box[0] <= box[2] and box[1] <= box[3]:
            paths.append(box)
    return hsegs, vsegs, paths


def clipped_paths(drawings: list[dict], page_box: BBox) -> Iterator[tuple[dict, BBox]]:
    """Each drawn path of ``get_drawings(extended=True)`` with the box of the clip it is drawn in.

    Clips matter: matplotlib draws bars from the page edge and clips them to the axes.

    >>> import pymupdf
    >>> page = pymupdf.open().new_page()
    >>> _ = page.draw_rect((72, 72, 200, 150), fill=(0, 0, 1))
    >>> [(p["rect"].x0, clip) for p, clip in clipped_paths(page.get_drawings(extended=True), (0, 0, 612, 792))]
    [(72.0, (0, 0, 612, 792))]
    """
    clips: list[tuple[int, BBox]] = []  # (nesting level, clip box)
    for path in drawings:
        level = path.get("level", 0)
        while clips and clips[-1][0] >= level:
            clips.pop()
        clip = clips[-1][1] if clips else page_box
        if path.get("type") == "clip":
            clips.append((level, _intersect(clip, tuple(path["scissor"]))))
            continue
        if path.get("type") == "group" or "items" not in path:
            continue
        yield path, clip


def _add_segment(hsegs: list, vsegs: list, box: tuple) -> None:
    x0, y0, x1, y1 = box
    if y1 - y0 <= 2.0 and x1 - x0 >= 8.0:
        hsegs.append((x0, x1, (y0 + y1) / 2))
    elif x1 - x0 <= 2.0 and y1 - y0 >= 8.0:
        vsegs.append((y0, y1, (x0 + x1) / 2))


def _intersect(a: tuple, b: tuple) -> BBox:
    return (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))


def _fat(b: BBox, by: float = 0.5) -> BBox:
    """A box grown by ``by`` on each side, so a hairline has an area."""
    return (b[0] - by, b[1] - by, b[2] + by, b[3] + by)




def clusters(boxes: list, gap: float) -> list[list[int]]:
    """Groups of boxes that come within ``gap`` of each other (transitively)."""
    if not boxes:
        return []
    a = np.asarray(boxes, dtype=np.float64)
    near = ((a[:, None, 0] - gap <= a[None, :, 2]) & (a[None, :, 0] <= a[:, None, 2] + gap)
            & (a[:, None, 1] - gap <= a[None, :, 3]) & (a[None, :, 1] <= a[:, None, 3] + gap))
    parent = list(range(len(boxes)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(near, 1))):
        parent[find(int(i))] = find(int(j))
    groups: dict[int, list[int]] = {}
    for i in range(len(boxes)):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def _merge(regions: list[Region]) -> list[Region]:
    """Merge figures that overlap (a raster and the vectors drawn over it)."""
    out: list[Region] = []
    for reg in sorted(regions, key=lambda r: -area(r.bbox)):
        host = next((o for o in out if reg.kind != "table" and o.kind != "table"
                     and inside_share(reg.bbox, o.bbox) > 0.3), None)
        if host is None:
            out.append(reg)
        else:
            host.bbox = union([host.bbox, reg.bbox])
    return out


def grid_tables(hsegs: list, vsegs: list, lines: list[Line], tol: float) -> list[Region]:
    """Ruled tables: sets of crossing rules with text in most of the cells.

    ``hsegs`` are ``(x0, x1, y)``, ``vsegs`` ``(y0, y1, x)``, in points.
    """
    boxes = [(x0, y - tol, x1, y + tol) for x0, x1, y in hsegs] + [(x - tol, y0, x + tol, y1) for y0, y1, x in vsegs]
    out = []
    for members in clusters(boxes, 0.0):
        hs = [hsegs[m] for m in members if m < len(hsegs)]
        vs = [vsegs[m - len(hsegs)] for m in members if m >= len(hsegs)]
        ys, xs = _distinct([s[2] for s in hs], 2 * tol), _distinct([s[2] for s in vs], 2 * tol)
        if len(ys) < 3 or len(xs) < 2 or (len(xs) < 3 and len(ys) < 4):
            continue
        box = (min([s[0] for s in hs] + xs), min([s[0] for s in vs] + ys),
               max([s[1] for s in hs] + xs), max([s[1] for s in vs] + ys))
        centres = [((ln.bbox[0] + ln.bbox[2]) / 2, (ln.bbox[1] + ln.bbox[3]) / 2) for ln in lines
                   if inside_share(ln.bbox, box) > 0.5]
        bands = list(zip(ys, ys[1:]))
        filled = sum(any(y0 < cy < y1 for _, cy in centres) for y0, y1 in bands)
        cells = sum(any(y0 < cy < y1 and x0 < cx < x1 for cx, cy in centres)
                    for y0, y1 in bands for x0, x1 in zip(xs, xs[1:]))
        if filled < 0.6 * len(bands) or cells < 0.4 * len(bands) * max(1, len(xs) - 1):
            continue  # chart gridlines: rules without text between them
        out.append(Region("table", box, "ruled", score=0.9, source="grid", columns=xs if len(xs) >= 3 else []))
    return out


def _distinct(values: list[float], tol: float) -> list[float]:
    out: list[float] = []
    for v in sorted(values):
        if not out or v - out[-1] > tol:
            out.append(v)
    return out


# ---------------------------------------------------------------- scanned pages


def _scan_regions(raster: Raster, lines: list[Line], skip: set[int]) -> list[Region]:
    """Ruled grids and large non-text ink regions on a page image."""
    import cv2

    raster = at_most(raster, SCAN_DPI)
    img = raster.image
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    m = np.vstack([raster.to_points, [0.0, 0.0, 1.0]])
    to_px = np.linalg.inv(m)[:2]
    s = float(np.hypot(to_px[0, 0], to_px[1, 0]))  # pixels per point

    def px(box: BBox) -> tuple[int, int, int, int]:
        c = np.array([[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]]]) @ to_px[:, :2].T + to_px[:, 2]
        lo, hi = c.min(axis=0), c.max(axis=0)
        return int(max(lo[0], 0)), int(max(lo[1], 0)), int(min(hi[0], grey.shape[1])), int(min(hi[1], grey.shape[0]))

    def pt(x0: float, y0: float, x1: float, y1: float) -> BBox:
        return raster.box_points(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64))

    dark = (grey < 160).astype(np.uint8)
    hsegs, vsegs = _morph_rules(dark, s, pt)
    regions = grid_tables(hsegs, vsegs, lines, tol=4.0)

    ink = (grey < 200).astype(np.uint8)
    pad = max(1, int(round(1.5 * s)))
    for ln in lines:
        x0, y0, x1, y1 = px(ln.bbox)
        ink[max(0, y0 - pad):y1 + pad, max(0, x0 - pad):x1 + pad] = 0
    for t in regions:
        x0, y0, x1, y1 = px(t.bbox)
        ink[y0:y1 + 1, x0:x1 + 1] = 0
    k = max(3, int(round(6 * s)))
    closed = cv2.morphologyEx(ink, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)
    comps = [pt(x, y, x + w, y + h) for x, y, w, h, a in stats[1:] if a >= 4 * s * s]
    big = [b for b in comps if b[2] - b[0] >= MIN_SIDE and b[3] - b[1] >= MIN_SIDE / 2 and area(b) >= MIN_SIDE ** 2]
    text_ids = {i for i in range(len(lines)) if any(inside_share(lines[i].bbox, t.bbox) > 0.5 for t in regions)}
    figures = []
    for box in big:
        taken: set[int] = set()
        while True:  # labels (OCR lines) and the ink around them, until nothing more touches
            box, more = absorb_labels(box, lines, skip | text_ids | taken)
            extra = [c for c in comps if near(box, c, LABEL_MARGIN) and inside_share(c, box) < 1.0
                     and c[2] - c[0] < box[2] - box[0]]
            if extra:
                box = union([box, *extra])
            if not more and not extra:
                break
            taken |= more
        if not _tint_under_text(grey, px(box), [px(ln.bbox) for ln in lines if inside_share(ln.bbox, box) > 0.5]):
            figures.append(Region("figure", box, score=0.6, source="raster"))
    figures = _merge(figures)
    for reg in figures:
        x0, y0, x1, y1 = px(reg.bbox)
        reg.kind, reg.subtype = classify_image(grey[y0:y1, x0:x1])
    return regions + figures


# A flat tint under text (a shaded table row, a tinted panel): besides its text lines, the
# box's pixels sit in one mid-grey band, with almost no dark ink (a photo spreads over the
# grey scale, a chart's strokes and bars are dark on white).
TINT_SPREAD = 40.0  # grey levels between the 10th and 90th percentile
TINT_DARK = 0.05  # share of pixels darker than 100 (ink the line boxes leave out: descenders, rules)


def _tint_under_text(grey: np.ndarray, box: tuple[int, int, int, int], text: list[tuple[int, int, int, int]]) -> bool:
    """Whether ``box`` (pixels) is a flat tint with text lines (at least two, boxes in ``text``) on it.

    >>> g = np.full((100, 200), 215, np.uint8); g[20:30, 10:190] = 0; g[50:60, 10:150] = 0
    >>> _tint_under_text(g, (0, 0, 200, 100), [(10, 20, 190, 30), (10, 50, 150, 60)])
    True
    >>> g[70:90, 10:190] = 40  # a dark shape that is not text: a picture
    >>> _tint_under_text(g, (0, 0, 200, 100), [(10, 20, 190, 30), (10, 50, 150, 60)])
    False
    """
    if len(text) < 2:
        return False
    x0, y0, x1, y1 = box
    crop = grey[y0:y1, x0:x1]
    keep = np.ones(crop.shape, bool)
    for a0, b0, a1, b1 in text:
        keep[max(0, b0 - y0):max(0, b1 - y0), max(0, a0 - x0):max(0, a1 - x0)] = False
    rest = crop[keep]
    if rest.size < 0.2 * crop.size:
        return False
    lo, mid, hi = np.percentile(rest, [10, 50, 90])
    return bool(mid < 235 and hi - lo < TINT_SPREAD and (rest < 100).mean() < TINT_DARK)  # not paper white


def _borderless(lines: list[Line], raster: Raster | None) -> list[Region]:
    """:func:`~docrag.layout.tables.borderless_tables` of ``lines``, found upright in ``raster``'s frame
    when that is turned or tilted against the page, their boxes mapped back to page points."""
    m = None if raster is None else np.asarray(raster.to_points, np.float64)
    if m is None or abs(np.arctan2(m[1, 0], m[0, 0])) < LEVEL:
        return borderless_tables(lines)
    from_page = page_to_frame(raster)
    tables = borderless_tables(framed_lines(lines, lambda thing: upright_box(thing.bbox, from_page)))
    for table in tables:
        table.bbox = raster.box_points(corners(table.bbox) * (raster.dpi / 72.0))
    return tables


def page_to_frame(raster: Raster) -> np.ndarray:
    """The 2x3 affine from page points to ``raster``'s frame, in points (its pixels at 72 dpi)."""
    m = np.asarray(raster.to_points, np.float64)
    return np.linalg.inv(np.vstack([m, [0.0, 0.0, 1.0]]))[:2] * (72.0 / raster.dpi)


def framed_lines(lines: list[Line], box: Callable[[Line | Word], BBox]) -> list[Line]:
    """Copies of ``lines`` (and their words) with the boxes ``box`` gives them (in a reading frame)."""
    return [Line(ln.text, box(ln), ln.confidence, [Word(w.text, box(w), w.confidence) for w in ln.words], ln.source)
            for ln in lines]


def corners(box: BBox) -> np.ndarray:
    """The four corners of ``box``, clockwise from top left, as a (4, 2) array."""
    x0, y0, x1, y1 = box
    return np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], np.float64)


def upright_box(box: BBox, from_page: np.ndarray) -> BBox:
    """The upright box, in the frame ``from_page`` (a 2x3 affine: page points -> frame) maps page
    points into, whose tilted outline has the page box ``box`` around it.

    The page box of a box tilted by a small angle is taller and wider than the box; mapping
    its corners back would grow it again (a region across a page tilted 2 degrees: ~18 pt
    taller each way), into the lines around it.

    >>> turn = np.array([[0.0, -1.0, 792.0], [1.0, 0.0, 0.0]])  # a page turned a quarter
    >>> upright_box((100.0, 200.0, 140.0, 500.0), turn)
    (292.0, 100.0, 592.0, 140.0)
    """
    x0, y0, x1, y1 = box
    a, t = from_page[:, :2], from_page[:, 2]
    cx, cy = a @ np.array([(x0 + x1) / 2, (y0 + y1) / 2]) + t
    k, theta = float(np.hypot(a[0, 0], a[1, 0])), float(np.arctan2(a[1, 0], a[0, 0]))
    quarter = round(theta / (np.pi / 2))
    phi = theta - quarter * np.pi / 2  # the tilt beyond a quarter turn
    wide, tall = (x1 - x0) * k, (y1 - y0) * k
    if quarter % 2:
        wide, tall = tall, wide
    c, s = float(np.cos(phi)), abs(float(np.sin(phi)))
    det = c * c - s * s
    w, h = (wide * c - tall * s) / det, (tall * c - wide * s) / det
    if w <= 0 or h <= 0:  # no upright box has this outline: the corners mapped back
        pts = corners(box) @ a.T + t
        (bx0, by0), (bx1, by1) = pts.min(axis=0), pts.max(axis=0)
        return (float(bx0), float(by0), float(bx1), float(by1))
    return (float(cx - w / 2), float(cy - h / 2), float(cx + w / 2), float(cy + h / 2))


def at_most(raster: Raster, dpi: float) -> Raster:
    """The raster resampled down to ``dpi`` when finer (its ``to_points`` adjusted).

    >>> from docrag.io.document import Raster
    >>> at_most(Raster(np.zeros((300, 200, 3), np.uint8), np.array([[0.24, 0, 0], [0, 0.24, 0]]), 300), 150).image.shape
    (150, 100, 3)
    """
    import cv2

    from docrag.io.document import Raster

    f = dpi / raster.dpi
    if f >= 1.0:
        return raster
    h, w = raster.image.shape[:2]
    small = cv2.resize(raster.image, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    fx, fy = small.shape[1] / w, small.shape[0] / h
    to_points = np.asarray(raster.to_points, np.float64) @ np.diag([1.0 / fx, 1.0 / fy, 1.0])
    return Raster(image=small, to_points=to_points, dpi=dpi)


def _morph_rules(dark: np.ndarray, s: float, pt: object) -> tuple[list, list]:
    """Long thin horizontal and vertical rules as segments in points."""
    import cv2

    out: list[list] = [[], []]
    length = max(15, int(30 * s))
    thick = max(5, int(4 * s))
    for axis in (0, 1):
        tol = np.ones((5, 1) if axis == 0 else (1, 5), np.uint8)  # a little skew stays connected
        d = cv2.dilate(dark, tol)
        along = np.ones((1, length) if axis == 0 else (length, 1), np.uint8)
        solid = np.ones((thick, length) if axis == 0 else (length, thick), np.uint8)
        thin = cv2.morphologyEx(d, cv2.MORPH_OPEN, along) & ~cv2.morphologyEx(d, cv2.MORPH_OPEN, solid)
        n, _, stats, _ = cv2.connectedComponentsWithStats(thin, connectivity=8)
        for x, y, w, h, a in stats[1:]:
            b = pt(x, y, x + w, y + h)  # type: ignore[operator]
            if axis == 0 and w >= length and a < w * thick:
                out[0].append((b[0], b[2], (b[1] + b[3]) / 2))
            elif axis == 1 and h >= length and a < h * thick:
                out[1].append((b[1], b[3], (b[0] + b[2]) / 2))
    return out[0], out[1]
