"""The ray page engine on a local Ray: the same pages, chunks and search results as the local engine."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import sys
from pathlib import Path

import pymupdf
import pytest

ray = pytest.importorskip("ray", reason="the ray engine needs Ray Data: pip install 'docrag[ray]'")
pytest.importorskip("ray.data", reason="the ray engine needs Ray Data: pip install 'docrag[ray]'")

from docrag import Index, IngestOptions  # noqa: E402
from docrag.cli import main  # noqa: E402
from docrag.integrations.ray import RayPages, _read  # noqa: E402
from docrag.io import open_document  # noqa: E402
from docrag.workers import get_page_engine  # noqa: E402

QUERIES = ["parcels sorted per day in Memphis", "zero lost-time injuries at the Tromso depot",
           "how many battery-electric vans are in the fleet", "revenue growth"]
# A scan at 200 dpi reads the same words in two thirds of the time.
OPTIONS = dict(embedder="fake-hash", dpi=200)


def _pages_of(src: Path, out: Path, pages: list[int], top: float = 1.0) -> Path:
    """A PDF of some pages of ``src`` (1-based), repeated as listed; ``top``: the upper part of
    each page kept (a crop box), so a scan has fewer lines to OCR."""
    with pymupdf.open(src) as doc, pymupdf.open() as new:
        for n in pages:
            new.insert_pdf(doc, from_page=n - 1, to_page=n - 1)
        if top < 1.0:
            for page in new:
                box = page.rect
                page.set_cropbox(pymupdf.Rect(box.x0, box.y0, box.x1, box.y0 + box.height * top))
        new.save(out)
    return out


@pytest.fixture(scope="module")
def local_ray():
    """A small Ray on this machine, started by the test (so the engine leaves it running)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def indexes(local_ray, fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The same files, born-digital and scanned, ingested with the ray engine and with the local one."""
    # The top third of the scan's first page (its title and first paragraphs): OCR is most of this
    # file's time (about 5 s a full page on 2 cores, read once by each engine).
    scan = _pages_of(fixtures_dir / "report_scan.pdf", tmp_path_factory.mktemp("scan") / "report_scan_p1.pdf", [1],
                     top=0.35)
    files = [fixtures_dir / "report.pdf", scan]
    out = {}
    for engine in ("ray", "local"):
        index = Index(tmp_path_factory.mktemp(engine) / "ix", IngestOptions(engine=engine, **OPTIONS))
        report = index.ingest(files)
        assert report.ok and not report.failures, report.failures
        assert [f.pages_ocr for f in report.files] == [0, 1]  # the scan really went through OCR
        out[engine] = index
    yield out
    for index in out.values():
        index.close()


def _hits(index: Index, query: str) -> list[tuple]:
    return [(h.doc_id, h.source, h.page, h.kind, h.text, tuple(h.bbox), round(h.score, 6), h.image)
            for h in index.search(query, k=8)]


def _rows(index: Index, sql: str) -> list[tuple]:
    with sqlite3.connect(index.path / "docrag.sqlite") as db:
        return db.execute(sql).fetchall()


@pytest.mark.slow
def test_the_engine_is_registered_and_uses_the_callers_ray(local_ray) -> None:
    engine = get_page_engine(IngestOptions(engine="ray"))
    assert isinstance(engine, RayPages)
    assert engine.resources({"CPU": 2.0}) == {"num_cpus": 1.0}
    assert RayPages(IngestOptions(ocr_engine="florence2")).resources({"CPU": 8, "GPU": 1}) == {"num_cpus": 1.0,
                                                                                                "num_gpus": 1.0}
    engine.close()
    assert ray.is_initialized()  # a Ray the caller started is the caller's to stop


@pytest.mark.slow
def test_ray_reads_the_same_pages_in_order(local_ray, fixtures_dir: Path) -> None:
    # The rest of an interrupted document (whole documents are read by the `indexes` fixture,
    # whose pages and chunks are compared below): one Ray run, each pool start costs seconds.
    opts = IngestOptions(engine="ray", ocr="never")
    with open_document(fixtures_dir / "report.pdf") as doc:
        rest = list(RayPages(opts).read(doc, pages=[2, 3]))
        assert list(RayPages(opts).read(doc, pages=[])) == []
        here = list(get_page_engine(opts.model_copy(update={"engine": "local", "workers": 1})).read(doc))
    assert [p.number for p in rest] == [2, 3]
    assert [p.to_dict() for p in rest] == [p.to_dict() for p in here[1:]]


@pytest.mark.slow
def test_search_results_equal_the_local_engine(indexes) -> None:
    for query in QUERIES:
        hits = _hits(indexes["ray"], query)
        assert hits, query
        assert hits == _hits(indexes["local"], query), query


@pytest.mark.slow
def test_stored_pages_and_chunks_equal_the_local_engine(indexes) -> None:
    pages = "SELECT doc_id, page, width, height, rotation, method, reason, error, orientation, skew " \
            "FROM pages ORDER BY doc_id, page"
    chunks = "SELECT doc_id, page, ordinal, kind, text FROM chunks ORDER BY doc_id, ordinal"
    for sql in (pages, chunks):
        assert _rows(indexes["ray"], sql) == _rows(indexes["local"], sql)
    assert len(_rows(indexes["ray"], pages)) == 4


def _die_on_page_2(doc, number: int, options):
    if number == 2:
        os._exit(3)  # a worker crash (segfault, OOM kill) as Ray sees it
    return _read(doc, number, options)


@pytest.mark.slow  # Ray takes a while to notice a dead actor: about 30 s
def test_a_page_that_kills_its_actor_is_recorded_and_the_rest_go_on(local_ray, fixtures_dir: Path,
                                                                     tmp_path: Path) -> None:
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this file
    # One actor: after the death, the pages that could have been in flight with page 2 (two
    # per actor) are read alone, each in a run (and an actor) of its own.
    engine = RayPages(IngestOptions(engine="ray", ocr="never", figures=False, workers=1))
    engine.work = _die_on_page_2
    with open_document(_pages_of(fixtures_dir / "report.pdf", tmp_path / "four.pdf", [1, 2, 3, 1])) as doc:
        pages = list(engine.read(doc))
    assert [p.number for p in pages] == [1, 2, 3, 4]
    assert pages[1].method == "failed" and "page 2" in pages[1].error and "died" in pages[1].error
    assert all(p.method == "text" and p.lines for i, p in enumerate(pages) if i != 1)


@pytest.mark.slow
def test_cli_ingest_with_engine_ray(local_ray, fixtures_dir: Path, tmp_path: Path, capsys) -> None:
    ix = tmp_path / "ix"
    try:
        main(["ingest", str(fixtures_dir / "report.pdf"), "--index", str(ix), "--engine", "ray",
              "--ocr", "never", "--embedder", "fake-hash", "-q"])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "1 indexed" in out
    main(["search", "parcels sorted per day in Memphis", "--index", str(ix), "--json", "-k", "1"])
    hit = json.loads(capsys.readouterr().out)[0]
    assert hit["source"].endswith("report.pdf") and hit["page"] >= 1


def test_missing_ray_says_how_to_install_it(monkeypatch) -> None:
    from docrag.integrations.ray import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install 'docrag\[ray\]'"):
        import_ray()
