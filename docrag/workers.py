"""Page engines: where the pages of a document are read.

``local`` reads pages in a bounded pool of worker processes (models loaded
once per worker, pages streamed in order, at most two in flight per worker),
or in this process when ``workers`` is 1 or the document is short. ``ray``
runs the same :func:`~docrag.pipeline.read_page` on a Ray cluster
(:mod:`docrag.integrations.ray`, a plugin declared as an entry point of the
``docrag.page_engines`` group). Every engine yields the pages of one
document in page order, each already laid out, failures recorded on the page.

>>> from docrag.config import IngestOptions, share_threads, usable_cores
>>> from docrag.io import open_document
>>> engine = get_page_engine(IngestOptions(ocr="never", workers=1))
>>> with open_document("fixtures/data/report.pdf") as doc:  # doctest: +SKIP
...     [p.number for p in engine.read(doc)]
[1, 2, 3]
"""

from __future__ import annotations

import ctypes
import functools
import multiprocessing
import signal
import sys
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Iterator, Protocol, Sequence

from docrag.config import IngestOptions, share_threads, usable_cores
from docrag.io import open_document
from docrag.io.document import Document
from docrag.pipeline import failed_page, read_page
from docrag.registry import Registry
from docrag.types import Page

__all__ = ["PageEngine", "LocalPages", "get_page_engine", "page_engines", "auto_workers", "trim_heap"]

# Shorter documents are read in this process: starting workers costs more than it saves.
MIN_POOL_PAGES = 4
IN_FLIGHT_PER_WORKER = 2


class PageEngine(Protocol):
    """Reads the pages of an open document, in order.

    ``pages`` (1-based numbers, ascending) limits the read to those pages: the rest
    of an interrupted ingest. ``None`` reads them all.
    """

    def read(self, doc: Document, password: str | None = None,
             pages: Sequence[int] | None = None) -> Iterator[Page]: ...

    def close(self, now: bool = False) -> None: ...


# Engines at the edge (``ray``, in docrag.integrations) are plugins: pyproject.toml's
# "docrag.page_engines" entry points name them, so this module never imports them.
page_engines: Registry[PageEngine] = Registry("page engine", entry_points="docrag.page_engines")


def get_page_engine(options: IngestOptions) -> PageEngine:
    """The page engine named by ``options.engine``."""
    return page_engines.create(options.engine, options=options)


def auto_workers() -> int:
    """Worker processes for ``workers=0``: one per usable core."""
    return usable_cores()


class LocalPages:
    """Pages read on this machine: in a process pool, or in this process.

    The pool starts on the first document long enough to need it and is kept
    for the next ones (``close()`` stops it). Workers use the ``spawn`` start
    method (the parent may hold torch's thread pools, which do not survive a
    fork), ignore SIGINT (Ctrl-C is the parent's to handle) and split the
    cores between them (``DOCRAG_THREADS``). A worker that dies on a page
    (crash, out of memory) is replaced, the pages it had in flight are read
    again one at a time, and the page that kills a worker even alone is
    recorded as failed.
    """

    def __init__(self, options: IngestOptions) -> None:
        self.options = options
        self.work = _read_in_worker  # what a worker runs per page (a module-level function: it is pickled)
        self.workers = options.workers or auto_workers()
        self._pool: ProcessPoolExecutor | None = None

    def read(self, doc: Document, password: str | None = None,
             pages: Sequence[int] | None = None) -> Iterator[Page]:
        numbers = list(range(1, doc.page_count + 1) if pages is None else pages)
        if self.workers <= 1 or len(numbers) < MIN_POOL_PAGES:
            for number in numbers:
                page = read_page(doc.page(number), self.options)
                trim_heap()
                yield page
            return
        yield from self._read_pooled(doc, password, numbers)

    def _read_pooled(self, doc: Document, password: str | None, numbers: list[int]) -> Iterator[Page]:
        todo = deque(numbers)  # pages not sent yet
        pending: deque[tuple[int, Future[Page]]] = deque()
        # Pages in flight when a worker died. Any of them may have killed it, so each
        # is sent again alone: one that kills a worker even then is the culprit.
        suspects: set[int] = set()

        def fill() -> None:
            limit = 1 if suspects else self.workers * IN_FLIGHT_PER_WORKER
            while todo and len(pending) < limit:
                number = todo.popleft()
                pending.append((number, self._executor().submit(self.work, doc.source, number, password)))

        fill()
        while pending:
            number, future = pending.popleft()
            try:
                page = future.result()
            except BrokenProcessPool:
                self._restart()
                if number not in suspects:
                    lost = [number] + [n for n, _ in pending]
                    pending.clear()
                    suspects.update(lost)
                    todo.extendleft(reversed(lost))
                    fill()
                    continue
                page = failed_page(doc.page(number), f"{doc.source} (page {number}): the worker reading it "
                                                     "died (crash or out of memory)")
            suspects.discard(number)
            fill()
            yield page

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = multiprocessing.get_context("spawn")
            threads = max(1, auto_workers() // self.workers)
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker,
                                             initargs=(self.options, threads))
        return self._pool

    def _restart(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None

    def close(self, now: bool = False) -> None:
        """Stop the workers; pages not started are dropped, and with ``now`` those being read too."""
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        if now:  # Ctrl-C: don't wait for a page being OCR'd (Python < 3.14 has no terminate_workers())
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)


def trim_heap() -> None:
    """Hand the heap's free memory back to the system (glibc's ``malloc_trim``; elsewhere nothing).

    A page's rasters and model activations are freed when it is read, but glibc keeps the
    freed memory in its arenas (one per thread that allocated) for the next allocations:
    a page worker sat at 540-650 MB between pages instead of 260-310 (bench/memory.py).
    Trimming costs a few milliseconds a page.

    >>> trim_heap()
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or None (musl, macOS, Windows: no such call)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the symbols already loaded: libc's, with glibc
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


@page_engines.register("local")
def _local(options: IngestOptions) -> LocalPages:
    return LocalPages(options)



# -- inside a worker process -------------------------------------------------

_options: IngestOptions | None = None
_open: dict[str, Any] = {}


def _init_worker(options: IngestOptions, threads: int) -> None:
    global _options
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    share_threads(threads)
    _options = options


def _read_in_worker(source: str, number: int, password: str | None) -> Page:
    """Read page ``number`` of ``source`` (the last opened document is kept open)."""
    assert _options is not None, "worker not initialised"
    doc = _open.get(source)
    if doc is None:
        for old in _open.values():
            old.close()
        _open.clear()
        doc = _open[source] = open_document(source, password=password)
    page = read_page(doc.page(number), _options)
    trim_heap()
    return page
