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


def test_a_long_table_is_cut_between_rows_into_parts_that_fit_the_embedder(fixtures_dir: Path) -> None:
    from docrag.chunk import approx_tokens

    pages = list(docrag.ocr(fixtures_dir / "visual.pdf", READ))
    whole = assemble(pages, "d", "v.pdf", options=ChunkingOptions(chunk_tokens=2000, chunk_overlap=0))
    cut = assemble(pages, "d", "v.pdf", options=ChunkingOptions(chunk_tokens=40, chunk_overlap=0))
    tables = [c for c in whole.chunks if c.kind == "table"]
    parts = [c for c in cut.chunks if c.kind == "table"]
    long = [t for t in tables if approx_tokens(t.text) > 40]
    assert long and len(parts) > len(tables)  # the fixture has tables longer than 40 tokens
    for table in long:
        mine = [p for p in parts if p.bbox == table.bbox and p.page == table.page]
        assert len(mine) >= 2 and all(p.image == table.image for p in mine)  # one box, one crop
        rows = [r for r in table.text.split("\n") if r.startswith("|")]
        head = rows[:2] if len(rows) > 2 and set(rows[1]) <= set("|-: ") else []
        assert all(p.text.split("\n")[0] == table.text.split("\n")[0] for p in mine)  # its kind (and caption)
        assert all(h in p.text for p in mine for h in head)  # the header row goes with every part
        got = [r for p in mine for r in p.text.split("\n") if r.startswith("|") and r not in head]
        assert got == [r for r in rows if r not in head]  # every row once, in order
    assert [c.ordinal for c in cut.chunks] == list(range(len(cut.chunks)))
