"""Is a page's text layer worth trusting? A check, not a guess.

A text layer is refused when it is (nearly) empty, when its characters are
unprintable or replacement glyphs (fonts without a ToUnicode map), or when it is
glyph soup (few letters, absurd word lengths). Pages whose text layer passes
but that are mostly covered by raster images are flagged too: they are
scans with a thin text layer (a stamp, a page number) and need OCR.

>>> from docrag.types import Word
>>> assess_text_layer([Word("Revenue", (0, 0, 40, 10))] * 30, 612, 792, []).usable
True
>>> assess_text_layer([], 612, 792, [(0, 0, 612, 792)]).reason
'no text layer (0 characters) and images cover 100% of the page'
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass

from docrag.types import BBox, Word

__all__ = ["TextLayerVerdict", "assess_text_layer"]

MIN_CHARS = 20
MIN_PRINTABLE = 0.95
MIN_ALNUM = 0.5
IMAGE_COVER_FOR_SCAN = 0.5


@dataclass
class TextLayerVerdict:
    """The router's decision for one page, with the numbers behind it."""

    usable: bool
    reason: str
    chars: int
    image_cover: float


def assess_text_layer(words: list[Word], width: float, height: float, image_boxes: list[BBox]) -> TextLayerVerdict:
    """Decide whether ``words`` are a usable text layer for the page."""
    text = "".join(w.text for w in words)
    n = len(text)
    cover = _cover_fraction(image_boxes, width, height)
    if n < MIN_CHARS:
        if cover > 0.0:
            return TextLayerVerdict(False, f"no text layer ({n} characters) and images cover {cover:.0%} of the page", n, cover)
        return TextLayerVerdict(False, f"no text layer ({n} characters)", n, cover)
    counts = Counter(text)  # a page's few distinct characters are classified once each
    printable = sum(k for c, k in counts.items() if _is_clean(c)) / n
    if printable < MIN_PRINTABLE:
        return TextLayerVerdict(False, f"text layer is {1 - printable:.0%} unprintable or replacement glyphs", n, cover)
    alnum = sum(k for c, k in counts.items() if c.isalnum()) / n
    if alnum < MIN_ALNUM:
        return TextLayerVerdict(False, f"text layer is glyph soup ({alnum:.0%} letters or digits)", n, cover)
    mean_len = n / len(words)
    if mean_len > 30:
        return TextLayerVerdict(False, f"text layer has no word breaks (mean word {mean_len:.0f} characters)", n, cover)
    text_area = sum((w.bbox[2] - w.bbox[0]) * (w.bbox[3] - w.bbox[1]) for w in words)
    if cover >= IMAGE_COVER_FOR_SCAN and text_area < 0.02 * width * height:
        return TextLayerVerdict(False, f"images cover {cover:.0%} of the page and the text layer is thin ({n} characters)", n, cover)
    return TextLayerVerdict(True, f"text layer usable ({n} characters)", n, cover)


def _is_clean(c: str) -> bool:
    if c == "\ufffd":
        return False
    cat = unicodedata.category(c)
    return not (cat.startswith("C") and cat != "Cf")  # control, private use, unassigned


def _cover_fraction(boxes: list[BBox], width: float, height: float) -> float:
    """Fraction of the page covered by the union of ``boxes`` (on a coarse grid)."""
    if not boxes or width <= 0 or height <= 0:
        return 0.0
    import numpy as np

    grid = np.zeros((64, 64), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        c0, c1 = int(64 * x0 / width), int(np.ceil(64 * x1 / width))
        r0, r1 = int(64 * y0 / height), int(np.ceil(64 * y1 / height))
        grid[max(r0, 0):max(r1, 0), max(c0, 0):max(c1, 0)] = True
    return float(grid.mean())
