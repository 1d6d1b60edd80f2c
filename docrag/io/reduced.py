"""Images decoded at 1/n scale, a strip of rows at a time.

Pillow and OpenCV decode a PNG whole before any resize (a 30,000 px square RGB
scan is 2.7 GB). :func:`read_png_reduced` inflates the compressed stream a strip
of rows at a time; each strip, led by the decoded row above it (which the PNG
row filters refer to), is wrapped into a small PNG of its own that Pillow
decodes, and is box-averaged to 1/n before the next strip is read: the full
image is never in memory. :func:`read_tiff_reduced` does the same for a TIFF
frame stored in strips: a band of its compressed strips, with the tags that
describe them, makes a small TIFF of its own (an uncompressed frame is cut
wherever its rows lie). :func:`reduce_image` box-averages an image already
decoded (a TIFF frame in tiles or in one compressed strip), a strip at a time,
so that bilevel, palette and 16-bit images need no full-size 8-bit copy.

>>> import os, tempfile
>>> from PIL import Image
>>> path = os.path.join(tempfile.mkdtemp(), "grey.png")
>>> Image.linear_gradient("L").resize((300, 200)).save(path)
>>> info = read_png_info(path)
>>> (info.width, info.height, streamable(info), plausible(info))
(300, 200, True, True)
>>> read_png_reduced(path, 4).shape
(50, 75, 3)
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

__all__ = ["PngInfo", "read_png_info", "streamable", "plausible", "read_png_reduced", "reduce_image", "to_reducible",
           "tiff_band", "read_tiff_reduced"]

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Deflate compresses at most ~1032:1, so a PNG whose pixel data is smaller than
# its decoded size over this cannot be whole: truncated, or a decompression bomb.
MAX_DEFLATE_RATIO = 1032
# Decoded bytes per strip: a strip and its reduced copy stay small next to a page's budget.
STRIP_BYTES = 32 * 2**20
READ_BYTES = 1 << 20
# (bit depth, colour type) read in strips, with the raw mode in which Pillow writes a decoded
# row back byte for byte (a strip's last row leads the next strip). Pillow decodes 16-bit
# colour to 8 bits and cannot write it back: such files are read whole.
_RAWMODES = {(1, 0): "1", (2, 0): "L;2", (4, 0): "L;4", (8, 0): "L", (16, 0): "I;16B", (8, 2): "RGB",
             (1, 3): "P;1", (2, 3): "P;2", (4, 3): "P;4", (8, 3): "P", (8, 4): "LA", (8, 6): "RGBA"}
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
# Chunks a strip needs besides its rows: the palette and its transparency.
_KEPT = (b"PLTE", b"tRNS")
# TIFF tags a band of strips needs to be decoded on its own (size, samples, compression, colour),
# copied into each band's small TIFF; strip offsets and counts are written anew.
_TIFF_KEPT = (256, 257, 258, 259, 262, 266, 277, 278, 284, 292, 293, 317, 320, 338, 339, 347, 530, 531, 532)
_STRIP_OFFSETS, _STRIP_COUNTS, _ROWS_PER_STRIP = 273, 279, 278
# TIFF compressions a band of strips cannot be cut from: old-style JPEG (one stream for the whole image).
_WHOLE_ONLY = {6}


@dataclass
class PngInfo:
    """What a PNG's chunk headers say, read without inflating its pixels."""

    width: int
    height: int
    bit_depth: int
    colour: int
    interlaced: bool
    idat: list[tuple[int, int]] = field(default_factory=list)  # (offset, length) of each IDAT payload
    extra: bytes = b""  # the PLTE and tRNS chunks, whole

    @property
    def row_bytes(self) -> int:
        """Bytes of one filtered row: the filter-type byte and the packed pixels."""
        return 1 + (self.width * _CHANNELS.get(self.colour, 4) * self.bit_depth + 7) // 8

    @property
    def raw_bytes(self) -> int:
        return self.row_bytes * self.height

    @property
    def idat_bytes(self) -> int:
        return sum(length for _, length in self.idat)


def read_png_info(path: str | Path) -> PngInfo:
    """The header, palette and pixel-data chunks of a PNG, found by walking its chunk headers.

    Raises:
        ValueError: not a PNG, or its chunks end early.
    """
    with open(path, "rb") as fh:
        if fh.read(8) != SIGNATURE:
            raise ValueError("not a PNG")
        info: PngInfo | None = None
        while True:
            head = fh.read(8)
            if len(head) < 8:
                break  # no IEND: what the IDAT chunks hold is checked when read
            length, kind = struct.unpack(">I4s", head)
            if kind == b"IHDR":
                width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", fh.read(13))
                info = PngInfo(width, height, depth, colour, bool(interlace))
                fh.seek(4, 1)
            elif info is None:
                raise ValueError("PNG does not start with its header chunk")
            elif kind == b"IDAT":
                info.idat.append((fh.tell(), length))
                fh.seek(length + 4, 1)
            elif kind in _KEPT:
                info.extra += head + fh.read(length + 4)
            elif kind == b"IEND":
                break
            else:
                fh.seek(length + 4, 1)
    if info is None or not info.idat:
        raise ValueError("PNG has no image data")
    return info


def streamable(info: PngInfo) -> bool:
    """True when :func:`read_png_reduced` can read the file strip by strip (not interlaced, a known format)."""
    return not info.interlaced and (info.bit_depth, info.colour) in _RAWMODES


def plausible(info: PngInfo) -> bool:
    """False when the compressed pixel data is too small to hold the pixels the header declares."""
    return info.idat_bytes * MAX_DEFLATE_RATIO >= info.raw_bytes


def read_png_reduced(path: str | Path, factor: int, info: PngInfo | None = None) -> np.ndarray:
    """The PNG box-averaged to ``1/factor`` of its size, as an ``(ceil(H/f), ceil(W/f), 3)`` uint8 RGB array.

    Output pixel ``(r, c)`` is the mean of input pixels ``[r*f, (r+1)*f) x [c*f, (c+1)*f)``
    (Pillow's :meth:`~PIL.Image.Image.reduce`), so ``x_in = x_out * factor``.
    Memory: the output and one strip of about ``STRIP_BYTES``.

    Raises:
        ValueError: the file is not :func:`streamable`, or its data is corrupt or ends early.
    """
    info = info or read_png_info(path)
    if not streamable(info):
        raise ValueError(f"PNG of bit depth {info.bit_depth}, colour type {info.colour}"
                         f"{', interlaced' if info.interlaced else ''} cannot be read in strips")
    f = max(1, int(factor))
    rows = max(f, STRIP_BYTES // info.row_bytes // f * f)  # a multiple of f: boxes never straddle strips
    with open(path, "rb") as fh:
        return _reduce_strips(_png_strips(fh, info, rows), f, info.width, info.height)


def reduce_image(image, factor: int) -> np.ndarray:  # image: PIL.Image.Image
    """A decoded image box-averaged to ``1/factor``, as in :func:`read_png_reduced`, converted a strip at a time.

    >>> from PIL import Image
    >>> reduce_image(Image.new("1", (10, 7), 1), 4).tolist()[0][0]
    [255, 255, 255]
    """
    f = max(1, int(factor))
    width, height = image.size
    rows = max(f, STRIP_BYTES // (4 * width) // f * f)

    def strips() -> Iterator:
        for top in range(0, height, rows):
            yield image.crop((0, top, width, min(height, top + rows)))

    return _reduce_strips(strips(), f, width, height)


def tiff_band(frame, factor: int) -> int:  # frame: PIL.TiffImagePlugin.TiffImageFile
    """Rows per band when :func:`read_tiff_reduced` can read ``frame`` a band of strips at a time, else 0.

    A frame in tiles, in colour planes apart, in one compressed strip, compressed as old-style
    JPEG or in strips too tall to decode a few at a time is read whole. An uncompressed one is
    cut into strips wherever it is needed.
    """
    layout = _strip_layout(frame)
    if layout is None:
        return 0
    rows, f, row_bytes = layout[0], max(1, int(factor)), 4 * frame.width
    # A band: whole strips, a multiple of f rows (boxes never straddle bands), about STRIP_BYTES decoded.
    unit = rows * f // int(np.gcd(rows, f))
    band = unit * max(1, STRIP_BYTES // row_bytes // unit)
    return band if band * row_bytes <= 4 * STRIP_BYTES else 0


def _strip_layout(frame) -> tuple[int, tuple, tuple] | None:
    """``(rows per strip, strip offsets, strip byte counts)`` of a frame read in strips, or None."""
    tags = getattr(frame, "tag_v2", None)
    if tags is None or _STRIP_OFFSETS not in tags or tags.get(284, 1) != 1 or tags.get(259, 1) in _WHOLE_ONLY:
        return None
    rows = int(tags.get(_ROWS_PER_STRIP, frame.height))
    offsets, counts = tuple(tags[_STRIP_OFFSETS]), tuple(tags.get(_STRIP_COUNTS, ()))
    if 0 < rows < frame.height and len(offsets) == len(counts):
        return rows, offsets, counts
    if tags.get(259, 1) != 1 or len(offsets) != 1:
        return None
    # One uncompressed strip: rows are cut from it where they lie, about READ_BYTES decoded at a time.
    samples = tags.get(258, (1,))
    row_bytes = (frame.width * sum(samples if isinstance(samples, tuple) else (samples,)) + 7) // 8
    rows = max(1, READ_BYTES // (4 * frame.width))
    starts = range(0, frame.height, rows)
    return rows, tuple(offsets[0] + top * row_bytes for top in starts), tuple(
        row_bytes * min(rows, frame.height - top) for top in starts)


def read_tiff_reduced(path: str | Path, index: int, factor: int) -> np.ndarray:
    """Frame ``index`` of a TIFF box-averaged to ``1/factor``, as :func:`read_png_reduced` does a PNG.

    Its strips are read a band at a time: each band's compressed strips, with the tags that
    describe them, make a small TIFF of their own that Pillow decodes; the full frame is never
    in memory.

    Raises:
        ValueError: the frame cannot be read in bands (:func:`tiff_band`), or its data is corrupt.
    """
    from PIL import Image

    f = max(1, int(factor))
    with open(path, "rb") as fh, Image.open(fh) as frame:
        frame.seek(index)
        band, layout = tiff_band(frame, f), _strip_layout(frame)
        if not band or layout is None:
            raise ValueError("TIFF frame is not stored in strips that can be read a band at a time")
        width, height = frame.size
        return _reduce_strips(_tiff_bands(fh, frame.tag_v2, layout, band, height), f, width, height)


def _tiff_bands(fh: BinaryIO, tags, layout: tuple[int, tuple, tuple], band: int, height: int) -> Iterator:
    """The frame's rows decoded ``band`` at a time (PIL images), each band a small TIFF of its strips."""
    from PIL import Image, TiffImagePlugin

    rows, offsets, counts = layout
    per_band = band // rows
    for first in range(0, len(offsets), per_band):
        top = first * rows
        if top >= height:
            return
        parts = []
        for offset, count in zip(offsets[first:first + per_band], counts[first:first + per_band]):
            fh.seek(offset)
            parts.append(fh.read(count))
        ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=tags.prefix)
        for tag in _TIFF_KEPT:
            if tag in tags:
                ifd[tag] = tags[tag]
                ifd.tagtype[tag] = tags.tagtype[tag]
        ifd[257] = min(band, height - top)
        ifd[_ROWS_PER_STRIP] = rows
        # Offsets from the end of the directory: Pillow adds where that ends when it writes them.
        starts = np.cumsum([0] + [len(p) for p in parts[:-1]])
        for tag, values in ((_STRIP_OFFSETS, starts), (_STRIP_COUNTS, [len(p) for p in parts])):
            ifd[tag] = tuple(int(v) for v in values)
            ifd.tagtype[tag] = 4  # LONG: a band's TIFF is small, whatever the file's offsets are
        for tag in (256, 257):
            ifd.tagtype[tag] = 4
        order = ">" if tags.prefix == b"MM" else "<"
        data = tags.prefix + struct.pack(f"{order}HI", 42, 8) + ifd.tobytes(8) + b"".join(parts)
        image = Image.open(io.BytesIO(data))
        image.load()
        yield image


def _reduce_strips(strips: Iterator, f: int, width: int, height: int) -> np.ndarray:
    """Strips (PIL images of ``width`` columns, top to bottom, each a multiple of ``f`` rows but the last),
    box-averaged by ``f`` into one RGB array."""
    out = np.empty((-(-height // f), -(-width // f), 3), np.uint8)
    top = 0
    for strip in strips:
        if top >= height:
            break
        small = to_reducible(strip).reduce(f).convert("RGB")
        out[top // f: top // f + small.height] = np.asarray(small)
        top += strip.height
    if top < height:
        raise ValueError(f"image data ends at row {top} of {height}")
    return out


def _png_strips(fh: BinaryIO, info: PngInfo, rows: int) -> Iterator:
    """The PNG's rows decoded, ``rows`` at a time (PIL images)."""
    above: bytes | None = None
    top = 0
    for raw in _inflate(fh, info, rows * info.row_bytes):
        n = min(len(raw) // info.row_bytes, info.height - top)
        if n <= 0:
            return
        strip, above = _decode(info, raw[: n * info.row_bytes], n, above)
        top += n
        yield strip


def to_reducible(image):  # PIL.Image.Image -> PIL.Image.Image
    """``image`` in an 8-bit mode that :meth:`~PIL.Image.Image.reduce` averages (bilevel, palette and 16-bit are not)."""
    from PIL import Image

    if image.mode == "1":
        return image.convert("L")
    if image.mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode.startswith("I;16"):
        return Image.fromarray((np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8), "L")
    if image.mode in ("I", "F"):
        return image.convert("L")
    return image


def _inflate(fh: BinaryIO, info: PngInfo, size: int) -> Iterator[bytes]:
    """The filtered rows of the image, ``size`` bytes at a time (the last piece may be shorter)."""
    z = zlib.decompressobj()
    out = bytearray()
    for offset, length in info.idat:
        fh.seek(offset)
        left = length
        while left > 0:
            data = fh.read(min(left, READ_BYTES))
            if not data:
                raise ValueError("PNG file ends inside its image data")
            left -= len(data)
            while data:
                out += z.decompress(data, size - len(out))
                data = z.unconsumed_tail
                if len(out) >= size:
                    yield bytes(out)
                    out.clear()
            if z.eof:
                break
    out += z.flush()
    if out:
        yield bytes(out)


def _decode(info: PngInfo, raw: bytes, rows: int, above: bytes | None):  # -> tuple[PIL.Image.Image, bytes]
    """Decode ``rows`` filtered rows whose previous row decoded to ``above``; the strip and its last row's bytes.

    The rows go into a PNG of their own led by ``above`` unfiltered (filter type 0),
    so the filters that refer to the row above find it; that lead row is cut off again.
    """
    from PIL import Image

    lead = b"" if above is None else b"\x00" + above
    height = rows + (above is not None)
    header = struct.pack(">IIBBBBB", info.width, height, info.bit_depth, info.colour, 0, 0, 0)
    z = zlib.compressobj(0)  # stored blocks: Pillow only needs a zlib stream, not a small one
    idat = z.compress(lead) + z.compress(raw) + z.flush()
    data = b"".join([SIGNATURE, _chunk(b"IHDR", header), info.extra, _chunk(b"IDAT", idat), _chunk(b"IEND", b"")])
    image = Image.open(io.BytesIO(data))
    image.load()
    if above is not None:
        image = image.crop((0, 1, info.width, height))
    rawmode = _RAWMODES[(info.bit_depth, info.colour)]
    last = image.crop((0, image.height - 1, info.width, image.height)).tobytes("raw", rawmode)
    return image, last


def _chunk(kind: bytes, data: bytes) -> bytes:
    return b"".join([struct.pack(">I", len(data)), kind, data, struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))])
