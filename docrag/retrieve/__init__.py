"""Retrieval: a query into ranked hits with provenance.

Modes: ``dense`` (FAISS cosine), ``bm25`` (SQLite FTS5) and ``hybrid`` (both,
fused by reciprocal rank fusion; the default). Filters apply before ranking.
Optional cross-encoder reranking, overlap dedupe, one hit per page, context
windows of neighbouring chunks, and evidence boxes narrowed to the lines that
match. Documents whose company or year the query names get a boost
(:mod:`docrag.retrieve.cues`).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from docrag.embed import TextEmbedder
from docrag.embed.image import ImageEmbedder
from docrag.index import Filters, LocalStore
from docrag.retrieve.context import expand_window
from docrag.retrieve.cues import cued_documents
from docrag.retrieve.fusion import dedupe_overlaps, group_by_page, rrf
from docrag.retrieve.locate import locate_evidence
from docrag.retrieve.rerank import Reranker
from docrag.types import Hit

__all__ = ["search", "Mode"]

Mode = Literal["dense", "bm25", "hybrid"]
MODES = ("dense", "bm25", "hybrid")
VISUAL_KINDS = ("figure", "chart", "table")


def search(
    store: LocalStore,
    embedder: TextEmbedder,
    query: str,
    k: int = 5,
    mode: Mode = "hybrid",
    filters: Filters | None = None,
    rrf_k: int = 60,
    reranker: Reranker | None = None,
    window: int = 0,
    group: Literal["chunk", "page"] = "chunk",
    locate: bool = True,
    image_embedder: ImageEmbedder | None = None,
    cues: bool = True,
) -> list[Hit]:
    """The ``k`` best chunks for ``query``.

    Args:
        mode: ``dense``, ``bm25`` or ``hybrid`` (RRF of both).
        filters: Source glob, page range, kind and tags; applied before top-k.
        rrf_k: The RRF constant (higher flattens the fusion).
        reranker: Re-scores the top candidates when given.
        window: Add this many neighbouring chunks of the same page to each hit.
        group: ``page`` keeps one hit per page (its best chunk).
        locate: Narrow each hit's ``bbox`` to the lines matching the query.
        image_embedder: When the index embedded its figure crops, the query
            also goes through this model's text tower; the figure ranking it
            gives joins the fusion (RRF) beside the text-side rankings.
        cues: Boost the documents whose company or fiscal year the query names.
    """
    if mode not in MODES:
        from docrag.errors import ConfigError

        raise ConfigError(f"unknown search mode {mode!r}; known: {', '.join(MODES)}")
    if not query.strip():
        return []
    depth = max(50, 5 * k)
    qvec: np.ndarray | None = embedder.embed_query(query) if mode != "bm25" else None
    rankings = []
    if mode in ("dense", "hybrid"):
        rankings.append(store.search_vector(qvec, depth, filters))
    if mode in ("bm25", "hybrid"):
        rankings.append(store.search_text(query, depth, filters))
    weights = [1.0] * len(rankings)
    cued = cued_documents(store, query) if cues else []
    if cued and mode != "bm25":
        # Two-stage in spirit: the documents the question names (company, year) get
        # their own dense ranking in the fusion. A boost, never a filter.
        f = filters or Filters()
        within = dataclasses.replace(f, doc_ids=tuple(cued))
        rankings.append(store.search_vector(qvec, depth, within))
        weights.append(1.0)
    # Figure and table chunks hold few words (a caption, axis labels): their BM25
    # ranks are noisy, so a search restricted to them leans on the dense side.
    visual = filters is not None and filters.kind in VISUAL_KINDS
    if visual and mode == "hybrid":
        weights[1] = 0.25
    if image_embedder is not None and mode != "bm25":
        # The picture side weighs as much as the text side together (a 50/50 fusion).
        rankings.append(store.search_image(image_embedder.embed_text([query])[0], depth, filters))
        weights.append(sum(weights))
    ranked = rrf(rankings, rrf_k, weights=weights) if len(rankings) > 1 else rankings[0]
    hits = store.hits(ranked[: max(depth, 3 * k)])
    if reranker is not None and hits:
        top = hits[: max(3 * k, 20)]
        scores = reranker.score(query, [h.text for h in top])
        for h, s in zip(top, scores):
            h.score = float(s)
        hits = sorted(top, key=lambda h: -h.score)
    hits = dedupe_overlaps(hits)
    if group == "page":
        hits = group_by_page(hits)
    hits = hits[:k]
    if window > 0:
        expand_window(store, hits, window)
    if locate and hits:
        locate_evidence(hits, query, qvec if qvec is not None else embedder.embed_query(query), embedder)
    return hits

