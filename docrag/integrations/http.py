"""``docrag serve``: the index as an HTTP retriever service (FastAPI).

Routes: ``POST /search`` (the JSON of ``docrag search --json``), ``GET/POST
/documents`` (uploads are ingested in the background: ``GET /jobs/{id}``),
``DELETE /documents/{doc_id}``, ``GET /crops/{name}``, ``GET /health`` and an
OpenAI-compatible ``POST /v1/embeddings``; OpenAPI docs at ``/docs``. Errors
are ``{"error": {"message", "type"}}`` with a 4xx status for bad requests and
a bare 500 (logged, no traceback) for bugs.

Searches run on a pool of threads sized to the cores (``search_threads``), each with
a reader of its own, and their hits are turned into JSON there too: the event loop
only parses requests and writes responses, so a slow search never holds up another
request, and no more searches run at once than there are cores to run them (more
would only share the cores and stretch every request's latency).

>>> app = create_app("my-index", token="s3cret")  # doctest: +SKIP
>>> serve("my-index", host="0.0.0.0", port=8080)  # doctest: +SKIP
Traceback (most recent call last):
docrag.errors.ConfigError: refusing to listen on 0.0.0.0 without a token; ...
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import json
import logging
import os
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Any, AsyncIterator, Optional

try:  # optional: pip install 'docrag[serve]'; create_app says so when missing
    from fastapi import APIRouter, Depends, FastAPI, Request, Response
    from fastapi.responses import FileResponse
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

    _bearer = HTTPBearer(auto_error=False, description="The server's token (--token or DOCRAG_TOKEN).")
    _MISSING: ImportError | None = None
except ImportError as _exc:  # pragma: no cover - depends on the environment
    _MISSING = _exc

from pydantic import TypeAdapter

from docrag.config import IngestOptions, ServingOptions, options_from_env
from docrag.errors import ConfigError, DocragError, ModelError, StoreError
from docrag.index import parse_tags
from docrag.integrations.jobs import Job, ReaderPool, SharedEmbedder, Writer, service_index
from docrag.integrations.uploads import UploadError, receive_uploads
from docrag.integrations.http_errors import ApiError, CatchAll, install_error_handlers
from docrag.integrations.http_models import DocumentOut, EmbeddingsRequest, ErrorOut, HitOut, JobOut, SearchRequest
from docrag.types import Hit

__all__ = ["create_app", "serve", "is_loopback"]

log = logging.getLogger("docrag.serve")

CROP_NAME = re.compile(r"^[0-9a-f]{32}\.png$")
DOC_ID = re.compile(r"^[0-9a-f]{64}$")
_HITS = TypeAdapter(list[HitOut])  # what FastAPI would check and write for response_model=list[HitOut]


# -- the service ----------------------------------------------------------------


def default_search_threads() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class _Service:
    """What the routes share: index dir, readers, the search threads, the writer, limits."""

    def __init__(self, index_dir: Path, options: IngestOptions, token: str | None, max_upload_mb: float,
                 rerankers: tuple[str, ...], search_threads: int, search_processes: int = 1) -> None:
        self.path = index_dir.resolve()  # upload paths (and so sources) are absolute
        self.token = token
        self.max_bytes = int(max_upload_mb * 1_000_000)
        self.rerankers = rerankers
        self.embedder = SharedEmbedder(self.path, options)
        self.searches = ThreadPoolExecutor(search_threads, thread_name_prefix="docrag-search")
        # A reader per search thread, and one more for the routes that only list or check
        # (documents, health, delete), so they never wait for a search to finish.
        self.readers = ReaderPool(self.path, options, self.embedder, search_threads + 1)
        self.writer = Writer(service_index(self.path, options, self.embedder), self.path / "uploads")
        self.processes = SearchProcesses(self.path, options, search_processes) if search_processes > 1 else None

    def close(self) -> None:
        self.searches.shutdown(wait=True)
        if self.processes is not None:
            self.processes.close()
        self.writer.close()
        self.readers.close()


def _svc(request: Request) -> _Service:
    return request.app.state.docrag  # type: ignore[no-any-return]


async def _check_token(request: Request,
                       cred: Annotated[Optional[HTTPAuthorizationCredentials], Depends(_bearer)] = None) -> None:
    # async: a plain def dependency would send every request through a thread-pool hop
    token = _svc(request).token
    if token is None:
        return
    given = cred.credentials if cred is not None else ""
    if not secrets.compare_digest(given.encode(), token.encode()):
        raise ApiError(401, "missing or wrong bearer token; send 'Authorization: Bearer <token>'",
                       "authentication_error", {"WWW-Authenticate": "Bearer"})


# -- routes (registered in _router(), so that this module imports without FastAPI) ----------


async def search(body: SearchRequest, request: Request) -> Response:
    """The ``k`` best chunks for the query, each with its file, page and box (``docrag search --json``)."""
    svc = _svc(request)
    if body.rerank and body.rerank not in svc.rerankers:
        enabled = ", ".join(svc.rerankers) or "none"
        raise ApiError(400, f"reranker {body.rerank!r} is not enabled on this server (enabled: {enabled}); "
                            "start it with --rerank-model to allow one")
    if body.lexicon:
        raise ApiError(400, "'lexicon' names a file on the server and is not accepted over HTTP; "
                            "use the built-in finance lexicon (the default)")
    root = request.scope.get("root_path", "")
    if svc.processes is not None:
        return Response(await svc.processes.search(body, root), media_type="application/json")
    work = partial(_search_json, svc, body, root)
    return Response(await asyncio.get_running_loop().run_in_executor(svc.searches, work),
                    media_type="application/json")


def _search_json(svc: _Service | _Searcher, body: SearchRequest, root: str) -> bytes:
    """The hits as the JSON of ``list[HitOut]`` (on a search thread: the search and the serialising)."""
    with svc.readers.reader() as index:
        hits = index.search(body.query, body.options()) if index.exists else []
    return _HITS.dump_json(_HITS.validate_python([_hit_json(h, root, svc.path) for h in hits]))


def _hit_json(hit: Hit, root: str, index_dir: Path) -> dict[str, Any]:
    out = hit.to_json()
    out["source"] = _public_source(hit.source, index_dir)
    if hit.image:  # a URL the client can fetch, not a path on the server
        out["image"] = f"{root}/crops/{Path(hit.image).name}"
    return out


def _public_source(source: str, index_dir: Path) -> str:
    """An upload's source without the server's directories (``uploads/<id>.pdf``); ``index_dir``
    is resolved (the service's ``path``).

    Only where ``Index.ingest`` cannot record the client's file name (no ``labels``).
    """
    uploads = str(index_dir / "uploads") + os.sep
    return "uploads/" + source[len(uploads):] if source.startswith(uploads) else source


# -- search processes (create_app(search_processes=N)) ----------------------------------------


class SearchProcesses:
    """``workers`` processes that each run one search at a time, handed out as they come.

    Each process opens its own reader of the index (model, FAISS cache, term index: read
    as it starts) and sees the writer's commits as any reader does. A search goes to the
    first free process over a socket the event loop watches (no thread hops: ~0.3 ms of
    the server's time, where a ``ProcessPoolExecutor`` took ~1.7). The server counts the searches it has out: a
    lone one embeds its query on all cores, as in one process; with others out, each on
    its own core (:func:`docrag.retrieve.crowded`). A process that dies (killed, out of
    memory) is replaced, and its search tried once more on another.
    """

    def __init__(self, path: Path, options: IngestOptions, workers: int) -> None:
        self.workers = workers
        self._args = (str(path), options.model_dump(mode="json"))
        self._free: asyncio.Queue[_Process] | None = None
        self._all: list[_Process] = []
        self._out = 0

    def start(self) -> None:
        """Start the processes (on the event loop, in the app's start-up)."""
        if self._free is None:
            self._free = asyncio.Queue()
            for _ in range(self.workers):
                self._free.put_nowait(self._spawn())

    def _spawn(self) -> _Process:
        proc = _Process(self._args, self.workers)
        self._all.append(proc)
        return proc

    async def search(self, body: SearchRequest, root: str) -> bytes:
        """The hits of ``body`` as JSON, from the first free process."""
        self.start()
        assert self._free is not None
        request = json.dumps([body.model_dump(mode="json"), root, self._out > 0]).encode()
        self._out += 1
        try:
            for attempt in (1, 2):
                proc = await self._free.get()
                call = asyncio.ensure_future(proc.call(request))
                # The process goes back (or is replaced) when its reply is in, even if this
                # request is cancelled meanwhile: a reply left unread would answer the next one.
                call.add_done_callback(lambda done, proc=proc: self._release(proc, done))
                try:
                    status, payload = await asyncio.shield(call)
                except (EOFError, OSError):  # it died mid-search (replaced): another one tries
                    if attempt == 2:
                        raise
                    continue
                if status == "ok":
                    return payload
                kind, message = json.loads(payload)
                raise {"ConfigError": ConfigError, "StoreError": StoreError, "ModelError": ModelError,
                       "Exception": RuntimeError}.get(kind, DocragError)(message)
            raise AssertionError("unreachable")
        finally:
            self._out -= 1

    def _release(self, proc: _Process, call: asyncio.Future[tuple[str, bytes]]) -> None:
        assert self._free is not None
        if proc not in self._all:  # closed meanwhile (the server stops)
            return
        if not call.cancelled() and call.exception() is None:
            self._free.put_nowait(proc)
            return
        log.error("search process %s died (exit code %s); starting another", proc.pid, proc.exitcode())
        self._all.remove(proc)
        proc.close()
        self._free.put_nowait(self._spawn())

    def close(self) -> None:
        for proc in self._all:
            proc.close()
        self._all.clear()


class _Process:
    """One search process and the server's end of its socket.

    A plain interpreter started on :func:`_searcher_entry` (not ``multiprocessing``,
    whose children import the parent's main script again: a user's script without a
    ``__main__`` guard would start servers in a loop).
    """

    def __init__(self, args: tuple[str, dict[str, Any]], workers: int) -> None:
        import socket
        import subprocess
        import sys
        from multiprocessing.connection import Connection

        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])  # where docrag imports from, installed or not
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        # OpenMP pools (torch's embedder, FAISS) sized to this process's share of the cores: N
        # processes each spinning a pool on every core starve one another (sentence-transformers
        # MiniLM, 2 processes on 2 cores, 8 clients: 17 requests/s, against 53 on threads).
        share = str(max(1, default_search_threads() // workers))
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(name, share)
        code = "from docrag.integrations.http import _searcher_entry; _searcher_entry()"
        with theirs:
            self.proc = subprocess.Popen([sys.executable, "-c", code, str(theirs.fileno()), args[0],
                                          json.dumps(args[1])], pass_fds=(theirs.fileno(),), env=env,
                                         stdin=subprocess.DEVNULL)
        self.conn = Connection(ours.detach())
        self.pid = self.proc.pid

    async def call(self, request: bytes) -> tuple[str, bytes]:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        fd = self.conn.fileno()
        loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
        try:
            self.conn.send_bytes(request)
            await ready
        finally:
            loop.remove_reader(fd)
        reply = self.conn.recv_bytes()
        return ("ok" if reply[:1] == b"+" else "error"), reply[1:]

    def exitcode(self) -> int | None:
        return self.proc.poll()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.close()  # the process sees the end of its requests and returns
        try:
            self.proc.wait(5)
        except Exception:  # noqa: BLE001 - stuck: it goes anyway
            self.proc.kill()
            self.proc.wait(5)


class _Searcher:
    """What :func:`_search_json` needs in a search process: the index path and a reader."""

    def __init__(self, path: str, options: dict[str, Any]) -> None:
        opts = IngestOptions(**options)
        self.path = Path(path)
        self.readers = ReaderPool(self.path, opts, SharedEmbedder(self.path, opts), 1)
        with self.readers.reader() as index, contextlib.suppress(DocragError):
            if index.exists:  # the model, the FAISS cache and the term index, before the first search
                index.embedder()  # (an empty or broken index: each search says so, as in one process)
                index.store().warm()


def _searcher_entry() -> None:
    """``python -c`` entry of a search process: ``argv`` = socket fd, index path, options JSON."""
    import signal
    import sys
    from multiprocessing.connection import Connection

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the server stops us
    _searcher_main(Connection(int(sys.argv[1])), sys.argv[2], json.loads(sys.argv[3]))


def _searcher_main(conn: Any, path: str, options: dict[str, Any]) -> None:
    """A search process: requests in, ``+`` and the JSON or ``-`` and the error out, until the pipe closes."""
    from docrag.retrieve import crowded

    searcher = _Searcher(path, options)
    while True:
        try:
            body, root, others = json.loads(conn.recv_bytes())
        except (EOFError, OSError):  # the server closed its end (it stops)
            return
        try:
            with crowded(others):
                reply = b"+" + _search_json(searcher, SearchRequest(**body), root)
        except DocragError as exc:
            reply = b"-" + json.dumps([type(exc).__name__, str(exc)]).encode()
        except Exception:  # a bug: logged here, a bare 500 there
            log.exception("search failed in a search process")
            reply = b"-" + json.dumps(["Exception", "internal error; see the server log"]).encode()
        conn.send_bytes(reply)


def documents(request: Request) -> list[dict[str, Any]]:
    """Every document of the index, oldest first."""
    svc = _svc(request)
    with svc.readers.reader() as index:
        docs = index.documents() if index.exists else []
    return [{**d, "source": _public_source(d["source"], svc.path)} for d in docs]


async def upload(request: Request, response: Response) -> dict[str, Any]:
    """Store the files and queue their ingestion; poll ``GET /jobs/{id}`` for the report.

    Files are checked by content at once (400 when not a PDF or image); the
    size limit applies to all files of the request together (413).
    """
    svc = _svc(request)
    try:
        uploads, fields = await receive_uploads(request.headers, request.stream(), svc.path / "uploads",
                                                svc.max_bytes)
    except UploadError as exc:
        raise ApiError(exc.status, str(exc), "too_large" if exc.status == 413 else "invalid_request_error") from None
    unknown = sorted(set(fields) - {"tag"})
    try:
        if unknown:
            raise ConfigError(f"unknown form field(s) {', '.join(unknown)}; send 'file' and optionally 'tag'")
        tags = parse_tags(fields.get("tag", []))
    except ConfigError:
        for u in uploads:
            u.path.unlink(missing_ok=True)
        raise
    job = svc.writer.ingest(uploads, tags)
    response.headers["Location"] = f"{request.scope.get('root_path', '')}/jobs/{job.id}"
    return job.to_dict()


def delete_document(doc_id: str, request: Request, response: Response) -> dict[str, Any]:
    """Remove a document everywhere (by the writer, after any running ingest); 200 when done within 30 s."""
    svc = _svc(request)
    if not DOC_ID.fullmatch(doc_id):
        raise ApiError(404, f"no document {doc_id!r}: a doc_id is the 64-hex sha256 listed by GET /documents",
                       "not_found")
    with svc.readers.reader() as index:
        present = index.exists and index.store().has_document(doc_id)
    if not present:
        raise ApiError(404, f"no document {doc_id} in the index", "not_found")
    job = svc.writer.delete(doc_id)
    if not job.finished.wait(30.0):
        response.status_code = 202
    return job.to_dict()


def jobs(request: Request) -> list[dict[str, Any]]:
    """Queued, running and recent finished jobs, oldest first."""
    return [j.to_dict() for j in _svc(request).writer.jobs()]


def job(job_id: str, request: Request) -> dict[str, Any]:
    """Status (queued/running/done/failed) and the per-file ingest report."""
    found: Job | None = _svc(request).writer.get(job_id)
    if found is None:
        raise ApiError(404, f"no job {job_id!r} (finished jobs are kept for the last 1000)", "not_found")
    return found.to_dict()


def crop(name: str, request: Request) -> FileResponse:
    """The PNG named by a hit's ``image``."""
    path = _svc(request).path / "crops" / name
    if not CROP_NAME.fullmatch(name) or not path.is_file():
        raise ApiError(404, f"no crop {name!r}", "not_found")
    return FileResponse(path, media_type="image/png")


def models(request: Request) -> dict[str, Any]:
    """The one model ``/v1/embeddings`` serves: the index's text embedder."""
    name = _svc(request).embedder.get().name
    return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "docrag"}]}


def embeddings(body: EmbeddingsRequest, request: Request) -> dict[str, Any]:
    """Vectors from the index's text embedder, in OpenAI's response format.

    ``usage`` counts words and punctuation, an approximation of tokens.
    """
    embedder = _svc(request).embedder.get()
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts or len(texts) > 2048 or any(not t for t in texts):
        raise ApiError(400, "input must be a non-empty text or a list of 1 to 2048 non-empty texts")
    if sum(map(len, texts)) > 4_000_000:
        raise ApiError(413, "input over 4 million characters; send fewer texts per request", "too_large")
    if body.model is not None and body.model != embedder.name:
        raise ApiError(404, f"model {body.model!r} is not served here; this index embeds with {embedder.name!r}",
                       "model_not_found")
    if body.dimensions is not None and body.dimensions != embedder.dim:
        raise ApiError(400, f"dimensions must be {embedder.dim} (the embedder's) when given")
    vectors = embedder.embed_documents(texts)
    data = [{"object": "embedding", "index": i,
             "embedding": base64.b64encode(v.astype("<f4").tobytes()).decode() if body.encoding_format == "base64"
             else [float(x) for x in v]} for i, v in enumerate(vectors)]
    tokens = sum(len(re.findall(r"\w+|[^\w\s]", t)) for t in texts)
    return {"object": "list", "data": data, "model": embedder.name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def health(request: Request) -> dict[str, Any]:
    """Liveness and the index's state (no token needed)."""
    svc = _svc(request)
    with svc.readers.reader() as index:
        generation = index.store().generation if index.exists else None
    return {"status": "ok", "index": generation is not None, "generation": generation,
            "jobs_pending": svc.writer.pending()}


_ERRORS: dict[int | str, dict[str, Any]] = {s: {"model": ErrorOut} for s in (400, 401, 404, 409, 413, 415, 422, 500)}
_UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"], "properties": {
        "file": {"type": "array", "items": {"type": "string", "format": "binary"},
                 "description": "PDF or image files (repeat the field for several)."},
        "tag": {"type": "array", "items": {"type": "string"}, "description": "KEY=VALUE tags for all files."}}}}}}}


def _router() -> APIRouter:
    """Every route but ``/health``, behind the token check."""
    r = APIRouter(dependencies=[Depends(_check_token)], responses=_ERRORS)
    r.add_api_route("/search", search, methods=["POST"], response_model=list[HitOut], summary="Search the index",
                    tags=["search"])
    r.add_api_route("/documents", documents, methods=["GET"], response_model=list[DocumentOut],
                    summary="List documents", tags=["documents"])
    r.add_api_route("/documents", upload, methods=["POST"], status_code=202, response_model=JobOut,
                    summary="Upload documents", tags=["documents"], openapi_extra=_UPLOAD_BODY)
    r.add_api_route("/documents/{doc_id}", delete_document, methods=["DELETE"], response_model=JobOut,
                    summary="Delete a document", tags=["documents"],
                    responses={202: {"model": JobOut, "description": "Queued behind a running job; poll /jobs/{id}."}})
    r.add_api_route("/jobs", jobs, methods=["GET"], response_model=list[JobOut], summary="Recent jobs",
                    tags=["documents"])
    r.add_api_route("/jobs/{job_id}", job, methods=["GET"], response_model=JobOut,
                    summary="A job's status and report", tags=["documents"])
    r.add_api_route("/crops/{name}", crop, methods=["GET"], response_class=FileResponse,
                    summary="A figure or table crop", tags=["search"], responses={200: {"content": {"image/png": {}}}})
    r.add_api_route("/v1/models", models, methods=["GET"], summary="The embedding model (OpenAI-compatible)",
                    tags=["embeddings"])
    r.add_api_route("/v1/embeddings", embeddings, methods=["POST"], summary="Embed texts (OpenAI-compatible)",
                    tags=["embeddings"])
    return r


# -- the app --------------------------------------------------------------------


def create_app(
    index_dir: str | Path,
    token: str | None = None,
    max_upload_mb: float = 200,
    options: IngestOptions | None = None,
    *,
    rerankers: tuple[str, ...] | list[str] = (),
    cors_origins: tuple[str, ...] | list[str] = (),
    search_threads: int | None = None,
    search_processes: int = 1,
) -> FastAPI:
    """The FastAPI app serving the index at ``index_dir`` (created by the first upload when missing).

    Args:
        token: When set, every route but ``/health`` and the docs needs ``Authorization: Bearer <token>``.
        max_upload_mb: Limit on the files of one upload together (413 past it).
        options: How uploads are ingested; defaults come from ``DOCRAG_*`` variables.
        rerankers: Cross-encoders clients may ask for in ``rerank`` (none by default: a
            client-chosen model name is a path or a download on the server).
        cors_origins: Origins allowed by CORS; empty (the default) leaves CORS off.
        search_threads: Searches that run at once, each on its own thread with its own SQLite
            connection and FAISS cache; others wait their turn (default: the cores).
        search_processes: Above 1, searches run in that many processes of their own instead (one
            search at a time each, handed out as they come; ``search_threads`` is then
            ignored). Within one process the Python parts of concurrent searches take
            turns on the interpreter lock, which holds a busy server below its cores
            (filings-dev, 8 clients on 2 cores: 1.63 cores busy with threads, ~1.9 with 2
            processes). Each process holds its own model and caches (~250 MB).

    >>> from fastapi.testclient import TestClient  # doctest: +SKIP
    >>> TestClient(create_app("my-index")).post("/search", json={"query": "fleet size"}).json()[0]["page"]  # doctest: +SKIP
    2
    """
    if _MISSING is not None:
        raise ImportError(f"docrag serve needs FastAPI ({_MISSING}): pip install 'docrag[serve]' "
                          "(or: pip install fastapi uvicorn python-multipart)")
    svc = _Service(Path(index_dir), options or options_from_env(IngestOptions), token or None, max_upload_mb,
                   tuple(rerankers), max(1, search_threads or default_search_threads()), max(1, int(search_processes)))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if svc.processes is not None:
            svc.processes.start()
        yield
        svc.close()

    app = FastAPI(title="docrag", summary="Search PDFs and scans with page-and-box citations.",
                  version=_version(), lifespan=lifespan)
    app.state.docrag = svc
    install_error_handlers(app)
    app.include_router(_router())
    app.add_api_route("/health", health, methods=["GET"], summary="Health", tags=["service"])
    app.add_middleware(CatchAll)
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["*"],
                           allow_headers=["Authorization", "Content-Type"])
    return app


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("docrag")
    except Exception:  # not installed (a source checkout)
        return "0"


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("::1"), is_loopback("0.0.0.0")
    (True, True, True, False)
    """
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


def serve(
    index_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8080,
    token: str | None = None,
    *,
    max_upload_mb: float = 200,
    options: IngestOptions | None = None,
    rerankers: tuple[str, ...] | list[str] = (),
    cors_origins: tuple[str, ...] | list[str] = (),
    log_level: str = "info",
    search_threads: int | None = None,
    search_processes: int = 1,
) -> None:
    """Run the service with uvicorn (one server process: it holds the index's only writer;
    ``search_processes`` > 1 runs searches in processes of their own, see :func:`create_app`).

    Raises:
        ConfigError: ``host`` is not loopback and there is no token (``token`` or ``DOCRAG_TOKEN``).
    """
    token = token or options_from_env(ServingOptions).token
    if token is None and not is_loopback(host):
        raise ConfigError(f"refusing to listen on {host} without a token; pass --token or set DOCRAG_TOKEN "
                          "(or bind to 127.0.0.1)")
    try:
        import uvicorn
    except ImportError:
        raise ImportError("docrag serve needs uvicorn: pip install 'docrag[serve]'") from None
    app = create_app(index_dir, token, max_upload_mb, options, rerankers=rerankers, cors_origins=cors_origins,
                     search_threads=search_threads, search_processes=search_processes)
    uvicorn.run(app, host=host, port=port, log_level=log_level, workers=1)
