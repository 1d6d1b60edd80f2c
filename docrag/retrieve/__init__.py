"""Retrieval: a query into ranked hits with provenance.

Dense search over the FAISS cache for now; BM25 and hybrid fusion build on
the FTS5 table the store already fills.
"""

from __future__ import annotations

from docrag.embed import TextEmbedder
from docrag.index import LocalStore
from docrag.types import Hit

__all__ = ["dense_search"]


def dense_search(store: LocalStore, embedder: TextEmbedder, query: str, k: int = 5, kind: str | None = None) -> list[Hit]:
    """The ``k`` chunks closest to ``query`` by cosine similarity.

    ``kind`` filters before ranking, so ``k`` hits come back whenever ``k`` match.
    """
    if not query.strip():
        return []
    vec = embedder.embed_query(query)
    return store.hits(store.search_vector(vec, k, kind=None if kind in (None, "any") else kind))
