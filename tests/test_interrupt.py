"""Interrupting an ingest (Ctrl-C, or a kill) leaves an index that opens, checks sound and resumes."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pymupdf
import pytest

from docrag import Index

ROOT = Path(__file__).resolve().parents[1]
# The CLI in a child process, with the tests' fake embedder. HOLD > 0: after that many pages
# (read in this process: workers=1) every further page waits until a signal ends the process,
# so the ingest is interrupted midway with exactly the documents of those pages committed,
# however fast or slow the machine.
RUNNER = """
import signal, sys, time
# Ctrl-C as a shell gives it: a child inherits an ignored SIGINT from its parent (a test
# process that started servers or pools may have one), and Python then never raises on it.
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {tests!r})
import conftest
import docrag.pipeline
hold = int({hold!r})
if hold:
    real = docrag.pipeline.process_page
    read = []
    def process_page(src, options):
        read.append(1)
        while len(read) > hold:
            time.sleep(0.05)
        return real(src, options)
    docrag.pipeline.process_page = process_page
from docrag.cli import main
main(sys.argv[1:])
"""
FILES = 12


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, fixtures_dir: Path) -> list[Path]:
    """Distinct small PDFs: the report with a different title each (different bytes, same text)."""
    out = tmp_path_factory.mktemp("corpus")
    paths = []
    for i in range(FILES):
        doc = pymupdf.open(fixtures_dir / "report.pdf")
        doc.set_metadata({"title": f"Annual report copy {i}"})
        path = out / f"report-{i:02d}.pdf"
        doc.save(path)
        paths.append(path)
    return paths


def _cmd(index: Path, files: list[Path], hold: int, *extra: str) -> list[str]:
    code = RUNNER.format(tests=str(ROOT / "tests"), hold=hold)
    return [sys.executable, "-c", code, "ingest", *map(str, files), "--index", str(index), "-q",
            "--ocr", "never", "--embedder", "fake-hash", *extra]


def _documents(index: Path, errors: list[str] | None = None) -> int:
    try:
        if not (index / "docrag.sqlite").exists():
            raise sqlite3.OperationalError("no database yet")
        # A plain connection, as docrag's readers open it: it shares the writer's WAL index.
        db = sqlite3.connect(index / "docrag.sqlite", timeout=5)
        try:
            return int(db.execute("SELECT COUNT(*) FROM documents").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error as exc:
        if errors is not None:
            errors.append(str(exc))
        return 0


def _interrupt_after(index: Path, files: list[Path], sig: int, committed: int, hold: int, *extra: str):
    """Run an ingest (held after ``hold`` pages, see RUNNER), send ``sig`` once ``committed``
    documents are in the index, and return (exit status, stdout, stderr, what the poll saw)."""
    proc = subprocess.Popen(_cmd(index, files, hold, *extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    start = time.monotonic()
    seen, timeline, errors = 0, [], []
    while (seen := _documents(index, errors)) < committed and proc.poll() is None and time.monotonic() < start + 120:
        if not timeline or timeline[-1][1:] != (seen, errors[-1:]):
            timeline.append((round(time.monotonic() - start, 2), seen, errors[-1:]))
        time.sleep(0.05)
    ended = proc.poll() is not None
    if not ended:
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    saw = f"signal after {time.monotonic() - start:.1f} s with {seen} document(s) committed" if not ended \
        else f"the ingest ended before {committed} documents were seen ({seen})"
    return proc.returncode, out, err, f"{saw}; polls (s, documents, last error): {timeline}"


def _snapshot(path: Path) -> tuple:
    index = Index(path)
    docs = sorted((d["doc_id"], d["pages"], d["chunks"]) for d in index.documents())
    rows = sorted(tuple(r) for r in index.store().db.execute("SELECT doc_id, page, ordinal, text FROM chunks"))
    top = [(h.doc_id, h.page, h.text) for h in index.search("depot fleet injuries revenue", k=8)]
    index.close()
    return docs, rows, top


def _info(index: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "docrag", "info", str(index)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def clean(corpus: list[Path], tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """The corpus ingested without interruption (once for both signals)."""
    path = tmp_path_factory.mktemp("clean") / "ix"
    subprocess.run(_cmd(path, corpus, 0), check=True, capture_output=True)
    return _snapshot(path)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_an_interrupted_ingest_keeps_what_it_committed_and_resumes(sig: int, corpus: list[Path], clean: tuple,
                                                                    tmp_path: Path) -> None:
    index = tmp_path / "ix"
    code, _, err, saw = _interrupt_after(index, corpus, sig, 2, 6, "--workers", "1")  # 3 pages a file
    if sig == signal.SIGINT:
        assert code == 130, (saw, err)
        assert "interrupted" in err and "Traceback" not in err
    else:
        assert code == -signal.SIGKILL, saw
    kept = _documents(index)
    assert kept == 2, saw  # stopped midway, the documents committed before are there
    info = _info(index)
    assert info.returncode == 0 and "integrity: ok" in info.stdout, info.stdout + info.stderr

    again = subprocess.run(_cmd(index, corpus, 0), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert f"{FILES - kept} indexed, {kept} unchanged" in again.stdout
    assert _info(index).returncode == 0

    assert _snapshot(index) == clean  # no duplicates, nothing missing


@pytest.mark.slow
def test_ctrl_c_stops_the_page_workers(fixtures_dir: Path, tmp_path: Path) -> None:
    """With the worker pool, Ctrl-C exits promptly and cleanly too."""
    src = pymupdf.open(fixtures_dir / "report.pdf")
    files = []
    for i in range(20):
        doc = pymupdf.open()
        for _ in range(3):
            doc.insert_pdf(src)  # 9 pages: read by the pool
        doc.set_metadata({"title": f"long copy {i}"})
        doc.save(tmp_path / f"long-{i:02d}.pdf")
        files.append(tmp_path / f"long-{i:02d}.pdf")
    index = tmp_path / "ix"
    start = time.monotonic()
    code, _, err, saw = _interrupt_after(index, files, signal.SIGINT, 1, 0, "--workers", "2")
    assert code == 130 and "Traceback" not in err, (saw, err)
    assert time.monotonic() - start < 120
    assert 1 <= _documents(index) < len(files)
    assert _info(index).returncode == 0


def test_info_reports_a_damaged_index(fixtures_dir: Path, tmp_path: Path) -> None:
    from docrag import IngestOptions

    with Index(tmp_path / "ix", IngestOptions(ocr="never", embedder="fake-hash")) as index:
        index.ingest([fixtures_dir / "report.pdf"])
        assert index.store().check() == []
        with index.store().db:
            index.store().db.execute("DELETE FROM chunks_fts WHERE rowid = (SELECT MIN(id) FROM chunks)")
            index.store().db.execute("DELETE FROM pages WHERE page = 2")
        assert index.store().check() == ["1 chunks without a full-text row", "1 documents missing page rows"]
    info = _info(tmp_path / "ix")
    assert info.returncode == 1 and "damaged" in info.stderr and "full-text" in info.stderr
