"""An interrupted document resumes from the pages it had read (``docrag/index/journal.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pymupdf
import pytest

import docrag
from docrag import Index, IngestOptions
from docrag.index import journal as journal_module
from docrag.index.journal import PageJournal, discard_journals, pending_journals, prune_journals
from docrag.workers import LocalPages

OPTIONS = IngestOptions(ocr="never", embedder="fake-hash", workers=1)


@pytest.fixture
def journal_text_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Journal text-layer pages too, so the mechanics are tested on fast born-digital pages."""
    monkeypatch.setattr(journal_module, "JOURNALED", ("ocr", "mixed", "text"))


def test_pages_with_regions_and_crops_round_trip(tmp_path: Path, journal_text_pages: None, ocr_pages,
                                                 session_options) -> None:
    pages = ocr_pages("visual.pdf", OPTIONS)
    assert any(getattr(r, "png", None) for p in pages for r in p.regions)  # the case worth testing
    pages.append(ocr_pages("report_scan.pdf", session_options)[1])  # an OCR'd page: words, confidences, skew (the session's reading)
    pages[-1].number = 99
    assert pages[-1].method == "ocr" and pages[-1].lines[0].words
    journal = PageJournal(tmp_path, "doc", "key")
    for page in pages:
        journal.append(page)
    back = PageJournal(tmp_path, "doc", "key").load()
    assert sorted(back) == [p.number for p in pages]
    for page in pages:
        again = back[page.number]
        assert again == page and again.to_dict() == page.to_dict()
        assert [getattr(r, "png", None) for r in again.regions] == [getattr(r, "png", None) for r in page.regions]


def test_torn_lines_failed_pages_and_other_options_are_not_taken(fixtures_dir: Path, tmp_path: Path,
                                                                 journal_text_pages: None) -> None:
    one, two, three = list(docrag.ocr(fixtures_dir / "report.pdf", OPTIONS))
    two.method, two.error = "failed", "report.pdf (page 2): boom"
    journal = PageJournal(tmp_path, "doc", "key")
    for page in (one, two, three):
        journal.append(page)
    with open(journal.path, "ab") as fh:  # a write cut short by a kill
        fh.write(b'{"number": 4, "width": 612')
    assert sorted(PageJournal(tmp_path, "doc", "key").load()) == [1, 3]
    assert PageJournal(tmp_path, "doc", "other").load() == {}
    assert pending_journals(tmp_path) == [{"doc_id": "doc", "pages": 3, "bytes": journal.path.stat().st_size}]
    assert discard_journals(tmp_path, "doc") == 1 and pending_journals(tmp_path) == []


def test_reading_key_ignores_how_pages_are_read() -> None:
    assert OPTIONS.reading_key() == IngestOptions(ocr="never", embedder="minilm", workers=4, chunk_tokens=300,
                                                  engine="ray").reading_key()
    assert OPTIONS.reading_key() != IngestOptions(ocr="auto", workers=1).reading_key()


@pytest.fixture
def long_pdf(fixtures_dir: Path, tmp_path: Path) -> Path:
    src = pymupdf.open(fixtures_dir / "report.pdf")
    doc = pymupdf.open()
    for _ in range(3):
        doc.insert_pdf(src)
    doc.save(tmp_path / "long.pdf")
    return tmp_path / "long.pdf"


def _snapshot(index: Index) -> tuple:
    rows = sorted(tuple(r) for r in index.store().db.execute("SELECT page, ordinal, text, bbox FROM chunks"))
    pages = sorted(tuple(r) for r in index.store().db.execute("SELECT page, method FROM pages"))
    return rows, pages


def test_an_interrupted_document_reads_only_the_pages_it_had_not(long_pdf: Path, tmp_path: Path, journal_text_pages: None,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def stop_at_page_5(source: str, number: int, total: int) -> None:
        if number == 5:
            raise KeyboardInterrupt

    index = Index(tmp_path / "ix", OPTIONS)
    with pytest.raises(KeyboardInterrupt):
        index.ingest([long_pdf], progress=stop_at_page_5)
    index.close()
    assert [j["pages"] for j in pending_journals(tmp_path / "ix")] == [5]
    assert Index(tmp_path / "ix").info()["interrupted"] == {"documents": 1, "pages": 5}
    info = subprocess.run([sys.executable, "-m", "docrag", "info", "--index", str(tmp_path / "ix")], capture_output=True, text=True)
    assert info.returncode == 0 and "interrupted: 1 document(s), 5 OCR'd page(s) kept" in info.stdout, info.stdout

    asked: list = []
    real = LocalPages.read

    def spy(self, doc, password=None, pages=None):  # type: ignore[no-untyped-def]
        asked.append(list(pages) if pages is not None else None)
        return real(self, doc, password, pages)

    monkeypatch.setattr(LocalPages, "read", spy)
    with Index(tmp_path / "ix", OPTIONS) as index:
        report = index.ingest([long_pdf])
        assert report.files[0].status == "indexed" and report.files[0].resumed == 5
        assert report.files[0].pages == 9
        resumed = _snapshot(index)
        assert index.info()["interrupted"] == {"documents": 0, "pages": 0}
    assert asked == [[6, 7, 8, 9]]
    assert pending_journals(tmp_path / "ix") == []

    with Index(tmp_path / "clean", OPTIONS) as clean:
        clean.ingest([long_pdf])
        assert _snapshot(clean) == resumed  # same pages, chunks and boxes as an uninterrupted ingest


def test_changed_reading_options_read_everything_again(long_pdf: Path, tmp_path: Path, journal_text_pages: None) -> None:
    def stop_at_page_3(source: str, number: int, total: int) -> None:
        if number == 3:
            raise KeyboardInterrupt

    with Index(tmp_path / "ix", OPTIONS) as index, pytest.raises(KeyboardInterrupt):
        index.ingest([long_pdf], progress=stop_at_page_3)
    with Index(tmp_path / "ix", OPTIONS.model_copy(update={"figures": False})) as index:
        report = index.ingest([long_pdf])
    assert report.files[0].resumed == 0 and report.files[0].status == "indexed"
    assert pending_journals(tmp_path / "ix") == []  # the stale journal went with the commit


def test_only_ocr_pages_are_journaled_by_default(fixtures_dir: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """mixed.pdf: pages 1 and 3 have a text layer, page 2 is a scan: only page 2 is worth keeping."""
    def stop_at_page_3(source: str, number: int, total: int) -> None:
        if number == 3:
            raise KeyboardInterrupt

    options = IngestOptions(embedder="fake-hash", workers=1)
    with Index(tmp_path / "ix", options) as index, pytest.raises(KeyboardInterrupt):
        index.ingest([fixtures_dir / "mixed.pdf"], progress=stop_at_page_3)
    (kept,) = [PageJournal(tmp_path / "ix", j["doc_id"], options.reading_key()).load()
               for j in pending_journals(tmp_path / "ix")]
    assert sorted(kept) == [2] and kept[2].method in ("ocr", "mixed")

    asked: list = []
    real = LocalPages.read
    monkeypatch.setattr(LocalPages, "read", lambda self, doc, password=None, pages=None:
                        asked.append(list(pages)) or real(self, doc, password, pages))
    with Index(tmp_path / "ix", options) as index:
        report = index.ingest([fixtures_dir / "mixed.pdf"])
    assert report.files[0].resumed == 1 and asked == [[1, 3]]


def test_stale_journals_are_pruned(tmp_path: Path, journal_text_pages: None) -> None:
    import os
    import time

    from docrag.types import Page

    old, new = PageJournal(tmp_path, "old", "k"), PageJournal(tmp_path, "new", "k")
    for journal in (old, new):
        journal.append(Page(number=1, width=612, height=792, method="ocr"))
    month_ago = time.time() - 30 * 86400
    os.utime(old.path, (month_ago, month_ago))
    assert prune_journals(tmp_path) == 1
    assert [j["doc_id"] for j in pending_journals(tmp_path)] == ["new"]


def test_a_journal_round_trip_keeps_every_region_field(tmp_path: Path, journal_text_pages: None, ocr_pages) -> None:
    """Issue #14: regions came back from the journal without their text (tables lost their rows)."""
    from dataclasses import fields

    from docrag.types import Region

    pages = ocr_pages("visual.pdf", OPTIONS)
    regions = [r for p in pages for r in p.regions]
    assert any(r.kind == "table" and r.inner_text for r in regions) and all(r.png for r in regions)
    journal = PageJournal(tmp_path, "doc", "key")
    for page in pages:
        journal.append(page)
    back = [r for p in sorted(PageJournal(tmp_path, "doc", "key").load().items()) for r in p[1].regions]
    assert len(back) == len(regions)
    assert [r.inner_text for r in back] == [r.inner_text for r in regions]
    for got, want in zip(back, regions):
        for f in fields(Region):  # dataclass equality skips png: compare every field by name
            assert getattr(got, f.name) == getattr(want, f.name), f.name


def test_a_resumed_ingest_of_figures_and_tables_equals_an_uninterrupted_one(
        fixtures_dir: Path, tmp_path: Path, journal_text_pages: None) -> None:
    def stop_at_last_page(source: str, number: int, total: int) -> None:
        if number == total:
            raise KeyboardInterrupt

    def chunks(index: Index) -> list:
        return sorted(tuple(r) for r in index.store().db.execute(
            "SELECT page, ordinal, kind, text, bbox, image, context FROM chunks"))

    visual = fixtures_dir / "visual.pdf"
    with Index(tmp_path / "ix", OPTIONS) as index, pytest.raises(KeyboardInterrupt):
        index.ingest([visual], progress=stop_at_last_page)
    with Index(tmp_path / "ix", OPTIONS) as index:
        report = index.ingest([visual])
        assert report.files[0].resumed >= 1
        resumed = chunks(index)
    with Index(tmp_path / "clean", OPTIONS) as clean:
        clean.ingest([visual])
        assert chunks(clean) == resumed
    assert any(kind == "table" and "|" in text for _, _, kind, text, *_ in resumed)
