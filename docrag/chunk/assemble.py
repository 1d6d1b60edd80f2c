"""Assembly: a read document's pages into the chunks that are embedded and indexed.

A pure function of the pages: running headers and footers are marked, the
document profile is read (title, company, report type, fiscal year), text
chunks get their section path and context header, and every figure, chart and
table becomes a visual chunk whose crop is named by its content hash. No index,
no model: what goes into the index can be checked on pages alone.

>>> from docrag.types import Block, Line, Page
>>> page = Page(number=1, width=612, height=792, blocks=[
...     Block([Line("Northwind Corp annual report on fleet size", (72, 100, 400, 112))], (72, 100, 400, 112))])
>>> out = assemble([page], doc_id="d1", source="nw.pdf")
>>> [(c.page, c.kind, c.ordinal) for c in out.chunks]
[(1, 'text', 0)]
>>> out.profile["company"]
'Northwind Corp'
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from docrag.chunk import chunk_page
from docrag.chunk.context import context_header, document_profile, section_of_blocks
from docrag.chunk.visual import referring_sentences, visual_chunks, visual_regions
from docrag.config import ChunkingOptions
from docrag.layout.furniture import mark_furniture
from docrag.types import Chunk, Page

__all__ = ["Assembly", "assemble", "crop_name", "PROFILE_KEYS"]

PROFILE_KEYS = ("title", "company", "report_type", "fiscal_year")
"""Document tags that override the profile read from the pages."""


@dataclass
class Assembly:
    """What one document contributes to the index, apart from its vectors.

    Attributes:
        chunks: Text chunks in reading order, then each region's chunk (a long table's parts);
            ``ordinal`` numbers them.
        crops: Region crops (PNG bytes) by file name; chunks name them as ``crops/<name>``.
        profile: The document's title, company, report type and fiscal year.
    """

    chunks: list[Chunk] = field(default_factory=list)
    crops: dict[str, bytes] = field(default_factory=dict)
    profile: dict[str, str] = field(default_factory=dict)


def assemble(
    pages: list[Page],
    doc_id: str,
    source: str,
    metadata: dict[str, Any] | None = None,
    options: ChunkingOptions | None = None,
    tags: dict[str, str] | None = None,
    ocr_engine: str = "ocr",
    written: Mapping[tuple[int, tuple[float, ...]], str] | None = None,
) -> Assembly:
    """Chunks, crops and profile of a document whose pages have been read.

    Args:
        pages: The document's pages in order (failed pages contribute nothing).
        doc_id: The document's id (sha256 of its bytes).
        source: The path or name the document is indexed under.
        metadata: The PDF's metadata (title, author...), read for the profile.
        options: Chunk size, overlap and context headers.
        tags: Document tags; ``title``, ``company``, ``report_type`` and
            ``fiscal_year`` override what the pages say.
        ocr_engine: The recognizer's name, recorded as how OCR'd chunks were read.
        written: Crops already written out (their ``png`` dropped from the regions, so a long
            document's crops are not all in memory): file names by (page number, region box).
    """
    options = options or ChunkingOptions()
    mark_furniture(pages)
    profile = document_profile(pages, metadata or {}, Path(source).name)
    profile.update({k: v for k, v in (tags or {}).items() if k in PROFILE_KEYS})
    out = Assembly(profile=profile)
    carried = ""
    for page in pages:
        page_chunks = chunk_page(page, doc_id, source, options.chunk_tokens, options.chunk_overlap)
        sections, carried = section_of_blocks(page, carried)
        block_of = {tuple(ln.bbox): i for i, b in enumerate(page.blocks) for ln in b.lines}
        for chunk in page_chunks:
            block = block_of.get(tuple(chunk.line_boxes[0])) if chunk.line_boxes else None
            section = sections[block] if block is not None else ""
            chunk.context = context_header(profile, section) if options.context_headers else ""
        out.chunks += page_chunks
    # Figures and tables after the text, so a page's text chunks keep consecutive ordinals.
    refs = referring_sentences([c.text for c in out.chunks])
    for page in pages:
        for region, parts in zip(visual_regions(page), visual_chunks(page, doc_id, source, refs,
                                                                     max_tokens=options.chunk_tokens)):
            name = crop_name(region.png) if region.png else (written or {}).get((page.number, tuple(region.bbox)))
            if region.png and name:
                out.crops[name] = region.png
            for chunk in parts:  # one, or a long table's parts
                chunk.context = context_header(profile, "") if options.context_headers else ""
                if name:
                    chunk.image = f"crops/{name}"
                out.chunks.append(chunk)
    for i, chunk in enumerate(out.chunks):
        chunk.ordinal = i
        chunk.read_by = "+".join(ocr_engine if part == "ocr" else part for part in chunk.read_by.split("+") if part)
    return out


def crop_name(png: bytes) -> str:
    """A crop's file name in the index's ``crops/`` folder: named by its content.

    >>> crop_name(b"PNG-bytes")[-4:]
    '.png'
    """
    return hashlib.sha256(png).hexdigest()[:32] + ".png"
