"""Per-page processing: route, read (text layer or OCR), lay out.

``process_page`` is the one function every engine (local pool, Ray later)
runs on a page. It returns a :class:`~docrag.types.Page` whose blocks are in
reading order and whose boxes are in PDF points.
"""

from __future__ import annotations

from docrag.config import IngestOptions
from docrag.io import PageSource, Raster, assess_text_layer
from docrag.layout import get_layout
from docrag.layout.reading_order import split_line_at_gaps, words_to_line
from docrag.types import BBox, Line, Page, Word

__all__ = ["process_page", "ocr_lines"]

# On a digital page, images covering this much of the page are OCR'd too.
MIXED_IMAGE_COVER = 0.3


def process_page(src: PageSource, options: IngestOptions) -> Page:
    """Read one page into blocks, choosing text layer or OCR per ``options.ocr``."""
    words = src.words()
    images = src.image_boxes() if src.doc.kind == "pdf" else [(0.0, 0.0, src.width, src.height)]
    verdict = assess_text_layer(words, src.width, src.height, images)
    page = Page(number=src.number, width=src.width, height=src.height, rotation=src.rotation)
    if options.ocr == "never" or (options.ocr == "auto" and verdict.usable and verdict.image_cover < MIXED_IMAGE_COVER):
        page.method, page.reason = "text", verdict.reason if options.ocr == "auto" else "OCR disabled (--ocr never)"
        lines = text_layer_lines(src)
    elif options.ocr == "always" or not verdict.usable:
        page.method = "ocr"
        page.reason = "OCR forced (--ocr always)" if options.ocr == "always" else verdict.reason
        lines = ocr_lines(src.render(options.dpi), options)
    else:
        # A digital page carrying large images (scanned inserts, screenshots):
        # keep the text layer and add what OCR finds inside the images only.
        page.method = "mixed"
        page.reason = f"{verdict.reason}; images cover {verdict.image_cover:.0%}, OCR'd too"
        lines = text_layer_lines(src)
        taken = [ln.bbox for ln in lines]
        for line in ocr_lines(src.render(options.dpi), options):
            if _inside_any(line.bbox, images) and not any(_overlap(line.bbox, b) > 0.3 for b in taken):
                lines.append(line)
    page.blocks = get_layout("heuristic").analyze(lines, page.width, page.height)
    return page


def text_layer_lines(src: PageSource) -> list[Line]:
    """The page's text-layer lines, split where a PDF line runs across a gutter."""
    lines = []
    for group in src.word_groups():
        for part in split_line_at_gaps(group):
            lines.append(words_to_line(part, source="text"))
    return lines


def ocr_lines(raster: Raster, options: IngestOptions) -> list[Line]:
    """Detect and recognize text on a raster; boxes mapped to page points."""
    from docrag.detect import get_detector
    from docrag.recognize import get_recognizer
    from docrag.recognize.engine import ocr_image

    found = ocr_image(raster.image, get_detector(options.detector), get_recognizer(options.ocr_engine, options.ocr_model, options.lang),
                      min_confidence=options.min_ocr_confidence)
    lines: list[Line] = []
    for rec in found:
        words = [
            Word(text=t, bbox=raster.box_points(_corners(box)), confidence=rec.confidence)
            for t, box in rec.words
            if t.strip()
        ] or [Word(text=rec.text.strip(), bbox=raster.box_points(rec.quad), confidence=rec.confidence)]
        for part in split_line_at_gaps(words, factor=2.5):
            lines.append(words_to_line(part, source="ocr"))
    return lines


def _corners(box: tuple[float, float, float, float]) -> list[tuple[float, float]]:
    x0, y0, x1, y1 = box
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _overlap(a: BBox, b: BBox) -> float:
    """Intersection area over the area of ``a``."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1])
    return ix * iy / area if area > 0 else 0.0


def _inside_any(box: BBox, regions: list[BBox]) -> bool:
    return any(_overlap(box, r) > 0.6 for r in regions)
