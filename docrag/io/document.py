"""Open PDFs and images as a stream of pages.

A :class:`Document` never rasterizes more than the page asked for. Every page
reports its size in PDF points (unrotated page space), its text-layer words,
and renders to an RGB array together with the affine map from raster pixels
back to page points.

>>> import pymupdf, tempfile, os
>>> d = pymupdf.open(); pg = d.new_page(); _ = pg.insert_text((72, 72), "Hello there")
>>> path = os.path.join(tempfile.mkdtemp(), "h.pdf"); d.save(path)
>>> with open_document(path) as doc:
...     page = next(doc.pages())
...     [w.text for w in page.words()]
['Hello', 'there']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from docrag.errors import LoadError
from docrag.files import file_sha256
from docrag.io.sniff import FileType, sniff
from docrag.types import BBox, Word

if TYPE_CHECKING:
    import pymupdf

__all__ = ["Document", "PageSource", "open_document", "file_sha256"]

# Beyond this many pixels a raster is downscaled (a 200x200-inch page at 300 dpi
# would be 3.6 GP). The stages after rendering (orientation, layout) hold ~25 bytes
# per raster pixel at their peak (bench/memory.py): 20 MP keeps a page ~500 MB
# above the models, inside the 1.5 GB a process may take (issue #17). An A2 sheet
# still gets 227 dpi, A0 113.
MAX_RASTER_PIXELS = 20_000_000
# Images larger than this are refused from their header (decompression bombs); up
# to it they are decoded at reduced scale: PNG and TIFF a band of rows at a time, JPEG at 1/2 to 1/8.
MAX_IMAGE_PIXELS = 2_500_000_000
# Images decoded whole before reducing (TIFFs in tiles or in one compressed strip, interlaced
# or 16-bit colour PNGs) are refused when that takes more memory than this.
MAX_DECODE_BYTES = 512 * 2**20
# Bytes per pixel Pillow holds for a frame decoded whole, by mode (4 for others).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2}
# The page last rasterized in this process (MuPDF's cache of decoded images is per process):
# see PageSource._free_other_pages.
_last_rendered: tuple[int, int] | None = None


@dataclass
class Raster:
    """A rendered page and the map from its pixels to page points.

    ``to_points`` is a 2x3 affine matrix: ``[x_pt, y_pt] = M @ [x_px, y_px, 1]``.
    """

    image: np.ndarray
    to_points: np.ndarray
    dpi: float

    def points(self, xy: np.ndarray) -> np.ndarray:
        """Map an ``(..., 2)`` array of pixel coordinates to page points."""
        xy = np.asarray(xy, dtype=np.float64)
        return xy @ self.to_points[:, :2].T + self.to_points[:, 2]

    def box_points(self, quad: np.ndarray) -> BBox:
        """The axis-aligned page-point box around a pixel quad or polygon."""
        pts = self.points(np.asarray(quad).reshape(-1, 2))
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        return (float(x0), float(y0), float(x1), float(y1))


class PageSource:
    """One page of a :class:`Document`; cheap until :meth:`render` is called."""

    def __init__(self, doc: Document, number: int) -> None:
        self.doc = doc
        self.number = number  # 1-based
        # What was wrong with the whole file (repairs) is said once, on page 1.
        self.warnings: list[str] = list(doc.warnings) if number == 1 else []
        self._page: Any = None
        self._frame: Any = None
        self._size = (0, 0)  # an image frame's pixels
        self._words: list[tuple] | None = None
        self._images: list[BBox] | None = None
        self._reduced: Raster | None = None  # an image frame decoded at reduced scale
        self.width = self.height = 0.0
        self.rotation = 0
        # A page that cannot even be loaded (a looping page tree, a corrupt
        # frame) still yields a PageSource: its methods raise the LoadError,
        # so ingest records the page as failed and goes on with the others.
        self._error: LoadError | None = None
        try:
            self._load()
        except LoadError as exc:
            self._error = exc

    def _load(self) -> None:
        doc = self.doc
        if doc._pdf is not None:
            try:
                self._page = doc._pdf[self.number - 1]
                r = self._page.cropbox
                self.width, self.height = float(r.width), float(r.height)
                self.rotation = int(self._page.rotation)
            except Exception as exc:  # MuPDF: "cycle in page tree", broken page objects
                self._page = None
                raise LoadError(doc.source, f"page cannot be loaded ({_first_line(exc)})", page=self.number) from None
        else:
            self._frame = doc._frame(self.number - 1)
            self._size = self._frame.size  # the shared handle of a huge frame may be seeked elsewhere later
            dpi = doc._image_dpi(self._frame)
            self.width = self._frame.width * 72.0 / dpi
            self.height = self._frame.height * 72.0 / dpi

    @property
    def pdf_page(self) -> pymupdf.Page | None:
        """The PyMuPDF page (``pymupdf.Page``) behind this page; None for image files and unloadable pages.

        For stages that read the PDF's own objects (drawings, images, fonts)
        rather than its words or pixels.

        >>> import pymupdf, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "one.pdf"); d = pymupdf.open(); _ = d.new_page(); d.save(path)
        >>> with open_document(path) as doc:
        ...     doc.page(1).pdf_page.number
        0
        """
        return self._page

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def words(self) -> list[Word]:
        """Text-layer words in reading order of the file (empty for images)."""
        return [Word(text=w[4], bbox=(w[0], w[1], w[2], w[3])) for w in self._raw_words() if w[4].strip()]

    def word_groups(self) -> list[list[Word]]:
        """Text-layer words grouped by the PDF's own lines (block, line numbers)."""
        groups: dict[tuple[int, int], list[Word]] = {}
        for w in self._raw_words():
            if w[4].strip():
                groups.setdefault((w[5], w[6]), []).append(Word(w[4], (w[0], w[1], w[2], w[3])))
        return list(groups.values())

    def _raw_words(self) -> list[tuple]:
        """PyMuPDF's word tuples, extracted once per page (routing and lines both read them)."""
        self._check()
        if self._page is None:
            return []
        if self._words is None:
            self._read_text_page()
        return self._words  # type: ignore[return-value]

    def _read_text_page(self) -> None:
        """Words and placed images from one MuPDF text page (building one is most of the cost of either)."""
        import pymupdf

        try:
            tp = self._page.get_textpage(flags=pymupdf.TEXTFLAGS_WORDS | pymupdf.TEXT_PRESERVE_IMAGES)
            words = self._page.get_text("words", sort=False, textpage=tp)
            infos = tp.extractIMGINFO()
        except Exception as exc:  # MuPDF raises plain RuntimeErrors on broken content
            raise LoadError(self.doc.source, f"text layer unreadable ({_first_line(exc)})", page=self.number) from None
        boxes = [(max(0.0, x0), max(0.0, y0), min(self.width, x1), min(self.height, y1))
                 for x0, y0, x1, y1 in (info["bbox"] for info in infos)]
        self._words, self._images = words, [b for b in boxes if b[2] > b[0] and b[3] > b[1]]

    def image_boxes(self) -> list[BBox]:
        """Boxes (page points) where raster images are drawn on this page."""
        self._check()
        if self._page is None:
            return [(0.0, 0.0, self.width, self.height)]
        if self._images is None:
            self._read_text_page()
        return list(self._images)  # type: ignore[arg-type]

    def render(self, dpi: int = 300) -> Raster:
        """Rasterize the page as displayed (rotation applied) at ``dpi``.

        Image pages are returned at their native resolution. Huge pages are
        downscaled so that no raster exceeds ``MAX_RASTER_PIXELS``.
        """
        self._check()
        if self._page is None:
            return self._render_frame()
        import pymupdf

        zoom = dpi / 72.0
        area = self.width * self.height * zoom * zoom
        if area > MAX_RASTER_PIXELS:
            zoom *= 0.999 * (MAX_RASTER_PIXELS / area) ** 0.5  # margin for pixel rounding
            self._warn(f"page is {self.width:.0f}x{self.height:.0f} pt; rasterized at {72 * zoom:.0f} dpi "
                       f"instead of {dpi} to stay under {MAX_RASTER_PIXELS // 1_000_000} MP")
        self._free_other_pages()
        try:
            pix = self._page.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), colorspace=pymupdf.csRGB, alpha=False)
        except Exception as exc:
            raise LoadError(self.doc.source, f"page cannot be rendered ({_first_line(exc)})", page=self.number) from None
        # One copy out of MuPDF's buffer (``samples`` would make a second one: 60 MB at 20 MP).
        img = np.frombuffer(pix.samples_mv, dtype=np.uint8).reshape(pix.height, pix.width, pix.n)[:, :, :3].copy()
        # pixels -> displayed (rotated) points -> unrotated page points
        m = self._page.derotation_matrix
        # Scale from the pixmap's real size: its sides are rounded to whole pixels.
        sx, sy = self._page.rect.width / pix.width, self._page.rect.height / pix.height
        to_points = np.array([[m.a * sx, m.c * sy, m.e], [m.b * sx, m.d * sy, m.f]], dtype=np.float64)
        return Raster(image=img, to_points=to_points, dpi=72.0 * zoom)

    def _free_other_pages(self) -> None:
        """Empty MuPDF's cache of decoded images when this page is not the one rendered last.

        MuPDF keeps what it decoded (up to 256 MB a process) for the next render: a page is
        rendered two or three times (OCR, regions, crops), but a long scan's other pages never
        come back, and each page's image would stay until the cache is full (+270 MB of RSS
        over 60 distinct 200-dpi scans: bench/memory.py's flat check, in every page worker).
        """
        global _last_rendered
        import pymupdf

        key = (id(self.doc), self.number)
        if _last_rendered is not None and _last_rendered != key:
            pymupdf.TOOLS.store_shrink(100)
        _last_rendered = key

    def _warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def _render_frame(self) -> Raster:
        if self._reduced is not None:  # the same image at any dpi: a costly reduced decode is done once
            return self._reduced
        frame = self._frame
        width, height = self._size
        try:
            if width * height <= MAX_RASTER_PIXELS:
                img, factor = np.asarray(frame.convert("RGB"), dtype=np.uint8).copy(), 1
            else:
                img, factor = self._decode_reduced(width, height)
        except LoadError:
            raise
        except Exception as exc:  # corrupt data only found when decoding
            raise LoadError(self.doc.source, f"image frame unreadable ({_first_line(exc)})", page=self.number) from None
        # Raster pixel i covers image pixels [i*factor, (i+1)*factor): boxes land in the full image's space.
        s = self.width / width * factor
        to_points = np.array([[s, 0.0, 0.0], [0.0, s, 0.0]], dtype=np.float64)
        raster = Raster(image=img, to_points=to_points, dpi=72.0 / s)
        if factor > 1:
            self._warn(f"image is {width}x{height} px; downscaled {factor}x for OCR")
            self._reduced = raster
        return raster

    def _decode_reduced(self, width: int, height: int) -> tuple[np.ndarray, int]:
        """This frame (over ``MAX_RASTER_PIXELS``) as an RGB array reduced by an integer factor, and the factor.

        Read through a file handle of its own, so whatever is decoded is freed on return.
        """
        from PIL import Image

        from docrag.io.reduced import read_png_reduced, read_tiff_reduced, reduce_image, tiff_band

        factor = _reduction(width * height)
        if self.doc._png is not None and self.number == 1:  # a strip at a time: never whole in memory
            return read_png_reduced(self.doc.path, factor, self.doc._png), factor
        with Image.open(self.doc.path) as frame:
            frame.seek(self.number - 1)
            scale = 1
            if frame.format == "TIFF" and tiff_band(frame, factor):  # a band of strips at a time, likewise
                return read_tiff_reduced(self.doc.path, self.number - 1, factor), factor
            if frame.format == "JPEG":
                # JPEG decodes straight to 1/2, 1/4 or 1/8 scale: the full raster is never allocated.
                frame.draft("RGB", (width // factor, height // factor))
                scale = round(width / frame.width)
            else:
                self.doc._check_decode(frame, page=self.number)  # a later TIFF frame may be bigger than the first
            rest = _reduction(frame.width * frame.height)
            return reduce_image(frame, rest), scale * rest


def _reduction(pixels: int) -> int:
    """The integer factor that brings an image of ``pixels`` under ``MAX_RASTER_PIXELS`` (1 if it is)."""
    return max(1, int(np.ceil((pixels / MAX_RASTER_PIXELS) ** 0.5)))


class Document:
    """An open PDF or image file. Use :func:`open_document`."""

    def __init__(self, path: str | Path, kind: FileType, password: str | None = None) -> None:
        self.source = str(path)
        self.path = Path(path)
        self.kind = kind
        self._pdf: Any = None
        self._image: Any = None
        self._png: Any = None  # a large PNG's chunk layout (docrag.io.reduced.PngInfo), read in strips
        self._frames = 1
        # What was recovered from a damaged file; shown with page 1's warnings.
        self.warnings: list[str] = []
        if kind == "pdf":
            self._open_pdf(password)
        else:
            self._open_image()
        self.doc_id = file_sha256(self.path)

    def _open_pdf(self, password: str | None) -> None:
        import pymupdf

        try:
            pdf = pymupdf.open(self.path, filetype="pdf")
        except Exception as exc:
            raise LoadError(self.source, f"corrupt or truncated PDF ({_first_line(exc)})",
                            hint="re-export or repair it (e.g. with qpdf) and try again") from None
        if pdf.needs_pass:
            if not password or not pdf.authenticate(password):
                pdf.close()
                raise LoadError(self.source, "password-protected PDF",
                                hint="pass --password (or DOCRAG_PASSWORD), or decrypt it first (qpdf --decrypt)")
        try:
            loops = _break_page_tree_loops(pdf)
            pages, repaired = int(pdf.page_count), bool(pdf.is_repaired)
        except Exception as exc:  # the page tree or trailer is beyond repair
            pdf.close()
            raise LoadError(self.source, f"corrupt PDF ({_first_line(exc)})",
                            hint="re-export or repair it (e.g. with qpdf) and try again") from None
        if pages == 0:
            pdf.close()
            raise LoadError(self.source, "PDF has no pages", hint="check that the export finished")
        if repaired and not _has_eof_marker(self.path):
            # MuPDF rebuilds a cut-off file silently; indexing half of it would
            # lose the rest without a word, so a truncated file is refused.
            pdf.close()
            raise LoadError(self.source, f"truncated PDF (no end-of-file marker; {pages} page(s) recoverable)",
                            hint="download or copy the file again")
        if repaired:
            self.warnings.append(f"repaired: broken xref table rebuilt from the objects; {pages} page(s) recovered")
        if loops:
            self.warnings.append(f"repaired: page tree loops back on itself ({loops} link(s) cut); "
                                 f"{pages} page(s) recovered")
        self._pdf = pdf

    def _open_image(self) -> None:
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = None  # we check the size ourselves, from the header
        try:
            img = Image.open(self.path)
            pixels = img.width * img.height
            if pixels > MAX_IMAGE_PIXELS:
                img.close()
                raise LoadError(self.source, f"image is {img.width}x{img.height} px ({pixels / 1e6:.0f} MP), over the "
                                f"{MAX_IMAGE_PIXELS // 1_000_000} MP limit", hint="downscale it first")
            if pixels <= MAX_RASTER_PIXELS:
                img.load()  # small enough: find corrupt data now rather than mid-ingest
            else:
                self._check_large(img)
        except LoadError:
            img.close()
            raise
        except Exception as exc:
            raise LoadError(self.source, f"unreadable {self.kind.upper()} image ({_first_line(exc)})",
                            hint="re-export the image") from None
        try:
            # Counting frames parses every TIFF directory; a broken one after the
            # first keeps the frames before it.
            self._frames = max(1, int(getattr(img, "n_frames", 1)))
        except Exception as exc:
            self._frames = 1
            self.warnings.append(f"frame count unreadable ({_first_line(exc)}); only the first frame is read")
        self._image = img

    def _check_large(self, img: Any) -> None:
        """Refuse a large image that cannot be whole or cannot be read within memory; note a PNG read in strips."""
        from docrag.io.reduced import plausible, read_png_info, streamable, tiff_band

        if img.format == "PNG":
            info = read_png_info(self.path)
            if not plausible(info):
                size = f"{img.width}x{img.height} px ({img.width * img.height / 1e6:.0f} MP)"
                raise LoadError(self.source, f"image is {size} but holds only {info.idat_bytes / 1024:.0f} KB of "
                                "compressed pixels, too few for that size: truncated or a decompression bomb",
                                hint="re-export the image")
            if streamable(info):
                self._png = info
                return
        if img.format == "TIFF" and tiff_band(img, _reduction(img.width * img.height)):
            return  # read a band of strips at a time
        if img.format != "JPEG":  # JPEG decodes at reduced scale; the others whole
            self._check_decode(img)

    def _check_decode(self, frame: Any, page: int | None = None) -> None:
        """Refuse a frame that would take more than ``MAX_DECODE_BYTES`` to decode whole."""
        need = frame.width * frame.height * _MODE_BYTES.get(frame.mode, 4)
        if need > MAX_DECODE_BYTES:
            raise LoadError(self.source, f"image is {frame.width}x{frame.height} px; a {frame.format or 'frame'} of "
                            f"that size is decoded whole ({need / 2**30:.1f} GB), over the "
                            f"{MAX_DECODE_BYTES // 2**20} MB limit", page=page,
                            hint="convert it to PNG or JPEG (read at reduced scale), or downscale it")

    def metadata(self) -> dict[str, str]:
        """The PDF's document information (title, author, ...); empty for images."""
        if self._pdf is None:
            return {}
        try:
            return {k: v for k, v in (self._pdf.metadata or {}).items() if isinstance(v, str) and v}
        except Exception:  # a broken info dictionary is no reason to refuse the file
            return {}

    @property
    def page_count(self) -> int:
        if self._pdf is not None:
            return int(self._pdf.page_count)
        return self._frames

    def pages(self) -> Iterator[PageSource]:
        """Yield the pages one at a time (1-based ``number``)."""
        for i in range(self.page_count):
            yield PageSource(self, i + 1)

    def page(self, number: int) -> PageSource:
        """The page with 1-based ``number``."""
        if not 1 <= number <= self.page_count:
            raise LoadError(self.source, f"has no page {number} (it has {self.page_count})")
        return PageSource(self, number)

    def _frame(self, index: int) -> Any:
        try:
            self._image.seek(index)
            if self._image.width * self._image.height > MAX_RASTER_PIXELS:
                return self._image  # never decoded whole here: rendered at reduced scale through a handle of its own
            return self._image.copy()
        except Exception as exc:
            raise LoadError(self.source, f"image frame unreadable ({_first_line(exc)})", page=index + 1) from None

    @staticmethod
    def _image_dpi(frame: Any) -> float:
        dpi = frame.info.get("dpi")
        try:
            value = float(dpi[0]) if dpi else 0.0
        except (TypeError, ValueError, IndexError):
            value = 0.0
        # Missing or absurd DPI metadata: treat one pixel as one point.
        return value if 30.0 <= value <= 2400.0 else 72.0

    def close(self) -> None:
        if self._pdf is not None:
            self._pdf.close()
        if self._image is not None:
            self._image.close()

    def __enter__(self) -> Document:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_document(path: str | Path, password: str | None = None) -> Document:
    """Open a PDF, PNG, JPEG or (multi-page) TIFF file by content.

    Raises:
        LoadError: missing, empty, not a document, encrypted, corrupt or zero pages.
    """
    return Document(path, sniff(path), password=password)


def _has_eof_marker(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - 4096))
        return b"%%EOF" in fh.read()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _break_page_tree_loops(pdf: Any) -> int:
    """Cut the ``/Kids`` links that lead back into the page tree; how many were cut.

    MuPDF refuses every page of a tree with a cycle ("cycle in page tree"),
    so a single bad link would lose the whole file. Files without a loop, and
    trees this walk does not understand, are left as they are.
    """
    import re

    def kids_of(xref: int) -> list[int] | None:
        kind, value = pdf.xref_get_key(xref, "Kids")
        if kind == "null":
            return None  # a page (leaf)
        if kind != "array":
            raise ValueError(f"/Kids of object {xref} is {kind}")
        return [int(n) for n in re.findall(r"(\d+) \d+ R", value)]

    try:
        kind, value = pdf.xref_get_key(pdf.pdf_catalog(), "Pages")
        if kind != "xref":
            return 0
        root = int(value.split()[0])
        seen, cut, stack = {root}, 0, [root]
        fixes: dict[int, list[int]] = {}
        while stack:
            node = stack.pop()
            kids, keep = kids_of(node) or [], []
            for kid in kids:  # a node met a second time closes a loop (or is listed twice)
                if kid not in seen:
                    seen.add(kid)
                    keep.append(kid)
            cut += len(kids) - len(keep)
            if len(keep) != len(kids):
                fixes[node] = keep
            stack += [k for k in keep if kids_of(k) is not None]
        for node, keep in fixes.items():
            pdf.xref_set_key(node, "Kids", "[" + " ".join(f"{k} 0 R" for k in keep) + "]")
        if fixes:
            _recount(pdf, root, kids_of)
        return cut
    except Exception:  # not a tree we can walk: MuPDF has the last word, page by page
        return 0


def _recount(pdf: Any, root: int, kids_of: Any) -> None:
    """Set ``/Count`` of every node under ``root`` to its number of pages (the tree is acyclic now)."""
    order, stack = [], [root]
    children: dict[int, list[int] | None] = {}
    while stack:  # no recursion: a page tree may be thousands of levels deep
        node = stack.pop()
        order.append(node)
        children[node] = kids_of(node)
        stack += children[node] or []
    counts: dict[int, int] = {}
    for node in reversed(order):  # children before their parents
        kids = children[node]
        counts[node] = 1 if kids is None else sum(counts[k] for k in kids)
        if kids is not None:
            pdf.xref_set_key(node, "Count", str(counts[node]))
