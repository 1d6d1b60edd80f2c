"""Index directory: dedupe, replace, delete, FAISS cache rebuild, embedder mismatch (fake embedder)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from docrag import Index, IngestOptions
from docrag.errors import StoreError
from docrag.index import LocalStore

OPTS = IngestOptions(ocr="never", embedder="fake-hash")


@pytest.fixture()
def small_index(tmp_path: Path, fixtures_dir: Path) -> Index:
    index = Index(tmp_path / "ix", OPTS)
    report = index.ingest([fixtures_dir / "report.pdf"])
    assert report.totals()["indexed"] == 1
    return index


def test_reingest_same_bytes_is_a_noop(small_index: Index, fixtures_dir: Path, tmp_path: Path) -> None:
    before = small_index.info()
    report = small_index.ingest([fixtures_dir / "report.pdf"])
    assert report.files[0].status == "unchanged"
    copy = tmp_path / "same-bytes.pdf"
    shutil.copy(fixtures_dir / "report.pdf", copy)
    assert small_index.ingest([copy]).files[0].status == "unchanged"
    after = small_index.info()
    assert (after["documents"], after["chunks"], after["generation"]) == (before["documents"], before["chunks"], before["generation"])


def test_changed_file_at_same_path_replaces_its_chunks(tmp_path: Path, fixtures_dir: Path) -> None:
    import pymupdf

    path = tmp_path / "doc.pdf"
    shutil.copy(fixtures_dir / "report.pdf", path)
    index = Index(tmp_path / "ix", OPTS)
    index.ingest([path])
    doc = pymupdf.open(fixtures_dir / "report.pdf")
    doc.delete_page(2)
    doc.save(path)
    report = index.ingest([path])
    assert report.files[0].status == "replaced"
    docs = index.documents()
    assert len(docs) == 1 and docs[0]["pages"] == 2
    assert {h.page for h in index.search("Northwind", k=50)} <= {1, 2}


def test_delete_removes_from_sqlite_and_faiss(small_index: Index, fixtures_dir: Path) -> None:
    store = small_index.store()
    assert store.ensure_vectors().index.ntotal == store.stats()["chunks"] > 0
    assert small_index.delete(str(fixtures_dir / "report.pdf")) == 1
    assert small_index.info()["chunks"] == 0
    assert store.ensure_vectors().index.ntotal == 0
    assert small_index.search("Northwind") == []
    fts = store.db.execute("SELECT COUNT(*) FROM chunks_fts").fetchone()[0]
    assert fts == 0


@pytest.mark.parametrize("damage", ["missing", "corrupt", "stale"])
def test_faiss_cache_is_rebuilt_from_sqlite(small_index: Index, damage: str) -> None:
    path = small_index.path
    expected = [h.chunk_id for h in small_index.search("fleet tractors", k=3)]
    small_index.close()
    faiss_file = path / "text.faiss"
    if damage == "missing":
        faiss_file.unlink()
    elif damage == "corrupt":
        faiss_file.write_bytes(b"not a faiss index")
    else:
        stamp = path / "text.faiss.json"
        stamp.write_text(stamp.read_text().replace('"generation": ', '"generation": 99'))
    reopened = Index(path, OPTS)
    assert [h.chunk_id for h in reopened.search("fleet tractors", k=3)] == expected
    assert (path / "text.faiss").stat().st_size > 100


def test_hits_carry_provenance(small_index: Index) -> None:
    hits = small_index.search("battery-electric delivery vans", k=3)
    assert len(hits) == 3
    for h in hits:
        assert h.source.endswith("report.pdf") and len(h.doc_id) == 64 and 1 <= h.page <= 3
        x0, y0, x1, y1 = h.bbox
        assert 0 <= x0 < x1 <= 612 and 0 <= y0 < y1 <= 792 and h.kind == "text"
        cx0, cy0, cx1, cy1 = h.chunk_bbox
        assert cx0 <= x0 and cy0 <= y0 and x1 <= cx1 and y1 <= cy1  # evidence lies in its chunk
        assert h.line_boxes and all(cx0 - 0.01 <= b[0] and b[2] <= cx1 + 0.01 for b in h.line_boxes)
    vans = next(h for h in small_index.search("battery-electric delivery vans", k=20) if "1,150 battery" in h.text)
    assert vans.bbox != vans.chunk_bbox  # narrowed to the sentence that matched
    spans = [i for i, (a, b) in enumerate(vans.line_spans) if "1,150" in vans.text[a:b] or "battery" in vans.text[a:b]]
    assert any(vans.line_boxes[i][1] >= vans.bbox[1] - 0.01 and vans.line_boxes[i][3] <= vans.bbox[3] + 0.01 for i in spans)


def test_other_embedder_is_refused(small_index: Index) -> None:
    with pytest.raises(StoreError, match="fake-hash"):
        LocalStore(small_index.path, embedder="minilm", dim=384)


def test_missing_index_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="docrag ingest"):
        Index(tmp_path / "nothing").search("x")
