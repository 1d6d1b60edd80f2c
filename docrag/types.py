"""Result types shared by every stage.

Boxes are ``(x0, y0, x1, y1)`` in PDF points, top-left origin, in the
unrotated page space (PyMuPDF's page coordinates). Every type round-trips
through JSON with ``to_dict`` / ``from_dict``.

>>> line = Line(text="hello", bbox=(10.0, 20.0, 40.0, 30.0))
>>> Line.from_dict(line.to_dict()) == line
True
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, TypeVar

BBox = tuple[float, float, float, float]
Kind = Literal["text", "table", "figure", "chart", "caption"]
BlockKind = Literal["text", "table", "figure", "chart", "box", "caption", "page_header", "page_footer"]
PageMethod = Literal["text", "ocr", "mixed", "failed"]
RegionKind = Literal["figure", "chart", "table", "box"]

__all__ = [
    "BBox",
    "Kind",
    "BlockKind",
    "PageMethod",
    "RegionKind",
    "Word",
    "Line",
    "Block",
    "Region",
    "Page",
    "Chunk",
    "Hit",
    "HIT_FIELDS",
    "union",
    "area",
    "iou",
    "inside_share",
]

_T = TypeVar("_T", bound="_Serializable")


class _Serializable:
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of this object."""
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[_T], data: dict[str, Any]) -> _T:
        """Rebuild an object from :meth:`to_dict` output (tuples restored)."""
        kwargs: dict[str, Any] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name not in data:
                continue
            kwargs[f.name] = _revive(cls, f.name, data[f.name])
        return cls(**kwargs)


def _revive(cls: type, name: str, value: Any) -> Any:
    nested = {"words": Word, "lines": Line, "blocks": Block, "regions": Region}
    if name in nested and value is not None:
        return [nested[name].from_dict(v) if isinstance(v, dict) else v for v in value]
    if name == "bbox" and value is not None:
        return tuple(float(v) for v in value)
    if name in ("line_boxes",) and value is not None:
        return [tuple(float(v) for v in b) for b in value]
    if name == "line_spans" and value is not None:
        return [tuple(int(v) for v in s) for s in value]
    if name == "png" and isinstance(value, str):
        return base64.b64decode(value)
    if name in ("chunk_bbox", "caption_bbox") and value is not None:
        return tuple(float(v) for v in value)
    return value


@dataclass
class Word(_Serializable):
    """One word with its box and recognition confidence (1.0 for the text layer)."""

    text: str
    bbox: BBox
    confidence: float = 1.0


# An OCR line's box is this many times as tall as the text layer's box of the same line: DBNet's
# boxes are grown back from their kernels with room to spare (median over 539 lines of 8 born-digital
# layout-dev pages OCR'd, quartiles 1.47-1.65). Rules written for text-layer heights (cells of one
# row lie within half a line height) divide OCR heights by it, or tight rows merge.
OCR_BOX_GROWTH = 1.55


def text_height(bbox: tuple, source: str) -> float:
    """The height of a line's type from its box: an OCR box shrunk by :data:`OCR_BOX_GROWTH`."""
    h = float(bbox[3] - bbox[1])
    return h / OCR_BOX_GROWTH if source == "ocr" else h


@dataclass
class Line(_Serializable):
    """One line of text, from the text layer or from OCR."""

    text: str
    bbox: BBox
    confidence: float = 1.0
    words: list[Word] = field(default_factory=list)
    # "region": a stand-in for a region's lines during layout (one word per line it holds), never stored.
    source: Literal["text", "ocr", "region"] = "text"


@dataclass
class Block(_Serializable):
    """Lines that belong together (a paragraph, a heading), in reading order."""

    lines: list[Line]
    bbox: BBox
    kind: BlockKind = "text"
    column: int = 0

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


@dataclass
class Region(_Serializable):
    """A figure, chart or table on a page (boxes in page points).

    Attributes:
        kind: ``figure`` (photo, diagram), ``chart``, ``table`` or ``box`` (a framed or tinted note).
        bbox: Tight box of the region's ink, labels included, caption excluded.
        subtype: ``bar | line | pie | scatter | photo | diagram`` or ``ruled | borderless``.
        caption: The linked caption's text, or None.
        caption_bbox: Box of the caption's lines.
        score: Confidence of the detection in [0, 1] (a heuristic, not a probability).
        source: What found it: ``image``, ``vector``, ``grid``, ``columns`` or ``raster``.
        columns: x boundaries of a ruled table's columns (for :func:`docrag.layout.tables.table_to_markdown`).
        inner_text: The text the region holds: a table as Markdown rows, a figure's labels and legends.
        png: The crop image (PNG bytes) when the page was cropped; base64 in :meth:`to_dict`,
            left out of equality (two crops of one region differ by encoder, not by content).

    >>> r = Region(kind="table", bbox=(0, 0, 100, 40), subtype="borderless", caption_bbox=(0, 42, 60, 50),
    ...            inner_text="| a | b |", png=b"PNG-bytes")
    >>> back = Region.from_dict(r.to_dict())
    >>> back == r and back.png == r.png
    True
    """

    kind: RegionKind
    bbox: BBox
    subtype: str = ""
    caption: str | None = None
    caption_bbox: BBox | None = None
    score: float = 1.0
    source: str = ""
    columns: list[float] = field(default_factory=list)
    inner_text: str = ""
    png: bytes | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.png is not None:
            data["png"] = base64.b64encode(self.png).decode("ascii")
        return data


@dataclass
class Page(_Serializable):
    """What the pipeline saw on one page.

    Attributes:
        number: 1-based page number.
        width, height: Page size in points (unrotated page space).
        method: ``text`` (text layer), ``ocr``, ``mixed`` or ``failed``.
        reason: Why the router chose ``method`` (a sentence for humans).
        blocks: Blocks in reading order.
    """

    number: int
    width: float
    height: float
    method: PageMethod = "text"
    reason: str = ""
    rotation: int = 0
    blocks: list[Block] = field(default_factory=list)
    error: str | None = None
    orientation: int = 0
    """Clockwise quarter turn (0/90/180/270) applied to the raster to read it upright."""
    skew: float = 0.0
    """Degrees of skew corrected before OCR."""
    warnings: list[str] = field(default_factory=list)
    """Things the user should know (a page downscaled, a repair), one line each."""
    regions: list[Region] = field(default_factory=list)
    """Figures, charts and tables found on the page."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["regions"] = [r.to_dict() for r in self.regions]  # crops as base64, JSON-ready
        return data

    @property
    def lines(self) -> list[Line]:
        return [line for block in self.blocks for line in block.lines]

    @property
    def text(self) -> str:
        """The running text in reading order: tables row by row and boxes in place; the labels
        inside figures and charts are left out (they go with the figure, after its caption)."""
        return "\n\n".join(block.text for block in self.blocks if block.kind not in ("figure", "chart"))


@dataclass
class Chunk(_Serializable):
    """A piece of one page to embed and index, with its provenance."""

    doc_id: str
    source: str
    page: int
    text: str
    bbox: BBox
    line_boxes: list[BBox] = field(default_factory=list)
    kind: Kind = "text"
    ordinal: int = 0
    line_spans: list[tuple[int, int]] = field(default_factory=list)
    """Character range of each line in ``text``, parallel to ``line_boxes``."""
    image: str | None = None
    """For figures/charts/tables: the crop's path relative to the index directory."""
    context: str = ""
    """Document and section header ("Northwind Corp · 10-K · FY2019 · Item 8") embedded with the text."""
    read_by: str = ""
    """How its lines were read: ``text-layer``, an OCR engine's name (``ppocr``...), or both joined by ``+``."""
    line_confidences: list[float] = field(default_factory=list)
    """Recognition confidence of each line, parallel to ``line_boxes`` (1.0 for the text layer)."""

    @property
    def confidence(self) -> float:
        """Mean recognition confidence of the chunk's lines (1.0 when it has none)."""
        return sum(self.line_confidences) / len(self.line_confidences) if self.line_confidences else 1.0


@dataclass
class Hit(_Serializable):
    """A search result: a chunk, its score and where it came from.

    ``bbox`` is the box of the evidence: the lines of the chunk that best
    match the query (the whole chunk when they cannot be told apart);
    ``chunk_bbox`` is the union of all the chunk's lines.
    """

    doc_id: str
    source: str
    page: int
    text: str
    bbox: BBox
    kind: Kind
    score: float
    line_boxes: list[BBox] = field(default_factory=list)
    image: str | None = None
    chunk_id: int | None = None
    chunk_bbox: BBox | None = None
    line_spans: list[tuple[int, int]] = field(default_factory=list)
    path: str | None = None
    """Absolute path of the document file (``source`` is the name it was ingested under)."""
    context: str = ""
    """The document/section header the chunk was indexed with."""
    read_by: str = ""
    """How the page's evidence was read: ``text-layer`` or the OCR engine's name."""
    confidence: float | None = None
    """Mean recognition confidence of the evidence lines (of the chunk's lines before they are located)."""
    line_confidences: list[float] = field(default_factory=list)
    """Recognition confidence of each line, parallel to ``line_boxes``."""

    def to_json(self) -> dict[str, Any]:
        """The hit as every interface shows it (``--json``, HTTP, LangChain metadata): :data:`HIT_FIELDS`."""
        return {key: getattr(self, key) for key in HIT_FIELDS}


HIT_FIELDS = ("source", "doc_id", "page", "bbox", "chunk_bbox", "kind", "text", "score", "image", "context",
              "read_by", "confidence")
"""The fields of a hit that users see, in this order; defined once for every interface."""


def union(boxes: list[BBox]) -> BBox:
    """The smallest box containing all ``boxes``.

    >>> union([(0, 0, 1, 1), (2, 3, 4, 5)])
    (0.0, 0.0, 4.0, 5.0)
    """
    if not boxes:
        raise ValueError("union of no boxes")
    return (
        float(min(b[0] for b in boxes)),
        float(min(b[1] for b in boxes)),
        float(max(b[2] for b in boxes)),
        float(max(b[3] for b in boxes)),
    )


def area(box: BBox) -> float:
    """Area of a box (0 for an empty or inverted one).

    >>> area((0.0, 0.0, 2.0, 3.0)), area((2.0, 0.0, 1.0, 3.0))
    (6.0, 0.0)
    """
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def inside_share(a: BBox, b: BBox) -> float:
    """Share of box ``a``'s area that lies inside box ``b``.

    >>> inside_share((0, 0, 2, 2), (1, 0, 3, 2))
    0.5
    """
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1])
    return ix * iy / area if area > 0 else 0.0


def iou(a: BBox, b: BBox) -> float:
    """Intersection over union of two boxes.

    >>> round(iou((0, 0, 2, 2), (1, 0, 3, 2)), 3)
    0.333
    """
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area if area > 0 else 0.0
