"""The assembly stage: read pages into chunks, crops and profile, with no index and no model."""

from __future__ import annotations

from pathlib import Path

import docrag
from docrag.chunk.assemble import assemble
from docrag.config import ChunkingOptions, IngestOptions

READ = IngestOptions(ocr="never", workers=1)


def test_text_and_visual_chunks_from_fixture_pages(fixtures_dir: Path) -> None:
    pages = list(docrag.ocr(fixtures_dir / "visual.pdf", READ))
    out = assemble(pages, doc_id="d", source=str(fixtures_dir / "visual.pdf"))
    kinds = [c.kind for c in out.chunks]
    visual = [c for c in out.chunks if c.kind != "text"]
    assert kinds.index("text") == 0 and visual and all(k != "text" for k in kinds[kinds.index(visual[0].kind):])
    assert [c.ordinal for c in out.chunks] == list(range(len(out.chunks)))
    assert len(visual) == sum(len(p.regions) for p in pages)
    # every visual chunk names its crop, and the crop's bytes travel with the assembly
    assert all(c.image and c.image.removeprefix("crops/") in out.crops for c in visual)
    tables = [c for c in visual if c.kind == "table"]
    assert tables and all("|" in c.text for c in tables)  # the table's Markdown rows are in its chunk


def test_profile_tags_and_context_headers(fixtures_dir: Path) -> None:
    pages = list(docrag.ocr(fixtures_dir / "report.pdf", READ))
    out = assemble(pages, "d", "report.pdf", tags={"company": "Acme Freight AS", "year": "2023"})
    assert out.profile["company"] == "Acme Freight AS"  # a tag overrides what the pages say
    assert all(c.context.startswith("Acme Freight AS") for c in out.chunks)
    bare = assemble(pages, "d", "report.pdf", options=ChunkingOptions(context_headers=False))
    assert all(c.context == "" for c in bare.chunks)
    assert [c.text for c in bare.chunks] == [c.text for c in out.chunks]


def test_chunk_size_follows_the_options(fixtures_dir: Path) -> None:
    pages = list(docrag.ocr(fixtures_dir / "report.pdf", READ))
    small = assemble(pages, "d", "r.pdf", options=ChunkingOptions(chunk_tokens=40, chunk_overlap=0))
    large = assemble(pages, "d", "r.pdf", options=ChunkingOptions(chunk_tokens=400, chunk_overlap=0))
    assert len(small.chunks) > len(large.chunks)
    text = lambda a: " ".join(c.text for c in a.chunks if c.kind == "text").split()  # noqa: E731
    assert set(text(small)) == set(text(large))  # no words lost either way
