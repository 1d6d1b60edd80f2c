"""The Python API: ``Index(path).ingest(paths)``, ``.search(query)``, ``docrag.ocr(path)``.

>>> import docrag  # doctest: +SKIP
>>> index = docrag.Index("my-index")  # doctest: +SKIP
>>> report = index.ingest(["fixtures/data/report.pdf"])  # doctest: +SKIP
>>> index.search("fleet size", k=3)[0].page  # doctest: +SKIP
2
"""

from __future__ import annotations

import contextlib
import hashlib
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from docrag.chunk import chunk_page
from docrag.chunk.context import context_header, document_profile, section_of_blocks
from docrag.chunk.visual import referring_sentences, visual_chunks
from docrag.config import IngestOptions, options_from_env
from docrag.embed import TextEmbedder, get_embedder
from docrag.embed.image import ImageEmbedder, get_image_embedder
from docrag.errors import LoadError, StoreError
from docrag.index import DB_NAME, LocalStore
from docrag.index.journal import PageJournal, discard_journals, pending_journals, prune_journals
from docrag.io import open_document
from docrag.layout.furniture import mark_furniture
from docrag.pipeline import read_page
from docrag.index import Filters
from docrag.retrieve import search
from docrag.retrieve.rerank import get_reranker
from docrag.types import Chunk, Hit, Page
from docrag.workers import PageEngine, get_page_engine

__all__ = ["Index", "IngestReport", "FileResult", "ocr", "expand_paths"]

SUFFIXES = {".pdf", ".png", ".jpg", ".jpeg", ".tif", ".tiff"}
PROFILE_KEYS = ("title", "company", "report_type", "fiscal_year")  # tags that override the derived profile

ProgressFn = Callable[[str, int, int], None]  # (source, pages done, pages total)


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
        }


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


class Index:
    """A docrag index directory: ingest files into it, search it.

    Args:
        path: The index directory (created on first ingest).
        options: Ingest options; defaults come from ``DOCRAG_*`` variables.
    """

    def __init__(self, path: str | Path, options: IngestOptions | None = None) -> None:
        self.path = Path(path)
        self.options = options or options_from_env(IngestOptions)
        self._store: LocalStore | None = None
        self._embedder: TextEmbedder | None = None
        self._page_engine: PageEngine | None = None

    # -- lazily opened parts -----------------------------------------------

    @property
    def exists(self) -> bool:
        return (self.path / DB_NAME).exists()

    def store(self, create: bool = False) -> LocalStore:
        if self._store is None:
            if self.exists:
                self._store = LocalStore(self.path, create=False)
            elif create:
                emb = self.embedder()
                self._store = LocalStore(self.path, embedder=emb.name, dim=emb.dim, create=True)
            else:
                raise StoreError(f"{self.path}: no docrag index here; run `docrag ingest FILES --index {self.path}` first")
        return self._store

    def embedder(self) -> TextEmbedder:
        if self._embedder is None:
            name = self.options.embedder
            if self.exists:
                name = LocalStore(self.path, create=False).embedder  # the index decides
            self._embedder = get_embedder(name, self.options.batch_size)
            if self._store is not None and (self._embedder.dim != self._store.dim):
                raise StoreError(f"{self.path}: embedder {name!r} has dim {self._embedder.dim}, index has {self._store.dim}")
        return self._embedder

    # -- writing ------------------------------------------------------------

    def ingest(
        self,
        paths: Iterable[str | Path],
        progress: ProgressFn | None = None,
        tags: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
        password: str | None = None,
    ) -> IngestReport:
        """Add files (or directories of files) to the index.

        Unchanged files (same bytes) are skipped; a changed file replaces its
        previous version; a bad file is reported and leaves the index untouched.
        ``tags`` (e.g. ``{"year": "2023"}``) are stored per document for filtering.
        ``labels`` maps a path as given to the name recorded as its source (an
        upload's original file name). ``password`` opens encrypted PDFs.
        """
        start = time.perf_counter()
        report = IngestReport()
        prune_journals(self.path)
        try:
            for source in expand_paths(paths):
                report.files.append(self._ingest_file(source, progress, dict(tags or {}),
                                                      (labels or {}).get(source), password))
        except BaseException:  # Ctrl-C or a bug: stop the page workers now; committed files stay
            self._close_pages(now=True)
            raise
        report.seconds = time.perf_counter() - start
        return report

    def page_engine(self) -> PageEngine:
        """Where pages are read (``options.engine``): worker processes, this process, or Ray."""
        if self._page_engine is None:
            self._page_engine = get_page_engine(self.options)
        return self._page_engine

    def _close_pages(self, now: bool = False) -> None:
        if self._page_engine is not None:
            self._page_engine.close(now=now)
            self._page_engine = None

    def _ingest_file(self, source: str, progress: ProgressFn | None, tags: dict[str, str],
                     label: str | None = None, password: str | None = None) -> FileResult:
        result = FileResult(source=source, status="failed")
        try:
            doc = open_document(source, password=password)
        except LoadError as exc:
            result.error = str(exc)
            return result
        with doc:
            result.doc_id = doc.doc_id
            store = self.store(create=True)
            if store.has_document(doc.doc_id):
                discard_journals(self.path, doc.doc_id)  # left by a run killed after its commit
                result.status = "unchanged"
                return result
            crops: dict[str, bytes] = {}
            journal = PageJournal(self.path, doc.doc_id, self.options.reading_key())
            pages, chunks = self._read_document(doc, result, progress, crops, tags, password, journal)
            if result.pages and not any(p.method != "failed" for p in pages):
                result.error = f"{source}: no page could be read ({result.page_errors[0]})"
                return result
            # Embedded with their document/section header; displayed without it.
            vectors = self.embedder().embed_documents([f"{c.context}\n{c.text}" if c.context else c.text
                                                       for c in chunks])
            image_vectors = self._embed_crops(store, chunks, crops)
            record = {"doc_id": doc.doc_id, "source": label or source, "path": str(Path(source).resolve()),
                      "size": Path(source).stat().st_size, "pages": doc.page_count,
                      "info": {"kind": doc.kind, "profile": result.profile}, "tags": tags}
            with _sigint_deferred():  # Ctrl-C lands after the commit, never inside it
                replaced = store.add_document(record, pages, chunks, vectors, crops=crops,
                                              image_vectors=image_vectors)
            discard_journals(self.path, doc.doc_id)
        if replaced is None:  # another process indexed the same bytes while we read them
            result.status = "unchanged"
            return result
        result.status = "replaced" if replaced else "indexed"
        result.chunks = len(chunks)
        return result

    def _read_document(
        self, doc: Any, result: FileResult, progress: ProgressFn | None, crops: dict[str, bytes],
        tags: dict[str, str], password: str | None = None, journal: PageJournal | None = None,
    ) -> tuple[list[Page], list[Chunk]]:
        pages: list[Page] = []
        chunks: list[Chunk] = []
        result.warnings += [f"{doc.source}: {w}" for w in getattr(doc, "warnings", [])]
        for page in self._pages(doc, result, password, journal):
            if page.error:
                result.page_errors.append(page.error)
            result.warnings += [f"{doc.source} (page {page.number}): {w}" for w in page.warnings
                                if w not in getattr(doc, "warnings", [])]  # file-level ones are listed once
            pages.append(page)
            result.pages += 1
            result.pages_ocr += page.method in ("ocr", "mixed")
            if progress:
                progress(doc.source, page.number, doc.page_count)
        mark_furniture(pages)
        profile = document_profile(pages, doc.metadata(), Path(doc.source).name)
        profile.update({k: v for k, v in tags.items() if k in PROFILE_KEYS})
        result.profile = profile
        carried = ""
        for page in pages:
            page_chunks = chunk_page(page, doc.doc_id, doc.source, self.options.chunk_tokens, self.options.chunk_overlap)
            sections, carried = section_of_blocks(page, carried)
            by_box = {tuple(ln.bbox): i for i, b in enumerate(page.blocks) for ln in b.lines}
            for chunk in page_chunks:
                block = by_box.get(tuple(chunk.line_boxes[0])) if chunk.line_boxes else None
                chunk.context = context_header(profile, sections[block] if block is not None else "") \
                    if self.options.context_headers else ""
            chunks += page_chunks
        # Figures and tables after the text, so a page's text chunks keep consecutive ordinals.
        refs = referring_sentences([c.text for c in chunks])
        for page in pages:
            for region, chunk in zip(page.regions, visual_chunks(page, doc.doc_id, doc.source, refs)):
                chunk.context = context_header(profile, "") if self.options.context_headers else ""
                png = getattr(region, "png", None)
                if png:
                    name = hashlib.sha256(png).hexdigest()[:32] + ".png"
                    crops[name] = png
                    chunk.image = f"crops/{name}"
                chunks.append(chunk)
        for i, chunk in enumerate(chunks):
            chunk.ordinal = i
        return pages, chunks

    def _pages(self, doc: Any, result: FileResult, password: str | None,
               journal: PageJournal | None) -> Iterator[Page]:
        """The document's pages in order: from the journal of an interrupted ingest, the rest read."""
        done = journal.load() if journal is not None else {}
        done = {n: p for n, p in done.items() if 1 <= n <= doc.page_count}
        result.resumed = len(done)
        todo = [n for n in range(1, doc.page_count + 1) if n not in done]
        read = self.page_engine().read(doc, password, pages=todo)
        for number in range(1, doc.page_count + 1):
            if number in done:
                yield done[number]
                continue
            page = next(read)
            if journal is not None:
                journal.append(page)
            yield page

    def image_embedder(self) -> ImageEmbedder | None:
        """The image model of this index (from its meta, else the options), or None."""
        stored = self.store().image_model() if self.exists else None
        if stored is not None:
            return get_image_embedder(stored[0], stored[1])
        if self.options.image_embedder:
            return get_image_embedder(self.options.image_embedder, self.options.image_model)
        return None

    def _embed_crops(self, store: LocalStore, chunks: list[Chunk], crops: dict[str, bytes]) -> dict[int, np.ndarray]:
        """Image vectors of the figure crops, by chunk index (empty unless configured)."""
        if not self.options.image_embedder and store.image_model() is None:
            return {}
        items = [(i, crops[Path(c.image).name]) for i, c in enumerate(chunks) if c.image and Path(c.image).name in crops]
        if not items:
            return {}
        import cv2

        model = self.image_embedder()
        assert model is not None
        stored = store.image_model()
        engine, weights = (stored[0], stored[1]) if stored else (self.options.image_embedder, self.options.image_model)
        store.set_image_model(str(engine), weights, model.dim)
        images = [cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                  for _, png in items]
        vecs = model.embed_images(images)
        return {i: v for (i, _), v in zip(items, vecs)}

    def delete(self, source: str) -> int:
        """Remove documents by source path or doc id; returns how many were removed."""
        store = self.store()
        doc_ids = store.find_documents(source)
        for doc_id in doc_ids:
            store.delete_document(doc_id)
        return len(doc_ids)

    # -- reading ------------------------------------------------------------

    def search(
        self,
        query: str,
        k: int = 5,
        kind: str | None = None,
        *,
        mode: str = "hybrid",
        source: str | None = None,
        pages: tuple[int, int] | None = None,
        tags: dict[str, str] | None = None,
        rerank: str | None = None,
        window: int = 0,
        group: str = "chunk",
        rrf_k: int = 60,
        locate: bool = True,
        cues: bool = True,
    ) -> list[Hit]:
        """The ``k`` best chunks for ``query``, each with its page and box.

        Args:
            kind: Only chunks of this kind (``text``, ``table``, ``figure`` ...).
            mode: ``hybrid`` (BM25 + dense, RRF), ``dense`` or ``bm25``.
            source: Glob on the document path or file name.
            pages: Inclusive 1-based page range.
            tags: Document tags given at ingest, all of which must match.
            rerank: A cross-encoder (hub id or local dir) to re-score the top hits.
            window: Neighbouring chunks of the same page to add to each hit.
            group: ``page`` returns one hit per page.
            locate: Narrow each hit's ``bbox`` to the lines that match the query
                (one extra embedding pass over the hits' sentences).
            cues: Boost documents whose company or fiscal year the query names.
        """
        filters = Filters(source=source, pages=pages, kind=kind, tags=dict(tags or {}))
        reranker = get_reranker(rerank) if rerank else None
        return search(self.store(), self.embedder(), query, k=k, mode=mode, filters=filters,  # type: ignore[arg-type]
                      rrf_k=rrf_k, reranker=reranker, window=window, group=group,  # type: ignore[arg-type]
                      locate=locate, image_embedder=self.image_embedder(), cues=cues)

    def info(self) -> dict[str, Any]:
        """Counts, embedder and FAISS state of the index, and documents an interrupted ingest left half-read."""
        stats = self.store().stats()
        pending = pending_journals(self.path)
        stats["interrupted"] = {"documents": len(pending), "pages": sum(p["pages"] for p in pending)}
        return stats

    def documents(self) -> list[dict[str, Any]]:
        return [dict(d) for d in self.store().documents()]

    def close(self) -> None:
        """Stop page workers and close the store (the index stays as committed)."""
        self._close_pages()
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
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


def ocr(path: str | Path, options: IngestOptions | None = None) -> Iterator[Page]:
    """OCR every page of a file (no index), yielding pages with blocks and lines.

    >>> pages = list(ocr("fixtures/data/page_scan.png"))  # doctest: +SKIP
    """
    opts = options or options_from_env(IngestOptions, ocr="always")
    with open_document(path) as doc:
        for src in doc.pages():
            yield read_page(src, opts)

