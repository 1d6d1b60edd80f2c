"""The HTTP service: search JSON, uploads and jobs, limits, traversal, auth, embeddings, errors, concurrency."""

from __future__ import annotations

import base64
import json
import re
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="docrag serve needs FastAPI: pip install 'docrag[serve]'")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx: pip install httpx")
pytest.importorskip("python_multipart", reason="uploads need python-multipart: pip install 'docrag[serve]'")

from fastapi.testclient import TestClient  # noqa: E402

from docrag import Index  # noqa: E402
from docrag.config import IngestOptions  # noqa: E402
from docrag.errors import ConfigError, LoadError, StoreError  # noqa: E402
from docrag.integrations import jobs as jobs_module  # noqa: E402
from docrag.integrations.http import create_app, is_loopback, serve  # noqa: E402
from docrag.types import HIT_FIELDS as HIT_KEYS  # noqa: E402

OPTIONS = IngestOptions(embedder="fake-hash", ocr="never")
UPLOAD_NAME = re.compile(r"^[0-9a-f]{32}\.(pdf|png|jpg|tif)$")


@pytest.fixture(scope="module")
def base_index(tmp_path_factory: pytest.TempPathFactory, fixtures_dir: Path) -> Path:
    """report.pdf (text) and visual.pdf (figures, crops) indexed with the fake embedder."""
    path = tmp_path_factory.mktemp("http") / "ix"
    report = Index(path, OPTIONS).ingest([fixtures_dir / "report.pdf", fixtures_dir / "visual.pdf"])
    assert not report.failures
    return path


@pytest.fixture()
def index_dir(base_index: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "ix"
    shutil.copytree(base_index, dst)
    return dst


def make_client(index_dir: Path, **kwargs: object) -> TestClient:
    app = create_app(index_dir, options=OPTIONS, **kwargs)  # type: ignore[arg-type]
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture()
def client(index_dir: Path):
    with make_client(index_dir) as c:
        yield c


def wait_job(client: TestClient, job_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s")


def upload(client: TestClient, name: str, data: bytes, **form: object):
    return client.post("/documents", files={"file": (name, data, "application/octet-stream")}, data=form)


def assert_error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["message"] and body["error"]["type"], body
    assert "Traceback" not in response.text
    return body["error"]


def files_under(root: Path) -> set[Path]:
    """Files the service wrote; SQLite's WAL sidecars come and go with connections."""
    return {p for p in root.rglob("*") if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


# -- search --------------------------------------------------------------------


def test_search_returns_the_json_of_the_cli(client: TestClient, index_dir: Path, capsys) -> None:
    from docrag.cli import main

    hits = client.post("/search", json={"query": "fleet size", "k": 3}).json()
    main(["search", "fleet size", "--index", str(index_dir), "-k", "3", "--json"])
    expected = json.loads(capsys.readouterr().out)
    assert [set(h) for h in hits] == [set(HIT_KEYS)] * 3
    for got, want in zip(hits, expected):
        assert {k: v for k, v in got.items() if k != "image"} == {k: v for k, v in want.items() if k != "image"}


def test_search_filters_and_modes(client: TestClient) -> None:
    def search(**body: object) -> list[dict]:
        response = client.post("/search", json={"query": "revenue chart", "k": 10, **body})
        assert response.status_code == 200, response.text
        return response.json()

    figures = search(kind="figure")
    assert figures and {h["kind"] for h in figures} <= {"figure", "chart"}
    assert all(re.fullmatch(r"/crops/[0-9a-f]{32}\.png", h["image"]) for h in figures if h["image"])
    for pages in ("2-2", "2", [2, 2], [2]):
        assert {h["page"] for h in search(pages=pages)} == {2}
    assert {Path(h["source"]).name for h in search(source="*visual*")} == {"visual.pdf"}
    assert search(tags={"year": "1999"}) == []
    for mode in ("dense", "bm25", "hybrid"):
        assert search(mode=mode)
    by_page = search(group="page")
    assert len({(h["doc_id"], h["page"]) for h in by_page}) == len(by_page)
    assert search(window=1)


@pytest.mark.parametrize("body, status", [
    ({"query": "x", "pages": "5-2"}, 422),
    ({"query": "x", "pages": [0, 3]}, 422),
    ({"query": "x", "mode": "fuzzy"}, 422),
    ({"query": "x", "k": 0}, 422),
    ({"query": "x", "colour": "red"}, 422),
    ({"k": 3}, 422),
    ({"query": "x", "rerank": "/etc/some-model"}, 400),
])
def test_bad_search_requests_are_json_4xx(client: TestClient, body: dict, status: int) -> None:
    assert_error(client.post("/search", json=body), status)


def test_search_on_an_empty_server_finds_nothing(tmp_path: Path) -> None:
    with make_client(tmp_path / "new") as c:
        assert c.post("/search", json={"query": "anything"}).json() == []
        assert c.get("/documents").json() == []
        assert c.get("/health").json()["index"] is False


# -- crops -----------------------------------------------------------------------


def test_crops_are_served_by_name_only(client: TestClient, index_dir: Path, tmp_path: Path) -> None:
    image = next(h["image"] for h in client.post("/search", json={"query": "chart", "kind": "figure"}).json()
                 if h["image"])
    response = client.get(image)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")
    (tmp_path / "secret.png").write_bytes(b"\x89PNG secret")
    for bad in ["/crops/..%2Fdocrag.sqlite", "/crops/%2e%2e%2fdocrag.sqlite", "/crops/%2e%2e", "/crops/..",
                "/crops/..%2F..%2Fsecret.png", "/crops/" + "A" * 32 + ".png", "/crops/" + "0" * 32 + ".png",
                "/crops/" + "0" * 32 + ".png.txt", f"/crops/{'%2F' + str(tmp_path / 'secret.png')}"]:
        response = client.get(bad)
        assert response.status_code in (400, 404), bad
        assert b"secret" not in response.content and b"SQLite" not in response.content


# -- uploads and jobs ----------------------------------------------------------


def test_upload_is_ingested_in_the_background_and_searchable(client: TestClient, index_dir: Path,
                                                             fixtures_dir: Path) -> None:
    data = (fixtures_dir / "mixed.pdf").read_bytes()
    response = upload(client, "Quarterly Mixed.pdf", data, tag=["year=2023", "team=ops"])
    assert response.status_code == 202, response.text
    queued = response.json()
    assert queued["status"] in ("queued", "running") and response.headers["location"] == f"/jobs/{queued['id']}"
    job = wait_job(client, queued["id"])
    assert job["status"] == "done", job
    (report,) = job["files"]
    assert report["source"] == "Quarterly Mixed.pdf" and report["status"] == "indexed" and report["chunks"] > 0
    stored = [p for p in (index_dir / "uploads").iterdir()]
    assert len(stored) == 1 and UPLOAD_NAME.fullmatch(stored[0].name)
    docs = {d["doc_id"]: d for d in client.get("/documents").json()}
    assert docs[report["doc_id"]]["tags"] == {"year": "2023", "team": "ops"}
    assert docs[report["doc_id"]]["chunks"] == report["chunks"]
    hits = client.post("/search", json={"query": "the", "k": 50, "tags": {"year": "2023"}}).json()
    assert hits and {h["doc_id"] for h in hits} == {report["doc_id"]}
    expected = "Quarterly Mixed.pdf" if jobs_module._HAS_LABELS else f"uploads/{stored[0].name}"
    assert {h["source"] for h in hits} == {expected}
    assert str(index_dir) not in json.dumps(hits)  # no server path leaks either way
    assert client.get("/jobs").json()[-1]["id"] == job["id"]


def test_oversize_upload_is_refused_with_413_and_nothing_kept(index_dir: Path, fixtures_dir: Path) -> None:
    before = files_under(index_dir)
    with make_client(index_dir, max_upload_mb=0.01) as c:  # 10 kB; report.pdf is 17 kB
        response = upload(c, "report.pdf", (fixtures_dir / "report.pdf").read_bytes())
        assert_error(response, 413)
        big = b"%PDF-1.7\n" + b"0" * 400_000
        assert_error(upload(c, "big.pdf", big), 413)  # refused from Content-Length, before reading
    assert files_under(index_dir) - before == set()


def test_a_file_that_is_not_a_pdf_is_refused_at_upload(client: TestClient, index_dir: Path) -> None:
    before = files_under(index_dir)
    error = assert_error(upload(client, "annual-report.pdf", b"<!DOCTYPE html><html>Login</html>"), 400)
    assert "annual-report.pdf" in error["message"] and "HTML" in error["message"]
    assert_error(upload(client, "empty.pdf", b""), 400)
    assert files_under(index_dir) == before


def test_a_broken_pdf_fails_its_job_with_one_line(client: TestClient, index_dir: Path, fixtures_dir: Path) -> None:
    truncated = (fixtures_dir / "report.pdf").read_bytes()[:3000]
    response = upload(client, "broken.pdf", truncated)
    assert response.status_code == 202
    job = wait_job(client, response.json()["id"])
    assert job["status"] == "failed" and job["files"][0]["status"] == "failed"
    assert "\n" not in job["error"] and job["error"].startswith("broken.pdf: ")
    assert "uploads" not in job["error"] and str(index_dir) not in json.dumps(job)
    assert list((index_dir / "uploads").iterdir()) == []  # a failed file is not kept
    assert len(client.get("/documents").json()) == 2


@pytest.mark.parametrize("bad", [
    {"content": b"not multipart", "headers": {"content-type": "application/pdf"}},
    {"files": {"tag": (None, "year=2023")}},
    {"files": {"file": ("a.pdf", b"%PDF-1.4 x")}, "data": {"colour": "red"}},
    {"files": {"file": ("a.pdf", b"%PDF-1.4 x")}, "data": {"tag": "no-equals-sign"}},
])
def test_malformed_uploads_are_4xx_and_leave_nothing(client: TestClient, index_dir: Path, bad: dict) -> None:
    before = files_under(index_dir)
    response = client.post("/documents", **bad)
    assert 400 <= response.status_code < 500 and "error" in response.json(), response.text
    assert files_under(index_dir) == before


def test_client_file_names_never_become_paths(client: TestClient, index_dir: Path, tmp_path: Path,
                                              fixtures_dir: Path) -> None:
    data = (fixtures_dir / "page_scan.png").read_bytes()
    outside = files_under(tmp_path) - files_under(index_dir)
    names = ["../../evil.png", "/tmp/evil.png", "%2e%2e%2fevil.png", "..\\..\\evil.png", "....//evil.png", ".."]
    labels = []
    for name in names:
        response = upload(client, name, data)
        assert response.status_code == 202, response.text
        labels.append(wait_job(client, response.json()["id"])["files"][0]["source"])
    assert labels[:5] == ["evil.png", "evil.png", "%2e%2e%2fevil.png", "evil.png", "evil.png"]
    assert labels[5] == "upload"
    assert files_under(tmp_path) - files_under(index_dir) == outside  # nothing written outside the index
    stored = list((index_dir / "uploads").iterdir())
    assert len(stored) == 1 and UPLOAD_NAME.fullmatch(stored[0].name)  # the same bytes, indexed once


def test_delete_runs_on_the_writer_and_removes_the_upload(client: TestClient, index_dir: Path,
                                                          fixtures_dir: Path) -> None:
    job = wait_job(client, upload(client, "scan.png", (fixtures_dir / "page_scan.png").read_bytes()).json()["id"])
    doc_id = job["files"][0]["doc_id"]
    response = client.delete(f"/documents/{doc_id}")
    assert response.status_code == 200 and response.json()["status"] == "done" and response.json()["deleted"] == 1
    assert doc_id not in {d["doc_id"] for d in client.get("/documents").json()}
    assert list((index_dir / "uploads").iterdir()) == []
    assert doc_id not in {h["doc_id"] for h in client.post("/search", json={"query": "the", "k": 100}).json()}
    assert_error(client.delete(f"/documents/{doc_id}"), 404)
    assert_error(client.delete("/documents/..%2F..%2Fetc"), 404)
    assert_error(client.get("/jobs/nope"), 404)


# -- security ------------------------------------------------------------------


def test_a_token_guards_every_route_but_health(index_dir: Path, fixtures_dir: Path) -> None:
    before = files_under(index_dir)
    with make_client(index_dir, token="s3cret") as c:
        error = assert_error(c.post("/search", json={"query": "fleet"}), 401)
        assert error["type"] == "authentication_error"
        assert c.post("/search", json={"query": "fleet"}).headers["www-authenticate"] == "Bearer"
        assert_error(c.post("/search", json={"query": "fleet"}, headers={"Authorization": "Bearer wrong"}), 401)
        assert_error(c.post("/search", json={"query": "fleet"}, headers={"Authorization": "Basic s3cret"}), 401)
        assert_error(upload(c, "report.pdf", (fixtures_dir / "report.pdf").read_bytes()), 401)
        assert_error(c.get("/documents"), 401)
        assert_error(c.post("/v1/embeddings", json={"input": "x"}), 401)
        ok = c.post("/search", json={"query": "fleet"}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.json()
        assert c.get("/health").status_code == 200
        assert c.get("/openapi.json").status_code == 200
    assert files_under(index_dir) == before


def test_serve_refuses_a_public_address_without_a_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DOCRAG_TOKEN", raising=False)
    for host in ("0.0.0.0", "192.168.1.10", "::", "example.com"):
        with pytest.raises(ConfigError, match="token"):
            serve(tmp_path / "ix", host=host, port=8080)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0")


def test_cors_is_off_unless_asked_for(index_dir: Path) -> None:
    headers = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    with make_client(index_dir) as c:
        assert "access-control-allow-origin" not in c.options("/search", headers=headers).headers
    with make_client(index_dir, cors_origins=["https://app.example"]) as c:
        allowed = c.options("/search", headers={**headers, "Origin": "https://app.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"


# -- embeddings, docs, errors ----------------------------------------------------


def test_openai_compatible_embeddings(client: TestClient) -> None:
    from conftest import HashEmbedder

    one = client.post("/v1/embeddings", json={"input": "fleet size", "model": "fake-hash"}).json()
    assert one["object"] == "list" and one["model"] == "fake-hash"
    assert one["usage"] == {"prompt_tokens": 2, "total_tokens": 2}
    (item,) = one["data"]
    assert item["object"] == "embedding" and item["index"] == 0
    np.testing.assert_allclose(item["embedding"], HashEmbedder().embed_query("fleet size"), rtol=1e-6)
    many = client.post("/v1/embeddings", json={"input": ["a", "b c", "d"], "encoding_format": "base64"}).json()
    assert [d["index"] for d in many["data"]] == [0, 1, 2]
    vec = np.frombuffer(base64.b64decode(many["data"][1]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(vec, HashEmbedder().embed_query("b c"), rtol=1e-6)
    assert client.get("/v1/models").json()["data"][0]["id"] == "fake-hash"
    assert assert_error(client.post("/v1/embeddings", json={"input": "x", "model": "ada-002"}), 404)
    assert_error(client.post("/v1/embeddings", json={"input": []}), 400)
    assert_error(client.post("/v1/embeddings", json={"input": [""]}), 400)
    assert_error(client.post("/v1/embeddings", json={"input": [[1, 2, 3]]}), 422)
    assert_error(client.post("/v1/embeddings", json={"input": "x", "dimensions": 3}), 400)


def test_openapi_documents_every_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/search", "/documents", "/documents/{doc_id}", "/jobs/{job_id}", "/crops/{name}", "/health",
                 "/v1/embeddings"):
        assert path in spec["paths"], path
    assert "multipart/form-data" in spec["paths"]["/documents"]["post"]["requestBody"]["content"]
    fields = spec["components"]["schemas"]["SearchRequest"]["properties"]
    assert all(f.get("description") for f in fields.values())
    assert client.get("/docs").status_code == 200


def test_unknown_routes_and_methods_are_json(client: TestClient) -> None:
    assert_error(client.get("/nope"), 404)
    assert_error(client.put("/search"), 405)


@pytest.mark.parametrize("exc, status", [(ConfigError("bad option"), 400), (StoreError("index locked"), 409),
                                         (LoadError("x.pdf", "corrupt"), 422)])
def test_docrag_errors_map_to_4xx(client: TestClient, monkeypatch: pytest.MonkeyPatch, exc: Exception,
                                  status: int) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise exc

    monkeypatch.setattr(Index, "search", fail)
    assert assert_error(client.post("/search", json={"query": "fleet"}), status)["message"] == str(exc)


def test_a_bug_is_a_json_500_without_traceback(client: TestClient, monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals at /srv/index")

    monkeypatch.setattr(Index, "search", boom)
    response = client.post("/search", json={"query": "fleet"})
    error = assert_error(response, 500)
    assert error["type"] == "internal_error" and "secret" not in response.text and "/srv" not in response.text
    assert "secret internals" in caplog.text  # logged for the operator
    assert client.get("/health").status_code == 200  # and the server goes on


# -- concurrency -----------------------------------------------------------------


def test_searches_never_fail_nor_see_half_a_document_while_ingesting(tmp_path: Path, fixtures_dir: Path) -> None:
    path = tmp_path / "ix"
    Index(path, OPTIONS).ingest([fixtures_dir / "report.pdf"])
    with make_client(path) as c:
        stop = threading.Event()
        seen: list[dict[str, int]] = []
        failures: list[str] = []

        def hammer() -> None:
            while not stop.is_set():
                r = c.post("/search", json={"query": "revenue chart figure", "k": 20})
                d = c.get("/documents")
                if r.status_code != 200 or d.status_code != 200:
                    failures.append(f"{r.status_code} {d.status_code} {r.text[:200]} {d.text[:200]}")
                    continue
                seen.append({doc["doc_id"]: doc["chunks"] for doc in d.json()})

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            job = wait_job(c, upload(c, "visual.pdf", (fixtures_dir / "visual.pdf").read_bytes()).json()["id"])
            time.sleep(0.3)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        assert not failures, failures[:3]
        assert job["status"] == "done"
        new_id, final = job["files"][0]["doc_id"], job["files"][0]["chunks"]
        assert {counts.get(new_id, 0) for counts in seen} <= {0, final}
        assert any(new_id not in counts for counts in seen) and any(new_id in counts for counts in seen)
        hits = c.post("/search", json={"query": "chart", "kind": "figure", "k": 5}).json()
        assert hits and {h["doc_id"] for h in hits} == {new_id}  # readers moved to the new generation
