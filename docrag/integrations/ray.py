"""The ``ray`` page engine: the pages of a document read by a Ray Data pipeline.

Each page runs the same :func:`~docrag.pipeline.read_page` as the local
engine, inside a pool of Ray actors (a callable class, so OCR and layout models
load once per actor); the driver gets the pages back in page order and
chunks, embeds and writes the index exactly as with ``--engine local``. Only
the heavy part (render, OCR, layout, figure crops) leaves the machine.

The file travels through Ray's object store (``ray.put`` of its bytes, once per
document), so the workers need no shared filesystem and no copy of the
input; each actor writes it to a private temporary file and opens it there.
Every node needs docrag (same version) and ``ray[data]`` installed, with the
model packages its OCR engine uses.

The engine is a plugin of :data:`docrag.workers.page_engines`: pyproject.toml
names :class:`RayPages` under the ``docrag.page_engines`` entry points, so
``--engine ray`` finds it without the workers importing this module.

>>> from docrag.config import IngestOptions
>>> engine = RayPages(IngestOptions(engine="ray", ocr="never"))
>>> engine.resources()
{'num_cpus': 1.0}
>>> with open_document("fixtures/data/report.pdf") as doc:  # doctest: +SKIP
...     [p.number for p in engine.read(doc)]
[1, 2, 3]
>>> engine.close()  # shuts Ray down only if this engine started it
"""

from __future__ import annotations

import os
import pickle
import tempfile
import warnings
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from docrag.config import IngestOptions, share_threads
from docrag.io import open_document
from docrag.io.document import Document
from docrag.pipeline import failed_page, read_page
from docrag.types import Page

__all__ = ["RayPages", "import_ray"]

# A page read alone whose actor dies this many times is recorded as failed.
TRIES = 2
# Pages queued on one actor at a time (the rest wait in the driver's dataset).
IN_FLIGHT_PER_ACTOR = 2


def import_ray() -> Any:
    """``ray`` (with Ray Data), or an ImportError that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"--engine ray needs Ray Data ({exc}): pip install 'docrag[ray]'") from None
    return ray


def _read(doc: Document, number: int, options: IngestOptions) -> Page:
    return read_page(doc.page(number), options)


class RayPages:
    """Pages read on a Ray cluster (or a local Ray) with Ray Data.

    Args:
        options: the ingest options; ``ray_address`` picks the cluster
            (``ray://head:10001``, ``auto``; ``None``: the cluster in
            ``RAY_ADDRESS``, else a new local Ray), ``workers`` caps the
            actors (0: as many as the cluster has CPUs, or GPUs for florence2).
        num_cpus: CPUs reserved per actor (the OCR models use as many threads).
        num_gpus: GPUs per actor; ``None``: 1 when the recognizer is
            ``florence2`` and the cluster has GPUs, else 0.

    If Ray is already initialised in this process (``ray.init`` by the
    caller), that Ray is used and ``close()`` leaves it running; a Ray this
    engine started is shut down by ``close()``.
    """

    def __init__(self, options: IngestOptions, num_cpus: float = 1.0, num_gpus: float | None = None) -> None:
        self.options = options
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        # What each actor runs per page: (open document, page number, options) -> Page.
        self.work: Callable[[Document, int, IngestOptions], Page] = _read
        self._started = False
        self._running: Iterator[dict[str, Any]] | None = None

    def resources(self, cluster: dict[str, float] | None = None) -> dict[str, float]:
        """Ray resources of one page-reading actor, given the cluster's totals."""
        gpus = self.num_gpus
        if gpus is None:
            gpus = 1.0 if self.options.ocr_engine == "florence2" and (cluster or {}).get("GPU", 0) > 0 else 0.0
        return {"num_cpus": self.num_cpus, **({"num_gpus": gpus} if gpus else {})}

    def read(self, doc: Document, password: str | None = None,
             pages: Sequence[int] | None = None) -> Iterator[Page]:
        remaining = list(range(1, doc.page_count + 1) if pages is None else pages)
        if not remaining:
            return
        ray = self._connect()
        data = ray.put(doc.path.read_bytes())
        solo = 0  # after a failure, the next pages are read one per run to find the one to blame
        while remaining:
            if solo:
                solo -= 1
                number = remaining.pop(0)
                yield self._read_alone(ray, data, doc, number, password)
                continue
            try:
                for number, page in self._run(ray, data, doc.source, remaining, password):
                    assert number == remaining[0], (number, remaining[0])
                    remaining.pop(0)
                    yield page
            except ray.exceptions.RayError:
                # An actor died (crash, out of memory) and took the run down, with the
                # pages in flight; which one killed it is unknown, so those that could
                # have been in flight are read alone, and only a page that fails alone is blamed.
                solo = self._actors(ray, self.resources(ray.cluster_resources()), len(remaining)) * IN_FLIGHT_PER_ACTOR

    def _read_alone(self, ray: Any, data: Any, doc: Document, number: int, password: str | None) -> Page:
        """Page ``number`` read in a run of its own; a failed page if its actor dies every time."""
        for _ in range(TRIES):
            try:
                return [page for _, page in self._run(ray, data, doc.source, [number], password)][0]
            except ray.exceptions.RayError as exc:
                error = exc
        return failed_page(doc.page(number), f"{doc.source} (page {number}): the Ray worker reading it died "
                                             f"{TRIES} times (crash or out of memory; {type(error).__name__})")

    def _run(self, ray: Any, data: Any, source: str, numbers: list[int],
             password: str | None) -> Iterator[tuple[int, Page]]:
        """(page number, page) for ``numbers``, in that order."""
        resources = self.resources(ray.cluster_resources())
        ds = ray.data.from_items([{"number": n} for n in numbers], override_num_blocks=len(numbers))
        args = dict(
            batch_size=1, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=self._actors(ray, resources, len(numbers)),
                                               max_tasks_in_flight_per_actor=IN_FLIGHT_PER_ACTOR),
            fn_constructor_kwargs={"data": data, "source": source, "password": password, "options": self.options,
                                   "work": self.work, "threads": max(1, int(self.num_cpus))},
            **resources,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # Ray >= 2.51 warns on extra remote args
            try:
                # By default Ray Data restarts a dead actor and resends its pages forever: a page
                # that kills its actor would loop, and restarted actors can outlive a failed run
                # (holding its CPUs). Here a death fails the run; read() decides what to resend.
                ds = ds.map_batches(_PageReader, max_restarts=0, **args)
            except TypeError:  # a Ray that no longer takes extra remote args
                ds = ds.map_batches(_PageReader, **args)
        # One row per block and blocks kept in order: pages stream back in page order,
        # as they are read (memory stays flat however long the document).
        ds.context.execution_options.preserve_order = True
        ds.context.enable_progress_bars = False
        rows = self._running = iter(ds.iter_rows())
        for row in rows:
            yield int(row["number"]), pickle.loads(row["page"])
        self._running = None

    def _actors(self, ray: Any, resources: dict[str, float], pages: int) -> int:
        if self.options.workers:
            return max(1, min(self.options.workers, pages))
        cluster = ray.cluster_resources()
        key, need = ("GPU", resources["num_gpus"]) if resources.get("num_gpus") else ("CPU", resources["num_cpus"])
        return max(1, min(int(cluster.get(key, 1) // need), pages))

    def _connect(self) -> Any:
        ray = import_ray()
        if not ray.is_initialized():
            import logging

            ray.init(address=self.options.ray_address or None, ignore_reinit_error=True,
                     include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
            # docrag shows its own progress: Ray Data's per-run INFO lines would drown it.
            logging.getLogger("ray.data").setLevel(logging.WARNING)
            try:  # and its "progress bars disabled" notice: they are off because docrag draws its own
                from ray.util.debug import log_once

                log_once("ray_data_progress_manager_disabled")
            except ImportError:
                pass
            self._started = True
        return ray

    def close(self, now: bool = False) -> None:
        """Stop the run in progress and shut down the Ray this engine started.

        A Ray the caller started stays up; ``now`` changes nothing here: stopping
        a run cancels its pages whether or not they have started.
        """
        if self._running is not None:
            self._running.close()  # ends the dataset's execution and frees its actors
            self._running = None
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


class _PageReader:
    """A Ray actor's page reader: the document opened once, the models loaded once."""

    def __init__(self, data: Any, source: str, password: str | None, options: IngestOptions,
                 work: Callable[[Document, int, IngestOptions], Page], threads: int) -> None:
        import ray

        share_threads(threads)
        self.options, self.work = options, work
        blob = ray.get(data) if isinstance(data, ray.ObjectRef) else data
        fd, path = tempfile.mkstemp(prefix="docrag-", suffix=os.path.splitext(source)[1])
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
            self.doc = open_document(path, password=password)
        finally:
            # The open document keeps its file handle; on POSIX the name can go now,
            # so nothing is left behind when Ray kills the actor.
            try:
                os.unlink(path)
            except OSError:
                pass
        self.doc.source = source  # messages name the file as the user gave it

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        numbers = [int(n) for n in batch["number"]]
        pages = [pickle.dumps(self.work(self.doc, n, self.options), protocol=pickle.HIGHEST_PROTOCOL) for n in numbers]
        return {"number": np.array(numbers, dtype=np.int64), "page": np.array(pages, dtype=object)}
