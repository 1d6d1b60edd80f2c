"""Point a hit at its evidence: the lines of the chunk that answer the query.

A chunk is sized for the embedder (a paragraph or more); a citation is more
useful when its box surrounds the sentence that matched. Each hit's sentences
are scored against the query by the words they share, weighted by how rare
each word is among the hits' sentences, and ``hit.bbox`` becomes the union of
the best sentence's lines; ``hit.chunk_bbox`` keeps the whole chunk's box.

Nothing is embedded at query time: the query's dense side already chose the
chunk. Within it, shared words (as five-letter stems), the query's word pairs
found in order, and the document words of the query's concepts (``expansion``,
from the lexicon) decide; a sentence with a figure wins a tie when the query
asks for an amount.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache

import numpy as np

from docrag.types import Hit, union

__all__ = ["locate_evidence", "sentence_spans"]

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[A-Z0-9\"'(\[])|\n\s*\n")
_WORD = re.compile(r"[a-z0-9]+")
_DIGIT = re.compile(r"\d")
_AMOUNT = re.compile(r"\b(how (much|many)|what (was|were|is|are))\b", re.IGNORECASE)
_STOP = set("a an and are as at be by for from has have in is it its of on or that the this to was were what which who with how many much did does do".split())
PAIR_WEIGHT = 0.5
"""Bonus for each pair of consecutive query words a sentence holds in the same order, as a share of the pair's weight."""
EXPANSION_WEIGHT = 0.5
"""Weight of a concept's document words (``expansion``) relative to the query's own words."""
SENTENCE_MEMO = 4096
"""Chunks whose sentences are kept between searches (a popular page's chunks come back often)."""


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character ranges of the sentences of ``text`` (decimal points do not split).

    >>> t = "Revenue was $4.82 billion. Margins grew.\\n\\nOutlook"
    >>> [t[a:b] for a, b in sentence_spans(t)]
    ['Revenue was $4.82 billion.', 'Margins grew.', 'Outlook']
    """
    spans, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(text)))
    return [(a, b) for a, b in spans if text[a:b].strip()]


def _stem(word: str) -> str:
    # A plural's "s" off, then a five-letter prefix: a cheap stemmer ("doors"/"door",
    # "injuries"/"injury", "acquire"/"acquired").
    if len(word) > 3 and word[-1] == "s" and word[-2] not in "su":
        word = word[:-1]
    return word[:5]


def _stem_list(text: str) -> list[str]:
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP]


def locate_evidence(hits: list[Hit], query: str, query_vec: np.ndarray | None = None, embedder: object = None,
                    expansion: str = "") -> None:
    """Narrow each hit's ``bbox`` to its best-matching sentence, in place.

    A sentence scores the rarity (among the hits' sentences) of the query words it
    holds, plus a bonus for each pair of consecutive query words it holds in order,
    plus half the rarity of the ``expansion`` words it holds (a concept's words in
    the documents' language: "purchases of property" for "capex"). Ties go to a
    sentence with a figure when the query asks for an amount, then to the earlier
    sentence. ``query_vec`` and ``embedder`` are not used (kept for the callers of
    the version that embedded sentences); nothing is embedded.

    >>> from docrag.types import Hit
    >>> text = "The fleet grew. Vans: 1,150 battery-electric vans."
    >>> hit = Hit(doc_id="d", source="s", page=1, text=text, bbox=(0, 0, 10, 20), kind="text", score=1.0,
    ...           line_boxes=[(0, 0, 10, 10), (0, 10, 10, 20)], line_spans=[(0, 15), (16, len(text))])
    >>> locate_evidence([hit], "How many battery-electric vans?")
    >>> hit.bbox
    (0.0, 10.0, 10.0, 20.0)
    """
    cands = {i: sents for i, hit in enumerate(hits) if (sents := _sentences(hit))}
    if not cands:
        return
    q_list = _stem_list(query)
    q = set(q_list)
    x = set(_stem_list(expansion)) - q
    pairs = {(u, v) for u, v in zip(q_list, q_list[1:]) if u != v}
    df: Counter[str] = Counter()
    n = 0
    for sents in cands.values():
        for words, _, _ in sents:
            df.update(set(words) & (q | x))
            n += 1
    idf = {w: math.log(1 + n / (1 + df[w])) for w in q | x}
    wants_figure = _AMOUNT.search(query) is not None
    for h_i, sents in cands.items():
        def key(order: int) -> tuple[float, bool, int]:
            words, _, has_figure = sents[order]
            held = set(words)
            score = sum(idf[w] for w in q & held) + EXPANSION_WEIGHT * sum(idf[w] for w in x & held)
            if pairs:
                score += PAIR_WEIGHT * sum(min(idf[u], idf[v]) for u, v in pairs & set(zip(words, words[1:])))
            return round(score, 9), wants_figure and has_figure, -order

        _narrow(hits[h_i], sents[max(range(len(sents)), key=key)][1])


def _sentences(hit: Hit) -> list[tuple[list[str], list[int], bool]]:
    """(stems, line indices, holds a figure) of each sentence of a hit that has line spans."""
    if not hit.line_spans or len(hit.line_spans) != len(hit.line_boxes):
        return []
    return _split(hit.text, tuple(map(tuple, hit.line_spans)))


@lru_cache(maxsize=SENTENCE_MEMO)
def _split(text: str, line_spans: tuple[tuple[int, int], ...]) -> list[tuple[list[str], list[int], bool]]:
    """The sentences of a chunk, kept for the next search that returns it (callers don't change them)."""
    out = []
    for a, b in sentence_spans(text):
        lines = [i for i, (s, e) in enumerate(line_spans) if s < b and e > a]
        if lines and b - a >= 3:
            part = text[a:b]
            out.append((_stem_list(part), lines, _DIGIT.search(part) is not None))
    return out


def _narrow(hit: Hit, lines: list[int]) -> None:
    hit.bbox = union([hit.line_boxes[i] for i in lines])
    if len(hit.line_confidences) == len(hit.line_boxes):  # the evidence's own confidence
        hit.confidence = round(sum(hit.line_confidences[i] for i in lines) / len(lines), 4)
