"""Behind ``docrag serve``: one writer thread, a pool of readers, streamed uploads.

Writes (ingest, delete) run one at a time on a single background thread that
owns the only writing :class:`~docrag.api.Index`; each request that reads gets
an ``Index`` of its own from a small pool, so its SQLite connection is never
shared with the writer (WAL: readers see the last commit, never half of one;
each reader's FAISS cache reloads when the generation moves on).

Uploads are streamed straight into ``<index>/uploads/`` with their size
counted as they arrive, and checked by content before anything is queued.

Jobs are kept in ``<index>/jobs/<id>.json`` as well as in memory, rewritten at each
change (atomic rename), so that finished jobs outlive a restart. A job still queued or
running in a process that is gone (the server stopped) reads as failed.

Uploads themselves are received in :mod:`docrag.integrations.uploads`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import logging
import os
import queue
import re
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from docrag.api import Index
from docrag.config import IngestOptions
from docrag.embed import TextEmbedder, get_embedder
from docrag.errors import DocragError
from docrag.index import DB_NAME, LocalStore
from docrag.integrations.uploads import Upload

__all__ = ["Job", "Writer", "ReaderPool", "service_index", "SharedEmbedder"]

log = logging.getLogger("docrag.serve")

JOB_ID = re.compile(r"^[0-9a-f]{32}$")

# ``Index.ingest(..., labels={path: name})`` records ``name`` as the document's
# source; older versions of the API record the (server-side) path instead.
_HAS_LABELS = "labels" in inspect.signature(Index.ingest).parameters


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


def service_index(path: Path, options: IngestOptions, shared: SharedEmbedder) -> Index:
    """An ``Index`` whose embedder is the service's shared one (one model in memory, not one per reader)."""
    return Index(path, options, embedder=shared.get)


class ReaderPool:
    """Up to ``size`` read-only ``Index`` objects, each used by one request at a time."""

    def __init__(self, path: Path, options: IngestOptions, shared: SharedEmbedder, size: int = 4) -> None:
        self._make: Callable[[], Index] = lambda: service_index(path, options, shared)
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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Job":
        job = cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data and f.name != "finished"})
        if job.status in ("done", "failed"):
            job.finished.set()
        return job


class Writer:
    """The single writer: a queue of jobs run in order on one thread.

    Args:
        index: The writing ``Index``; only the worker thread touches it.
        uploads: The folder uploads are stored in (their files are removed when
            their document is deleted, or at once when nothing was indexed).
        keep: How many finished jobs stay queryable.
        jobs_dir: Where jobs are recorded for the next start (default
            ``<uploads>/../jobs``, beside the index's files).
    """

    def __init__(self, index: Index, uploads: Path, keep: int = 1000, jobs_dir: Path | None = None) -> None:
        self.index = index
        self.uploads = uploads
        self.keep = keep
        self.jobs_dir = jobs_dir or uploads.parent / "jobs"
        self._queue: queue.Queue[tuple[Job, Callable[[Job], None]] | None] = queue.Queue()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._read: dict[str, tuple[tuple[int, int], dict[str, Any], int]] = {}  # record -> (stamp, job, pid)

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
        """A job of this run, else of an earlier one (read from its record)."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is not None or not JOB_ID.fullmatch(job_id):
            return job
        return self._load(self.jobs_dir / f"{job_id}.json")

    def jobs(self) -> list[Job]:
        """The jobs of this run and of earlier ones, oldest first (the last ``keep``)."""
        with self._lock:
            mine = dict(self._jobs)
        found = {job.id: job for job in map(self._load, self._records()) if job is not None}
        found.update(mine)  # this run's own are the newest word on them
        return sorted(found.values(), key=lambda j: j.created_at)[-self.keep:]

    def pending(self) -> int:
        # This run's jobs only: an earlier run's unfinished ones read as failed (its process is
        # gone), and /health asks often, so no records are read for it.
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
        self._save(job)
        self._prune()
        self._queue.put((job, work))
        return job

    # -- the records -------------------------------------------------------------

    def _save(self, job: Job) -> None:
        """Record the job as it is now (write then rename: a reader sees the old record or the new)."""
        try:
            self.jobs_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.jobs_dir / f".{job.id}.{os.getpid()}.{threading.get_ident()}.tmp"
            tmp.write_text(json.dumps({"job": job.to_dict(), "pid": os.getpid()}))
            os.replace(tmp, self.jobs_dir / f"{job.id}.json")
        except OSError as exc:  # the job runs all the same; only a later start misses its news
            log.warning("cannot record job %s in %s: %s", job.id, self.jobs_dir, exc)

    def _records(self) -> list[Path]:
        try:
            return [p for p in self.jobs_dir.iterdir() if p.suffix == ".json" and JOB_ID.fullmatch(p.stem)]
        except OSError:
            return []

    def _load(self, path: Path) -> Job | None:
        """The job a record holds (parsed again only when the file changed)."""
        try:
            stat = path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            cached = self._read.get(path.name)
            if cached is None or cached[0] != stamp:
                record = json.loads(path.read_text())
                cached = self._read[path.name] = (stamp, dict(record["job"]), int(record.get("pid", 0)))
            job = Job.from_dict(cached[1])
        except (OSError, ValueError, KeyError, TypeError):  # gone (pruned), or not a job record
            self._read.pop(path.name, None)
            return None
        if job.status in ("queued", "running") and not _alive(cached[2]):
            job.status, job.finished_at = "failed", job.finished_at or job.started_at or job.created_at
            job.error = "the server process that ran this job stopped before it finished"
            job.finished.set()
        return job

    def _prune(self) -> None:
        """Forget the oldest finished records past ``keep``."""
        records = self._records()
        if len(records) <= self.keep:
            return
        jobs = sorted((j for j in map(self._load, records) if j is not None), key=lambda j: j.created_at)
        finished = [j for j in jobs if j.status in ("done", "failed")]
        for job in finished[: max(0, len(jobs) - self.keep)]:
            (self.jobs_dir / f"{job.id}.json").unlink(missing_ok=True)

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
            self._save(job)
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

    def _finish(self, job: Job, status: str, error: str | None) -> None:
        job.status, job.error, job.finished_at = status, error, time.time()
        self._save(job)
        job.finished.set()

    def _ingest(self, job: Job, uploads: list[Upload], tags: dict[str, str]) -> None:
        for i, upload in enumerate(uploads):
            job.files[i] = self._ingest_one(upload, tags)
            self._save(job)

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


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a job's record names the process running it)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True
