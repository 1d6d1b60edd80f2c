"""``docrag serve`` runs searches on its own threads, as many at once as it was given, never on the event loop."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="docrag serve needs FastAPI: pip install 'docrag[serve]'")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx: pip install httpx")

from fastapi.testclient import TestClient  # noqa: E402

from docrag import Index  # noqa: E402
from docrag.config import IngestOptions  # noqa: E402
from docrag.integrations.http import create_app, default_search_threads  # noqa: E402

OPTIONS = IngestOptions(embedder="fake-hash", ocr="never")


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory, fixtures_dir: Path) -> Path:
    path = tmp_path_factory.mktemp("pool") / "ix"
    assert not Index(path, OPTIONS).ingest([fixtures_dir / "report.pdf"]).failures
    return path


def test_the_pool_is_sized_to_the_cores_by_default(index_dir: Path) -> None:
    app = create_app(index_dir, options=OPTIONS)
    assert app.state.docrag.searches._max_workers == default_search_threads() >= 1


def test_searches_run_on_the_search_threads_at_most_n_at_once(index_dir: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    running, peak, threads = [0], [0], set()
    lock = threading.Lock()
    search = Index.search

    def slow(self: Index, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            threads.add(threading.current_thread().name)
        time.sleep(1.0)
        try:
            return search(self, *args, **kwargs)  # type: ignore[arg-type]
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(Index, "search", slow)
    with TestClient(create_app(index_dir, options=OPTIONS, search_threads=2)) as client:
        results: list[int] = []

        def ask() -> None:
            results.append(client.post("/search", json={"query": "fleet vans", "k": 3}).status_code)

        clients = [threading.Thread(target=ask) for _ in range(5)]
        for t in clients:
            t.start()
        time.sleep(0.1)
        t0 = time.monotonic()
        health = client.get("/health")  # answered while every search thread is busy
        waited = time.monotonic() - t0
        for t in clients:
            t.join(30)
    assert results == [200] * 5 and health.status_code == 200
    assert peak[0] == 2, peak
    assert all(name.startswith("docrag-search") for name in threads), threads
    assert waited < 0.6, f"/health waited {waited:.2f} s behind the searches"


def test_search_json_is_what_the_response_model_allows(index_dir: Path) -> None:
    with TestClient(create_app(index_dir, options=OPTIONS)) as client:
        response = client.post("/search", json={"query": "fleet vans", "k": 2})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    hits = response.json()
    assert len(hits) == 2 and all(set(h) >= {"source", "page", "bbox", "score", "text"} for h in hits)
    assert all("line_boxes" not in h and "chunk_id" not in h for h in hits)  # only HitOut's fields
