"""Pages into chunks with provenance.

Chunks never cross a page. They are packed from whole lines in reading order,
break preferably between blocks, and overlap by a few lines when a block has
to be cut. Each chunk keeps its line boxes and their union.

>>> from docrag.types import Block, Line, Page
>>> lines = [Line(f"word{i} " * 10, (0, 12 * i, 100, 12 * i + 10)) for i in range(10)]
>>> page = Page(number=1, width=612, height=792, blocks=[Block(lines, (0, 0, 100, 118))])
>>> chunks = chunk_page(page, doc_id="d", source="x.pdf", max_tokens=40, overlap=0)
>>> [len(c.line_boxes) for c in chunks]
[2, 2, 2, 2, 2]
>>> [len(c.line_boxes) for c in chunk_page(page, "d", "x.pdf", max_tokens=40, overlap=20)]
[2, 2, 2, 2, 2, 2, 2, 2, 2]
"""

from __future__ import annotations

import re
from typing import Callable

from docrag.types import Chunk, Line, Page, union

__all__ = ["read_by", "chunk_page", "approx_tokens", "join_lines", "join_with_spans"]


SKIPPED = ("page_header", "page_footer", "table", "figure", "chart")
"""Blocks left out of text chunks: running furniture, and regions that have chunks of their own
(tables as Markdown rows, figures and charts with their labels: :mod:`docrag.chunk.visual`)."""


def read_by(lines: list[Line], ocr_engine: str = "ocr") -> str:
    """How ``lines`` were read: ``text-layer``, the OCR engine's name, or both (``text-layer+ppocr``).

    >>> read_by([Line("a", (0, 0, 1, 1), source="ocr")], "ppocr")
    'ppocr'
    """
    sources = {ln.source for ln in lines}
    names = (["text-layer"] if "text" in sources else []) + ([ocr_engine] if "ocr" in sources else [])
    return "+".join(names)


def approx_tokens(text: str) -> int:
    """A cheap WordPiece-like token count: words plus extra for long/numeric words.

    >>> approx_tokens("Revenue grew 12.5% in FY2019")
    9
    """
    n = 0
    for word in text.split():
        pieces = re.findall(r"[A-Za-z]+|\d+|[^\sA-Za-z\d]", word)
        n += sum(1 + len(p) // 8 for p in pieces)
    return n


def join_lines(lines: list[Line]) -> str:
    """Join a block's lines into running text, undoing end-of-line hyphenation.

    >>> join_lines([Line("logis-", (0, 0, 1, 1)), Line("tics costs", (0, 1, 1, 2))])
    'logistics costs'
    """
    return join_with_spans(lines)[0]


def join_with_spans(lines: list[Line], start: int = 0) -> tuple[str, list[tuple[int, int]]]:
    """Like :func:`join_lines`, plus each line's character range (offset by ``start``).

    >>> join_with_spans([Line("logis-", (0, 0, 1, 1)), Line("tics costs", (0, 1, 1, 2))])
    ('logistics costs', [(0, 5), (5, 15)])
    """
    out = ""
    spans: list[tuple[int, int]] = []
    for line in lines:
        text = line.text.strip()
        if not out:
            out = text
        elif re.search(r"[a-z]-$", out) and text[:1].islower():
            out = out[:-1] + text
            spans[-1] = (spans[-1][0], start + len(out) - len(text))
        else:
            out += " " + text
        spans.append((start + len(out) - len(text), start + len(out)))
    return out, spans


def chunk_page(
    page: Page,
    doc_id: str,
    source: str,
    max_tokens: int = 200,
    overlap: int = 40,
    count_tokens: Callable[[str], int] = approx_tokens,
) -> list[Chunk]:
    """Cut one page's blocks into chunks of at most ``max_tokens`` (approximately)."""
    groups: list[list[list[Line]]] = []  # chunks -> blocks -> lines
    current: list[list[Line]] = []
    used = 0
    for block in page.blocks:
        if block.kind in SKIPPED:
            continue
        if block.kind == "box" and current:  # a boxed note is a chunk of its own
            groups.append(current)
            current, used = [], 0
        open_block: list[Line] | None = None
        for piece in _split_long_lines(block.lines, max_tokens, count_tokens):
            cost = count_tokens(piece.text)
            if used and used + cost > max_tokens:
                # Cut inside a block: repeat its last lines so no sentence loses its context.
                carry = _tail(open_block, overlap, count_tokens) if open_block else []
                groups.append(current)
                current, used, open_block = [], 0, None
                if carry:
                    open_block = list(carry)
                    current.append(open_block)
                    used = sum(count_tokens(ln.text) for ln in carry)
            if open_block is None:
                open_block = []
                current.append(open_block)
            open_block.append(piece)
            used += cost
        if block.kind == "box":
            groups.append(current)
            current, used = [], 0
    if current:
        groups.append(current)
    chunks = []
    for i, group in enumerate(g for g in groups if any(g)):
        text, spans = "", []
        for blk in (b for b in group if b):
            if text:
                text += "\n\n"
            part, part_spans = join_with_spans(blk, start=len(text))
            text += part
            spans += part_spans
        lines = [ln for blk in group for ln in blk]
        boxes = [ln.bbox for ln in lines]
        chunks.append(
            Chunk(doc_id=doc_id, source=source, page=page.number, text=text, bbox=union(boxes),
                  line_boxes=boxes, kind="text", ordinal=i, line_spans=spans, read_by=read_by(lines),
                  line_confidences=[ln.confidence for ln in lines])
        )
    return chunks


def _tail(lines: list[Line], budget: int, count_tokens: Callable[[str], int]) -> list[Line]:
    """The last lines of ``lines`` fitting ``budget`` tokens (at most half of them)."""
    out: list[Line] = []
    used = 0
    for line in reversed(lines[len(lines) // 2:]):
        cost = count_tokens(line.text)
        if used + cost > budget:
            break
        out.insert(0, line)
        used += cost
    return out


def _split_long_lines(lines: list[Line], max_tokens: int, count_tokens: Callable[[str], int]) -> list[Line]:
    """Lines longer than a chunk are cut at word boundaries (boxes from their words)."""
    out: list[Line] = []
    for line in lines:
        if count_tokens(line.text) <= max_tokens or not line.words:
            out.append(line)
            continue
        part: list = []
        for word in line.words:
            if part and count_tokens(" ".join(w.text for w in part + [word])) > max_tokens:
                out.append(Line(" ".join(w.text for w in part), union([w.bbox for w in part]),
                                line.confidence, part, line.source))
                part = []
            part.append(word)
        if part:
            out.append(Line(" ".join(w.text for w in part), union([w.bbox for w in part]),
                            line.confidence, part, line.source))
    return out
