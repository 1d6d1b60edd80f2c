"""Figure, chart and table chunks: what a figure says, in words a query can match.

A visual chunk's text is its kind ("bar chart", "photo", "table"), its caption,
the text inside it (axis labels, legend, cells as Markdown rows for tables)
and the sentences elsewhere in the document that refer to it ("as Figure 3
shows ..."). Its box is the region's; its image is the crop.

>>> refs = referring_sentences(["Revenue rose, as Figure 2 shows.", "See Table 1 for detail."])
>>> refs[("figure", "2")]
['Revenue rose, as Figure 2 shows.']
>>> label("Fig. 2: Revenue by segment")
('figure', '2')
"""

from __future__ import annotations

import re
from collections import defaultdict

from docrag.chunk import approx_tokens, read_by
from docrag.layout.grouping import region_lines
from docrag.types import Chunk, Page, Region

__all__ = ["label", "referring_sentences", "visual_chunks", "visual_regions", "describe_subtype"]

_REF = re.compile(r"\b(figures?|figs?\.?|tables?|charts?|exhibits?)\s+(\d+[a-z]?)\b", re.I)
_SENT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")
_SUBTYPES = {
    "bar": "bar chart", "line": "line chart", "pie": "pie chart", "scatter": "scatter plot",
    "photo": "photo", "diagram": "diagram", "ruled": "table", "borderless": "table",
}


def _family(word: str) -> str:
    w = word.lower()
    if w.startswith("tab"):
        return "table"
    return "figure"  # figures, charts and exhibits are all numbered pictures


def label(caption: str | None) -> tuple[str, str] | None:
    """The (family, number) a caption declares, e.g. ("table", "2"), or None."""
    if not caption:
        return None
    m = _REF.match(caption.strip())
    return (_family(m.group(1)), m.group(2).lower()) if m else None


def referring_sentences(texts: list[str]) -> dict[tuple[str, str], list[str]]:
    """Sentences of ``texts`` that mention "Figure N" / "Table N", by label."""
    refs: dict[tuple[str, str], list[str]] = defaultdict(list)
    for text in texts:
        for sentence in _SENT.split(" ".join(text.split())):
            for m in _REF.finditer(sentence):
                key = (_family(m.group(1)), m.group(2).lower())
                if sentence not in refs[key]:
                    refs[key].append(sentence)
    return dict(refs)


def describe_subtype(kind: str, subtype: str) -> str:
    """Words for the kind of picture ("bar chart", "photo", "table")."""
    return _SUBTYPES.get(subtype, kind)


def _page_reading(page: Page) -> str:
    return "text-layer" if page.method == "text" else "ocr"


def visual_regions(page: Page) -> list[Region]:
    """The page's pictures and tables, which get chunks of their own (boxes are read as text blocks)."""
    return [r for r in page.regions if r.kind != "box"]


def visual_chunks(page: Page, doc_id: str, source: str, refs: dict[tuple[str, str], list[str]],
                  start: int = 0, max_tokens: int | None = None) -> list[list[Chunk]]:
    """The chunks of each region of ``page`` (as :func:`visual_regions` lists them): its kind in
    words, caption, ``inner_text`` and referring sentences.

    A region whose text runs past ``max_tokens`` (a long table: the embedder would cut its
    last rows off unseen) is cut between rows into parts that each repeat its kind, caption
    and header row; the parts share the region's box and crop.
    """
    out = []
    for region in visual_regions(page):
        head = [describe_subtype(region.kind, region.subtype)]
        if region.caption:
            head.append(region.caption)
        body = region.inner_text.split("\n") if region.inner_text else []
        key = label(region.caption)
        tail: list[str] = []
        if key:
            # The caption itself is among the "references" (often run on into the next
            # body line); keep only sentences that refer to the figure from elsewhere.
            first = " ".join(region.caption.split())[:24]
            tail = [s for s in refs.get(key, []) if not s.startswith(first) and s not in region.caption][:3]
        inside = [page.lines[j] for j in region_lines(region, page.lines)]
        confidence = sum(ln.confidence for ln in inside) / len(inside) if inside else 1.0
        reading = read_by(inside) or _page_reading(page)
        parts = []
        for text in _cut(head, body, tail, max_tokens):
            parts.append(Chunk(doc_id=doc_id, source=source, page=page.number, text=text, bbox=region.bbox,
                               line_boxes=[region.bbox], kind=region.kind, ordinal=start,  # type: ignore[arg-type]
                               line_spans=[(0, len(text))], read_by=reading,
                               line_confidences=[round(confidence, 4)]))
            start += 1
        out.append(parts)
    return out


def _cut(head: list[str], body: list[str], tail: list[str], max_tokens: int | None) -> list[str]:
    r"""The text of a region's chunks: one, or parts of at most ``max_tokens`` (approximately).

    >>> rows = ["| Item | 2023 |", "| --- | --- |"] + [f"| Line {i} | {i},000 |" for i in range(6)]
    >>> parts = _cut(["table"], rows, [], max_tokens=40)
    >>> [t.count("Line") for t in parts], [approx_tokens(t) <= 40 for t in parts], approx_tokens("\n".join(rows))
    ([3, 3], [True, True], 62)
    >>> all(t.startswith("table\n| Item | 2023 |\n| --- | --- |") for t in _cut(["table"], rows, [], 40))
    True
    """
    whole = "\n".join(p for p in head + body + tail if p)
    if max_tokens is None or len(body) < 2 or approx_tokens(whole) <= max_tokens:
        return [whole]
    # A Markdown table's header row and rule go with every part.
    lead = head + body[:2] if len(body) > 2 and set(body[1]) <= set("|-: ") else head
    rows = body[len(lead) - len(head):]
    budget = max_tokens - approx_tokens("\n".join(lead))
    groups: list[list[str]] = [[]]
    used = 0
    for row in rows:
        cost = approx_tokens(row)
        if groups[-1] and used + cost > budget:
            groups.append([])
            used = 0
        groups[-1].append(row)
        used += cost
    groups[-1] += tail  # the referring sentences once, with the last rows
    return ["\n".join(p for p in lead + group if p) for group in groups]
