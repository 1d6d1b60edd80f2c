"""Retrieval: a query into ranked hits with provenance.

Dense search over the FAISS cache for now; BM25 and hybrid fusion build on
the FTS5 table the store already fills.
"""

from __future__ import annotations

from docrag.embed import TextEmbedder
from docrag.index import LocalStore
from docrag.retrieve.locate import locate_evidence
from docrag.types import Hit

__all__ = ["dense_search"]


def dense_search(
    store: LocalStore, embedder: TextEmbedder, query: str, k: int = 5, kind: str | None = None, locate: bool = True
) -> list[Hit]:
    """The ``k`` chunks closest to ``query`` by cosine similarity.

    ``kind`` filters before ranking, so ``k`` hits come back whenever ``k`` match.
    With ``locate`` each hit's ``bbox`` is narrowed to the lines that match
    the query best (see :mod:`docrag.retrieve.locate`).
    """
    if not query.strip():
        return []
    vec = embedder.embed_query(query)
    hits = store.hits(store.search_vector(vec, k, kind=None if kind in (None, "any") else kind))
    if locate:
        locate_evidence(hits, query, vec, embedder)
    return hits
