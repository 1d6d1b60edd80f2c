"""The fast search path ranks as the slow one did: the in-memory term index is FTS5's BM25, evidence
is located without embedding, overlap dedupe stops early without changing the first hits."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from docrag import Index, IngestOptions
from docrag.index import Filters
from docrag.index.store import TERMS_AFTER
from docrag.index.terms import TermIndex, tokens
from docrag.index.text_search import bm25_search
from docrag.retrieve import search
from docrag.retrieve.fusion import dedupe_overlaps

FAKE = IngestOptions(ocr="never", embedder="fake-hash", chunk_tokens=40, chunk_overlap=10)
QUERIES = ["fleet tractors trailers vans", "revenue 2023", "the", "Northwind Logistics consolidated revenue",
           "battery-electric delivery vans", "Halvorsen depot Tromso injuries", "zzz unknown words", "café naïve",
           "what was the net income of the company in fiscal 2023?"]


@pytest.fixture()
def two_docs(tmp_path: Path, fixtures_dir: Path) -> Index:
    index = Index(tmp_path / "ix", FAKE)
    index.ingest([fixtures_dir / "report.pdf"], tags={"year": "2023"})
    index.ingest([fixtures_dir / "mixed.pdf"], tags={"year": "2024"})
    return index


def _varint(blob: bytes) -> int:
    value = 0
    for byte in blob:
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            break
    return value


def test_tokens_count_as_fts5_sizes_each_row(two_docs: Index) -> None:
    db = two_docs.store().db
    sizes = dict(db.execute("SELECT id, sz FROM chunks_fts_docsize").fetchall())
    rows = db.execute("SELECT rowid, text FROM chunks_fts").fetchall()
    assert rows and all(len(tokens(text)) == _varint(sizes[rowid]) for rowid, text in rows)


def _same(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> None:
    assert [c for c, _ in got] == [c for c, _ in want]
    assert np.allclose([s for _, s in got], [s for _, s in want], rtol=0, atol=1e-9)


def test_term_index_ranks_as_fts5_through_adds_deletes_and_filters(two_docs: Index, fixtures_dir: Path) -> None:
    store = two_docs.store()
    for _ in range(TERMS_AFTER):
        store.search_text("warm up", 5)
    store.warm()  # the postings are read now, not on their thread
    filters = [None, Filters(kind="text"), Filters(pages=(2, 3)), Filters(tags={"year": "2024"}),
               Filters(source="*report*")]
    for step in range(3):
        for query in QUERIES:
            for f in filters:
                for k in (1, 5, 50):
                    _same(store.search_text(query, k, f), bm25_search(store.db, query, k, f))
        assert store._terms is not None and store._terms.generation == store.generation
        if step == 0:
            two_docs.ingest([fixtures_dir / "visual.pdf"])  # rows added: the postings catch up
        elif step == 1:
            doc = next(d for d in two_docs.documents() if d["source"].endswith("report.pdf"))
            two_docs.delete(doc["doc_id"])  # rows removed: their slots die


def test_a_term_fts5_reads_as_a_phrase_goes_to_fts5(two_docs: Index) -> None:
    store = two_docs.store()
    store.warm()
    assert TermIndex.single_tokens(["fleet_size"]) is None
    _same(store.search_text("fleet_size vans", 5), bm25_search(store.db, "fleet_size vans", 5))


def test_term_index_alone_matches_fts5_on_a_bare_table() -> None:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.execute("CREATE TABLE documents (doc_id TEXT PRIMARY KEY)")
    db.execute("CREATE TABLE chunks (id INTEGER PRIMARY KEY, doc_id TEXT)")
    db.execute("CREATE VIRTUAL TABLE chunks_fts USING fts5(text, tokenize = 'unicode61 remove_diacritics 2')")
    db.execute("INSERT INTO documents VALUES ('d')")
    rng = np.random.default_rng(0)
    words = ["net", "sales", "income", "café", "Naïve", "q3", "2023", "total", "vans", "fleet", "x_y"]
    for i in range(1, 301):
        db.execute("INSERT INTO chunks (id, doc_id) VALUES (?, 'd')", (i,))
        db.execute("INSERT INTO chunks_fts (rowid, text) VALUES (?, ?)",
                   (i, " ".join(rng.choice(words, size=int(rng.integers(1, 40))))))
    terms = TermIndex()
    terms.refresh(db, generation=1)
    for query in ["net sales", "cafe naive", "total 2023 q3 fleet", "vans", "x"]:
        got = terms.search(TermIndex.single_tokens(query.split()), 20)
        _same(got, bm25_search(db, query, 20))


class NoDocumentEmbedding:
    """Embeds queries only: evidence location must not embed the hits' sentences."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.dim = inner, inner.name, inner.dim

    def embed_query(self, text: str) -> np.ndarray:
        return self.inner.embed_query(text)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        raise AssertionError(f"embedded {len(texts)} document texts at query time")


def test_evidence_is_located_without_embedding_sentences(two_docs: Index) -> None:
    embedder = NoDocumentEmbedding(two_docs.embedder())
    for query in QUERIES + ["How many battery-electric delivery vans are in the fleet?"]:
        for group in ("chunk", "page"):
            hits = search(two_docs.store(), embedder, query, k=5, group=group)
            for h in hits:
                assert h.chunk_bbox is not None
                x0, y0, x1, y1 = h.bbox
                cx0, cy0, cx1, cy1 = h.chunk_bbox
                assert cx0 - 0.01 <= x0 and cy0 - 0.01 <= y0 and x1 <= cx1 + 0.01 and y1 <= cy1 + 0.01
    vans = next(h for h in search(two_docs.store(), embedder, "How many battery-electric delivery vans?", k=20)
                if "battery-electric delivery vans" in h.text)
    assert vans.bbox != vans.chunk_bbox  # narrowed to the sentence that matched
    lines = [vans.text[a:b] for (a, b), box in zip(vans.line_spans, vans.line_boxes)
             if vans.bbox[1] - 0.01 <= box[1] and box[3] <= vans.bbox[3] + 0.01]
    assert any("battery" in line for line in lines), lines


def test_dedupe_stops_early_with_the_same_first_hits(two_docs: Index) -> None:
    store = two_docs.store()
    ranked = store.search_vector(two_docs.embedder().embed_query("fleet vans depot revenue"), 60)
    hits = store.hits(ranked)
    full = dedupe_overlaps(hits)
    for k in (1, 3, 5, 10, 60):
        assert [h.chunk_id for h in dedupe_overlaps(hits, limit=k)] == [h.chunk_id for h in full[:k]]


def test_the_first_searches_are_fts5_while_the_postings_are_read_aside(two_docs: Index) -> None:
    store = two_docs.store()
    query = "fleet tractors trailers vans"
    want = bm25_search(store.db, query, 10)
    for _ in range(TERMS_AFTER + 20):
        _same(store.search_text(query, 10), want)  # FTS5, then the postings once read: the same
    assert store._terms is not None
    store._terms._builder.join(30)
    assert store._terms.generation == store.generation
    _same(store.search_text(query, 10), want)
