"""Point a hit at its evidence: the lines of the chunk that answer the query.

A chunk is sized for the embedder (a paragraph or more); a citation is more
useful when its box surrounds the sentence that matched. Each hit's sentences
are scored against the query (embedding cosine plus a small bonus for shared
words) and ``hit.bbox`` becomes the union of the best sentence's lines;
``hit.chunk_bbox`` keeps the whole chunk's box.
"""

from __future__ import annotations

import re

import numpy as np

from docrag.embed import TextEmbedder
from docrag.types import Hit, union

__all__ = ["locate_evidence", "sentence_spans"]

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[A-Z0-9\"'(\[])|\n\s*\n")
_WORD = re.compile(r"[a-z0-9]+")
_STOP = set("a an and are as at be by for from has have in is it its of on or that the this to was were what which who with how many much did does do".split())


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


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def _stems(text: str) -> set[str]:
    # A five-letter prefix is a cheap stemmer: "injuries"/"injury", "vans"/"van" stay apart
    # only when short, which the embedding fallback then settles.
    return {w[:5] for w in _words(text)}


def locate_evidence(hits: list[Hit], query: str, query_vec: np.ndarray, embedder: TextEmbedder) -> None:
    """Narrow each hit's ``bbox`` to its best-matching sentence, in place.

    Sentences are first scored by the query words they share (weighted by how
    rare each word is among the hits' sentences). A hit whose best sentence
    wins clearly is settled there; the others are scored by embedding cosine
    plus a small bonus for shared words. Most queries then cost no extra
    embedding at all.
    """
    cands: dict[int, list[tuple[str, list[int]]]] = {}
    for h_i, hit in enumerate(hits):
        if not hit.line_spans or len(hit.line_spans) != len(hit.line_boxes):
            continue
        for a, b in sentence_spans(hit.text):
            lines = [i for i, (s, e) in enumerate(hit.line_spans) if s < b and e > a]
            if lines and b - a >= 3:
                cands.setdefault(h_i, []).append((hit.text[a:b], lines))
    if not cands:
        return
    q = _stems(query)
    all_sents = [_stems(t) for sents in cands.values() for t, _ in sents]
    df = {w: sum(w in s for s in all_sents) for w in q}
    idf = {w: np.log(1 + len(all_sents) / (1 + df[w])) for w in q}
    pending: list[tuple[int, str, list[int], float]] = []
    for h_i, sents in cands.items():
        lexical = [sum(idf[w] for w in q & _stems(t)) for t, _ in sents]
        order = np.argsort(lexical)[::-1]
        best = lexical[order[0]]
        second = lexical[order[1]] if len(order) > 1 else 0.0
        if len(sents) == 1 or (best > 0 and best >= 1.5 * second):
            _narrow(hits[h_i], sents[order[0]][1])
            continue
        top = max(lexical) or 1.0
        pending += [(h_i, t, lines, lex / top) for (t, lines), lex in zip(sents, lexical)]
    if not pending:
        return
    vecs = embedder.embed_documents([t for _, t, _, _ in pending])
    cos = vecs @ np.asarray(query_vec, dtype=np.float32)
    chosen: dict[int, tuple[float, list[int]]] = {}
    for (h_i, _, lines, lex), c in zip(pending, cos):
        score = float(c) + 0.25 * lex
        if h_i not in chosen or score > chosen[h_i][0]:
            chosen[h_i] = (score, lines)
    for h_i, (_, lines) in chosen.items():
        _narrow(hits[h_i], lines)


def _narrow(hit: Hit, lines: list[int]) -> None:
    hit.bbox = union([hit.line_boxes[i] for i in lines])
    if len(hit.line_confidences) == len(hit.line_boxes):  # the evidence's own confidence
        hit.confidence = round(sum(hit.line_confidences[i] for i in lines) / len(lines), 4)
