"""Searchable PDF export: the original pages plus an invisible OCR text layer.

Like OCRmyPDF, every page keeps its content untouched (PDF pages are copied
as they are, images are placed full-page without lossy re-encoding) and the
OCR words are drawn on top in text render mode 3 (invisible) with a glyphless
font, so that text extraction, search and selection find each word where it
is printed.

How a word is placed: the font has one empty glyph, 1000 units tall (ascent
800, descent -200) and 500 units wide for every character, so a font size
equal to the box height makes the extracted box as tall as the OCR box, and a
horizontal scaling (``Tz``) of ``100 * width / (chars * size / 2)`` makes it
exactly as wide. A line's words share one baseline (fitted through their
centres, so a tilted scan's line is drawn tilted, not as a staircase) and one
size (capped so that padded OCR boxes of neighbouring lines do not overlap);
words that touch are pulled apart to a gap of 0.2 em, and a space glyph fills
each gap, so that extractors (PyMuPDF, ``pdftotext -raw``) read each line whole,
word by word, in our reading order. Boxes are in unrotated page space, which
is PDF user space flipped at the top-left of the visible box, so ``/Rotate``
needs no special handling; the CropBox offset is read from the page tree.

>>> import docrag  # doctest: +SKIP
>>> from docrag.integrations.searchable_pdf import write_searchable_pdf  # doctest: +SKIP
>>> pages = docrag.ocr("scan.pdf")  # doctest: +SKIP
>>> write_searchable_pdf("scan.pdf", pages, "scan.searchable.pdf")  # doctest: +SKIP
PosixPath('scan.searchable.pdf')
"""

from __future__ import annotations

import io
import os
import re
import struct
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from docrag.errors import LoadError
from docrag.io import open_document
from docrag.io.sniff import sniff
from docrag.types import BBox, Line, Page, Word, union

__all__ = ["write_searchable_pdf"]

FONT_NAME = "DocragGlyphLess"
ASCENT, DESCENT, ADVANCE = 800, -200, 500  # font units per 1000
_MIN_SPACE = 0.01  # points: a space is always drawn, however narrow the gap
GAP_EM = 0.2  # least gap between two words of a line, in font sizes (poppler writes a space above 0.15)


def write_searchable_pdf(source: str | Path, pages: Iterable[Page], out: str | Path) -> Path:
    """Write ``source`` with an invisible text layer made of the OCR words of ``pages``.

    Only lines with ``source == "ocr"`` are written, and an OCR word that lies
    on a word of the page's existing text layer is left out, so text is never
    doubled. Pages missing from ``pages`` or marked ``failed`` are copied
    without text. The file is written to a temporary name and renamed.

    Args:
        source: The PDF, PNG, JPEG or TIFF file the pages were read from.
        pages: Pages from :func:`docrag.ocr` (any order; matched by ``number``).
        out: Where to write the PDF.

    Returns:
        The path of the written PDF.

    Raises:
        LoadError: ``source`` cannot be opened, or a page number does not exist.

    >>> pages = docrag.ocr("fixtures/data/page_scan.png")  # doctest: +SKIP
    >>> write_searchable_pdf("fixtures/data/page_scan.png", pages, "page.pdf")  # doctest: +SKIP
    PosixPath('page.pdf')
    """
    import pymupdf

    source, out = Path(source), Path(out)
    kind = sniff(source)
    if kind == "pdf":
        try:
            doc = pymupdf.open(source, filetype="pdf")
        except Exception as exc:
            raise LoadError(str(source), f"cannot open PDF ({exc})") from None
        if doc.needs_pass:
            doc.close()
            raise LoadError(str(source), "password-protected PDF", hint="decrypt it first (e.g. qpdf --decrypt)")
    else:
        doc = _image_pdf(source)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        font_xref = _add_font(doc)
        for page in pages:
            if not 1 <= page.number <= doc.page_count:
                raise LoadError(str(source), f"has no page {page.number} (it has {doc.page_count})")
            pdf_page = doc[page.number - 1]
            content = _text_layer(pdf_page, page)
            if content:
                _append_content(doc, pdf_page, font_xref, content)
        doc.save(tmp, garbage=1, deflate=True)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        doc.close()
    os.replace(tmp, out)
    return out


# -- the pages ---------------------------------------------------------------


def _image_pdf(source: Path) -> Any:
    """A new PDF with one page per image frame, each image placed full-page.

    Page sizes come from :func:`docrag.io.open_document` (pixels x 72 / dpi),
    so they match the boxes of the OCR pages. JPEG bytes are embedded as they
    are; other frames go in as PNG, which is lossless.
    """
    import pymupdf
    from PIL import Image

    out = pymupdf.open()
    with open_document(source) as document, Image.open(source) as img:
        jpeg = img.format == "JPEG"
        for src in document.pages():
            page = out.new_page(width=src.width, height=src.height)
            if jpeg:
                data = source.read_bytes()
            else:
                img.seek(src.number - 1)
                frame = img if img.mode in ("1", "L", "LA", "RGB", "RGBA", "P", "I;16") else img.convert("RGB")
                buf = io.BytesIO()
                frame.save(buf, format="PNG")
                data = buf.getvalue()
            page.insert_image(page.rect, stream=data, keep_proportion=False)
    return out


# -- the text ----------------------------------------------------------------


def _text_layer(pdf_page: Any, page: Page) -> bytes:
    """Content-stream operators drawing the page's OCR words invisibly."""
    if page.method == "failed":
        return b""
    existing = np.array([w[:4] for w in pdf_page.get_text("words") if w[4].strip()], dtype=np.float64).reshape(-1, 4)
    origin = _visible_origin(pdf_page)
    todo: list[list[Word]] = []
    for line in page.lines:
        if line.source != "ocr":
            continue
        words = [w for w in _line_words(line) if w.text.strip()]
        covered = [_covered(w.bbox, existing) for w in words]
        if sum(covered) * 2 >= len(words):
            continue  # the line is already in the text layer
        words = [w for w, c in zip(words, covered) if not c]
        if words:
            todo.append(words)
    caps = _pitch_caps([union([w.bbox for w in words]) for words in todo])
    ops = [_line_ops(words, origin, cap) for words, cap in zip(todo, caps)]
    if not ops:
        return b""
    return ("BT\n3 Tr\n" + "\n".join(ops) + "\nET\n").encode("ascii")


def _line_words(line: Line) -> list[Word]:
    """The line's words; a line without word boxes is split by character count."""
    if line.words:
        return line.words
    tokens = line.text.split()
    if not tokens:
        return []
    x0, y0, x1, y1 = line.bbox
    unit = (x1 - x0) / max(1, len(" ".join(tokens)))
    words, x = [], x0
    for tok in tokens:
        words.append(Word(tok, (x, y0, x + unit * len(tok), y1), line.confidence))
        x += unit * (len(tok) + 1)
    return words


def _covered(box: BBox, existing: np.ndarray) -> bool:
    """Whether the box lies on a word of the existing text layer.

    OCR boxes of short words (``-``, ``a``) are a few points off, so a third
    of the box on a text-layer word counts as covered.
    """
    if not len(existing):
        return False
    ix = np.clip(np.minimum(existing[:, 2], box[2]) - np.maximum(existing[:, 0], box[0]), 0, None)
    iy = np.clip(np.minimum(existing[:, 3], box[3]) - np.maximum(existing[:, 1], box[1]), 0, None)
    area = max((box[2] - box[0]) * (box[3] - box[1]), 1e-6)
    return bool((ix * iy / area).max() >= 1 / 3)


def _pitch_caps(boxes: list[BBox]) -> list[float]:
    """The largest font size each line can take without its em box reaching into the next line.

    OCR line boxes are padded (DBNet grows each text kernel), so on a tight page
    neighbouring boxes overlap and extractors would mix their words: a line's size
    is capped at 0.9 of the distance to the nearest line above or below it that
    shares some of its width.

    >>> _pitch_caps([(0, 0, 100, 16), (0, 12, 100, 28), (200, 0, 300, 16)])
    [10.8, 10.8, inf]
    """
    caps = []
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        mid, h = (y0 + y1) / 2, y1 - y0
        pitch = min((abs((b[1] + b[3]) / 2 - mid) for j, b in enumerate(boxes)
                     if j != i and min(x1, b[2]) - max(x0, b[0]) > 0 and abs((b[1] + b[3]) / 2 - mid) > 0.3 * h),
                    default=float("inf"))
        caps.append(round(0.9 * pitch, 3))
    return caps


def _line_ops(words: list[Word], origin: tuple[float, float], max_size: float = float("inf")) -> str:
    """Operators for one line: its words on one baseline, each as wide as its box, spaces between.

    Extractors such as pdftotext rebuild lines from baselines and words from gaps,
    so a line is drawn on one straight baseline (fitted through its words' centres:
    a tilted scan's lines stay whole), in one font size (the median word height),
    and neighbouring words keep a gap of at least :data:`GAP_EM` (OCR word boxes are
    padded and may touch; extractors put a space only where they see a gap).
    """
    angle, (cx, cy) = _baseline(words)
    if angle is None:  # a steep or vertical line (a sideways page): each word on its own box
        ops = []
        for w in words:
            x0, y0, x1, y1 = w.bbox
            size = max(y1 - y0, 0.1)  # the baseline sits 1/5 of the em above the box's bottom
            ops.append(_word_op(w.text, x0, x1, (x0, y1 + DESCENT / 1000 * size), size, 0.0, origin))
        return "\n".join(ops)
    cos, sin = float(np.cos(angle)), float(np.sin(angle))
    heights = [w.bbox[3] - w.bbox[1] - (w.bbox[2] - w.bbox[0]) * abs(sin) for w in words]
    size = max(float(np.median(heights)), 0.5 * float(np.median([w.bbox[3] - w.bbox[1] for w in words])), 0.1)
    size = max(min(size, max_size), 0.1)
    # Spaced left to right (an upside-down page's words come right to left), drawn in reading order.
    order = sorted(range(len(words)), key=lambda i: words[i].bbox[0])
    spaced = _spaced([(words[i].bbox[0], words[i].bbox[2]) for i in order], GAP_EM * size)
    spans: list[tuple[float, float]] = [(0.0, 0.0)] * len(words)
    for rank, i in enumerate(order):
        spans[i] = spaced[rank]
    ops = []
    for i, (word, (a, b)) in enumerate(zip(words, spans)):
        # The baseline runs through the centres' line, 0.3 em below it (the em box is
        # 0.8 above and 0.2 below the baseline), measured square to the line.
        y_mid = cy + (a - cx) * sin / cos
        bx, by = a - 0.3 * size * sin, y_mid + 0.3 * size * cos
        ops.append(_word_op(word.text, a, b, (bx, by), size, angle, origin))
        if i + 1 < len(words):
            gap = max(spans[i + 1][0] - b, _MIN_SPACE) / cos
            ops.append(f"{_scale(gap, 1, size):.3f} Tz <0020> Tj")
    return "\n".join(ops)


def _word_op(text: str, x0: float, x1: float, baseline: tuple[float, float], size: float, angle: float,
             origin: tuple[float, float]) -> str:
    """One word ``x0``-``x1`` wide (page space) in ``size``, its baseline starting at ``baseline``, tilted by ``angle``."""
    # Page space is PDF user space flipped at the visible box's top-left.
    x, y = origin[0] + baseline[0], origin[1] - baseline[1]
    cos, sin = float(np.cos(angle)), float(np.sin(angle))
    hexed = _encode(text.strip())
    # Page space has y down, PDF y up: a line sloping down to the right turns clockwise.
    return (f"/{FONT_NAME} {size:.3f} Tf {_scale((x1 - x0) / cos, len(hexed) // 4, size):.3f} Tz "
            f"{cos:.5f} {-sin:.5f} {sin:.5f} {cos:.5f} {x:.3f} {y:.3f} Tm <{hexed}> Tj")


_MAX_SLANT = np.radians(15.0)  # deskew handles +-10 degrees; steeper lines are not straight text


def _baseline(words: list[Word]) -> tuple[float | None, tuple[float, float]]:
    """The line's slope angle (radians, page space: positive runs down to the right) and a point on it.

    Fitted through the word centres; one word, or words stacked vertically, give 0.
    None when the line is steeper than :data:`_MAX_SLANT`.
    """
    xs = np.array([(w.bbox[0] + w.bbox[2]) / 2 for w in words])
    ys = np.array([(w.bbox[1] + w.bbox[3]) / 2 for w in words])
    centre = (float(xs.mean()), float(ys.mean()))
    spread = float(((xs - xs.mean()) ** 2).sum())
    if len(words) < 2 or spread < 1e-6:
        tall = all(w.bbox[3] - w.bbox[1] > 2 * (w.bbox[2] - w.bbox[0]) for w in words) and len(words[0].text) > 2
        return (None if tall else 0.0), centre
    angle = float(np.arctan(((xs - xs.mean()) * (ys - ys.mean())).sum() / spread))
    return (angle if abs(angle) <= _MAX_SLANT else None), centre


def _spaced(spans: list[tuple[float, float]], gap: float) -> list[tuple[float, float]]:
    """``(x0, x1)`` spans, left to right, pulled apart where they overlap or nearly touch.

    Two neighbours closer than ``gap`` are cut at the middle of their overlap (or gap)
    and ``gap`` is left between them; no span shrinks below a third of its width.

    >>> _spaced([(0.0, 10.0), (9.0, 20.0)], 2.0)
    [(0.0, 8.5), (10.5, 20.0)]
    """
    out = [list(s) for s in spans]
    for i in range(len(out) - 1):
        left, right = out[i], out[i + 1]
        if right[0] - left[1] >= gap:
            continue
        mid = (left[1] + right[0]) / 2
        left[1] = max(mid - gap / 2, left[0] + (spans[i][1] - spans[i][0]) / 3)
        right[0] = min(mid + gap / 2, right[1] - (spans[i + 1][1] - spans[i + 1][0]) * 2 / 3)
    return [(a, b) for a, b in out]


def _scale(width: float, chars: int, size: float) -> float:
    """The ``Tz`` percentage that makes ``chars`` glyphs span ``width`` points."""
    natural = chars * ADVANCE / 1000 * size
    return 100.0 * max(width, _MIN_SPACE) / max(natural, 1e-6)


def _visible_origin(pdf_page: Any) -> tuple[float, float]:
    """PDF user-space ``(x0, y1)`` of the visible box (MediaBox clipped by CropBox).

    PyMuPDF's unrotated page point ``(x, y)`` is PDF ``(x0 + x, y1 - y)``. Read
    from the page tree because ``Page.transformation_matrix`` drops the
    CropBox offset on pages with ``/Rotate``.
    """
    doc = pdf_page.parent
    media = _pdf_box(doc, pdf_page.xref, "MediaBox") or (0.0, 0.0, 612.0, 792.0)
    crop = _pdf_box(doc, pdf_page.xref, "CropBox") or media
    box = (max(media[0], crop[0]), max(media[1], crop[1]), min(media[2], crop[2]), min(media[3], crop[3]))
    if box[2] <= box[0] or box[3] <= box[1]:
        box = media
    return box[0], box[3]


def _pdf_box(doc: Any, xref: int, key: str) -> BBox | None:
    kind, value = _inherited(doc, xref, key)
    if kind == "xref":
        value = doc.xref_object(int(value.split()[0]))
    numbers = [float(v) for v in re.findall(r"[-+]?(?:\d+\.?\d*|\.\d+)", value)] if kind != "null" else []
    if len(numbers) != 4:
        return None
    (x0, x1), (y0, y1) = sorted(numbers[0::2]), sorted(numbers[1::2])
    return (x0, y0, x1, y1)


def _encode(text: str) -> str:
    """UTF-16 code units as hex; the font's CIDs are Unicode code points."""
    units = (ord(c) if ord(c) <= 0xFFFF and not 0xD800 <= ord(c) <= 0xDFFF else 0xFFFD for c in text)
    return "".join(f"{u:04X}" for u in units)


# -- PDF objects -------------------------------------------------------------


def _append_content(doc: Any, pdf_page: Any, font_xref: int, content: bytes) -> None:
    """Add the font to the page's resources and ``content`` after its contents."""
    if not pdf_page.is_wrapped:
        # An unbalanced ``cm`` in the original content would move our text.
        pdf_page.wrap_contents()
    res_xref, prefix = pdf_page.xref, "Resources/"
    kind, value = _inherited(doc, res_xref, "Resources")
    if kind == "xref":
        res_xref, prefix = int(value.split()[0]), ""
    doc.xref_set_key(pdf_page.xref, "Resources", value if kind in ("xref", "dict") else "<<>>")
    kind, value = doc.xref_get_key(res_xref, prefix + "Font")
    if kind == "xref":
        doc.xref_set_key(int(value.split()[0]), FONT_NAME, f"{font_xref} 0 R")
    else:
        if kind != "dict":
            doc.xref_set_key(res_xref, prefix + "Font", "<<>>")
        doc.xref_set_key(res_xref, f"{prefix}Font/{FONT_NAME}", f"{font_xref} 0 R")
    stream = _new_stream(doc, content)
    kind, value = doc.xref_get_key(pdf_page.xref, "Contents")
    if kind == "array":
        contents = value.strip()[1:-1]
    elif kind == "xref":
        contents = value
    else:
        contents = ""
    doc.xref_set_key(pdf_page.xref, "Contents", f"[{contents} {stream} 0 R]")


def _inherited(doc: Any, xref: int, key: str) -> tuple[str, str]:
    """``xref_get_key`` that follows ``/Parent`` for inheritable page attributes."""
    for _ in range(64):  # a cycle in a broken page tree must not hang us
        kind, value = doc.xref_get_key(xref, key)
        if kind != "null":
            return kind, value
        kind, parent = doc.xref_get_key(xref, "Parent")
        if kind != "xref":
            break
        xref = int(parent.split()[0])
    return "null", "null"


def _new_stream(doc: Any, data: bytes, extra: str = "") -> int:
    xref = doc.get_new_xref()
    doc.update_object(xref, f"<<{extra}>>")
    doc.update_stream(xref, data)
    return xref


def _add_font(doc: Any) -> int:
    """A Type0 font with one empty glyph for every Unicode BMP code point.

    The same construction as Tesseract's and OCRmyPDF's ``GlyphLessFont``:
    Identity-H codes are the code points, ``CIDToGIDMap`` sends them all to
    glyph 1 and ``ToUnicode`` sends them back to themselves.
    """
    font_file = _new_stream(doc, _glyphless_ttf())
    cid_to_gid = xref = doc.get_new_xref()
    doc.update_object(xref, "<</Filter/FlateDecode>>")
    doc.update_stream(xref, zlib.compress(b"\x00\x01" * 65536), compress=False)
    to_unicode = _new_stream(doc, _to_unicode_cmap())
    descriptor = doc.get_new_xref()
    doc.update_object(descriptor, (
        f"<</Type/FontDescriptor/FontName/GlyphLessFont/Flags 5/ItalicAngle 0/StemV 80"
        f"/Ascent {ASCENT}/Descent {DESCENT}/CapHeight {ASCENT}"
        f"/FontBBox[0 {DESCENT} {ADVANCE} {ASCENT}]/FontFile2 {font_file} 0 R>>"))
    cid_font = doc.get_new_xref()
    doc.update_object(cid_font, (
        f"<</Type/Font/Subtype/CIDFontType2/BaseFont/GlyphLessFont"
        f"/CIDSystemInfo<</Registry(Adobe)/Ordering(Identity)/Supplement 0>>"
        f"/FontDescriptor {descriptor} 0 R/DW {ADVANCE}/CIDToGIDMap {cid_to_gid} 0 R>>"))
    font = doc.get_new_xref()
    doc.update_object(font, (
        f"<</Type/Font/Subtype/Type0/BaseFont/GlyphLessFont/Encoding/Identity-H"
        f"/DescendantFonts[{cid_font} 0 R]/ToUnicode {to_unicode} 0 R>>"))
    return font


def _to_unicode_cmap() -> bytes:
    # A bfrange may only vary the last byte, so the BMP is listed as 248
    # ranges of 256 codes (surrogates skipped), at most 100 per section.
    ranges = [f"<{hi:02X}00> <{hi:02X}FF> <{hi:02X}00>" for hi in range(256) if not 0xD8 <= hi <= 0xDF]
    sections = []
    for i in range(0, len(ranges), 100):
        chunk = ranges[i:i + 100]
        sections.append(f"{len(chunk)} beginbfrange\n" + "\n".join(chunk) + "\nendbfrange")
    return ("/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
            "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
            "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
            "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
            + "\n".join(sections)
            + "\nendcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n").encode("ascii")


@lru_cache(maxsize=1)
def _glyphless_ttf() -> bytes:
    """A minimal TrueType font: ``.notdef`` and one empty glyph, 1000 units per em.

    Built here rather than shipped so that no binary file travels with the
    package; FreeType, pdf.js and poppler load it.
    """
    tables = {
        b"head": struct.pack(">IIIIHHqqhhhhHHhhh", 0x10000, 0x10000, 0, 0x5F0F3CF5, 0x000B, 1000,
                             0, 0, 0, DESCENT, ADVANCE, ASCENT, 0, 3, 2, 0, 0),
        b"hhea": struct.pack(">IhhhHhhhhhh4hhH", 0x10000, ASCENT, DESCENT, 0, ADVANCE, 0, 0, ADVANCE,
                             1, 0, 0, 0, 0, 0, 0, 0, 2),
        b"maxp": struct.pack(">IH13H", 0x10000, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0),
        b"hmtx": struct.pack(">HhHh", ADVANCE, 0, ADVANCE, 0),
        b"loca": struct.pack(">3H", 0, 0, 0),  # both glyphs empty
        b"glyf": b"\0\0\0\0",
        # cmap format 4 with only the closing segment: no character is mapped.
        b"cmap": struct.pack(">HHHHI", 0, 1, 3, 1, 12)
                 + struct.pack(">12H", 4, 24, 0, 2, 2, 0, 0, 0xFFFF, 0, 0xFFFF, 1, 0),
        b"post": struct.pack(">IIhhIIIII", 0x30000, 0, -100, 50, 1, 0, 0, 0, 0),
        b"name": _name_table("GlyphLessFont"),
    }
    tags = sorted(tables)
    shift = len(tags).bit_length() - 1
    header = struct.pack(">IHHHH", 0x10000, len(tags), 16 << shift, shift, 16 * len(tags) - (16 << shift))
    offset = len(header) + 16 * len(tags)
    directory, body = b"", b""
    for tag in tags:
        data = tables[tag] + b"\0" * (-len(tables[tag]) % 4)
        checksum = sum(struct.unpack(f">{len(data) // 4}I", data)) & 0xFFFFFFFF
        directory += struct.pack(">4sIII", tag, checksum, offset + len(body), len(tables[tag]))
        body += data
    return header + directory + body


def _name_table(name: str) -> bytes:
    raw = name.encode("ascii")
    records = b"".join(struct.pack(">6H", 1, 0, 0, name_id, len(raw), 0) for name_id in (1, 4, 6))
    return struct.pack(">HHH", 0, 3, 6 + 12 * 3) + records + raw
