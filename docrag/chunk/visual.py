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

from docrag.chunk import read_by
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
                  start: int = 0) -> list[Chunk]:
    """One chunk per region of ``page``: its kind in words, caption, ``inner_text`` and referring sentences."""
    chunks = []
    for i, region in enumerate(visual_regions(page)):
        parts = [describe_subtype(region.kind, region.subtype)]
        if region.caption:
            parts.append(region.caption)
        inner = region.inner_text
        if inner:
            parts.append(inner)
        key = label(region.caption)
        if key:
            # The caption itself also matches; keep only sentences from the body.
            # The caption itself is among the "references" (often run on into the next
            # body line); keep only sentences that refer to the figure from elsewhere.
            head = " ".join(region.caption.split())[:24]
            parts += [s for s in refs.get(key, []) if not s.startswith(head) and s not in region.caption][:3]
        text = "\n".join(p for p in parts if p)
        inside = [page.lines[j] for j in region_lines(region, page.lines)]
        confidence = sum(ln.confidence for ln in inside) / len(inside) if inside else 1.0
        chunks.append(Chunk(doc_id=doc_id, source=source, page=page.number, text=text, bbox=region.bbox,
                            line_boxes=[region.bbox], kind=region.kind, ordinal=start + i,  # type: ignore[arg-type]
                            line_spans=[(0, len(text))], read_by=read_by(inside) or _page_reading(page),
                            line_confidences=[round(confidence, 4)]))
    return chunks
