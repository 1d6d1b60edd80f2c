"""Behind ``docrag serve``: one writer thread, a pool of readers, streamed uploads.

Writes (ingest, delete) run one at a time on a single background thread that
owns the only writing :class:`~docrag.api.Index`; each request that reads gets
an ``Index`` of its own from a small pool, so its SQLite connection is never
shared with the writer (WAL: readers see the last commit, never half of one;
each reader's FAISS cache reloads when the generation moves on).

Uploads are streamed straight into ``<index>/uploads/`` with their size
counted as they arrive, and checked by content before anything is queued.

>>> sanitize_filename("../../etc/passwd"), sanitize_filename("C:\\\\x\\\\a b.pdf"), sanitize_filename("..")
('passwd', 'a b.pdf', 'upload')
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import queue
import re
import threading
import time
import unicodedata
import urllib.parse
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, AsyncIterator, Callable, Iterator, Mapping

from docrag.api import Index
from docrag.config import IngestOptions
from docrag.embed import TextEmbedder, get_embedder
from docrag.errors import DocragError, LoadError
from docrag.index import DB_NAME, LocalStore
from docrag.io.sniff import sniff

__all__ = ["Job", "Upload", "UploadError", "Writer", "ReaderPool", "ServiceIndex", "SharedEmbedder",
           "sanitize_filename", "receive_uploads"]

log = logging.getLogger("docrag.serve")

# ``Index.ingest(..., labels={path: name})`` records ``name`` as the document's
# source; older versions of the API record the (server-side) path instead.
_HAS_LABELS = "labels" in inspect.signature(Index.ingest).parameters


def sanitize_filename(name: str | None, default: str = "upload") -> str:
    """A client's file name reduced to a harmless label: last path part, printable, <= 200 chars.

    The label is only ever shown (as the document's ``source``); it never becomes a path.
    """
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip().lstrip(".").strip()
    return name[:200] or default


@dataclass
class Upload:
    """A file received from a client: where the server stored it, and the name the client gave."""

    path: Path
    label: str


class SharedEmbedder:
    """The index's text embedder, loaded once and shared by the writer and every reader."""

    def __init__(self, path: Path, options: IngestOptions) -> None:
        self.path = path
        self.options = options
        self._embedder: TextEmbedder | None = None
        self._lock = threading.Lock()

    def get(self) -> TextEmbedder:
        with self._lock:
            if self._embedder is None:
                name = self.options.embedder
                if (self.path / DB_NAME).exists():  # the index decides, as in Index.embedder
                    store = LocalStore(self.path, create=False)
                    try:
                        name = store.embedder
                    finally:
                        store.close()
                self._embedder = get_embedder(name, self.options.batch_size)
            return self._embedder


class ServiceIndex(Index):
    """An ``Index`` whose embedder is the service's shared one (one model in memory, not one per reader)."""

    def __init__(self, path: Path, options: IngestOptions, shared: SharedEmbedder) -> None:
        super().__init__(path, options)
        self._shared = shared

    def embedder(self) -> TextEmbedder:
        return self._shared.get()


class ReaderPool:
    """Up to ``size`` read-only ``Index`` objects, each used by one request at a time."""

    def __init__(self, path: Path, options: IngestOptions, shared: SharedEmbedder, size: int = 4) -> None:
        self._make: Callable[[], Index] = lambda: ServiceIndex(path, options, shared)
        self._size = max(1, size)
        self._made = 0
        self._free: queue.LifoQueue[Index] = queue.LifoQueue()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def reader(self) -> Iterator[Index]:
        index = self._checkout()
        try:
            yield index
        finally:
            self._free.put(index)

    def _checkout(self) -> Index:
        try:
            return self._free.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._made < self._size:
                self._made += 1
                return self._make()
        return self._free.get()

    def close(self) -> None:
        while True:
            try:
                self._free.get_nowait().close()
            except queue.Empty:
                return


@dataclass
class Job:
    """One unit of writing work and what came of it."""

    id: str
    kind: str  # "ingest" | "delete"
    status: str = "queued"  # queued | running | done | failed
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    files: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    deleted: int | None = None
    finished: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "finished"}


class Writer:
    """The single writer: a queue of jobs run in order on one thread.

    Args:
        index: The writing ``Index``; only the worker thread touches it.
        uploads: The folder uploads are stored in (their files are removed when
            their document is deleted, or at once when nothing was indexed).
        keep: How many finished jobs stay queryable.
    """

    def __init__(self, index: Index, uploads: Path, keep: int = 1000) -> None:
        self.index = index
        self.uploads = uploads
        self.keep = keep
        self._queue: queue.Queue[tuple[Job, Callable[[Job], None]] | None] = queue.Queue()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # -- submitting --------------------------------------------------------

    def ingest(self, uploads: list[Upload], tags: dict[str, str]) -> Job:
        """Queue the ingestion of stored uploads; returns the queued job."""
        job = Job(id=uuid.uuid4().hex, kind="ingest",
                  files=[{"source": u.label, "status": "queued"} for u in uploads])
        return self._submit(job, lambda j: self._ingest(j, uploads, tags))

    def delete(self, doc_id: str) -> Job:
        """Queue the removal of a document; returns the queued job."""
        job = Job(id=uuid.uuid4().hex, kind="delete")
        return self._submit(job, lambda j: self._delete(j, doc_id))

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def pending(self) -> int:
        with self._lock:
            return sum(j.status in ("queued", "running") for j in self._jobs.values())

    def _submit(self, job: Job, work: Callable[[Job], None]) -> Job:
        with self._lock:
            self._jobs[job.id] = job
            finished = [k for k, j in self._jobs.items() if j.status in ("done", "failed")]
            for key in finished[: max(0, len(self._jobs) - self.keep)]:
                del self._jobs[key]
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="docrag-writer", daemon=True)
                self._thread.start()
        self._queue.put((job, work))
        return job

    def close(self, timeout: float = 30.0) -> None:
        """Stop after the running job (queued ones are dropped) and close the index."""
        with self._lock:
            thread = self._thread
        if thread is not None and thread.is_alive():
            while True:  # drop what has not started
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    self._finish(item[0], "failed", "the server stopped before this job ran")
            self._queue.put(None)
            thread.join(timeout)
        self.index.close()

    # -- the worker ----------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            job, work = item
            job.status, job.started_at = "running", time.time()
            try:
                work(job)
            except DocragError as exc:
                self._finish(job, "failed", str(exc).splitlines()[0])
            except Exception:  # a bug must not kill the only writer
                log.exception("job %s (%s) failed", job.id, job.kind)
                self._finish(job, "failed", "internal error; see the server log")
            else:
                failed = [f["error"] for f in job.files if f.get("status") == "failed"]
                self._finish(job, "failed" if failed else "done", "; ".join(failed) or None)

    @staticmethod
    def _finish(job: Job, status: str, error: str | None) -> None:
        job.status, job.error, job.finished_at = status, error, time.time()
        job.finished.set()

    def _ingest(self, job: Job, uploads: list[Upload], tags: dict[str, str]) -> None:
        for i, upload in enumerate(uploads):
            job.files[i] = self._ingest_one(upload, tags)

    def _ingest_one(self, upload: Upload, tags: dict[str, str]) -> dict[str, Any]:
        path = str(upload.path)
        kwargs: dict[str, Any] = {"tags": tags}
        if _HAS_LABELS:
            kwargs["labels"] = {path: upload.label}
        try:
            report = self.index.ingest([path], **kwargs)
            result = dataclasses.asdict(report.files[0])
        except DocragError as exc:
            result = {"source": path, "status": "failed", "error": str(exc).splitlines()[0]}
        except Exception:
            log.exception("ingesting %s (%s) failed", upload.label, path)
            result = {"source": path, "status": "failed", "error": f"{path}: internal error; see the server log"}
        if result["status"] in ("failed", "unchanged"):  # nothing refers to this copy
            upload.path.unlink(missing_ok=True)
        return _relabel(result, path, upload.label)

    def _delete(self, job: Job, doc_id: str) -> None:
        paths = [Path(d["path"]) for d in self.index.documents() if d["doc_id"] == doc_id] if self.index.exists else []
        job.deleted = self.index.delete(doc_id) if paths else 0
        for p in paths:  # the stored upload goes with its document
            if p.parent.resolve() == self.uploads.resolve():
                p.unlink(missing_ok=True)


def _relabel(value: Any, path: str, label: str) -> Any:
    """``value`` with the server-side path replaced by the client's file name (in messages too)."""
    if isinstance(value, str):
        return value.replace(path, label)
    if isinstance(value, list):
        return [_relabel(v, path, label) for v in value]
    if isinstance(value, dict):
        return {k: _relabel(v, path, label) for k, v in value.items()}
    return value


# -- uploads ------------------------------------------------------------------

FILE_FIELDS = ("file", "files")
_EXTENSIONS = {"pdf": "pdf", "png": "png", "jpeg": "jpg", "tiff": "tif"}
_MAX_FIELD_BYTES = 64 * 1024  # all text fields of one request together


class UploadError(Exception):
    """An upload refused, with the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str = ""
    label: str | None = None
    path: Path | None = None
    fh: IO[bytes] | None = None
    data: bytearray = field(default_factory=bytearray)


class _Collector:
    """python-multipart callbacks: file parts go to ``.incoming-*`` files, text parts to memory."""

    def __init__(self, folder: Path, max_bytes: int, max_files: int) -> None:
        self.folder, self.max_bytes, self.max_files = folder, max_bytes, max_files
        self.files: list[_Part] = []
        self.fields: dict[str, list[str]] = {}
        self.file_bytes = self.field_bytes = 0
        self._part = _Part()
        self._header = [b"", b""]
        self._writes: list[tuple[IO[bytes], bytes]] = []

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {"on_part_begin": self._begin, "on_part_data": self._data, "on_part_end": self._end,
                "on_header_field": lambda d, a, b: self._add_header(0, d[a:b]),
                "on_header_value": lambda d, a, b: self._add_header(1, d[a:b]),
                "on_header_end": self._header_end, "on_headers_finished": self._headers_done}

    def _begin(self) -> None:
        self._part = _Part()

    def _add_header(self, i: int, data: bytes) -> None:
        self._header[i] += data

    def _header_end(self) -> None:
        self._part.headers[self._header[0].strip().lower()] = self._header[1].strip()
        self._header = [b"", b""]

    def _headers_done(self) -> None:
        from python_multipart.multipart import parse_options_header

        raw = self._part.headers.get(b"content-disposition", b"")
        _, options = parse_options_header(raw)
        part = self._part
        part.name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        star = re.search(rb"filename\*=UTF-8''([^;]+)", raw, re.IGNORECASE)
        if star:  # RFC 5987 form, which the parser leaves out
            filename = urllib.parse.unquote_to_bytes(star.group(1).strip(b'"'))
        if filename is None and part.name not in FILE_FIELDS:
            return  # a text field
        if len(self.files) >= self.max_files:
            raise UploadError(400, f"too many files in one upload (at most {self.max_files})")
        part.label = sanitize_filename(filename.decode("utf-8", "replace") if filename else None)
        # The server picks every name on disk; the client's name is only a label.
        part.path = self.folder / f".incoming-{uuid.uuid4().hex}"
        part.fh = open(part.path, "xb")
        self.files.append(part)

    def _data(self, data: bytes, start: int, end: int) -> None:
        chunk = bytes(data[start:end])
        part = self._part
        if part.fh is not None:
            self.file_bytes += len(chunk)
            if self.file_bytes > self.max_bytes:
                raise UploadError(413, f"upload over the limit of {self.max_bytes / 1e6:.0f} MB; "
                                       "send fewer or smaller files, or raise the server's --max-upload-mb")
            self._writes.append((part.fh, chunk))
        else:
            self.field_bytes += len(chunk)
            if self.field_bytes > _MAX_FIELD_BYTES:
                raise UploadError(413, f"form fields over {_MAX_FIELD_BYTES // 1024} KiB")
            part.data += chunk

    def _end(self) -> None:
        part = self._part
        if part.fh is None:
            self.fields.setdefault(part.name, []).append(part.data.decode("utf-8", "replace"))

    def flush(self) -> None:
        for fh, chunk in self._writes:
            fh.write(chunk)
        self._writes.clear()

    def store(self) -> list[Upload]:
        """Close the received files, check what they are and give them their final names."""
        self.flush()
        uploads = []
        for part in self.files:
            assert part.fh is not None and part.path is not None and part.label is not None
            part.fh.close()
            try:
                kind = sniff(part.path)
            except LoadError as exc:
                raise UploadError(400, f"{part.label}: {exc.reason}" + (f"; {exc.hint}" if exc.hint else "")) from None
            final = self.folder / f"{uuid.uuid4().hex}.{_EXTENSIONS[kind]}"
            part.path.replace(final)
            part.path = final
            uploads.append(Upload(final, part.label))
        return uploads

    def discard(self) -> None:
        for part in self.files:
            if part.fh is not None:
                part.fh.close()
            if part.path is not None:
                part.path.unlink(missing_ok=True)


async def receive_uploads(
    headers: Mapping[str, str], stream: AsyncIterator[bytes], folder: Path, max_bytes: int, max_files: int = 100
) -> tuple[list[Upload], dict[str, list[str]]]:
    """Stream a multipart body into ``folder``: the stored files (checked by content) and the text fields.

    Raises:
        UploadError: not multipart (415), too large (413, as soon as the limit
            is passed), malformed, no file, or a file that is not a PDF/image (400).
            Nothing of the request is left in ``folder`` then.
    """
    import anyio
    from python_multipart.multipart import MultipartParser, parse_options_header
    from python_multipart.exceptions import FormParserError

    ctype, params = parse_options_header(headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise UploadError(415, "send the files as multipart/form-data, one 'file' field per file")
    length = headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes + _MAX_FIELD_BYTES + 64 * 1024:
        raise UploadError(413, f"upload over the limit of {max_bytes / 1e6:.0f} MB; "
                               "send fewer or smaller files, or raise the server's --max-upload-mb")
    folder.mkdir(parents=True, exist_ok=True)
    parts = _Collector(folder, max_bytes, max_files)
    try:
        parser = MultipartParser(params[b"boundary"], parts.callbacks())  # type: ignore[arg-type]
        async for chunk in stream:
            parser.write(chunk)
            await anyio.to_thread.run_sync(parts.flush)
        parser.finalize()
        if not parts.files:
            raise UploadError(400, "no file in the upload; send each file in a multipart field named 'file'")
        uploads = await anyio.to_thread.run_sync(parts.store)
    except FormParserError:
        parts.discard()
        raise UploadError(400, "malformed multipart body") from None
    except BaseException:
        parts.discard()
        raise
    return uploads, parts.fields
