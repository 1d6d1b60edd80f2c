"""Index directory: dedupe, replace, delete, FAISS cache rebuild, embedder mismatch, the writer lock (fake embedder)."""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

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


@contextlib.contextmanager
def _held_write_lock(index_dir: Path) -> Iterator[None]:
    """The index's writer lock held as another process would hold it (its own open file, flock)."""
    with open(index_dir / ".write.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _in_thread(work: Callable[[], object]) -> tuple[threading.Thread, dict[str, object]]:
    """Run ``work`` in a daemon thread; its result (or exception) lands in the returned dict."""
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["result"] = work()
        except BaseException as exc:  # handed to the test thread
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_a_reader_opens_and_searches_while_a_writer_holds_the_lock(
        small_index: Index, capfd: pytest.CaptureFixture[str]) -> None:
    expected = [h.chunk_id for h in small_index.search("fleet tractors", k=3)]
    with _held_write_lock(small_index.path):
        # In a thread: a reader that did wait would block here until the lock is released.
        thread, out = _in_thread(lambda: [h.chunk_id for h in Index(small_index.path, OPTS).search("fleet tractors", k=3)])
        thread.join(timeout=30)
        waited = thread.is_alive()
    thread.join()
    assert not waited, "the reader waited for the writer's lock"
    assert "error" not in out, out.get("error")
    assert out["result"] == expected
    assert "waiting for another writer" not in capfd.readouterr().err


def test_a_waiting_writer_says_so_on_stderr_not_stdout(small_index: Index, fixtures_dir: Path,
                                                       capfd: pytest.CaptureFixture[str]) -> None:
    store = LocalStore(small_index.path, create=False)
    doc_id = store.find_documents(str(fixtures_dir / "report.pdf"))[0]
    err = out = ""
    with _held_write_lock(small_index.path):
        thread, result = _in_thread(lambda: store.delete_document(doc_id))
        deadline = time.monotonic() + 60
        while "waiting for another writer" not in err and time.monotonic() < deadline:
            time.sleep(0.05)
            captured = capfd.readouterr()
            err, out = err + captured.err, out + captured.out
        assert thread.is_alive(), "the writer did not wait for the lock"
    thread.join(timeout=60)
    captured = capfd.readouterr()
    err, out = err + captured.err, out + captured.out
    assert "error" not in result, result.get("error")
    assert result["result"] > 0 and store.stats()["chunks"] == 0  # it wrote once the lock was free
    assert f"waiting for another writer on {small_index.path}" in err
    assert "waiting" not in out  # stdout may be carrying --json


OPEN_AT_ONCE = """
import sys, time
from docrag.index import LocalStore
go = float(sys.argv[3])
while time.time() < go:
    pass
if sys.argv[2] == "reader":  # as Index opens an index that exists
    store = LocalStore(sys.argv[1], create=False)
else:
    store = LocalStore(sys.argv[1], embedder="fake", dim=2)
print(store.meta("embedder"))
"""


def test_processes_creating_and_opening_a_new_index_at_once_all_get_it(tmp_path: Path) -> None:
    """The database file is born under the write lock: a second creator, or a reader that finds the
    file half made, waits for the set-up instead of failing ("database is locked" while switching
    to WAL, or "empty index" when it took the lock first)."""
    import subprocess
    import sys

    for attempt in range(3):  # each a race that the old code lost about one time in three
        path = tmp_path / f"ix{attempt}"
        go = time.time() + 1.2  # after the interpreters have started
        roles = ["writer", "writer", "reader", "reader", "reader"]
        procs = [subprocess.Popen([sys.executable, "-c", OPEN_AT_ONCE, str(path), role, str(go)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for role in roles]
        outs = [p.communicate(timeout=120) for p in procs]
        for role, p, (out, err) in zip(roles, procs, outs):
            if role == "reader" and p.returncode and "no docrag index here" in err:
                continue  # it looked before any file existed: a clear error, and a fair outcome
            assert p.returncode == 0 and out.strip() == "fake", (role, err)
