"""Page furniture: running headers, footers and page numbers.

They repeat on every page ("Northwind Logistics - Annual Report 2023 - Page 3")
and would otherwise be glued to the end of a chunk and win searches for the
company name. Blocks in the top or bottom band of a page are marked
``page_header`` / ``page_footer`` when their text (digits ignored) recurs on
other pages of the document, or when they are a bare page number. They stay on
the page (and can serve as section context) but are not chunked as body text.

>>> from docrag.types import Block, Line, Page
>>> def page(n):
...     foot = Line(f"Acme Annual Report - Page {n}", (200, 760, 400, 770))
...     body = Line("Revenue grew.", (72, 300, 300, 310))
...     return Page(number=n, width=612, height=792, blocks=[Block([body], body.bbox), Block([foot], foot.bbox)])
>>> pages = [page(1), page(2), page(3)]
>>> mark_furniture(pages)
>>> [b.kind for b in pages[1].blocks]
['text', 'page_footer']
"""

from __future__ import annotations

import re
from collections import Counter

from docrag.types import Block, Page

__all__ = ["mark_furniture", "FURNITURE"]

FURNITURE = ("page_header", "page_footer")
BAND = 0.09  # top/bottom share of the page height where furniture lives
_PAGE_NUMBER = re.compile(r"^\s*(page|p\.|seite|pagina|página)?\s*[-–]?\s*\d{1,4}\s*[-–]?\s*((of|/|von|de)\s*\d{1,4})?\s*$", re.I)


def _key(block: Block) -> str:
    return re.sub(r"\d+", "#", " ".join(block.text.lower().split()))


def _band(block: Block, page: Page) -> str | None:
    if block.bbox[3] <= page.height * BAND:
        return "page_header"
    if block.bbox[1] >= page.height * (1 - BAND):
        return "page_footer"
    return None


def mark_furniture(pages: list[Page]) -> None:
    """Mark running headers/footers and page numbers in place."""
    counts: Counter[tuple[str, str]] = Counter()
    for page in pages:
        seen = {(band, _key(b)) for b in page.blocks if (band := _band(b, page))}
        counts.update(seen)
    repeat = max(2, int(0.5 * len(pages) + 0.5))
    for page in pages:
        for block in page.blocks:
            band = _band(block, page)
            if band is None or len(block.lines) > 2:
                continue
            if counts[(band, _key(block))] >= repeat or _PAGE_NUMBER.match(block.text):
                block.kind = band  # type: ignore[assignment]
