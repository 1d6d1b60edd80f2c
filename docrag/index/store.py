"""The local store: SQLite (source of truth) beside FAISS files (caches).

One write = one SQLite transaction that bumps ``meta.generation``; the FAISS
cache follows after the commit and is rebuilt from SQLite whenever its stamp
does not match. Writers hold an exclusive lock file (``.write.lock``); a reader
takes it neither to open an index that is set up nor to search one whose FAISS
cache is current, so it does not wait behind an ingest.

>>> import tempfile, numpy as np
>>> store = LocalStore(tempfile.mkdtemp(), embedder="fake", dim=2)
>>> store.stats()["chunks"]
0
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from docrag.errors import StoreError
from docrag.index.filters import Filters
from docrag.index.terms import TermIndex
from docrag.index.text_search import bm25_search, query_terms
from docrag.index.vectors import FAISS_FLAT, VectorCache
from docrag.types import Chunk, Hit, Page

__all__ = ["LocalStore", "DocumentRecord", "SCHEMA_VERSION", "TERMS_AFTER"]

SCHEMA_VERSION = 3
# Each step takes an index of the version before it to the next one (under the write lock).
_MIGRATIONS = {
    3: ["ALTER TABLE chunks ADD COLUMN read_by TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE chunks ADD COLUMN line_conf TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE chunks ADD COLUMN confidence REAL NOT NULL DEFAULT 1.0"],
}
DB_NAME = "docrag.sqlite"
TERMS_AFTER = 4
"""Text searches a store answers with FTS5 before it builds its in-memory term index."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY, source TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL,
    pages INTEGER NOT NULL, added_at REAL NOT NULL, info TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS documents_path ON documents(path);
CREATE TABLE IF NOT EXISTS pages (
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE, page INTEGER NOT NULL,
    width REAL NOT NULL, height REAL NOT NULL, rotation INTEGER NOT NULL, method TEXT NOT NULL,
    reason TEXT NOT NULL, error TEXT, orientation INTEGER NOT NULL DEFAULT 0, skew REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (doc_id, page));
CREATE TABLE IF NOT EXISTS tags (
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (doc_id, key));
CREATE INDEX IF NOT EXISTS tags_kv ON tags(key, value);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    page INTEGER NOT NULL, ordinal INTEGER NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL,
    bbox TEXT NOT NULL, line_boxes TEXT NOT NULL, line_spans TEXT NOT NULL, image TEXT, context TEXT NOT NULL DEFAULT '',
    vector BLOB NOT NULL, read_by TEXT NOT NULL DEFAULT '', line_conf TEXT NOT NULL DEFAULT '[]',
    confidence REAL NOT NULL DEFAULT 1.0);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id, page);
CREATE TABLE IF NOT EXISTS image_vectors (chunk_id INTEGER PRIMARY KEY, vector BLOB NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(text, tokenize = 'unicode61 remove_diacritics 2');
"""
# What a set-up index has: every table and index the schema creates.
_SCHEMA_OBJECTS = frozenset(re.findall(r"IF NOT EXISTS (\w+)", _SCHEMA))


def _connect(db: Path) -> sqlite3.Connection:
    """A connection to the index database (autocommit: transactions are explicit)."""
    conn = sqlite3.connect(db, timeout=60.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class DocumentRecord(dict):
    """A row of ``documents`` as a dict (doc_id, source, path, size, pages, added_at, info)."""


class LocalStore:
    """SQLite + FAISS index directory.

    Args:
        path: The index directory (created when missing).
        embedder: Name of the text embedder whose vectors are stored.
        dim: Its dimension. Opening an index built with another embedder
            raises :class:`StoreError`.
        create: Create the directory when missing; else a missing index is an error.
    """

    def __init__(self, path: str | Path, embedder: str | None = None, dim: int | None = None, create: bool = True) -> None:
        self.path = Path(path)
        db = self.path / DB_NAME
        if not db.exists():
            if not create or embedder is None or dim is None:  # an index is made by a writer, who names its embedder
                raise StoreError(f"{self.path}: no docrag index here (no {DB_NAME}); run `docrag ingest` first")
            self.path.mkdir(parents=True, exist_ok=True)
            # The file is born under the write lock: another process that opens it half made
            # (no tables yet) finds it needs setting up, queues on the lock, and finds it done.
            with self._write_lock():
                self.db = _connect(db)
                self._set_up(embedder, dim)
        else:
            self.db = _connect(db)
            if self._needs_setup():
                # Creating the tables is a write: one writer at a time, and another may have
                # finished it while this one waited, so _set_up decides again under the lock.
                # An index that is already set up is opened without the lock, so readers never
                # queue behind a writer's ingest.
                with self._write_lock():
                    self._set_up(embedder, dim)
        if self._version() < SCHEMA_VERSION and self._version() + 1 in _MIGRATIONS:
            with self._write_lock():
                self._migrate()
        self._check_meta(embedder, dim)
        self.embedder = self.meta("embedder")
        self.dim = int(self.meta("dim"))
        self.vectors = VectorCache(self.path / "text.faiss", self.dim)
        self._images: VectorCache | None = None
        self._terms: TermIndex | None = None
        self._text_searches = 0
        self._memos: dict[str, dict[Any, Any]] = {}
        self._memo_generation = -1

    # -- meta ---------------------------------------------------------------

    def _set_up(self, embedder: str | None, dim: int | None) -> None:
        """WAL journal, tables and meta for a new or half-made index (under the write lock)."""
        if str(self.db.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
            # Persistent in the file: readers of a set-up index never switch it (a switch
            # needs the database to itself, and two processes switching at once collide).
            self.db.execute("PRAGMA journal_mode=WAL")
        if self._needs_setup():
            self.db.executescript(_SCHEMA)
            self._init_meta(embedder, dim)

    def _needs_setup(self) -> bool:
        """True when a table of the schema or the schema version is missing (a new or half-made index)."""
        names = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master")}
        if not _SCHEMA_OBJECTS <= names:
            return True
        return self.db.execute("SELECT 1 FROM meta WHERE key = 'schema_version'").fetchone() is None

    def _version(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        """Bring an older index up to :data:`SCHEMA_VERSION`, one step per transaction (under the write lock)."""
        while self._version() < SCHEMA_VERSION and self._version() + 1 in _MIGRATIONS:
            target = self._version() + 1
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for sql in _MIGRATIONS[target]:
                    self.db.execute(sql)
                self.db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(target),))
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def _init_meta(self, embedder: str | None, dim: int | None) -> None:
        """Record schema version, embedder and dimension in a new index (under the write lock)."""
        if self.db.execute("SELECT 1 FROM meta LIMIT 1").fetchone() is not None:
            return
        if embedder is None or dim is None:
            raise StoreError(f"{self.path}: empty index; ingest documents first")
        self.db.executemany("INSERT INTO meta VALUES (?, ?)", [
            ("schema_version", str(SCHEMA_VERSION)), ("embedder", embedder), ("dim", str(dim)),
            ("generation", "0"), ("faiss_type", FAISS_FLAT), ("created_at", str(time.time())),
        ])

    def _check_meta(self, embedder: str | None, dim: int | None) -> None:
        """Refuse an index of another schema version, or built with another embedder than the one asked for."""
        have = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        if int(have.get("schema_version", 0)) != SCHEMA_VERSION:
            raise StoreError(f"{self.path}: index schema {have.get('schema_version')} is not {SCHEMA_VERSION}; re-ingest into a new index")
        if embedder is not None and (have["embedder"] != embedder or (dim is not None and int(have["dim"]) != dim)):
            raise StoreError(
                f"{self.path}: index was built with embedder {have['embedder']!r} (dim {have['dim']}), "
                f"not {embedder!r} (dim {dim}); use --embedder {have['embedder']} or a new index directory"
            )

    def meta(self, key: str) -> str:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise StoreError(f"{self.path}: index metadata lacks {key!r}; the index is damaged")
        return str(row[0])

    @property
    def generation(self) -> int:
        return int(self.meta("generation"))

    # -- locking and transactions ------------------------------------------

    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[None]:
        """One writer per index directory, across processes."""
        with open(self.path / ".write.lock", "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                # stderr: stdout may be carrying --json output.
                print(f"docrag: waiting for another writer on {self.path} ...", file=sys.stderr, flush=True)
                fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
            self.db.execute("COMMIT")

    # -- documents ----------------------------------------------------------

    def has_document(self, doc_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM documents WHERE doc_id = ?", (doc_id,)).fetchone() is not None

    def documents(self) -> list[DocumentRecord]:
        rows = self.db.execute(
            "SELECT d.*, (SELECT COUNT(*) FROM chunks c WHERE c.doc_id = d.doc_id) AS chunks "
            "FROM documents d ORDER BY added_at"
        ).fetchall()
        tags: dict[str, dict[str, str]] = {}
        for t in self.db.execute("SELECT doc_id, key, value FROM tags"):
            tags.setdefault(t[0], {})[t[1]] = t[2]
        return [DocumentRecord({**dict(r), "info": json.loads(r["info"]), "tags": tags.get(r["doc_id"], {})}) for r in rows]

    def find_documents(self, source: str) -> list[str]:
        """Doc ids whose given source or absolute path equals ``source``."""
        absolute = str(Path(source).expanduser().resolve())
        rows = self.db.execute(
            "SELECT doc_id FROM documents WHERE source = ? OR path = ? OR doc_id = ?", (source, absolute, source)
        ).fetchall()
        return [r[0] for r in rows]

    def profiles(self) -> dict[str, dict[str, str]]:
        """doc_id -> the document's profile (company, report type, fiscal year, title) with its tags over it.

        Read once per generation (every query asks): treat the result as read-only.
        """
        memo = self.memo("profiles")
        if not memo:
            for doc_id, info in self.db.execute("SELECT doc_id, info FROM documents ORDER BY added_at"):
                memo[doc_id] = dict(json.loads(info).get("profile", {}))
            for doc_id, key, value in self.db.execute("SELECT doc_id, key, value FROM tags"):
                if doc_id in memo:
                    memo[doc_id][key] = value
        return memo

    def memo(self, name: str) -> dict[Any, Any]:
        """A dict for what callers derive from the index (profiles, page cues), emptied when the
        generation moves on: what it holds is never older than the index."""
        gen = self.generation
        if gen != self._memo_generation:
            self._memos, self._memo_generation = {}, gen
        return self._memos.setdefault(name, {})

    def pages(self, doc_id: str) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM pages WHERE doc_id = ? ORDER BY page", (doc_id,)).fetchall()
        return [dict(r) for r in rows]

    def add_document(
        self,
        record: dict[str, Any],
        pages: list[Page],
        chunks: list[Chunk],
        vectors: np.ndarray,
        crops: dict[str, bytes | Path] | None = None,
        image_vectors: dict[int, np.ndarray] | None = None,
    ) -> list[str] | None:
        """Insert a document, its pages, chunks and vectors in one transaction.

        Older documents at the same path (``record["path"]``) are replaced in the
        same transaction, decided under the writer lock. Returns the doc ids it
        replaced (empty for a new file), or None when the same bytes were
        indexed meanwhile (by another writer).
        """
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(chunks), self.dim):
            raise ValueError(f"expected vectors of shape {(len(chunks), self.dim)}, got {vectors.shape}")
        with self._write_lock():
            # Another writer may have added the same bytes, or replaced this path,
            # since the caller looked: decide again under the lock.
            if self.has_document(record["doc_id"]):
                return None
            replaces = [d for d in self.find_documents(record["path"]) if d != record["doc_id"]]
            # Crops are content-addressed: writing them before the transaction is
            # safe (a crash leaves at most an unreferenced file, never a missing one).
            self._write_crops(crops or {})
            removed = self._chunk_ids(list(replaces))
            with self._transaction() as db:
                for doc_id in replaces:
                    self._delete_rows(db, doc_id)
                db.execute(
                    "INSERT INTO documents (doc_id, source, path, size, pages, added_at, info) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (record["doc_id"], record["source"], record["path"], record["size"], record["pages"],
                     time.time(), json.dumps(record.get("info", {}))),
                )
                db.executemany(
                    "INSERT INTO pages (doc_id, page, width, height, rotation, method, reason, error, orientation, skew) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(record["doc_id"], p.number, p.width, p.height, p.rotation, p.method, p.reason, p.error,
                      p.orientation, p.skew) for p in pages],
                )
                db.executemany("INSERT INTO tags VALUES (?, ?, ?)",
                               [(record["doc_id"], k, v) for k, v in record.get("tags", {}).items()])
                ids = []
                for chunk, vec in zip(chunks, vectors):
                    cur = db.execute(
                        "INSERT INTO chunks (doc_id, page, ordinal, kind, text, bbox, line_boxes, line_spans, image, context, "
                        "vector, read_by, line_conf, confidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (chunk.doc_id, chunk.page, chunk.ordinal, chunk.kind, chunk.text, json.dumps(chunk.bbox),
                         json.dumps(chunk.line_boxes), json.dumps(chunk.line_spans), chunk.image, chunk.context,
                         vec.tobytes(), chunk.read_by, json.dumps([round(c, 4) for c in chunk.line_confidences]),
                         chunk.confidence),
                    )
                    ids.append(int(cur.lastrowid))
                    # The header goes into BM25 too: a question naming the company or year matches it.
                    db.execute("INSERT INTO chunks_fts (rowid, text) VALUES (?, ?)",
                               (cur.lastrowid, f"{chunk.context}\n{chunk.text}" if chunk.context else chunk.text))
                for i, vec in (image_vectors or {}).items():
                    db.execute("INSERT INTO image_vectors VALUES (?, ?)",
                               (ids[i], np.ascontiguousarray(vec, dtype=np.float32).tobytes()))
            self._sync_vectors(np.asarray(ids, dtype=np.int64), vectors, removed)
        return replaces

    def _write_crops(self, crops: dict[str, bytes | Path]) -> None:
        """Write the crops (PNG bytes, or a file holding them) not in ``crops/`` yet."""
        folder = self.path / "crops"
        for name, data in crops.items():
            target = folder / name
            if target.exists():
                continue
            folder.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".png")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data if isinstance(data, bytes) else Path(data).read_bytes())
            os.replace(tmp, target)

    def delete_document(self, doc_id: str) -> int:
        """Remove a document everywhere; returns the number of chunks removed."""
        with self._write_lock():
            removed = self._chunk_ids([doc_id])
            with self._transaction() as db:
                self._delete_rows(db, doc_id)
            self._sync_vectors(np.zeros(0, dtype=np.int64), np.zeros((0, self.dim), np.float32), removed)
        return len(removed)

    def _chunk_ids(self, doc_ids: list[str]) -> list[int]:
        ids: list[int] = []
        for doc_id in doc_ids:
            ids += [r[0] for r in self.db.execute("SELECT id FROM chunks WHERE doc_id = ?", (doc_id,))]
        return ids

    @staticmethod
    def _delete_rows(db: sqlite3.Connection, doc_id: str) -> None:
        db.execute("DELETE FROM image_vectors WHERE chunk_id IN (SELECT id FROM chunks WHERE doc_id = ?)", (doc_id,))
        db.execute("DELETE FROM chunks_fts WHERE rowid IN (SELECT id FROM chunks WHERE doc_id = ?)", (doc_id,))
        db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
        db.execute("DELETE FROM pages WHERE doc_id = ?", (doc_id,))
        db.execute("DELETE FROM tags WHERE doc_id = ?", (doc_id,))
        db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))

    # -- vectors --------------------------------------------------------------

    def _chunk_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])

    def _sync_vectors(self, add_ids: np.ndarray, add_vecs: np.ndarray, removed: list[int]) -> None:
        """Bring text.faiss to the committed generation (incrementally when it was fresh)."""
        gen = self.generation
        count = self._chunk_count()
        previous_fresh = self.vectors.index is not None and self.vectors.generation == gen - 1
        if not previous_fresh:
            previous_fresh = self.vectors.load(gen - 1, count - len(add_ids) + len(removed))
        if previous_fresh:
            self.vectors.update(add_ids, add_vecs, removed, gen)
        else:
            self._rebuild_vectors(gen)
        self._record_faiss_type()

    def _record_faiss_type(self) -> None:
        """Keep ``meta.faiss_type`` equal to the type the cache chose for its size."""
        kind = getattr(self.vectors, "kind", None)
        if kind and self.meta("faiss_type") != kind:
            self.db.execute("UPDATE meta SET value = ? WHERE key = 'faiss_type'", (kind,))

    def _rebuild_vectors(self, gen: int) -> None:
        rows = self.db.execute("SELECT id, vector FROM chunks ORDER BY id")
        self.vectors.rebuild(((int(r[0]), r[1]) for r in rows), gen)

    def ensure_vectors(self) -> VectorCache:
        """The FAISS cache at the current generation, rebuilt when missing or stale."""
        gen = self.generation
        if self.vectors.index is not None and self.vectors.generation == gen:
            return self.vectors
        if not self.vectors.load(gen, self._chunk_count()):
            with self._write_lock():
                gen = self.generation
                if not self.vectors.load(gen, self._chunk_count()):
                    self._rebuild_vectors(gen)
                    self._record_faiss_type()
        return self.vectors

    # -- reading ------------------------------------------------------------

    # -- image vectors ------------------------------------------------------

    def image_model(self) -> tuple[str, str | None, int] | None:
        """(engine, model, dim) of the image embedder this index uses, or None."""
        row = dict(self.db.execute("SELECT key, value FROM meta WHERE key LIKE 'image_%'").fetchall())
        if "image_engine" not in row:
            return None
        return row["image_engine"], row.get("image_model") or None, int(row["image_dim"])

    def set_image_model(self, engine: str, model: str | None, dim: int) -> None:
        """Record the image embedder on first use; another one later is an error."""
        have = self.image_model()
        if have is None:
            with self._write_lock():
                self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [
                    ("image_engine", engine), ("image_model", model or ""), ("image_dim", str(dim))])
            return
        if (have[0], have[1]) != (engine, model or None) or have[2] != dim:
            raise StoreError(f"{self.path}: figures were embedded with {have[0]} ({have[1] or 'default weights'}), "
                             f"not {engine} ({model or 'default weights'}); use the same --image-embedder/--image-model")

    def search_image(self, query: np.ndarray, k: int, filters: Filters | None = None) -> list[tuple[int, float]]:
        """Top ``k`` (chunk id, cosine) of figure crops for an image-space query vector."""
        info = self.image_model()
        if info is None:
            return []
        gen = self.generation
        count = int(self.db.execute("SELECT COUNT(*) FROM image_vectors").fetchone()[0])
        if self._images is None or self._images.dim != info[2]:
            self._images = VectorCache(self.path / "image.faiss", info[2])
        if not (self._images.index is not None and self._images.generation == gen) and not self._images.load(gen, count):
            rows = self.db.execute("SELECT chunk_id, vector FROM image_vectors ORDER BY chunk_id")
            self._images.rebuild(((int(r[0]), r[1]) for r in rows), gen)
        return self._images.search(query, k, self.filter_ids(filters))

    def chunk_ids_all(self) -> np.ndarray:
        return np.asarray([r[0] for r in self.db.execute("SELECT id FROM chunks")], dtype=np.int64)

    def filter_ids(self, filters: Filters | None) -> np.ndarray | None:
        """Chunk ids passing ``filters`` (read-only; kept for the generation); ``None`` when nothing is filtered."""
        if filters is None or filters.is_empty:
            return None
        where, params = filters.sql()
        memo = self.memo("filter_ids")
        key = (where, tuple(params))
        if key not in memo:
            if len(memo) >= 256:
                memo.clear()
            rows = self.db.execute(f"SELECT c.id FROM chunks c JOIN documents d ON d.doc_id = c.doc_id WHERE {where}",
                                   params)
            memo[key] = np.fromiter((r[0] for r in rows), dtype=np.int64)
        return memo[key]  # type: ignore[no-any-return]

    def search_vector(self, query: np.ndarray, k: int, filters: Filters | None = None) -> list[tuple[int, float]]:
        """Top ``k`` (chunk id, cosine similarity) among chunks passing ``filters``."""
        cache = self.ensure_vectors()
        return cache.search(query, k, self.filter_ids(filters))

    def search_text(self, query: str, k: int, filters: Filters | None = None) -> list[tuple[int, float]]:
        """Top ``k`` (chunk id, BM25 score) from the FTS5 table among chunks passing ``filters``.

        The first searches of a store are FTS5's own; from the :data:`TERMS_AFTER`-th on, the same
        ranking comes from postings held in memory (:class:`~docrag.index.terms.TermIndex`, ~1 ms at
        30k chunks where FTS5 takes ~70), read once per process on a thread of their own (FTS5
        answers meanwhile) and kept in step with each generation. A one-off search (the CLI) does
        not start reading them.
        """
        terms = query_terms(query)
        self._text_searches += 1
        if not terms or k <= 0 or (self._terms is None and self._text_searches < TERMS_AFTER):
            return bm25_search(self.db, query, k, filters)
        index = self._term_index()
        tokens = index.single_tokens(terms)
        # FTS5 answers while the postings are first read (on their own thread), when a term is a
        # phrase to FTS5, and for an index whose text FTS5 tokenizes otherwise than tokens() does.
        if tokens is not None and index.ready(self.db, self.path / DB_NAME, self.generation) and index.faithful:
            return index.search(tokens, k, self.filter_ids(filters))
        return bm25_search(self.db, query, k, filters)

    def _term_index(self) -> TermIndex:
        if self._terms is None:  # one per index and process: the readers of a server share it
            stamp = self.db.execute("SELECT value FROM meta WHERE key = 'created_at'").fetchone()
            self._terms = TermIndex.shared((str(self.path.resolve()), stamp[0] if stamp else ""))
        return self._terms

    def warm(self) -> None:
        """Read now what searches keep in memory (the FAISS cache, the term index's postings), rather
        than during the first searches: a server's start, a benchmark's warm-up."""
        self.ensure_vectors()
        self._term_index().refresh(self.db, self.generation)

    def neighbours(self, chunk_id: int, n: int) -> list[int]:
        """Ids of the chunks within ``n`` places of ``chunk_id`` on the same page, in order."""
        row = self.db.execute("SELECT doc_id, page, ordinal FROM chunks WHERE id = ?", (chunk_id,)).fetchone()
        if row is None:
            return []
        rows = self.db.execute(
            "SELECT id FROM chunks WHERE doc_id = ? AND page = ? AND ordinal BETWEEN ? AND ? ORDER BY ordinal",
            (row[0], row[1], row[2] - n, row[2] + n),
        )
        return [r[0] for r in rows]

    def hits(self, scored: list[tuple[int, float]]) -> list[Hit]:
        """Full hits for ``(chunk id, score)`` pairs, in the given order."""
        if not scored:
            return []
        ids = [cid for cid, _ in scored]
        marks = ",".join("?" * len(ids))
        rows = {
            r["id"]: r
            for r in self.db.execute(
                f"SELECT c.id, c.doc_id, d.source, d.path, c.page, c.text, c.bbox, c.line_boxes, c.line_spans, c.kind, "
                f"c.image, c.context, c.read_by, c.line_conf, c.confidence "
                f"FROM chunks c JOIN documents d USING (doc_id) WHERE c.id IN ({marks})", ids,
            )
        }
        out = []
        for cid, score in scored:
            r = rows.get(cid)
            if r is None:  # deleted between ranking and fetching
                continue
            bbox = tuple(json.loads(r["bbox"]))
            out.append(Hit(doc_id=r["doc_id"], source=r["source"], page=r["page"], text=r["text"],
                           bbox=bbox, kind=r["kind"], score=score,
                           line_boxes=[tuple(b) for b in json.loads(r["line_boxes"])],
                           image=str(self.path / r["image"]) if r["image"] else None, chunk_id=cid, chunk_bbox=bbox,
                           line_spans=[tuple(s) for s in json.loads(r["line_spans"])], path=r["path"],
                           context=r["context"], read_by=r["read_by"], confidence=round(r["confidence"], 4),
                           line_confidences=json.loads(r["line_conf"])))
        return out

    def stats(self) -> dict[str, Any]:
        q = lambda sql: int(self.db.execute(sql).fetchone()[0])  # noqa: E731
        return {
            "path": str(self.path),
            "documents": q("SELECT COUNT(*) FROM documents"),
            "pages": q("SELECT COUNT(*) FROM pages"),
            "pages_ocr": q("SELECT COUNT(*) FROM pages WHERE method IN ('ocr', 'mixed')"),
            "chunks": q("SELECT COUNT(*) FROM chunks"),
            "embedder": self.embedder,
            "dim": self.dim,
            "generation": self.generation,
            "faiss_type": self.meta("faiss_type"),
        }

    def check(self) -> list[str]:
        """Problems found by an integrity check (empty when the index is sound).

        SQLite's own ``quick_check``, then the invariants a crash must not break:
        every chunk has its document, full-text row and a vector of the index's
        dimension; every document has all its page rows; every crop exists.
        """
        q = lambda sql: self.db.execute(sql).fetchall()  # noqa: E731
        problems = [f"sqlite: {r[0]}" for r in q("PRAGMA quick_check") if r[0] != "ok"]
        checks = {
            "chunks without a document": "SELECT COUNT(*) FROM chunks c LEFT JOIN documents d USING (doc_id) "
                                         "WHERE d.doc_id IS NULL",
            "chunks without a full-text row": "SELECT COUNT(*) FROM chunks c LEFT JOIN chunks_fts f "
                                              "ON f.rowid = c.id WHERE f.rowid IS NULL",
            "full-text rows without a chunk": "SELECT COUNT(*) FROM chunks_fts f LEFT JOIN chunks c "
                                              "ON f.rowid = c.id WHERE c.id IS NULL",
            f"vectors not of dimension {self.dim}": f"SELECT COUNT(*) FROM chunks WHERE length(vector) != {4 * self.dim}",
            "documents missing page rows": "SELECT COUNT(*) FROM documents d WHERE d.pages != "
                                           "(SELECT COUNT(*) FROM pages p WHERE p.doc_id = d.doc_id)",
        }
        for what, sql in checks.items():
            n = int(q(sql)[0][0])
            if n:
                problems.append(f"{n} {what}")
        missing = [img for (img,) in q("SELECT DISTINCT image FROM chunks WHERE image IS NOT NULL")
                   if not (self.path / img).exists()]
        if missing:
            problems.append(f"{len(missing)} crop image(s) missing, e.g. {missing[0]}")
        return problems

    def close(self) -> None:
        self.db.close()
