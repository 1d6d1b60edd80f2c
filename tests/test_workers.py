"""The local page engine: a pool of worker processes reads the same pages as this process, in order."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pymupdf
import pytest

import docrag.workers as workers
from docrag import Index, IngestOptions
from docrag.io import open_document
from docrag.workers import LocalPages, get_page_engine


def _long_pdf(fixtures_dir: Path, out: Path, pages: int = 6) -> Path:
    src = pymupdf.open(fixtures_dir / "report.pdf")
    doc = pymupdf.open()
    while doc.page_count < pages:
        doc.insert_pdf(src, to_page=min(src.page_count, pages - doc.page_count) - 1)
    doc.save(out)
    return out


def _digest(pages) -> list[tuple]:
    return [(p.number, p.method, p.error, [(ln.text, tuple(round(v, 2) for v in ln.bbox)) for ln in p.lines],
             [(r.kind, tuple(round(v, 2) for v in r.bbox)) for r in p.regions]) for p in pages]


@pytest.fixture(scope="module")
def pool() -> LocalPages:
    engine = LocalPages(IngestOptions(ocr="never", workers=2))
    yield engine
    engine.close()


@pytest.mark.slow
def test_the_pool_reads_the_same_pages_as_this_process_in_order(pool: LocalPages, fixtures_dir: Path,
                                                                 tmp_path: Path) -> None:
    path = _long_pdf(fixtures_dir, tmp_path / "long.pdf", pages=7)
    with open_document(path) as doc:
        pooled = list(pool.read(doc))
        alone = list(LocalPages(IngestOptions(ocr="never", workers=1)).read(doc))
    assert [p.number for p in pooled] == list(range(1, 8))
    assert _digest(pooled) == _digest(alone)
    assert pool._pool is not None  # it really went through the workers


def test_a_short_document_is_read_in_this_process(fixtures_dir: Path) -> None:
    engine = LocalPages(IngestOptions(ocr="never", workers=2))
    with open_document(fixtures_dir / "report.pdf") as doc:
        assert len(list(engine.read(doc))) == 3
    assert engine._pool is None


@pytest.mark.slow
def test_ocr_in_workers_equals_ocr_here(fixtures_dir: Path, monkeypatch) -> None:
    monkeypatch.setattr(workers, "MIN_POOL_PAGES", 1)
    opts = IngestOptions(ocr="always", workers=2, figures=False)
    engine = LocalPages(opts)
    try:
        with open_document(fixtures_dir / "page_scan.png") as doc:
            pooled = list(engine.read(doc))
            alone = [p for p in LocalPages(opts.model_copy(update={"workers": 1})).read(doc)]
    finally:
        engine.close()
    assert all(p.method == "ocr" and p.lines for p in pooled)
    # Workers run ONNX with 1 thread each, this process with 2: float sums in another order
    # may flip a borderline character, nothing more.
    for a, b in zip(pooled, alone):
        text_a, text_b = "\n".join(ln.text for ln in a.lines), "\n".join(ln.text for ln in b.lines)
        assert difflib.SequenceMatcher(None, text_a, text_b).ratio() > 0.99, (text_a, text_b)


def _die_on_page_2(source: str, number: int, password: str | None):
    if number == 2:
        os._exit(3)  # a worker crash (segfault, OOM kill) as the pool sees it
    return workers._read_in_worker(source, number, password)


@pytest.mark.slow
def test_a_page_that_kills_its_worker_is_recorded_and_the_rest_go_on(fixtures_dir: Path, tmp_path: Path) -> None:
    path = _long_pdf(fixtures_dir, tmp_path / "long.pdf", pages=6)
    engine = LocalPages(IngestOptions(ocr="never", workers=2))
    engine.work = _die_on_page_2
    try:
        with open_document(path) as doc:
            pages = list(engine.read(doc))
    finally:
        engine.close()
    assert [p.number for p in pages] == [1, 2, 3, 4, 5, 6]
    assert pages[1].method == "failed" and "page 2" in pages[1].error and "died" in pages[1].error
    assert all(p.method == "text" and p.lines for i, p in enumerate(pages) if i != 1)


@pytest.mark.slow
def test_ingest_through_the_pool_equals_ingest_in_process(fixtures_dir: Path, tmp_path: Path) -> None:
    path = _long_pdf(fixtures_dir, tmp_path / "long.pdf", pages=5)

    def run(n: int) -> list[tuple]:
        with Index(tmp_path / f"ix{n}", IngestOptions(ocr="never", embedder="fake-hash", workers=n)) as index:
            report = index.ingest([path])
            assert report.ok
            return [(h.page, h.text, h.bbox) for h in index.search("depot fleet revenue", k=10)]

    assert run(2) == run(1)


def test_unknown_engine_is_a_config_error() -> None:
    from docrag.errors import ConfigError

    with pytest.raises(Exception):
        IngestOptions(engine="spark")
    assert {"local", "ray"} <= set(workers.page_engines.names())
    assert isinstance(get_page_engine(IngestOptions()), LocalPages)
    with pytest.raises(ConfigError, match="known: local, ray"):
        workers.page_engines.create("spark", options=IngestOptions())
