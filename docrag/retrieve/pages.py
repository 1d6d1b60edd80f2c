"""Page ranking: a page scored from the evidence of all its chunks, not its best one alone.

The page that answers "Apple's quick ratio at June 25, 2022" is a balance sheet:
its title chunk says "Condensed Consolidated Balance Sheets", its table chunks
hold "Total current liabilities 129,873". No one chunk says all of it. A page's
score fuses, per searched text (the query: its dense, BM25 and named-filing
rankings; the lexicon's expansion: its BM25 and dense rankings), the page's
best chunk by that text's rankings together, and sums the texts: the query's
words may find the title, the concept's document words a table row. Within
one text the rankings must agree on a chunk: a cover chunk first in dense and
a highlights chunk fourth in BM25 are not one chunk that is first and fourth,
so a page no longer outscores a page whose one chunk is third and second, and
a page of many chunks draws no extra lots. Then page cues, read from all
the page's chunk headers, add a boost: the page is the statement the query's
concept lives on, carries the section the concept is disclosed in, shows the
period the query names in its column heads, or belongs to the filing the query
names. Every cue is a boost, never a filter. Each page is returned with its
best chunk.

>>> pages = {1: ("d", 1), 2: ("d", 1), 3: ("d", 2)}  # chunks 1 and 2 on page 1, chunk 3 on page 2
>>> fused = page_scores([[(1, 0.9), (3, 0.8)], [(2, 5.0), (3, 4.0)]], [1.0, 1.0], pages, k=60)
>>> [(key, round(s, 3)) for key, s in fused]
[(('d', 1), 2.0), (('d', 2), 0.984)]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from docrag.chunk.statements import statement_kind
from docrag.index import LocalStore
from docrag.retrieve.fusion import contributions, fuse
from docrag.retrieve.query import QueryPlan

__all__ = ["PageInfo", "page_scores", "page_info", "chunk_pages", "rank_pages", "CUES"]

PageKey = tuple[str, int]

MEMO_PAGES = 100_000
"""Most pages whose cue text a store keeps between queries."""
MEMO_CHUNKS = 1_000_000
"""Most chunks whose page a store keeps between queries (~100 MB at the limit)."""
CUES = ("statement", "section", "period", "document")
"""The page cues in use (all by default; a name left out switches that cue off, for measurement)."""


@dataclass
class PageInfo:
    """What a candidate page says about itself, read from its text chunks' context headers and openings."""

    statement: str = ""
    text: str = ""
    """Its headers and first lines, lower-cased with punctuation as spaces, for cue matching."""


def page_scores(rankings: list[list[tuple[int, float]]], weights: list[float], page_of: dict[int, PageKey],
                k: int = 60, searched: list[str] | None = None) -> list[tuple[PageKey, float]]:
    """Pages by fused evidence, best first.

    The rankings of one searched text (``searched[i]`` names the text of ranking ``i``: the
    query, the lexicon's expansion, ...) are fused per chunk (:func:`~docrag.retrieve.fusion.contributions`
    summed over them), and the page takes its best chunk's sum: a chunk that both the dense and the BM25
    ranking of the query place high is evidence, two chunks that each one ranking likes are
    not the same evidence twice. The texts' page scores are then summed: the query's words may
    find a statement's title, its concept's document words a row of its table. Without
    ``searched`` every ranking is a text of its own (each its page's best chunk).
    """
    searched = searched if searched is not None else [str(i) for i in range(len(rankings))]
    scores: dict[PageKey, float] = {}
    for text in dict.fromkeys(searched):
        chunk: dict[int, float] = {}
        for ranking, w, s in zip(rankings, weights, searched):
            if s != text:
                continue
            for cid, v in contributions(ranking, w, k):
                chunk[cid] = chunk.get(cid, 0.0) + v
        best: dict[PageKey, float] = {}
        for cid, v in chunk.items():
            key = page_of.get(cid)
            if key is not None and v > best.get(key, 0.0):
                best[key] = v
        for key, v in best.items():
            scores[key] = scores.get(key, 0.0) + v
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def chunk_pages(store: LocalStore, ids: list[int]) -> dict[int, PageKey]:
    """The page of each chunk id (read once per chunk and index generation: :meth:`LocalStore.memo`)."""
    memo = store.memo("chunk_page")
    missing = [cid for cid in ids if cid not in memo]
    if len(memo) + len(missing) > MEMO_CHUNKS:
        memo.clear()
    for start in range(0, len(missing), 900):  # SQLite's bound-parameter limit
        part = missing[start:start + 900]
        rows = store.db.execute(f"SELECT id, doc_id, page FROM chunks WHERE id IN ({','.join('?' * len(part))})", part)
        memo.update((cid, (doc_id, page)) for cid, doc_id, page in rows)
    return {cid: memo[cid] for cid in ids if cid in memo}


def page_info(store: LocalStore, keys: list[PageKey]) -> dict[PageKey, PageInfo]:
    """The statement and cue text of each page in ``keys`` (read once per page and index generation:
    :meth:`LocalStore.memo`)."""
    memo = store.memo("page_info")
    missing = [key for key in keys if key not in memo]
    if missing:
        if len(memo) + len(missing) > MEMO_PAGES:
            memo.clear()
        memo.update(_page_info(store, missing))
    return {key: memo[key] for key in keys}


def _page_info(store: LocalStore, keys: list[PageKey]) -> dict[PageKey, PageInfo]:
    """The statement and cue text of each page in ``keys`` (one query over their text chunks)."""
    parts: dict[PageKey, dict[str, None]] = {key: {} for key in keys}
    for start in range(0, len(keys), 400):  # SQLite's bound-parameter limit
        chunk_keys = keys[start:start + 400]
        marks = ",".join("(?, ?)" for _ in chunk_keys)
        rows = store.db.execute(
            f"SELECT doc_id, page, context, substr(text, 1, 200) FROM chunks "
            f"WHERE kind = 'text' AND (doc_id, page) IN (VALUES {marks}) ORDER BY doc_id, page, ordinal",
            [v for key in chunk_keys for v in key]).fetchall()
        for doc_id, page, context, head in rows:
            # The chunks of a page mostly share one header: each distinct piece is read once.
            seen = parts[(doc_id, page)]
            for piece in re.split(r" · | › ", context) + head.split("\n")[:4]:
                seen.setdefault(piece.strip())
    out = {}
    for key, pieces in parts.items():
        statement = next((kind for kind in map(statement_kind, (p for p in pieces if len(p) < 140)) if kind), "")
        out[key] = PageInfo(statement=statement, text=" " + _norm(" | ".join(pieces)) + " ")
    return out


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def rank_pages(store: LocalStore, rankings: list[list[tuple[int, float]]], weights: list[float], plan: QueryPlan,
               doc_scores: dict[str, int], k: int = 60, cue_weight: float = 1.0,
               searched: list[str] | None = None) -> list[tuple[int, float]]:
    """(best chunk id, page score) of each candidate page, best page first.

    Args:
        rankings: Chunk rankings (dense, BM25, ...), best first.
        weights: Their weights in the fusion.
        plan: The query's periods and concepts (:func:`docrag.retrieve.query.plan_query`).
        doc_scores: Filing cue strength per doc id (:func:`docrag.retrieve.cues.document_scores`).
        cue_weight: Weight of each page cue's ranking.
        searched: The text each ranking searched (:func:`page_scores`).
    """
    ids = sorted({cid for ranking in rankings for cid, _ in ranking})
    if not ids:
        return []
    page_of = chunk_pages(store, ids)
    base = page_scores(rankings, weights, page_of, k, searched)
    keys = [key for key, _ in base]
    infos = page_info(store, keys)
    # Each cue: the pages it holds for, with its strength there (0-1).
    cues: list[dict[PageKey, float]] = []
    if plan.statements and "statement" in CUES:
        cues.append({key: plan.statements[infos[key].statement] for key in keys
                     if infos[key].statement in plan.statements})
    if plan.sections and "section" in CUES:
        wanted = {f" {_norm(s)} ": w for s, w in plan.sections.items()}
        found = {key: [w for s, w in wanted.items() if s in infos[key].text] for key in keys}
        cues.append({key: max(ws) for key, ws in found.items() if ws})
    if plan.period_words and "period" in CUES:
        words = [f" {_norm(w)} " for w in plan.period_words]
        shown = {key: sum(w in infos[key].text for w in words) / len(words) for key in keys}
        cues.append({key: v for key, v in shown.items() if v > 0})
    if doc_scores and "document" in CUES:
        top = max(doc_scores.values())
        cues.append({key: 1.0 for key in keys if doc_scores.get(key[0], 0) == top})
    scores = dict(base)
    for cue in cues:
        # A boost as large as a first place in one ranking (1), the same for every page the cue
        # holds for: it lifts them over the others without reordering them among themselves.
        for key, strength in cue.items():
            scores[key] += cue_weight * strength
    best: dict[PageKey, int] = {}  # each page's best chunk by all the rankings fused
    for cid, _ in fuse(rankings, k, weights):
        best.setdefault(page_of.get(cid, ("", 0)), cid)
    ordered = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(best[key], s) for key, s in ordered if key in best]
