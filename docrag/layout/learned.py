"""Regions from a learned layout model fused with the page's own geometry: the ``picodet`` layout.

The model is PP-PicoDet trained on CDLA (:mod:`docrag.layout.picodet`); it sees
the page as displayed (born-digital) or upright and levelled (scans).

Born-digital pages (text layer): the PDF's own objects give exact boxes (placed
images, vector-drawing clusters, ruled grids, framed or tinted notes); the
model runs only when the page has pictures, and its figure boxes decide how
the objects group (panels of one figure or separate photos) and how far a
chart reaches (axis labels and legends its paths leave out). Its table boxes
find borderless tables the rules cannot. A model figure with no page object
under it whose text reads as number columns is left to the table finder. A
text-only page gets the ruled and borderless tables without the model.

Scans: the model's boxes (at a lower threshold: it is the main source there),
rule stacks and boxed notes found with OpenCV (:mod:`docrag.layout.raster_boxes`)
and the heuristic's regions (ruled grids, inked areas, borderless tables)
where nothing else claims the spot. The model's box shapes are mended first
(:mod:`docrag.layout.scan_rules`: stacked boxes cut apart, a model table
holding other tables dropped, a "figure" that is tables' rules dropped), and
a figure the model barely sees is kept where its pixels are a picture.

On both, a model table holding running prose is dropped (a text column the
model took for a table), and no region covers more than 60 % of a page that
has over 300 words, nor does a figure holding prose or most of the page's
words (a picture behind the text). The constants come from
a prototype measured on ``shared/data/layout-dev`` (see their comments).

>>> LearnedLayout().name
'picodet'
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from docrag.layout import HeuristicLayout
from docrag.layout.classify import classify_image
from docrag.layout.geometry import big_enough, box_candidates, drawings, image_boxes, vector_clusters
from docrag.layout.grouping import FIGURE_BLOCKS, holds_prose, region_lines
from docrag.layout.raster_boxes import find_boxes, picture_share
from docrag.layout.regions import (at_most, born_digital, corners, find_regions, finish_regions, grid_tables,
                                   ruled_segments)
from docrag.layout.scan_rules import covered, figures_only, holds_tables, split_stacked, without_repeats
from docrag.layout.tables import borderless_tables
from docrag.types import BBox, Line, Region, RegionKind, area, inside_share, iou, text_height, union

if TYPE_CHECKING:
    from docrag.io.document import PageSource, Raster

__all__ = ["LearnedLayout", "born_digital_regions", "scanned_regions"]

# The model's input is a fixed 608 x 800 resize: 150 to 300 dpi gave the same
# recall on layout-dev, 72 dpi less; 150 keeps the rendering and OpenCV cheap.
RASTER_DPI = 150
# Score thresholds (layout-dev sweep, 0.2-0.6): on born-digital pages the model
# is one voice among the PDF's objects; on scans it is the main one.
CONF_BORN = 0.5
CONF_SCAN = 0.3
# Under CONF_SCAN down to this, a model figure counts where its pixels look like a picture over
# PICTURE_SHARE of it (layout-dev: the faint figures so textured were photos, bar one strip of a
# full-bleed photo; a text column, chart or table the model doubts scores under 0.1).
CONF_FAINT = 0.1
PICTURE_SHARE = 0.6
# The size guard (the bench's acceptance rule): no region over this share of a
# page with more than this many words.
OVERSIZE = 0.6
TEXT_HEAVY_WORDS = 300
# A model figure box gathers the page objects lying mostly (70 %) inside it grown by this many points.
GROUP_PAD = 6.0
# A picture whose text lines cover more than this share of it is text (on born-digital pages, text
# over a tint or a photo behind it; on scans, text on plain paper the model boxed as a figure).
TEXT_COVER = 0.3
# Two boxes this alike are one region.
SAME_BOX = 0.7
# A multi-panel figure: its caption starts "Fig. 3", "Figure", "Chart"... (tables are never grouped).
FIGURE_CAPTION_RE = re.compile(r"^\s*(fig\.|fig\b|figure|chart|graph|plate|exhibit|scheme)\s*([0-9IVX]|$)", re.I)
CAPTION_REACH = 40.0


class LearnedLayout(HeuristicLayout):
    """The ``picodet`` layout: regions from the model fused with geometry; the
    heuristic's reading order (the model boxes regions, it does not order text).

    >>> from docrag.types import Line
    >>> [b.text for b in LearnedLayout().analyze([Line("a", (0, 0, 10, 10)), Line("b", (0, 12, 10, 22))], 100, 100)]
    ['a\\nb']
    """

    name = "picodet"

    def regions(self, src: PageSource, lines: list[Line], raster: Raster | None = None) -> list[Region]:
        """Figures, charts, tables and boxed notes, captions linked, top to bottom.

        ``raster`` is the image the lines were read from, upright and levelled
        (scans); text-layer pages are rendered here when they have pictures.
        """
        if born_digital(src, lines):
            regions = born_digital_regions(src, lines)
        else:
            raster = raster if raster is not None else src.render(200)
            regions = scanned_regions(src, lines, raster)
        return finish_regions(regions, lines, raster)


# ---------------------------------------------------------------- born-digital pages


def born_digital_regions(src: PageSource, lines: list[Line]) -> list[Region]:
    """Tables, figures and boxed notes of a text-layer page (captions not linked yet)."""
    page = src.pdf_page
    width, height = src.width, src.height
    paths = page.get_drawings(extended=True)  # type: ignore[union-attr]
    hsegs, vsegs, _ = ruled_segments(page, paths)
    tables = grid_tables(hsegs, vsegs, lines, tol=2.0)
    images = [b for b in image_boxes(page, src.image_boxes()) if not _behind_text(b, lines)]
    draw = drawings(paths, width, height)
    vectors = [v for v in vector_clusters(draw, lines) if not _in_any(v, tables, 0.6)]
    figures: list[Region] = []
    if images or vectors:  # pictures on the page: ask the model (a text-only page needs no model)
        from docrag.layout.picodet import load_picodet

        raster = src.render(RASTER_DPI)
        found = [(d.label, d.score, raster.box_points(corners(d.box)))
                 for d in load_picodet().detect(raster.image, conf=CONF_BORN)]
        for label, score, box in found:
            if label == "table" and _good_table(box, lines, width * height) \
                    and not any(iou(box, t.bbox) > 0.5 for t in tables):  # a ruled grid's box is exact
                tables.append(Region("table", box, score=score, source="picodet"))
        elems = [e for e in images + vectors if not _in_any(e, tables, 0.6)]
        n_images = sum(1 for e in images if not _in_any(e, tables, 0.6))
        model_figures = [(box, score) for label, score, box in found
                         if label == "figure" and not _in_any(box, tables, 0.6)]
        for box, source, score in _dedupe(_group_by_model(elems, n_images, model_figures, lines)):
            if source == "picodet" and _reads_as_table(box, lines):
                continue  # no picture under it, and its text is aligned number columns: a table (found later)
            region = Region("figure", box, score=score, source=source)
            region.kind, region.subtype = _classify(_crop(raster, box))
            figures.append(region)
    # a frame inside a figure is part of it (a flowchart's node, a legend)
    notes = [Region("box", b, score=0.7, source="drawings") for b in box_candidates(draw, lines, width, height)
             if not _in_any(b, tables + figures, 0.5)]
    return _size_guard(tables + figures + notes, lines, width * height)


def _behind_text(box: BBox, lines: list[Line]) -> bool:
    """An image under running text (a tinted panel, a background photo), as the heuristic tells it:
    text lines cover over ``TEXT_COVER`` of it, or six or more lines of 25 characters on average lie on it."""
    inside = [ln for ln in lines if inside_share(ln.bbox, box) > 0.5]
    prose = len(inside) >= 6 and sum(len(ln.text) for ln in inside) / len(inside) >= 25
    return prose or sum(area(ln.bbox) for ln in inside) > TEXT_COVER * area(box)


def _good_table(box: BBox, lines: list[Line], page_area: float) -> bool:
    """A table box of a table's size holding at least two text lines, and no prose."""
    return (big_enough(box) and area(box) <= OVERSIZE * page_area
            and sum(inside_share(ln.bbox, box) > 0.5 for ln in lines) >= 2 and not _holds_prose(box, lines))


def _holds_prose(box: BBox, lines: list[Line]) -> bool:
    """Whether the lines in ``box`` read as running text (a column of a page the model took for a table)."""
    return holds_prose([ln for ln in lines if inside_share(ln.bbox, box) >= 0.5])


def _group_by_model(elems: list[BBox], n_images: int, model_figures: list[tuple[BBox, float]],
                    lines: list[Line]) -> list[tuple[BBox, str, float]]:
    """``(box, source, score)`` of figures: page objects grouped by the model's figure boxes.

    ``elems`` are image boxes (the first ``n_images``) then vector clusters.
    Several objects in one model box make one figure only next to a "Fig. N"
    caption (a multi-panel figure); otherwise they stay apart (stacked photos).
    Images keep their exact union; groups with vectors take the model box too
    (axis labels and legends). A model box holding no object is kept (a figure
    the geometry missed) unless it lies inside one.
    """
    used: set[int] = set()
    out: list[tuple[BBox, str, float]] = []
    rows: list[tuple[BBox, str]] | None = None
    for m, score in model_figures:
        grown = (m[0] - GROUP_PAD, m[1] - GROUP_PAD, m[2] + GROUP_PAD, m[3] + GROUP_PAD)
        inside = [i for i, e in enumerate(elems) if i not in used and inside_share(e, grown) > 0.7]
        if not inside:
            if not any(inside_share(m, e) > 0.5 for e in elems):
                out.append((m, "picodet", score))
            continue
        u = union([elems[i] for i in inside])
        if len(inside) >= 2:
            rows = rows if rows is not None else _rows(lines)
            if not _captioned(u, rows):
                continue
        if all(i < n_images for i in inside):
            out.append((u, "image", 0.8))
        else:
            out.append((union([u, m]), "vector+picodet", score))
        used.update(inside)
    out += [(e, "image" if i < n_images else "vector", 0.8) for i, e in enumerate(elems) if i not in used]
    return out


def _reads_as_table(box: BBox, lines: list[Line]) -> bool:
    """Whether the text lines inside ``box`` read as a borderless table."""
    return bool(borderless_tables([ln for ln in lines if inside_share(ln.bbox, box) > 0.5]))


def _rows(lines: list[Line], gap: float = 12.0) -> list[tuple[BBox, str]]:
    """Lines on one baseline joined into visual rows (some PDFs give one line per word)."""
    rows: list[tuple[BBox, str]] = []
    for ln in sorted(lines, key=lambda x: x.bbox[0]):
        b = ln.bbox
        for k, (rb, rt) in enumerate(rows):
            overlap = min(rb[3], b[3]) - max(rb[1], b[1])
            if overlap > 0.5 * min(rb[3] - rb[1], b[3] - b[1]) and -1 <= b[0] - rb[2] < gap:
                rows[k] = (union([rb, b]), f"{rt} {ln.text}")
                break
        else:
            rows.append((b, ln.text))
    return rows


def _captioned(box: BBox, rows: list[tuple[BBox, str]]) -> bool:
    """A figure caption row just above or below ``box``, overlapping it horizontally."""
    return any(FIGURE_CAPTION_RE.match(text) and min(box[2], b[2]) - max(box[0], b[0]) > 0
               and (0 <= b[1] - box[3] <= CAPTION_REACH or 0 <= box[1] - b[3] <= CAPTION_REACH)
               for b, text in rows)


def _dedupe(items: list[tuple[BBox, str, float]]) -> list[tuple[BBox, str, float]]:
    """The largest of each set of near-identical boxes."""
    out: list[tuple[BBox, str, float]] = []
    for item in sorted(items, key=lambda it: -area(it[0])):
        if not any(iou(item[0], o[0]) > SAME_BOX for o in out):
            out.append(item)
    return out


# ---------------------------------------------------------------- scans


def scanned_regions(src: PageSource, lines: list[Line], raster: Raster) -> list[Region]:
    """Tables, figures and boxed notes of a page read by OCR (captions not linked yet).

    ``raster`` is the page upright and levelled (its ``to_points`` maps back to
    page points); ``lines`` are in page points.
    """
    from docrag.layout.picodet import load_picodet

    small = at_most(raster, RASTER_DPI)
    heuristic = find_regions(src, lines, small)
    for r in heuristic:
        r.caption = r.caption_bbox = None  # linked again over the fused set

    def pt(box: tuple[float, float, float, float]) -> BBox:
        return small.box_points(corners(box))

    detected = sorted(load_picodet().detect(small.image, conf=CONF_FAINT), key=lambda d: -d.score)
    found = [d for d in detected if d.score >= CONF_SCAN]
    found = split_stacked(found, lambda b: _behind_text(pt(b), lines))
    boxes = find_boxes(small.image, small.dpi / 72.0)

    tables: list[Region] = []
    for d in found:
        if d.label == "table" and big_enough(pt(d.box)) and not _holds_prose(pt(d.box), lines):
            _add_new(tables, Region("table", pt(d.box), score=d.score, source="picodet"))
    for kind, b in boxes:
        if kind == "stack" and not figures_only(pt(b), lines):
            _add_new(tables, Region("table", pt(b), score=0.6, source="raster-stack"))
    for r in heuristic:
        if r.kind == "table":
            _add_new(tables, r)
    tables = without_repeats([t for t in tables if not holds_tables(t, tables)], lines)
    figures: list[Region] = []
    text_px: list[tuple[float, float, float, float]] = []

    def text_on_paper(box: tuple[float, float, float, float]) -> bool:
        """Text over paper, not a picture: a cover's or a form's text block the model boxed (running
        text, or lines of type covering over ``TEXT_COVER`` of it, as ``_behind_text`` tells on
        born-digital pages), where the pixels around the text do not look like a picture."""
        inside = [ln for ln in lines if inside_share(ln.bbox, pt(box)) > 0.5]
        typed = sum((ln.bbox[2] - ln.bbox[0]) * text_height(ln.bbox, ln.source) for ln in inside)
        if not holds_prose(inside) and typed <= TEXT_COVER * area(pt(box)):
            return False
        if not text_px:
            text_px.extend(_px_box(small, ln.bbox) for ln in lines)
        return picture_share(small.image, box, text_px, small.dpi / 72.0) < PICTURE_SHARE

    for d in found:
        # A "figure" whose text reads as number columns is a table the model mistook, as on
        # born-digital pages; the tables found above keep what of it they hold. One that is
        # text on plain paper is that text.
        if d.label == "figure" and covered(pt(d.box), tables) <= 0.6 and not _reads_as_table(pt(d.box), lines) \
                and not text_on_paper(d.box):
            region = Region("figure", pt(d.box), score=d.score, source="picodet")
            if _add_new(figures, region):
                region.kind, region.subtype = _classify(_crop_px(small.image, d.box))
    for r in heuristic:
        if r.kind in FIGURE_BLOCKS and covered(r.bbox, tables) <= 0.6:
            _add_new(figures, r)
    faint = [d for d in detected if d.label == "figure" and d.score < CONF_SCAN]
    if faint:  # a faint model figure is kept where its pixels are a picture: the two agree
        if not text_px:
            text_px.extend(_px_box(small, ln.bbox) for ln in lines)
        for d in faint:
            if picture_share(small.image, d.box, text_px, small.dpi / 72.0) >= PICTURE_SHARE \
                    and covered(pt(d.box), tables) <= 0.6:
                region = Region("figure", pt(d.box), score=d.score, source="picodet+pixels")
                if _add_new(figures, region):
                    region.kind, region.subtype = _classify(_crop_px(small.image, d.box))
    # Unlike on born-digital pages, a note inside a figure stays: a scan's inked "figure" often is the tinted note.
    notes = [Region("box", pt(b), score=0.6, source=f"raster-{kind}") for kind, b in boxes
             if kind != "stack" and not _in_any(pt(b), tables, 0.5)
             and not any(iou(pt(b), f.bbox) > SAME_BOX for f in figures)]
    return _size_guard(tables + figures + notes, lines, src.width * src.height)


def _add_new(regions: list[Region], region: Region) -> bool:
    """Append ``region`` unless one already there covers the same spot (IoU > 0.5)."""
    if any(iou(region.bbox, o.bbox) > 0.5 for o in regions):
        return False
    regions.append(region)
    return True


# ---------------------------------------------------------------- shared


def _size_guard(regions: list[Region], lines: list[Line], page_area: float) -> list[Region]:
    """Drop regions over ``OVERSIZE`` of a text-heavy page, and page-sized figures behind the page's text.

    A page-sized figure holding prose, or most of the page's words, is a
    picture behind running text (a full-bleed photo, a tinted page, a bilevel
    scan's speckle): kept as a figure, it would take the page's text out of
    the running text (figure blocks hold labels).
    """
    words = sum(len(ln.text.split()) for ln in lines)
    out = []
    for r in regions:
        if area(r.bbox) > OVERSIZE * page_area:
            if words > TEXT_HEAVY_WORDS:
                continue
            mine = [lines[i] for i in region_lines(r, lines)]
            if r.kind in FIGURE_BLOCKS and (holds_prose(mine) or 2 * sum(len(ln.text.split()) for ln in mine) > words):
                continue
        out.append(r)
    return out


def _in_any(box: BBox, regions: list[Region], share: float) -> bool:
    return any(inside_share(box, r.bbox) > share for r in regions)


def _px_box(raster: Raster, box: BBox) -> tuple[float, float, float, float]:
    """A page-point box in the pixels of ``raster``."""
    inv = np.linalg.inv(np.vstack([raster.to_points, [0.0, 0.0, 1.0]]))[:2]
    px = corners(box) @ inv[:, :2].T + inv[:, 2]
    (x0, y0), (x1, y1) = px.min(axis=0), px.max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)


def _crop(raster: Raster, box: BBox) -> np.ndarray:
    """The pixels of ``raster`` under a page-point box."""
    return _crop_px(raster.image, _px_box(raster, box))


def _classify(crop: np.ndarray) -> tuple[RegionKind, str]:
    return classify_image(crop) if min(crop.shape[:2]) >= 2 else ("figure", "diagram")


def _crop_px(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    h, w = image.shape[:2]
    x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
    x1, y1 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    return image[y0:y1, x0:x1]
