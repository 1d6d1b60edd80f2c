"""Retrieval: a query into ranked hits with provenance.

Modes: ``dense`` (FAISS cosine), ``bm25`` (SQLite FTS5) and ``hybrid`` (both,
fused by rank and relative score: :mod:`docrag.retrieve.fusion`; the default). Filters apply before ranking.
Optional cross-encoder reranking, overlap dedupe, page ranking (one hit per
page, scored from all its chunks: :mod:`docrag.retrieve.pages`), context
windows of neighbouring chunks, and evidence boxes narrowed to the lines that
match. The query is read first (:mod:`docrag.retrieve.query`): the concepts of
a lexicon add a BM25 and a dense ranking of the words documents use for them,
and a statement or section cue; documents whose company or period the query
names get a boost (:mod:`docrag.retrieve.cues`). With a reranker, page grouping
keeps the reranked order's first hit per page.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import inspect
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterator, Literal

import numpy as np

from docrag.embed import TextEmbedder
from docrag.embed.image import ImageEmbedder
from docrag.index import Filters, LocalStore
from docrag.retrieve.context import expand_window
from docrag.retrieve.cues import document_scores
from docrag.retrieve.fusion import dedupe_overlaps, fuse, group_by_page
from docrag.retrieve.lexicon import load_lexicon
from docrag.retrieve.locate import locate_evidence
from docrag.retrieve.pages import rank_pages
from docrag.retrieve.query import QueryPlan, plan_query
from docrag.retrieve.rerank import Reranker
from docrag.types import Hit

__all__ = ["search", "Mode", "crowded"]

Mode = Literal["dense", "bm25", "hybrid"]
MODES = ("dense", "bm25", "hybrid")
VISUAL_KINDS = ("figure", "chart", "table")
EXPANSION_WEIGHT = 1.0
"""Weight of each lexicon-expanded ranking (BM25 and dense) in the fusion for a firmly named concept
(a phrase: "free cash flow"); a one-word concept ("revenue") weighs its cue strength times this.
The plain rankings weigh 1."""
CUE_WEIGHT = 1.0
"""Weight of each page cue (statement, section, period, filing) in page ranking."""


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
    lexicon: str | None = None,
) -> list[Hit]:
    """The ``k`` best chunks for ``query``.

    Args:
        mode: ``dense``, ``bm25`` or ``hybrid`` (both fused: :func:`~docrag.retrieve.fusion.fuse`).
        filters: Source glob, page range, kind and tags; applied before top-k.
        rrf_k: The fusion's rank constant (higher flattens the rank part of it).
        reranker: Re-scores the top candidates when given.
        window: Add this many neighbouring chunks of the same page to each hit.
        group: ``page`` ranks pages from the evidence of all their chunks and the query's
            statement, section and period cues, and returns each page's best chunk.
        locate: Narrow each hit's ``bbox`` to the lines matching the query.
        image_embedder: When the index embedded its figure crops, the query
            also goes through this model's text tower; the figure ranking it
            gives joins the fusion beside the text-side rankings.
        cues: Boost the documents whose company or period the query names, and (page
            grouping) the pages showing the statement, section and period it asks for.
        lexicon: A user lexicon file (JSON) whose concepts join the built-in finance pack's.
    """
    if mode not in MODES:
        from docrag.errors import ConfigError

        raise ConfigError(f"unknown search mode {mode!r}; known: {', '.join(MODES)}")
    if not query.strip():
        return []
    depth = max(50, 5 * k)
    plan = plan_query(query, load_lexicon(lexicon))
    qvec: np.ndarray | None = None
    focus_vec: np.ndarray | None = None
    if mode != "bm25":
        # The expansion's words are the documents' own ("purchases of property and equipment"):
        # BM25 finds them, and a dense ranking of them as well adds nothing where BM25 runs
        # (filings-dev hybrid, page R@1/R@5/MRR: qa 0.733/0.983/0.832 with it, 0.767/0.983/0.851
        # without; hard 0.583/0.861/0.699 and 0.611/0.861/0.716) but a second encoder run, a
        # quarter of a search's time. Dense mode has no other expansion, and keeps it (qa R@5
        # 0.917 with it, 0.883 without).
        texts = [query] + ([plan.focus] if plan.focus and mode == "dense" else [])
        with _searching() as alone:
            qvec, *rest = embed_queries(embedder, texts, alone=alone)
        focus_vec = rest[0] if rest else None
    rankings = []
    if mode in ("dense", "hybrid"):
        rankings.append(store.search_vector(qvec, depth, filters))
    if mode in ("bm25", "hybrid"):
        rankings.append(store.search_text(query, depth, filters))
    weights = [1.0] * len(rankings)
    # Which text each ranking searched (page ranking: one text's rankings must agree on one chunk).
    searched = ["query"] * len(rankings)
    # A one-word concept names many pages: its document words may steer the fusion less than a phrase's.
    expansion_weight = EXPANSION_WEIGHT * plan.strength
    if plan.focus:
        # The words documents use for the query's concepts ("capex" -> "purchases of property and
        # equipment"), as rankings of their own so the query's words keep theirs. Without the
        # query's period words: the period is a cue of its own, and dates match every page of a filing.
        if mode != "dense":
            rankings.append(store.search_text(plan.focus, depth, filters))
            weights.append(expansion_weight)
            searched.append("focus")
        if focus_vec is not None:
            rankings.append(store.search_vector(focus_vec, depth, filters))
            weights.append(expansion_weight)
            searched.append("focus")
    profiles = store.profiles() if cues else {}
    doc_scores = document_scores(store, query, profiles) if cues else {}
    cued = _best(doc_scores, len(profiles))
    if cued and mode != "bm25":
        # Two-stage in spirit: the documents the question names (company, period) get
        # their own dense ranking in the fusion. A boost, never a filter.
        f = filters or Filters()
        within = dataclasses.replace(f, doc_ids=tuple(cued))
        rankings.append(store.search_vector(qvec, depth, within))
        weights.append(1.0)
        searched.append("query")  # the query's own vector, within the named documents
    # Figure and table chunks hold few words (a caption, axis labels): their BM25
    # ranks are noisy, so a search restricted to them leans on the dense side.
    visual = filters is not None and filters.kind in VISUAL_KINDS
    if visual and mode == "hybrid":
        weights[1] = 0.25
    if image_embedder is not None and mode != "bm25":
        # The picture side weighs as much as the text side together (a 50/50 fusion).
        rankings.append(store.search_image(image_embedder.embed_text([query])[0], depth, filters))
        weights.append(sum(weights))
        searched.append("image")
    if group == "page" and reranker is None:
        pages = rank_pages(store, rankings, weights, plan, doc_scores if cues else {}, rrf_k,
                           CUE_WEIGHT if cues else 0.0, searched=searched)
        hits = store.hits(pages[:k])
        return _finish(store, hits, query, plan, window, locate)
    ranked = fuse(rankings, rrf_k, weights=weights) if len(rankings) > 1 else rankings[0]
    ranked = ranked[: max(depth, 3 * k)]
    if reranker is None and group == "chunk":
        return _finish(store, _first_distinct(store, ranked, k), query, plan, window, locate)
    hits = store.hits(ranked)
    if reranker is not None and hits:
        top = hits[: max(3 * k, 20)]
        scores = reranker.score(query, [h.text for h in top])
        for h, s in zip(top, scores):
            h.score = float(s)
        hits = sorted(top, key=lambda h: -h.score)
    hits = dedupe_overlaps(hits)
    if group == "page":
        hits = group_by_page(hits)
    return _finish(store, hits[:k], query, plan, window, locate)


def _first_distinct(store: LocalStore, ranked: list[tuple[int, float]], k: int) -> list[Hit]:
    """The first ``k`` hits of ``ranked`` that no better one overlaps, read from the store a few at a time."""
    n = min(len(ranked), 2 * k)
    while True:
        hits = dedupe_overlaps(store.hits(ranked[:n]), limit=k)
        if len(hits) >= k or n >= len(ranked):
            return hits
        n = min(len(ranked), 2 * n)


_aside: ThreadPoolExecutor | None = None
_aside_lock = threading.Lock()
_in_flight = 0  # searches of this process embedding their query now
_crowd: contextvars.ContextVar[bool] = contextvars.ContextVar("docrag_crowd", default=False)


@contextlib.contextmanager
def crowded(others: bool = True) -> Iterator[None]:
    """Searches of this context embed as when others run at once (``others``), whatever this
    process sees: a server's search processes each see only their own search, while the
    server, which hands them out, knows how many run (see :func:`embed_queries`)."""
    token = _crowd.set(others)
    try:
        yield
    finally:
        _crowd.reset(token)


@contextlib.contextmanager
def _searching() -> Iterator[bool]:
    """Count this search's query embedding in; yields whether no other search is embedding now."""
    global _in_flight
    with _aside_lock:
        _in_flight += 1
        alone = _in_flight == 1 and not _crowd.get()
    try:
        yield alone
    finally:
        with _aside_lock:
            _in_flight -= 1


def embed_queries(embedder: TextEmbedder, texts: list[str], alone: bool = True) -> list[np.ndarray]:
    """The vectors of a query and its expansion.

    ``alone`` (no other search is embedding at the same time): computed at once. An embedder with
    ``embed_queries`` does it itself (the ONNX one runs one text per core, or a lone query on all
    of them); with any other, the rest are embedded on helper threads while this one embeds the
    first (encoders release the GIL): two encodings in the time of one, cores allowing.
    Not ``alone`` (searches at once, a busy server): one text after another on this thread, as
    ``embed_query`` gives it; the other searches keep the cores busy, and spreading each search
    over all cores only makes them wait on each other (``docrag serve``, 8 clients on 2 cores:
    121 against 100 requests/s).
    """
    own = getattr(embedder, "embed_queries", None)
    if own is not None and (alone or _takes_alone(type(embedder))):
        return list(own(texts) if alone else own(texts, alone=False))
    if not alone:
        return [embedder.embed_query(text) for text in texts]
    aside = [_embed_aside(embedder, text) for text in texts[1:]]
    return [embedder.embed_query(texts[0])] + [f.result() for f in aside]


@functools.lru_cache(maxsize=None)
def _takes_alone(cls: type) -> bool:
    """Whether an embedder class's ``embed_queries`` takes ``alone`` (ours does; others may not).

    Asked once per class: a busy server asks on every search.
    """
    try:
        return "alone" in inspect.signature(cls.embed_queries).parameters
    except (TypeError, ValueError):
        return False


def _embed_aside(embedder: TextEmbedder, text: str) -> Future[np.ndarray]:
    """``embedder.embed_query(text)`` on a helper thread (one per core, shared by all searches)."""
    global _aside
    with _aside_lock:
        if _aside is None:
            _aside = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="docrag-query")
    return _aside.submit(embedder.embed_query, text)


def _best(doc_scores: dict[str, int], documents: int) -> list[str]:
    """The documents with the best cue score (none when all ``documents`` tie)."""
    if not doc_scores:
        return []
    top = max(doc_scores.values())
    best = sorted(d for d, v in doc_scores.items() if v == top)
    return [] if len(best) == documents else best


def _finish(store: LocalStore, hits: list[Hit], query: str, plan: QueryPlan, window: int, locate: bool
            ) -> list[Hit]:
    if window > 0:
        expand_window(store, hits, window)
    if locate and hits:
        # The concepts' document words help find the line ("capex" -> "purchases of property ...").
        locate_evidence(hits, query, expansion=plan.focus)
    return hits
