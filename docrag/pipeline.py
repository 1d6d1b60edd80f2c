"""Per-page processing: route, read (text layer or OCR), lay out.

``process_page`` is the one function every engine (local pool, Ray later)
runs on a page. It returns a :class:`~docrag.types.Page` whose blocks are in
reading order and whose boxes are in PDF points.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from docrag.config import ReadingOptions
from docrag.errors import DocragError, LoadError
from docrag.io import PageSource, Raster, assess_text_layer, open_document
from docrag.layout import get_layout
from docrag.layout.reading_order import join_line_fragments, split_line_at_gaps, words_to_line
from docrag.layout.regions import corners, framed_lines, page_to_frame, upright_box
from docrag.types import BBox, Block, Line, Page, Region, Word, inside_share, union

__all__ = ["process_page", "read_page", "read_document", "failed_page", "page_time_limit", "ocr_page", "ocr_lines", "OcrRead"]

# On a text-layer page, an image this wide and tall (points) that looks like print is read by OCR.
MIN_TEXT_IMAGE = (40.0, 8.0)
# ... when its lines carry this many words each on average (text, not a chart's labels).
PRINT_WORDS_PER_LINE = 3.0
# ... and when the median line detected on it is at least this many times as wide as tall
# (3 words of text are ~6x; a chart's ticks and labels 1-4x).
MIN_LINE_ASPECT = 4.0
# On a digital page, images covering this much of the page are OCR'd too.
MIXED_IMAGE_COVER = 0.3
# ... and of those, each image covering at least this share of the page is read.
MIN_INSERT_COVER = 0.02
# An image with at least this many text-layer lines over it is a background (see process_page).
BACKGROUND_LINES = 3


def process_page(src: PageSource, options: ReadingOptions) -> Page:
    """Read one page into blocks, choosing text layer or OCR per ``options.ocr``."""
    words = src.words()
    images = src.image_boxes() if src.doc.kind == "pdf" else [(0.0, 0.0, src.width, src.height)]
    verdict = assess_text_layer(words, src.width, src.height, images)
    page = Page(number=src.number, width=src.width, height=src.height, rotation=src.rotation)
    layout = get_layout(options.layout)
    raster: Raster | None = None  # the image the lines were read from, in its reading frame
    frame: ReadingFrame | None = None  # where OCR'd lines were laid out, if not page space
    if options.ocr == "never" or (options.ocr == "auto" and verdict.usable and verdict.image_cover < MIXED_IMAGE_COVER):
        page.method, page.reason = "text", verdict.reason if options.ocr == "auto" else "OCR disabled (--ocr never)"
        lines = text_layer_lines(src)
        if src.doc.kind == "pdf" and options.ocr == "auto":  # --ocr never reads no pixels
            lines += text_in_images(src, images, lines, options)
        page.blocks = layout.analyze(lines, page.width, page.height)
    elif options.ocr == "always" or not verdict.usable:
        page.method = "ocr"
        page.reason = "OCR forced (--ocr always)" if options.ocr == "always" else verdict.reason
        # Lay out in the upright, levelled reading frame, then map to page space:
        # boxes of tilted lines overlap in page space and would scramble the order.
        read = ocr_page(src.render(options.dpi), options, page)
        page.blocks = layout.analyze(read.lines, read.width, read.height)
        frame = ReadingFrame.of(read, page.blocks)  # before the boxes go to page space
        for block in page.blocks:
            _to_page(block, read.to_page)
        raster = read.view  # regions are found on the page as it was read: upright and levelled
    else:
        # A digital page carrying large images (scanned inserts, screenshots):
        # keep the text layer and add what OCR finds inside the images only.
        page.method = "mixed"
        page.reason = f"{verdict.reason}; images cover {verdict.image_cover:.0%}, OCR'd too"
        lines = text_layer_lines(src)
        taken = [ln.bbox for ln in lines]
        raster = src.render(options.dpi)
        # Each large image is read on its own: the detector then sees its text at the
        # image's scale, not shrunk with the whole page (small print in an insert).
        for box in images:
            if (box[2] - box[0]) * (box[3] - box[1]) < MIN_INSERT_COVER * page.width * page.height:
                continue
            insert = crop_raster(raster, box)
            if min(insert.image.shape[:2]) < 8:
                continue
            # Under text-layer lines the image is a background (a full-bleed photo with the
            # text set on it): its own words are what the first look finds; the costly
            # closer look for small print is kept for inserts that carry none.
            background = sum(inside_share(t, box) > 0.5 for t in taken) >= BACKGROUND_LINES
            for line in ocr_lines(insert, options, page, closer=not background):
                if _inside_any(line.bbox, images) and not any(inside_share(line.bbox, b) > 0.3 for b in taken):
                    lines.append(line)
        page.blocks = layout.analyze(lines, page.width, page.height)
    if options.figures:
        add_regions(page, src, raster, options, frame)
    page.warnings += src.warnings
    return page


def read_page(src: PageSource, options: ReadingOptions) -> Page:
    """:func:`process_page` that never raises for a bad page: the failure is recorded on the page.

    This is what every engine (in-process, worker pool, Ray) runs per page; a
    page over ``options.page_timeout`` seconds is recorded as skipped.
    """
    try:
        with page_time_limit(options.page_timeout, src.doc.source, src.number):
            return process_page(src, options)
    except DocragError as exc:
        return failed_page(src, str(exc))
    except Exception as exc:  # one bad page must not abort the batch
        return failed_page(src, f"{src.doc.source} (page {src.number}): {type(exc).__name__}: {exc}")


def read_document(path: str | Path, options: ReadingOptions, password: str | None = None) -> Iterator[Page]:
    """Every page of a file, read in this process, in order (a bad page is recorded, not raised).

    Raises:
        LoadError: the file cannot be opened (missing, corrupt, encrypted without ``password``).
    """
    with open_document(path, password=password) as doc:
        for src in doc.pages():
            yield read_page(src, options)


def failed_page(src: PageSource, message: str) -> Page:
    """An empty page recording why it could not be read."""
    return Page(number=src.number, width=src.width, height=src.height, rotation=src.rotation,
                method="failed", reason="error", error=message)


@contextlib.contextmanager
def page_time_limit(seconds: float, source: str, page: int) -> Iterator[None]:
    """Raise LoadError when one page takes longer than ``seconds`` (0: no limit).

    Uses SIGALRM, so it applies in the main thread of a POSIX process only; a
    long call inside C code is interrupted when it returns to Python.
    """
    usable = seconds > 0 and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise LoadError(source, f"took longer than {seconds:g} s and was skipped", page=page,
                        hint="raise --page-timeout or check the page")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def add_regions(page: Page, src: PageSource, raster: Raster | None, options: ReadingOptions,
                frame: ReadingFrame | None = None) -> None:
    """Find figures, charts, tables and boxes; group their lines into blocks; crop the pictures.

    The layout analyzer ``options.layout`` finds the regions, on ``raster`` (the
    page as OCR read it, upright and levelled) when there is one. The page's reading
    order is then found again with each region standing as one block; on a page OCR
    read turned or tilted, in ``frame`` (where its lines were read), since tilted
    lines' boxes overlap in page space.
    Regions group lines, never remove them (:func:`docrag.layout.grouping.group_regions`).
    Each region gets ``inner_text`` (labels and legends, or the table as Markdown rows)
    and, but for boxes, ``png`` (the crop). A failure here is a page warning, never a lost page.
    """
    from docrag.layout.grouping import group_regions, region_lines
    from docrag.layout.tables import table_to_markdown

    lines = page.lines
    if not lines:
        return  # without text (a scan read with --ocr never) text and pictures cannot be told apart
    layout = get_layout(options.layout)
    try:
        regions = layout.regions(src, lines, raster)
    except Exception as exc:  # figure detection is an extra: keep the page's text
        page.warnings.append(f"figure detection failed ({type(exc).__name__}: {exc})")
        return
    if not regions:
        return
    level = page.orientation == 0 and abs(page.skew) < 0.5  # page space is the reading frame
    if level:
        frame = None
    for region in regions:
        if region.kind == "table":  # rows where the page was read: a tilted row's far cells drift a row
            region.inner_text = table_to_markdown(*frame.table(region, lines)) if frame else \
                table_to_markdown(region, lines)
        else:
            region.inner_text = " ".join(lines[i].text for i in region_lines(region, lines))
    if frame is not None:
        page.blocks = group_regions(page.blocks, regions, lambda lines: frame.relayout(layout, lines), frame.box)
    else:
        relayout = (lambda lines: layout.analyze(lines, page.width, page.height)) if level else None
        page.blocks = group_regions(page.blocks, regions, relayout)
    crop_from = src.render(options.crop_dpi)
    for region in regions:
        if region.kind != "box":
            region.png = crop_png(crop_from, region.bbox)
    page.regions = regions


def text_in_images(src: PageSource, images: list[BBox], lines: list[Line], options: ReadingOptions) -> list[Line]:
    """OCR lines of the images of a text-layer page that look like rasterized text.

    A screenshot of a dialog, a pasted scan of a note: their words are on the
    page but not in its text layer. Only images with no text-layer line over
    them, at least a word in size, that look like print (flat background,
    dark ink, little colour) are read, and their lines kept when they read as
    text; photos and charts are left to the figure stage.
    """
    wanted = [b for b in images if b[2] - b[0] >= MIN_TEXT_IMAGE[0] and b[3] - b[1] >= MIN_TEXT_IMAGE[1]
              and not any(inside_share(ln.bbox, b) > 0.5 for ln in lines)]
    if not wanted:
        return []
    raster = src.render(options.dpi)
    upright = options.model_copy(update={"orientation": False})  # a screenshot is upright; a strip fools the check
    found: list[Line] = []
    for box in wanted:
        insert = crop_raster(raster, box)
        if min(insert.image.shape[:2]) < 8 or not looks_like_print(insert.image) \
                or not _long_lines(insert.image, options):
            continue
        read = [ln for ln in ocr_lines(insert, upright) if _inside_any(ln.bbox, [box])]
        # Lines of text, not a chart's scattered labels (those belong to the figure stage's picture).
        if read and sum(len(ln.text.split()) for ln in read) >= PRINT_WORDS_PER_LINE * len(read):
            found += read
    return found


def _long_lines(image: np.ndarray, options: ReadingOptions) -> bool:
    """False when the text lines detected on ``image`` are mostly short boxes: a chart's ticks, labels
    and legend entries, which could not pass the words-per-line test; reading them would be for nothing.
    True when none is found (the closer look for small print may still find some)."""
    from docrag.detect import get_detector

    quads = np.asarray(get_detector(options.detector).detect(image), np.float32).reshape(-1, 4, 2)
    if not len(quads):
        return True
    wide = np.linalg.norm(quads[:, 1] - quads[:, 0], axis=1)
    tall = np.maximum(np.linalg.norm(quads[:, 3] - quads[:, 0], axis=1), 1.0)
    return float(np.median(wide / tall)) >= MIN_LINE_ASPECT


def looks_like_print(image: np.ndarray) -> bool:
    """True for an RGB image of print: mostly flat background, some dark-on-light (or light-on-dark) ink, little colour.

    >>> paper = np.full((40, 200, 3), 250, np.uint8); paper[15:25, 20:180:4] = 20
    >>> looks_like_print(paper), looks_like_print(np.random.default_rng(0).integers(0, 255, (40, 200, 3), np.uint8))
    (True, False)
    """
    img = image.astype(np.int16)
    colour = float(((img.max(axis=2) - img.min(axis=2)) > 48).mean())
    grey = img.mean(axis=2)
    off = np.abs(grey - np.median(grey))
    flat, ink = float((off < 24).mean()), float((off > 96).mean())
    return colour < 0.2 and flat >= 0.6 and 0.005 <= ink <= 0.4


def crop_raster(raster: Raster, box: BBox) -> Raster:
    """The part of ``raster`` inside a page-point box, mapping its pixels to the same page points."""
    inv = np.linalg.inv(np.vstack([raster.to_points, [0.0, 0.0, 1.0]]))
    x0, y0, x1, y1 = box
    pts = np.array([[x0, y0, 1.0], [x1, y0, 1.0], [x1, y1, 1.0], [x0, y1, 1.0]]) @ inv.T
    h, w = raster.image.shape[:2]
    c0, r0 = (max(0, int(v)) for v in np.floor(pts[:, :2].min(axis=0)))
    c1, r1 = (int(v) for v in np.ceil(pts[:, :2].max(axis=0)))
    image = np.ascontiguousarray(raster.image[r0:min(h, r1), c0:min(w, c1)])
    shift = np.array([[1.0, 0.0, c0], [0.0, 1.0, r0], [0.0, 0.0, 1.0]])
    return Raster(image=image, to_points=raster.to_points @ shift, dpi=raster.dpi)


def crop_png(raster: Raster, box: BBox) -> bytes:
    """PNG bytes of the raster inside a page-point box."""
    import cv2

    crop = crop_raster(raster, box).image
    if crop.size == 0:
        crop = np.full((1, 1, 3), 255, np.uint8)
    ok, png = cv2.imencode(".png", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    return png.tobytes()


def text_layer_lines(src: PageSource) -> list[Line]:
    """The page's text-layer lines: the PDF's own lines, pieces of one printed line
    joined, split where a line runs across a gutter."""
    lines = []
    for group in join_line_fragments(src.word_groups()):
        for part in split_line_at_gaps(group):
            lines.append(words_to_line(part, source="text"))
    return lines


@dataclass
class OcrRead:
    """OCR lines in the reading frame (the upright, levelled raster, in points).

    ``to_page`` maps a reading-frame box to the page's unrotated point space;
    ``view`` is the raster the lines were read on (upright and levelled, its
    ``to_points`` composing the turn and the deskew), for the layout model.
    """

    lines: list[Line]
    width: float
    height: float
    to_page: Callable[[BBox], BBox]
    view: Raster


def ocr_lines(raster: Raster, options: ReadingOptions, page: Page | None = None, closer: bool = True
              ) -> list[Line]:
    """OCR lines of a raster with boxes in page points (see :func:`ocr_page`)."""
    read = ocr_page(raster, options, page, closer)
    return [_line_to_page(line, read.to_page) for line in read.lines]


def ocr_page(raster: Raster, options: ReadingOptions, page: Page | None = None, closer: bool = True) -> OcrRead:
    """Detect and recognize text on a raster.

    With ``options.orientation`` the raster is first turned upright and
    levelled (pages scanned at 90/180/270 degrees, skew up to 10 degrees); the
    turn and skew are recorded on ``page``. Engines with a page mode
    (Florence-2, Tesseract) read the whole page without the detector.
    """
    from docrag.detect import get_detector
    from docrag.recognize import get_recognizer
    from docrag.recognize.engine import keep_and_retry, ocr_image
    from docrag.recognize.orientation import compose_affine, upright_with_lines

    detector = get_detector(options.detector)
    recognizer = get_recognizer(options.ocr_engine, options.ocr_model, options.lang)
    view = raster
    page_mode = getattr(recognizer, "page_mode", False)
    quads = None  # found by the orientation step, read without detecting again
    found = None  # read by the orientation step (ppocr reads the page once)

    def read(image: np.ndarray, quads: np.ndarray) -> list:
        return recognizer.recognize(image, quads) if len(quads) else []

    if options.orientation and raster.image.size:
        # ppocr's own reading of the page tells upright from upside down (its
        # confidences are the check's scale); other engines read after the check.
        image, back, turn, skew, quads, found = upright_with_lines(
            raster.image, detector, get_recognizer("ppocr"),
            read=read if recognizer.name == "ppocr" and not page_mode else None)
        if turn or skew:
            view = Raster(image=image, to_points=compose_affine(raster.to_points, back), dpi=raster.dpi)
        if page is not None:
            page.orientation, page.skew = int(turn), round(float(skew), 3)
    if page_mode:
        found = [r for r in recognizer.read_page(view.image)  # type: ignore[attr-defined]
                 if r.text.strip() and r.confidence >= options.min_ocr_confidence]
    elif found is None:
        found = ocr_image(view.image, detector, recognizer, min_confidence=options.min_ocr_confidence, quads=quads,
                          closer=closer)
    else:
        found = keep_and_retry(view.image, quads, found, detector, recognizer, options.min_ocr_confidence, closer)
    scale = 72.0 / view.dpi

    def frame_box(pts: np.ndarray) -> BBox:
        pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2) * scale
        return (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))

    def to_page(box: BBox) -> BBox:
        return view.box_points(corners(box) / scale)

    lines: list[Line] = []
    for rec in found:
        words = [
            Word(text=t, bbox=frame_box(corners(box)), confidence=rec.confidence)
            for t, box in rec.words
            if t.strip()
        ] or [Word(text=rec.text.strip(), bbox=frame_box(rec.quad), confidence=rec.confidence)]
        for part in split_line_at_gaps(words, factor=2.5):
            lines.append(words_to_line(part, source="ocr"))
    h, w = view.image.shape[:2]
    return OcrRead(lines=lines, width=w * scale, height=h * scale, to_page=to_page, view=view)


@dataclass
class ReadingFrame:
    """Where an OCR'd page's lines were laid out: the raster as read, upright and levelled.

    Keeps each line's and word's box there (by identity: the boxes of the page's lines
    are mapped to page space afterwards) and maps other page-space boxes (regions)
    back into it, so that a page read turned or tilted can be laid out again where
    its lines do not overlap.
    """

    boxes: dict[int, BBox]
    from_page: np.ndarray  # 2x3 affine: page points -> reading-frame points
    width: float
    height: float

    @classmethod
    def of(cls, read: OcrRead, blocks: list[Block]) -> ReadingFrame:
        boxes: dict[int, BBox] = {}
        for block in blocks:
            for line in block.lines:
                boxes[id(line)] = line.bbox
                boxes.update((id(w), w.bbox) for w in line.words)
        return cls(boxes, page_to_frame(read.view), read.width, read.height)

    def box(self, thing: Line | Word | Region) -> BBox:
        """``thing``'s box in the frame: the one it was read with, else the upright box in the frame
        whose tilted outline has ``thing``'s page box around it (a region found on the raster as read).

        The page box of a box tilted by a small angle is taller and wider than the box; mapping
        its corners back would grow it again (a region across a page tilted 2 degrees: ~18 pt
        taller each way), into the lines around it.
        """
        known = self.boxes.get(id(thing))
        return known if known is not None else upright_box(thing.bbox, self.from_page)

    def lines(self, lines: list[Line]) -> list[Line]:
        """Copies of ``lines`` (and their words) with their boxes in the frame."""
        return framed_lines(lines, self.box)

    def table(self, region: Region, lines: list[Line]) -> tuple[Region, list[Line]]:
        """``region`` and ``lines`` in the frame, for :func:`~docrag.layout.tables.table_to_markdown`
        (its ruled columns' edges mapped across at the region's middle, when read upright)."""
        box = self.box(region)
        columns: list[float] = []
        if region.columns and abs(float(np.arctan2(self.from_page[1, 0], self.from_page[0, 0]))) < np.pi / 4:
            mid = (region.bbox[1] + region.bbox[3]) / 2
            columns = [float(self.from_page[0, 0] * x + self.from_page[0, 1] * mid + self.from_page[0, 2])
                       for x in region.columns]
        return dataclasses.replace(region, bbox=box, columns=columns), self.lines(lines)

    def relayout(self, layout: Any, lines: list[Line]) -> list[Block]:
        """``layout.analyze`` of page-space ``lines``, done in the frame; the blocks hold the same lines.

        A line the analyzer splits comes back as its parts, in frame boxes: the caller,
        which counts lines, then keeps the order it had.
        """
        framed = self.lines(lines)
        origin = {id(f): ln for f, ln in zip(framed, lines)}
        blocks = layout.analyze(framed, self.width, self.height)
        if any(id(ln) not in origin for b in blocks for ln in b.lines):
            return blocks
        out = []
        for b in blocks:
            mine = [origin[id(ln)] for ln in b.lines]
            out.append(Block(lines=mine, bbox=union([ln.bbox for ln in mine]), kind=b.kind, column=b.column))
        return out


def _line_to_page(line: Line, to_page: Callable[[BBox], BBox]) -> Line:
    line.bbox = to_page(line.bbox)
    for word in line.words:
        word.bbox = to_page(word.bbox)
    return line


def _to_page(block: Block, to_page: Callable[[BBox], BBox]) -> None:
    for line in block.lines:
        _line_to_page(line, to_page)
    block.bbox = union([ln.bbox for ln in block.lines])


def _inside_any(box: BBox, regions: list[BBox]) -> bool:
    return any(inside_share(box, r) > 0.6 for r in regions)
