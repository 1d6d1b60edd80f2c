"""Rank fusion and result shaping: RRF, overlap dedupe, one hit per page.

>>> rrf([[(1, 0.9), (2, 0.8)], [(2, 12.0), (3, 9.0)]], k=60)[0][0]
2
"""

from __future__ import annotations

from docrag.types import Hit

__all__ = ["rrf", "dedupe_overlaps", "group_by_page"]


def rrf(rankings: list[list[tuple[int, float]]], k: int = 60, weights: list[float] | None = None) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: ``sum w / (k + rank)`` over the rankings, best first."""
    scores: dict[int, float] = {}
    for ranking, w in zip(rankings, weights or [1.0] * len(rankings)):
        for rank, (item, _) in enumerate(ranking, 1):
            scores[item] = scores.get(item, 0.0) + w / (k + rank)
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
