"""``docrag serve --search-processes N``: searches in processes of their own; jobs seen by every process and restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="docrag serve needs FastAPI: pip install 'docrag[serve]'")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx: pip install httpx")

from fastapi.testclient import TestClient  # noqa: E402

from docrag.config import IngestOptions  # noqa: E402
from docrag.integrations.http import create_app  # noqa: E402
from docrag.integrations.jobs import Job, Writer  # noqa: E402

QUERIES = ["fleet size", "safety incidents", "revenue by region", "maintenance costs", "the chart of sales"]


@pytest.fixture(scope="module")
def served(built_index, tmp_path_factory: pytest.TempPathFactory):
    """The session's real index (MiniLM: a search process loads it itself), and what one process answers."""
    import shutil

    path = tmp_path_factory.mktemp("workers") / "ix"
    shutil.copytree(built_index[0].path, path)
    with TestClient(create_app(path, options=IngestOptions())) as client:
        expected = {q: client.post("/search", json={"query": q, "k": 4}).json() for q in QUERIES}
    assert all(isinstance(hits, list) and hits for hits in expected.values()), expected
    return path, expected


def test_search_processes_answer_what_one_process_does(served) -> None:
    path, expected = served
    with TestClient(create_app(path, options=IngestOptions(), search_processes=2)) as client:
        procs = client.app.state.docrag.processes
        assert len({p.pid for p in procs._all} - {os.getpid()}) == 2
        if Path(f"/proc/{procs._all[0].pid}/environ").exists():  # OpenMP pools sized to a share of the cores
            environ = Path(f"/proc/{procs._all[0].pid}/environ").read_bytes().split(b"\0")
            assert any(v.startswith(b"OMP_NUM_THREADS=") for v in environ)
        got: dict[str, list] = {}

        def ask(q: str) -> None:
            got[q] = client.post("/search", json={"query": q, "k": 4}).json()

        threads = [threading.Thread(target=ask, args=(q,)) for q in QUERIES]  # at once: both processes work
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert got == expected
        assert all(p.exitcode() is None for p in procs._all)


def test_a_search_process_that_dies_is_replaced(served) -> None:
    path, expected = served
    with TestClient(create_app(path, options=IngestOptions(), search_processes=2)) as client:
        procs = client.app.state.docrag.processes
        before = [p.pid for p in procs._all]
        os.kill(before[0], signal.SIGKILL)
        time.sleep(0.2)
        for q in QUERIES:  # the dead one's turn comes: its search goes to another, and it is replaced
            response = client.post("/search", json={"query": q, "k": 4})
            assert response.status_code == 200 and response.json() == expected[q]
        after = [p.pid for p in procs._all]
        assert before[0] not in after and len(after) == 2 and all(p.exitcode() is None for p in procs._all)
    assert procs._all == []


def test_search_processes_start_on_an_empty_index(tmp_path: Path) -> None:
    (tmp_path / "ix").mkdir()
    with TestClient(create_app(tmp_path / "ix", options=IngestOptions(), search_processes=2)) as client:
        response = client.post("/search", json={"query": "fleet", "k": 1})
        assert response.status_code == 200 and response.json() == []
        assert all(p.exitcode() is None for p in client.app.state.docrag.processes._all)


def test_search_processes_stop_with_the_server(served) -> None:
    path, _ = served
    with TestClient(create_app(path, options=IngestOptions(), search_processes=2)) as client:
        procs = list(client.app.state.docrag.processes._all)
        assert client.post("/search", json={"query": "fleet", "k": 1}).status_code == 200
    assert all(p.exitcode() is not None for p in procs)


# -- jobs ------------------------------------------------------------------------


class _NoIndex:
    def close(self) -> None:
        pass


def test_a_job_is_seen_by_another_process_and_after_a_restart(tmp_path: Path) -> None:
    ours = Writer(_NoIndex(), tmp_path / "uploads")  # type: ignore[arg-type]
    job = Job(id="ab" * 16, kind="delete")
    ours._submit(job, lambda j: setattr(j, "deleted", 3))
    assert job.finished.wait(10) and job.status == "done"
    other = Writer(_NoIndex(), tmp_path / "uploads")  # type: ignore[arg-type]  # another process, or the next start
    seen = other.get(job.id)
    assert seen is not None and seen.to_dict() == job.to_dict() and seen.finished.is_set()
    assert [j.id for j in other.jobs()] == [job.id] and other.pending() == 0
    assert other.get("../" + job.id) is None and other.get("cd" * 16) is None
    ours.close()


def test_a_job_of_a_process_that_is_gone_reads_failed(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    record = {"job": Job(id="ef" * 16, kind="ingest", status="running", started_at=time.time()).to_dict(),
              "pid": gone.pid}
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / f"{'ef' * 16}.json").write_text(json.dumps(record))
    writer = Writer(_NoIndex(), tmp_path / "uploads")  # type: ignore[arg-type]
    job = writer.get("ef" * 16)
    assert job is not None and job.status == "failed" and "stopped before it finished" in (job.error or "")
    assert writer.pending() == 0


def test_finished_job_records_are_pruned_past_keep(tmp_path: Path) -> None:
    writer = Writer(_NoIndex(), tmp_path / "uploads", keep=3)  # type: ignore[arg-type]
    for i in range(5):
        job = Job(id=f"{i:032x}", kind="delete", created_at=1000.0 + i)
        writer._submit(job, lambda j: None)
        assert job.finished.wait(10)
    left = sorted(p.stem for p in (tmp_path / "jobs").glob("*.json"))
    assert left == [f"{i:032x}" for i in (2, 3, 4)]  # the oldest finished go first
    writer.close()
