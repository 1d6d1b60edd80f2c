"""The Python API: ``Index(path).ingest(paths)``, ``.search(query)``, ``docrag.ocr(path)``.

``Index`` is a façade: it opens the store, picks the embedders and the page
engine, and hands the work to the stages (:mod:`docrag.ingest`,
:mod:`docrag.retrieve`). Each part can be injected (the HTTP service shares one
embedder between its readers this way).

>>> import docrag  # doctest: +SKIP
>>> index = docrag.Index("my-index")  # doctest: +SKIP
>>> report = index.ingest(["fixtures/data/report.pdf"])  # doctest: +SKIP
>>> index.search("fleet size", k=3)[0].page  # doctest: +SKIP
2
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Union

from docrag.config import IngestOptions, ReadingOptions, SearchOptions, build_options, option_keywords, options_from_env
from docrag.embed import TextEmbedder, get_embedder
from docrag.embed.image import ImageEmbedder, get_image_embedder
from docrag.errors import StoreError
from docrag.index import DB_NAME, Filters, LocalStore
from docrag.index.journal import pending_journals, prune_journals
from docrag.ingest import FileResult, Ingestor, IngestReport, ProgressFn, StageFn, expand_paths
from docrag.pipeline import read_document
from docrag.retrieve import search
from docrag.retrieve.rerank import get_reranker
from docrag.types import Hit, Page
from docrag.workers import PageEngine, get_page_engine

__all__ = ["Index", "IngestReport", "FileResult", "ocr", "expand_paths"]

EmbedderSource = Union[TextEmbedder, Callable[[], TextEmbedder]]


class Index:
    """A docrag index directory: ingest files into it, search it.

    Args:
        path: The index directory (created on first ingest).
        options: Ingest options; defaults come from ``DOCRAG_*`` variables.
        store: An open store of ``path`` to use (closed by :meth:`close`).
        embedder: The text embedder, or a function returning it on first use;
            default: the index's own (its meta names it), else ``options.embedder``.
        image_embedder: The image model for figure crops; default: the index's, else the options'.
        page_engine: Where pages are read; default: ``options.engine``.
    """

    def __init__(self, path: str | Path, options: IngestOptions | None = None, *, store: LocalStore | None = None,
                 embedder: EmbedderSource | None = None, image_embedder: ImageEmbedder | None = None,
                 page_engine: PageEngine | None = None) -> None:
        self.path = Path(path)
        self.options = options or options_from_env(IngestOptions)
        self._store = store
        self._embedder = embedder
        self._image_embedder = image_embedder
        self._page_engine = page_engine

    @property
    def exists(self) -> bool:
        return (self.path / DB_NAME).exists()

    def store(self, create: bool = False) -> LocalStore:
        """The index's store, opened on first use (``create``: make the index if missing)."""
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
        """The text embedder: the one the index was built with, else ``options.embedder``."""
        if callable(self._embedder) and not hasattr(self._embedder, "embed_documents"):
            self._embedder = self._embedder()
        if self._embedder is None:
            name = self.store().embedder if self.exists else self.options.embedder  # the index decides
            self._embedder = get_embedder(name, self.options.batch_size)
        embedder: TextEmbedder = self._embedder  # type: ignore[assignment]
        if self._store is not None and embedder.dim != self._store.dim:
            raise StoreError(f"{self.path}: embedder {embedder.name!r} has dim {embedder.dim}, "
                             f"index has {self._store.dim}")
        return embedder

    def image_embedder(self) -> ImageEmbedder | None:
        """The image model of this index (from its meta, else the options), or None."""
        if self._image_embedder is None:
            stored = self.store().image_model() if self.exists else None
            if stored is not None:
                self._image_embedder = get_image_embedder(stored[0], stored[1])
            elif self.options.image_embedder:
                self._image_embedder = get_image_embedder(self.options.image_embedder, self.options.image_model)
        return self._image_embedder

    def page_engine(self) -> PageEngine:
        """Where pages are read (``options.engine``): worker processes, this process, or Ray."""
        if self._page_engine is None:
            self._page_engine = get_page_engine(self.options)
        return self._page_engine

    def ingest(self, paths: Iterable[str | Path], progress: ProgressFn | None = None,
               tags: dict[str, str] | None = None, labels: dict[str, str] | None = None,
               password: str | None = None, stages: StageFn | None = None) -> IngestReport:
        """Add files (or directories of files) to the index.

        Unchanged files (same bytes) are skipped; a changed file replaces its
        previous version; a bad file is reported and leaves the index untouched.
        ``tags`` (e.g. ``{"year": "2023"}``) are stored per document for filtering.
        ``labels`` maps a path as given to the name recorded as its source (an
        upload's original file name). ``password`` opens encrypted PDFs.
        ``progress(source, pages_done, pages)`` is called as pages are read and
        ``stages(source, "embed", chunks_done, chunks)`` as their chunks are embedded;
        each file's result has its stages' wall times (``seconds``).
        """
        start = time.perf_counter()
        report = IngestReport()
        prune_journals(self.path)
        try:
            ingestor = Ingestor(self.path, lambda: self.store(create=True), self.embedder, self.page_engine(),
                                self.options, self.image_embedder)
            for source in expand_paths(paths):
                report.files.append(ingestor.ingest_file(source, progress, tags, (labels or {}).get(source),
                                                         password, stages))
        except BaseException:  # Ctrl-C or a bug: stop the page workers now; committed files stay
            self._close_pages(now=True)
            raise
        report.seconds = time.perf_counter() - start
        return report

    def delete(self, source: str) -> int:
        """Remove documents by source path or doc id; returns how many were removed."""
        store = self.store()
        doc_ids = store.find_documents(source)
        for doc_id in doc_ids:
            store.delete_document(doc_id)
        return len(doc_ids)

    @option_keywords(SearchOptions)
    def search(self, query: str, options: SearchOptions | None = None, **overrides: Any) -> list[Hit]:
        """The ``k`` best chunks for ``query``, each with its page and box.

        Takes a :class:`~docrag.config.SearchOptions` or its fields as keywords
        (``k``, ``kind``, ``mode``, ``source``, ``pages``, ``tags``, ``rerank``,
        ``window``, ``group``, ``rrf_k``, ``locate``, ``cues``).
        """
        opts: SearchOptions = build_options(SearchOptions, options, **overrides)
        filters = Filters(source=opts.source, pages=opts.pages, kind=opts.kind, tags=dict(opts.tags),
                          min_confidence=opts.min_confidence)
        reranker = get_reranker(opts.rerank) if opts.rerank else None
        return search(self.store(), self.embedder(), query, k=opts.k, mode=opts.mode, filters=filters,
                      rrf_k=opts.rrf_k, reranker=reranker, window=opts.window, group=opts.group,
                      locate=opts.locate, image_embedder=self.image_embedder(), cues=opts.cues,
                      lexicon=opts.lexicon)

    def info(self) -> dict[str, Any]:
        """Counts, embedder and FAISS state of the index, and documents an interrupted ingest left half-read."""
        stats = self.store().stats()
        pending = pending_journals(self.path)
        stats["interrupted"] = {"documents": len(pending), "pages": sum(p["pages"] for p in pending)}
        return stats

    def documents(self) -> list[dict[str, Any]]:
        return [dict(d) for d in self.store().documents()]

    def _close_pages(self, now: bool = False) -> None:
        if self._page_engine is not None:
            self._page_engine.close(now=now)
            self._page_engine = None

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


def ocr(path: str | Path, options: ReadingOptions | None = None, password: str | None = None) -> Iterator[Page]:
    """Read every page of a file (no index), yielding pages with blocks, lines and regions.

    >>> pages = list(ocr("fixtures/data/page_scan.png"))  # doctest: +SKIP
    """
    yield from read_document(path, options or options_from_env(ReadingOptions, ocr="always"), password)
