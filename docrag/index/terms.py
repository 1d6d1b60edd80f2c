"""FTS5's BM25 ranking, computed in memory from the FTS5 table's own text.

FTS5 pays for a query by the rows it scores: ``bm25()`` reads each matching
row's size and positions, ~3 µs a row on 2 cores, so an OR of common words
("net", "2023", "quarter") over 30k chunks costs ~70 ms, and pruning the common
words cannot fix it without changing the ranking (measured: an exact top 50
still scores ~5k rows at 30k chunks). :class:`TermIndex` holds each term's
postings (row slots and term counts) and scores a query with numpy: about
``sum(df)`` multiply-adds, ~1 ms at 30k chunks.

The ranking is FTS5's, not an imitation: the text is the FTS5 table's, the
tokens are those of its ``unicode61 remove_diacritics 2`` tokenizer (each row's
token count matches FTS5's stored size on the filings-dev and fixture indexes),
and the score is ``bm25()``'s formula with its constants, idf floor and sum
order. A query this cannot read as single-token terms goes to FTS5.

The postings follow SQLite by chunk id: ids are never reused, so a new
generation is the ids above the highest one held plus the ids gone.

>>> import sqlite3
>>> db = sqlite3.connect(":memory:")
>>> _ = db.execute("CREATE TABLE chunks (id INTEGER PRIMARY KEY)")
>>> _ = db.execute("CREATE VIRTUAL TABLE chunks_fts USING fts5(text)")
>>> for i, text in enumerate(["net sales rose", "net income fell", "sales of vans"], 1):
...     _ = db.execute("INSERT INTO chunks (id) VALUES (?)", (i,))
...     _ = db.execute("INSERT INTO chunks_fts (rowid, text) VALUES (?, ?)", (i, text))
>>> terms = TermIndex()
>>> terms.refresh(db, generation=1)
>>> [cid for cid, _ in terms.search(["net", "sales"], k=2)]
[1, 2]
"""

from __future__ import annotations

import math
import re
import sqlite3
import threading
import unicodedata
from collections import OrderedDict
from pathlib import Path

import numpy as np

__all__ = ["TermIndex", "tokens", "K1", "B"]

K1, B = 1.2, 0.75
"""The constants of FTS5's ``bm25()``."""
_TOKEN = re.compile(r"[^\W_]+")
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_GROWTH = 0.25
"""Rebuild from scratch once removed rows make up this share of the slots."""
_SEGMENTS = 16
"""Rebuild from scratch (one segment) once refreshes have added this many."""


def tokens(text: str) -> list[str]:
    """The tokens FTS5's ``unicode61 remove_diacritics 2`` reads in ``text``.

    >>> tokens("Net sales—Café's Q3 (FY_2023)")
    ['net', 'sales', 'cafe', 's', 'q3', 'fy', '2023']
    """
    text = text.lower()
    if not text.isascii():
        if not unicodedata.is_normalized("NFD", text):
            text = unicodedata.normalize("NFD", text)
        text = _COMBINING.sub("", text)
    return _TOKEN.findall(text)


def _varint(blob: bytes) -> int:
    """The first SQLite varint of ``blob`` (FTS5 stores a row's token count so)."""
    value = 0
    for i, byte in enumerate(blob[:9]):
        if i == 8:
            return (value << 8) | byte
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value
    return -1


class _Segment:
    """The postings of a run of consecutive slots, by term (built at once, never changed)."""

    def __init__(self, base: int, texts: list[str]) -> None:
        self.base = base
        words: list[str] = []
        lengths = np.zeros(len(texts), dtype=np.int64)
        for i, text in enumerate(texts):
            toks = tokens(text or "")
            words += toks
            lengths[i] = len(toks)
        self.lengths = lengths
        vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
        term_of = np.fromiter(map(vocab.__getitem__, words), dtype=np.int64, count=len(words))
        slot_of = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
        pairs, tf = np.unique(term_of * max(len(texts), 1) + slot_of, return_counts=True)
        terms = pairs // max(len(texts), 1)
        self.slots = (pairs % max(len(texts), 1) + base).astype(np.int32)
        self.tf = tf.astype(np.int32)
        self.start = np.searchsorted(terms, np.arange(len(vocab) + 1))
        self.vocab = vocab

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        tid = self.vocab.get(term)
        if tid is None:
            return None
        a, b = self.start[tid], self.start[tid + 1]
        return self.slots[a:b], self.tf[a:b]


class TermIndex:
    """Postings of every token of the FTS5 table, with FTS5's BM25 over them.

    Rows are held in slots, in segments: the first refresh reads the whole table into
    one, each later one adds the rows that are new; a removed row's slot is marked dead.
    Thread-safe: a refresh and the searches it would disturb take one lock, so the readers
    of one process share one (:meth:`shared`).
    """

    _shared: OrderedDict[tuple[str, ...], TermIndex] = OrderedDict()
    _shared_lock = threading.Lock()
    SHARED = 8
    """Indexes whose term index a process keeps for stores still to open (the latest used)."""

    @classmethod
    def shared(cls, key: tuple[str, ...]) -> TermIndex:
        """The process's term index for the index named by ``key`` (its path and creation stamp)."""
        with cls._shared_lock:
            if key not in cls._shared:
                cls._shared[key] = cls()
                while len(cls._shared) > cls.SHARED:  # stores holding one keep it; new ones read anew
                    cls._shared.popitem(last=False)
            cls._shared.move_to_end(key)
            return cls._shared[key]

    def __init__(self) -> None:
        self.generation = -1
        self._lock = threading.Lock()
        self._builder: threading.Thread | None = None
        self._clear()

    def ready(self, db: sqlite3.Connection, db_path: Path, generation: int) -> bool:
        """Whether searches may use the postings now (brought to ``generation`` first).

        The first time, the postings are read on a thread of their own (seconds at 30k
        chunks), from their own connection to ``db_path``, and this answers False until
        they are there; later generations are caught up at once (their new rows only).
        """
        if self.generation >= 0:
            self.refresh(db, generation)
            return True
        with self._lock:
            if self._builder is None:
                self._builder = threading.Thread(target=self._build, args=(db_path, generation), daemon=True,
                                                 name="docrag-terms")
                self._builder.start()
        return False

    def _build(self, db_path: Path, generation: int) -> None:
        db = sqlite3.connect(db_path, timeout=60.0, isolation_level=None, check_same_thread=False)
        try:
            self.refresh(db, generation)
        except sqlite3.Error:  # the index went away or is being replaced: FTS5 answers, try again later
            with self._lock:
                self._builder = None
        finally:
            db.close()

    def _clear(self) -> None:
        self._segments: list[_Segment] = []
        self._ids = np.zeros(0, dtype=np.int64)  # chunk id of each slot
        self._lengths = np.zeros(0, dtype=np.float64)  # tokens of each slot (FTS5's row size)
        self._alive = np.zeros(0, dtype=bool)
        self._slot: dict[int, int] = {}
        self._norm: np.ndarray | None = None
        self.rows = 0
        self.tokens = 0
        self.max_id = 0
        self.faithful = True
        """False once a row's token count differs from FTS5's: its ranking would not be FTS5's."""

    # -- keeping up with SQLite -------------------------------------------

    def refresh(self, db: sqlite3.Connection, generation: int) -> None:
        """Bring the postings to ``generation`` of the index behind ``db`` (added and removed rows only)."""
        if generation == self.generation:
            return
        with self._lock:
            if generation == self.generation:
                return
            own = not db.in_transaction  # one snapshot for all the reads below
            if own:
                db.execute("BEGIN")
            try:
                self._catch_up(db)
            finally:
                if own:
                    db.execute("COMMIT")
            self.generation = generation

    def _catch_up(self, db: sqlite3.Connection) -> None:
        count, top = db.execute("SELECT count(*), coalesce(max(id), 0) FROM chunks").fetchone()
        dead = len(self._ids) - self.rows
        if top < self.max_id or dead > _GROWTH * max(count, 1) or len(self._segments) >= _SEGMENTS:
            self._clear()  # an index replaced under us, too many dead slots or small segments
        new = db.execute("SELECT count(*) FROM chunks WHERE id > ?", (self.max_id,)).fetchone()[0]
        if self.rows + new != count:  # rows were removed: find which
            now = {r[0] for r in db.execute("SELECT id FROM chunks WHERE id <= ?", (self.max_id,))}
            for cid in [c for c in self._slot if c not in now]:
                slot = self._slot.pop(cid)
                self._alive[slot] = False
                self.rows -= 1
                self.tokens -= int(self._lengths[slot])
        rows = db.execute("SELECT rowid, text FROM chunks_fts WHERE rowid > ? ORDER BY rowid", (self.max_id,)).fetchall()
        if rows:
            segment = _Segment(len(self._ids), [text for _, text in rows])
            ids = np.array([cid for cid, _ in rows], dtype=np.int64)
            self.faithful = self.faithful and self._same_sizes(db, ids, segment.lengths)
            self._segments.append(segment)
            self._slot.update((int(cid), segment.base + i) for i, cid in enumerate(ids))
            self._ids = np.concatenate([self._ids, ids])
            self._lengths = np.concatenate([self._lengths, segment.lengths.astype(np.float64)])
            self._alive = np.concatenate([self._alive, np.ones(len(ids), dtype=bool)])
            self.rows += len(ids)
            self.tokens += int(segment.lengths.sum())
            self.max_id = max(self.max_id, int(ids[-1]))
        self.max_id = max(self.max_id, int(top))
        self._norm = None

    @staticmethod
    def _same_sizes(db: sqlite3.Connection, ids: np.ndarray, lengths: np.ndarray) -> bool:
        """Whether FTS5 counted as many tokens in each of these rows as :func:`tokens` did."""
        try:
            sizes = dict(db.execute("SELECT id, sz FROM chunks_fts_docsize WHERE id >= ?", (int(ids[0]),)).fetchall())
        except sqlite3.Error:  # no size table (columnsize=0): nothing to check against
            return False
        return all(_varint(sizes.get(int(cid)) or b"") == n for cid, n in zip(ids, lengths))

    # -- searching ------------------------------------------------------------

    def search(self, terms: list[str], k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top ``k`` (chunk id, BM25 score; higher is better) for single-token ``terms``, as FTS5
        ranks ``"t1" OR "t2" ...``; only chunk ids in ``allowed`` when given. Ties go to the lower id."""
        with self._lock:
            if not self.rows or k <= 0:
                return []
            ids, alive, n = self._ids, self._alive, self.rows
            if self._norm is None:  # FTS5's length normalisation, for this generation's average
                self._norm = K1 * (1 - B + B * self._lengths / (self.tokens / self.rows))
            norm, all_alive = self._norm, n == len(ids)
            scores = np.zeros(len(ids), dtype=np.float64)
            for term in terms:  # in query order: FTS5 sums its phrases in that order
                found = [p for p in (seg.postings(term) for seg in self._segments) if p is not None]
                if not found:
                    continue
                slots = np.concatenate([p[0] for p in found]) if len(found) > 1 else found[0][0]
                tf = np.concatenate([p[1] for p in found]) if len(found) > 1 else found[0][1]
                if not all_alive:
                    live = alive[slots]
                    slots, tf = slots[live], tf[live]
                if not len(slots):
                    continue
                df, tf = len(slots), tf.astype(np.float64)
                idf = math.log((n - df + 0.5) / (df + 0.5))
                idf = idf if idf > 0 else 1e-6
                scores[slots] += idf * ((tf * (K1 + 1.0)) / (tf + norm[slots]))
        candidates = np.flatnonzero(scores > 0)
        if allowed is not None:
            candidates = candidates[np.isin(ids[candidates], allowed)]
        if len(candidates) > k:
            # The k best and any row tied with the k-th, then the exact order.
            kth = np.partition(scores[candidates], len(candidates) - k)[len(candidates) - k]
            candidates = candidates[scores[candidates] >= kth]
        order = np.lexsort((ids[candidates], -scores[candidates]))[:k]
        return [(int(ids[candidates[i]]), float(scores[candidates[i]])) for i in order]

    @staticmethod
    def single_tokens(terms: list[str]) -> list[str] | None:
        """Each query term as the one token FTS5 reads in it, or None when one reads as none or several
        (a phrase, which only FTS5 can match)."""
        out = []
        for term in terms:
            toks = tokens(term)
            if len(toks) != 1:
                return None
            out.append(toks[0])
        return out
