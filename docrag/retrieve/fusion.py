"""Rank fusion and result shaping: rank-and-score fusion, overlap dedupe, one hit per page.

Hybrid search fuses a dense and a BM25 ranking (and the expansion's, and a
named filing's). Reciprocal rank fusion (RRF: ``w / (k + rank)``) keeps each
ranking's order and drops its margins: a page that BM25 alone finds, the one
page saying "studded tyres", at three times the next page's score, ties with a
page that is second in both rankings. :func:`contributions` keeps both: each
item gets the mean of its reciprocal rank, scaled so a first place is 1
(``(k + 1) / (k + rank)``), and its score relative to its ranking's best and
worst (min-max over the ranking's depth). A first place is worth ``w`` either
way; a clear margin in one ranking now outweighs a near tie in the other.

>>> fuse([[(1, 0.9), (2, 0.8)], [(2, 12.0), (3, 9.0)]], k=60)[0][0]
2
>>> [round(v, 3) for _, v in contributions([(7, 15.5), (8, 4.8), (9, 1.4)], 1.0, k=60)]
[1.0, 0.613, 0.484]
"""

from __future__ import annotations

from docrag.types import Hit

__all__ = ["fuse", "contributions", "dedupe_overlaps", "group_by_page"]


def contributions(ranking: list[tuple[int, float]], w: float = 1.0, k: int = 60) -> list[tuple[int, float]]:
    """(item, what ``ranking`` gives it): ``w`` times the mean of its scaled reciprocal rank
    ``(k + 1) / (k + rank)`` and its min-max score over the ranking (higher scores better; a
    ranking whose scores are all equal gives every item a relative score of 1)."""
    if not ranking:
        return []
    hi = ranking[0][1]
    lo = min(score for _, score in ranking)
    span = hi - lo
    return [(item, w * 0.5 * ((k + 1) / (k + rank) + ((score - lo) / span if span > 0 else 1.0)))
            for rank, (item, score) in enumerate(ranking, 1)]


def fuse(rankings: list[list[tuple[int, float]]], k: int = 60, weights: list[float] | None = None
         ) -> list[tuple[int, float]]:
    """Items by their :func:`contributions` summed over the rankings, best first."""
    scores: dict[int, float] = {}
    for ranking, w in zip(rankings, weights or [1.0] * len(rankings)):
        for item, v in contributions(ranking, w, k):
            scores[item] = scores.get(item, 0.0) + v
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def _shared_lines(a: Hit, b: Hit) -> float:
    """Share of the smaller hit's lines that the other hit also has."""
    sa = {tuple(round(v, 1) for v in box) for box in a.line_boxes}
    sb = {tuple(round(v, 1) for v in box) for box in b.line_boxes}
    if not sa or not sb:
        return 0.0
    return len(sa & sb) / min(len(sa), len(sb))


def dedupe_overlaps(hits: list[Hit], threshold: float = 0.5, limit: int | None = None) -> list[Hit]:
    """Drop a hit when a better one on the same page shares most of its lines (chunk overlap);
    stop once ``limit`` are kept (the first ``limit`` do not depend on the hits after them)."""
    kept: list[Hit] = []
    for hit in hits:
        if limit is not None and len(kept) >= limit:
            break
        same_page = (h for h in kept if h.doc_id == hit.doc_id and h.page == hit.page)
        if not any(_shared_lines(hit, h) >= threshold for h in same_page):
            kept.append(hit)
    return kept


def group_by_page(hits: list[Hit]) -> list[Hit]:
    """The best hit of each (document, page), in rank order."""
    seen: set[tuple[str, int]] = set()
    out = []
    for hit in hits:
        key = (hit.doc_id, hit.page)
        if key not in seen:
            seen.add(key)
            out.append(hit)
    return out
