"""Ingest: files into an index, one document at a time, each committed whole or not at all.

For each file: open it, read its pages with a page engine (journaled so an
interrupted run resumes), assemble chunks (:func:`docrag.chunk.assemble.assemble`),
embed them, and commit them in one store transaction. A bad file is reported
and leaves the index untouched; a bad page is reported and skipped.

>>> from docrag.ingest import expand_paths
>>> expand_paths(["fixtures/data/report.pdf"])
['fixtures/data/report.pdf']
"""

from __future__ import annotations

import contextlib
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from docrag.chunk.assemble import assemble, crop_name
from docrag.config import IngestOptions
from docrag.embed import TextEmbedder
from docrag.embed.image import ImageEmbedder, embed_pngs
from docrag.errors import LoadError
from docrag.index import LocalStore
from docrag.index.journal import PageJournal, discard_journals
from docrag.io import open_document
from docrag.types import Chunk, Page
from docrag.workers import PageEngine, trim_heap

__all__ = ["Ingestor", "IngestReport", "FileResult", "expand_paths", "SUFFIXES", "ProgressFn", "StageFn"]

SUFFIXES = {".pdf", ".png", ".jpg", ".jpeg", ".tif", ".tiff"}

ProgressFn = Callable[[str, int, int], None]  # (source, pages done, pages total)
StageFn = Callable[[str, str, int, int], None]  # (source, stage, done, total): "embed", chunks embedded so far
STAGES = ("read", "assemble", "embed", "commit")
EMBED_SLICE = 256
"""Chunks embedded between two ``StageFn`` calls: a long document's embedding shows progress."""


@dataclass
class FileResult:
    """What happened to one input file."""

    source: str
    status: str  # "indexed" | "unchanged" | "replaced" | "failed"
    doc_id: str | None = None
    pages: int = 0
    pages_ocr: int = 0
    chunks: int = 0
    error: str | None = None
    page_errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    profile: dict[str, str] = field(default_factory=dict)
    resumed: int = 0  # pages taken from an interrupted ingest's journal instead of read again
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage (STAGES) of this file


@dataclass
class IngestReport:
    """The summary of one ``ingest`` call; failures are listed, not raised."""

    files: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failures(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failures and not any(f.page_errors for f in self.files)

    def totals(self) -> dict[str, Any]:
        return {
            "files": len(self.files),
            "indexed": sum(f.status in ("indexed", "replaced") for f in self.files),
            "unchanged": sum(f.status == "unchanged" for f in self.files),
            "failed": len(self.failures),
            "pages": sum(f.pages for f in self.files),
            "pages_ocr": sum(f.pages_ocr for f in self.files),
            "page_errors": sum(len(f.page_errors) for f in self.files),
            "chunks": sum(f.chunks for f in self.files),
            "resumed": sum(f.resumed for f in self.files),
            "seconds": round(self.seconds, 2),
            "stage_seconds": {k: round(sum(f.seconds.get(k, 0.0) for f in self.files), 2) for k in STAGES},
        }

    def rates(self) -> str:
        """Each stage's rate so far, for a progress line: ``read 7.9 pages/s · embed 74 chunks/s``.

        >>> IngestReport([FileResult("a.pdf", "indexed", pages=8, chunks=30,
        ...                          seconds={"read": 2.0, "embed": 0.5})]).rates()
        'read 4.0 pages/s · embed 60 chunks/s'
        """
        read = sum(f.seconds.get("read", 0.0) for f in self.files)
        embed = sum(f.seconds.get("embed", 0.0) for f in self.files)
        pages = sum(f.pages - f.resumed for f in self.files if "read" in f.seconds)
        chunks = sum(f.chunks for f in self.files if "embed" in f.seconds)
        parts = [f"read {pages / read:.1f} pages/s" if read > 0 and pages else "",
                 f"embed {chunks / embed:.0f} chunks/s" if embed > 0 and chunks else ""]
        return " · ".join(p for p in parts if p)


def expand_paths(paths: Iterable[str | Path]) -> list[str]:
    """Files as given; directories expanded to the supported files inside, sorted."""
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out += sorted(str(f) for f in path.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES)
        else:
            out.append(str(p))
    return out


@dataclass
class Ingestor:
    """Reads, assembles, embeds and commits files into one store.

    Attributes:
        index_dir: The index directory (journals live in it).
        open_store: Opens (creating if needed) the store written to; called once a file
            has opened, so a bad file never creates an index.
        embedder: Returns the text embedder (loaded only when a file has chunks to embed).
        pages: The page engine that reads pages (worker pool, this process, Ray).
        options: Reading, chunking and embedding options.
        image_embedder: Returns the image model for figure crops, or None.
    """

    index_dir: Path
    open_store: Callable[[], LocalStore]
    embedder: Callable[[], TextEmbedder]
    pages: PageEngine
    options: IngestOptions
    image_embedder: Callable[[], ImageEmbedder | None] = lambda: None

    def ingest_file(self, source: str, progress: ProgressFn | None = None, tags: dict[str, str] | None = None,
                    label: str | None = None, password: str | None = None,
                    stages: StageFn | None = None) -> FileResult:
        """Index one file; the result says whether it was indexed, unchanged, replaced or failed.

        ``progress`` is called after each page read, ``stages`` as the chunks are embedded.
        """
        try:
            return self._ingest_file(source, progress, tags, label, password, stages)
        finally:
            trim_heap()  # the document's pages, chunks and vectors are freed: give the heap back

    def _ingest_file(self, source: str, progress: ProgressFn | None, tags: dict[str, str] | None,
                     label: str | None, password: str | None, stages: StageFn | None) -> FileResult:
        tags = dict(tags or {})
        result = FileResult(source=source, status="failed")
        try:
            doc = open_document(source, password=password)
        except LoadError as exc:
            result.error = str(exc)
            return result
        with doc, tempfile.TemporaryDirectory(prefix="docrag-crops-") as folder:
            crops = _CropFiles(Path(folder))
            result.doc_id = doc.doc_id
            store = self.open_store()
            if store.has_document(doc.doc_id):
                discard_journals(self.index_dir, doc.doc_id)  # left by a run killed after its commit
                result.status = "unchanged"
                return result
            journal = PageJournal(self.index_dir, doc.doc_id, self.options.reading_key())
            clock = _Clock(result.seconds)
            pages = self._read(doc, result, progress, password, journal, crops)
            clock.lap("read")
            if result.pages and not any(p.method != "failed" for p in pages):
                result.error = f"{source}: no page could be read ({result.page_errors[0]})"
                return result
            built = assemble(pages, doc.doc_id, doc.source, doc.metadata(), self.options, tags,
                             ocr_engine=self.options.ocr_engine, written=crops.names)
            result.profile = built.profile
            chunks = built.chunks
            clock.lap("assemble")
            # Embedded with their document/section header; displayed without it.
            vectors = self._embed(source, [f"{c.context}\n{c.text}" if c.context else c.text for c in chunks],
                                  stages)
            used = {**crops.files(chunks), **built.crops}
            image_vectors = self._embed_crops(store, chunks, used)
            clock.lap("embed")
            record = {"doc_id": doc.doc_id, "source": label or source, "path": str(Path(source).resolve()),
                      "size": Path(source).stat().st_size, "pages": doc.page_count,
                      "info": {"kind": doc.kind, "profile": result.profile}, "tags": tags}
            with sigint_deferred():  # Ctrl-C lands after the commit, never inside it
                replaced = store.add_document(record, pages, chunks, vectors, crops=used,
                                                   image_vectors=image_vectors)
            discard_journals(self.index_dir, doc.doc_id)
            clock.lap("commit")
        if replaced is None:  # another process indexed the same bytes while we read them
            result.status = "unchanged"
            return result
        result.status = "replaced" if replaced else "indexed"
        result.chunks = len(chunks)
        return result

    def _embed(self, source: str, texts: list[str], stages: StageFn | None) -> np.ndarray:
        """The texts' vectors, embedded ``EMBED_SLICE`` at a time so that ``stages`` hears of each slice."""
        embedder = self.embedder()
        if stages is None:
            return embedder.embed_documents(texts)
        parts = []
        for start in range(0, max(1, len(texts)), EMBED_SLICE):  # no texts: one empty call, as without stages
            parts.append(embedder.embed_documents(texts[start:start + EMBED_SLICE]))
            stages(source, "embed", min(len(texts), start + EMBED_SLICE), len(texts))
        return np.concatenate(parts)

    def _read(self, doc: Any, result: FileResult, progress: ProgressFn | None, password: str | None,
              journal: PageJournal, crops: _CropFiles) -> list[Page]:
        """Every page of ``doc``, with page errors and warnings noted on ``result``; crops go to ``crops``."""
        pages: list[Page] = []
        file_warnings = list(getattr(doc, "warnings", []))
        result.warnings += [f"{doc.source}: {w}" for w in file_warnings]
        for page in self._pages(doc, result, password, journal):
            if page.error:
                result.page_errors.append(page.error)
            result.warnings += [f"{doc.source} (page {page.number}): {w}" for w in page.warnings
                                if w not in file_warnings]  # file-level ones are listed once
            crops.take(page)
            pages.append(page)
            result.pages += 1
            result.pages_ocr += page.method in ("ocr", "mixed")
            if progress:
                progress(doc.source, page.number, doc.page_count)
        return pages

    def _pages(self, doc: Any, result: FileResult, password: str | None, journal: PageJournal) -> Iterator[Page]:
        """The document's pages in order: from the journal of an interrupted ingest, the rest read."""
        done = {n: p for n, p in journal.load().items() if 1 <= n <= doc.page_count}
        result.resumed = len(done)
        todo = [n for n in range(1, doc.page_count + 1) if n not in done]
        read = self.pages.read(doc, password, pages=todo)
        for number in range(1, doc.page_count + 1):
            if number in done:
                yield done[number]
                continue
            page = next(read)
            journal.append(page)
            yield page

    def _embed_crops(self, store: LocalStore, chunks: list[Chunk],
                     crops: dict[str, bytes | Path]) -> dict[int, np.ndarray]:
        """Image vectors of the figure crops, by chunk index (empty without an image model)."""
        items = [(i, crops[Path(c.image).name]) for i, c in enumerate(chunks)
                 if c.image and Path(c.image).name in crops]
        model = self.image_embedder() if items else None
        if model is None:
            return {}
        items = [(i, png if isinstance(png, bytes) else png.read_bytes()) for i, png in items]
        stored = store.image_model()
        engine, weights = (stored[0], stored[1]) if stored else (self.options.image_embedder, self.options.image_model)
        store.set_image_model(str(engine), weights, model.dim)
        vectors = embed_pngs(model, [png for _, png in items])
        return {i: v for (i, _), v in zip(items, vectors)}


class _Clock:
    """Wall time of consecutive stages, added up into ``seconds`` by stage name."""

    def __init__(self, seconds: dict[str, float]) -> None:
        self.seconds = seconds
        self.last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self.last
        self.last = now


class _CropFiles:
    """A document's figure crops, written to ``folder`` as their pages arrive.

    A scanned page's crops take ~250 KB: kept on the pages until the commit, a long
    document's would all be in memory at once (120 MB over 500 pages).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.names: dict[tuple[int, tuple[float, ...]], str] = {}  # by (page number, region box)

    def take(self, page: Page) -> None:
        """Write ``page``'s crops out and drop their bytes from its regions."""
        for region in page.regions:
            if region.png:
                name = crop_name(region.png)
                path = self.folder / name
                if not path.exists():
                    path.write_bytes(region.png)
                self.names[(page.number, tuple(region.bbox))] = name
                region.png = None

    def files(self, chunks: list[Chunk]) -> dict[str, Path]:
        """The crop files ``chunks`` name, by file name."""
        names = {Path(c.image).name for c in chunks if c.image}
        return {name: self.folder / name for name in names if (self.folder / name).exists()}


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Hold back SIGINT (Ctrl-C) until the block ends (main thread only), so a commit completes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[Any] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            raise KeyboardInterrupt
