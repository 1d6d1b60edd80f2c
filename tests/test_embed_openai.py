"""The ``openai`` embedder against a live ``docrag serve`` on loopback (and a mock for what it cannot do)."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="docrag serve needs FastAPI: pip install 'docrag[serve]'")
pytest.importorskip("uvicorn", reason="a live docrag serve needs uvicorn: pip install 'docrag[serve]'")
httpx = pytest.importorskip("httpx", reason="the openai embedder needs httpx: pip install httpx")

import uvicorn  # noqa: E402
from conftest import HashEmbedder  # noqa: E402

from docrag import Index  # noqa: E402
from docrag.config import IngestOptions  # noqa: E402
from docrag.embed import EMBEDDERS, TextEmbedder  # noqa: E402
from docrag.embed.openai_compat import OpenAIEmbedder, from_name, parse_name  # noqa: E402
from docrag.errors import ConfigError, ModelError  # noqa: E402
from docrag.integrations.http import create_app  # noqa: E402

OPTIONS = IngestOptions(ocr="never", embedder="fake-hash", figures=False)
TEXTS = [
    "What was Northwind Logistics' consolidated revenue in fiscal 2023?",
    "fleet size", "Fleet SIZE!", "battery-electric delivery vans", "Pinecrest Freight Lines, Boise, Idaho",
    "$4.82 billion", "1,150", "a", "the the the the", "Überseehafen Größe café naïve",
    "revenue chart figure", "table 2: quarterly revenue by region", "x" * 3000, "line one\nline two\ttab",
    "émissions de CO₂ par véhicule", "42", "on-time delivery rate 97.3 %", "warehouse automation capex",
    "Q1 Q2 Q3 Q4", "   padded   text   ",
]


class LiveServer:
    """``docrag serve``'s app under uvicorn in a thread, on a free loopback port; stops cleanly."""

    def __init__(self, index_dir: Path, **app_kwargs: Any) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))  # uvicorn takes the bound socket: no race for the port
        self.port = self._sock.getsockname()[1]
        app = create_app(index_dir, options=OPTIONS, **app_kwargs)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the live docrag serve did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self._sock.close()
        assert not self.thread.is_alive(), "uvicorn did not stop"


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory, fixtures_dir: Path) -> Path:
    path = tmp_path_factory.mktemp("openai") / "ix"
    report = Index(path, OPTIONS).ingest([fixtures_dir / "report.pdf"])
    assert not report.failures, report.failures
    return path


@pytest.fixture(scope="module")
def live(index_dir: Path) -> Iterator[LiveServer]:
    with LiveServer(index_dir) as server:
        yield server


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("DOCRAG_TOKEN", raising=False)


def recording_client() -> tuple[Any, list[dict[str, Any]]]:
    """An httpx client that keeps the JSON body of every request it sends."""
    bodies: list[dict[str, Any]] = []
    client = httpx.Client(event_hooks={"request": [lambda r: bodies.append(json.loads(r.content))]})
    return client, bodies


# -- against the live server ------------------------------------------------------


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_vectors_equal_the_local_embedders_through_a_live_serve(live: LiveServer, encoding: str) -> None:
    emb = OpenAIEmbedder(live.url, model="fake-hash", encoding_format=encoding)  # type: ignore[arg-type]
    assert isinstance(emb, TextEmbedder)
    got = emb.embed_documents(TEXTS)
    want = HashEmbedder().embed_documents(TEXTS)
    assert got.shape == (len(TEXTS), 64) and got.dtype == np.float32 and got.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(emb.embed_query("fleet size"), HashEmbedder().embed_query("fleet size"), atol=1e-5)
    assert emb.dim == 64 and emb.name == f"openai:fake-hash@{live.url}"
    assert emb.embed_documents([]).shape == (0, 64)


def test_without_a_model_the_servers_own_name_is_recorded(live: LiveServer) -> None:
    emb = OpenAIEmbedder(live.url + "/")
    assert emb.name == f"openai:fake-hash@{live.url}" and emb.dim == 64
    assert parse_name(emb.name) == ("fake-hash", live.url)
    again = from_name(emb.name, batch_size=5)
    assert again.model == "fake-hash" and again.base_url == live.url and again.batch_size == 5


def test_more_texts_than_a_batch_go_in_several_requests_in_order(live: LiveServer) -> None:
    client, bodies = recording_client()
    emb = OpenAIEmbedder(live.url, model="fake-hash", batch_size=3, http_client=client)
    got = emb.embed_documents(TEXTS)
    assert [len(b["input"]) for b in bodies] == [3, 3, 3, 3, 3, 3, 2]
    assert [t for b in bodies for t in b["input"]] == TEXTS
    np.testing.assert_allclose(got, HashEmbedder().embed_documents(TEXTS), atol=1e-5, rtol=0)


def test_a_token_guarded_server_needs_the_key(index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with LiveServer(index_dir, token="s3cret") as server:
        with pytest.raises(ModelError, match=r"401.*bearer token.*OPENAI_API_KEY or DOCRAG_TOKEN"):
            OpenAIEmbedder(server.url, model="fake-hash").embed_query("fleet")
        with pytest.raises(ModelError, match="401"):
            OpenAIEmbedder(server.url, model="fake-hash", api_key="wrong").embed_query("fleet")
        ok = OpenAIEmbedder(server.url, model="fake-hash", api_key="s3cret").embed_query("fleet")
        np.testing.assert_allclose(ok, HashEmbedder().embed_query("fleet"), atol=1e-5)
        monkeypatch.setenv("DOCRAG_TOKEN", "s3cret")
        assert OpenAIEmbedder(server.url, model="fake-hash").embed_documents(["a", "b"]).shape == (2, 64)
        assert "s3cret" not in repr(OpenAIEmbedder(server.url)) + OpenAIEmbedder(server.url, "m").name


def test_a_server_error_is_retried_then_a_model_error(live: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: object, texts: list[str]) -> np.ndarray:
        raise RuntimeError("model crashed")

    monkeypatch.setattr(HashEmbedder, "embed_documents", broken)
    client, bodies = recording_client()
    emb = OpenAIEmbedder(live.url, model="fake-hash", max_retries=2, backoff=0.01, http_client=client)
    with pytest.raises(ModelError, match=r"answered 500: internal server error.*gave up after 3 tries"):
        emb.embed_documents(["fleet size"])
    assert len(bodies) == 3


def test_a_refusal_is_not_retried_and_carries_the_servers_message(live: LiveServer) -> None:
    client, bodies = recording_client()
    emb = OpenAIEmbedder(live.url, model="ada-002", backoff=0.01, http_client=client)
    with pytest.raises(ModelError, match=r"404: model 'ada-002' is not served here.*fake-hash"):
        emb.embed_query("fleet")
    assert len(bodies) == 1
    with pytest.raises(ModelError, match=r"404.*check base_url"):
        OpenAIEmbedder(live.url.removesuffix("/v1") + "/v2", backoff=0.01).embed_query("fleet")


def test_blank_texts_are_embedded_not_refused(live: LiveServer) -> None:
    got = OpenAIEmbedder(live.url).embed_documents(["", "fleet", "  "])
    want = HashEmbedder().embed_documents(["", "fleet", "  "])
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_an_unreachable_server_is_a_model_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    emb = OpenAIEmbedder(f"http://127.0.0.1:{port}/v1", max_retries=1, backoff=0.01, timeout=5)
    with pytest.raises(ModelError, match=r"cannot reach .*gave up after 2 tries"):
        emb.embed_query("fleet")


# -- what a live docrag serve never does (a mock transport) ------------------------


def mock_server(answers: list[Any]) -> tuple[Any, list[Any]]:
    """A client whose server answers from ``answers`` in turn: (status, json, headers) or a vector size."""
    seen: list[Any] = []

    def handle(request: Any) -> Any:
        seen.append(request)
        answer = answers[min(len(seen), len(answers)) - 1]
        if isinstance(answer, int):
            texts = json.loads(request.content)["input"]
            data = [{"object": "embedding", "index": i, "embedding": [3.0] + [4.0] * (answer - 1)}
                    for i in reversed(range(len(texts)))]  # out of order on purpose
            return httpx.Response(200, json={"object": "list", "data": data, "model": "m"})
        status, body, headers = answer
        if isinstance(body, bytes):  # what json= cannot write (NaN)
            return httpx.Response(status, content=body, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return httpx.Client(transport=httpx.MockTransport(handle)), seen


def test_429_and_503_are_retried_honouring_retry_after() -> None:
    busy = (429, {"error": {"message": "rate limited"}}, {"Retry-After": "0"})
    client, seen = mock_server([busy, (503, {"error": "loading"}, {}), 2])
    emb = OpenAIEmbedder("http://mock/v1", model="m", backoff=0.01, http_client=client)
    started = time.monotonic()
    np.testing.assert_allclose(emb.embed_documents(["a", "b"]), [[0.6, 0.8], [0.6, 0.8]], atol=1e-6)
    assert len(seen) == 3 and time.monotonic() - started < 5
    assert seen[0].headers.get("authorization") is None


def test_a_change_of_dimension_is_a_model_error() -> None:
    client, _ = mock_server([4, 4, 8])
    emb = OpenAIEmbedder("http://mock/v1", model="m", batch_size=1, http_client=client)
    assert emb.embed_documents(["a", "b"]).shape == (2, 4) and emb.dim == 4
    with pytest.raises(ModelError, match="changed dimension from 4 to 8"):
        emb.embed_query("c")


@pytest.mark.parametrize("body, match", [
    ({"data": []}, "expected 1 embeddings in 'data', got 0"),
    ({"oops": 1}, "got no"),
    ({"data": [{"index": 0, "embedding": [0.0, 0.0]}]}, "zero vector"),
    ({"data": [{"index": 0, "embedding": "not base64!"}]}, "malformed"),
    ({"data": [{"index": 0}]}, "malformed"),
    (b'{"data": [{"index": 0, "embedding": [1.0, NaN]}]}', "malformed.*NaN"),
    ({"data": [{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [1.0]}]}, "expected 1 embeddings"),
])
def test_malformed_answers_are_model_errors(body: dict | bytes, match: str) -> None:
    client, _ = mock_server([(200, body, {})])
    with pytest.raises(ModelError, match=match):
        OpenAIEmbedder("http://mock/v1", http_client=client).embed_query("a")


# -- by name -------------------------------------------------------------------------


def test_registered_as_openai_and_configured_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "openai" in EMBEDDERS.names()
    monkeypatch.delenv("DOCRAG_OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match="DOCRAG_OPENAI_BASE_URL"):
        EMBEDDERS.create("openai", batch_size=8)
    monkeypatch.setenv("DOCRAG_OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    monkeypatch.setenv("DOCRAG_OPENAI_MODEL", "minilm")
    emb = EMBEDDERS.create("openai", batch_size=8)
    assert isinstance(emb, OpenAIEmbedder) and emb.batch_size == 8
    assert emb.name == "openai:minilm@http://127.0.0.1:9/v1"  # no request needed when the model is known


@pytest.mark.parametrize("bad", ["openai:m", "openai:m@ftp://x", "minilm", "openai:m@http://"])
def test_bad_names_say_how_to_write_one(bad: str) -> None:
    with pytest.raises(ConfigError, match="openai:MODEL@BASE_URL"):
        parse_name(bad)
    with pytest.raises(ConfigError):
        OpenAIEmbedder("localhost:8080")
