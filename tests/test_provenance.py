"""Issue #15: every hit says how its page was read and how sure the reading is; old indexes upgrade in place."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from docrag import Index, IngestOptions


def test_hits_carry_how_they_were_read_and_the_evidence_confidence(built_index) -> None:
    index, _ = built_index
    scanned = index.search("zero lost-time injuries at the Tromso depot", k=10, source="*report_scan.pdf")
    digital = index.search("zero lost-time injuries at the Tromso depot", k=10, source="report.pdf")
    assert scanned and digital
    assert all(h.read_by == "ppocr" and 0.5 <= h.confidence < 1.0 for h in scanned)
    assert all(h.read_by == "text-layer" and h.confidence == 1.0 for h in digital)
    for h in scanned:
        assert set(h.to_json()) >= {"read_by", "confidence"}


def test_min_confidence_filters_before_ranking(built_index) -> None:
    index, _ = built_index
    everything = index.search("fleet vans depot", k=50)
    assert any(h.read_by != "text-layer" for h in everything)
    sure = index.search("fleet vans depot", k=50, min_confidence=0.999)
    assert sure and all(h.read_by == "text-layer" for h in sure)
    ids = {h.chunk_id for h in everything}
    assert {h.chunk_id for h in sure} != ids


def test_langchain_and_cli_show_the_reading(built_index, capsys) -> None:
    from docrag.cli import main
    from docrag.integrations.langchain import DocragRetriever

    index, _ = built_index
    docs = DocragRetriever(index=index, k=3, search_kwargs={"source": "*report_scan.pdf"}).invoke("fleet vans")
    assert docs and all(d.metadata["read_by"] == "ppocr" and d.metadata["confidence"] < 1 for d in docs)
    main(["search", "fleet vans", "--index", str(index.path), "--json", "--min-confidence", "0.999"])
    hits = json.loads(capsys.readouterr().out)
    assert hits and all(h["read_by"] == "text-layer" and h["confidence"] == 1.0 for h in hits)


def test_a_version_2_index_is_upgraded_in_place(tmp_path: Path, fixtures_dir: Path) -> None:
    path = tmp_path / "ix"
    with Index(path, IngestOptions(ocr="never", embedder="fake-hash", workers=1)) as index:
        index.ingest([fixtures_dir / "report.pdf"])
        before = index.search("fleet", k=3)
    db = sqlite3.connect(path / "docrag.sqlite")  # what a version-2 index looks like
    for column in ("read_by", "line_conf", "confidence"):
        db.execute(f"ALTER TABLE chunks DROP COLUMN {column}")
    db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with Index(path) as index:
        after = index.search("fleet", k=3)
        assert [h.chunk_id for h in after] == [h.chunk_id for h in before]
        assert index.store().meta("schema_version") == "3"
        assert all(h.confidence == 1.0 for h in after)
