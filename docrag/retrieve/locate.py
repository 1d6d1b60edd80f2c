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


def locate_evidence(hits: list[Hit], query: str, query_vec: np.ndarray, embedder: TextEmbedder) -> None:
    """Narrow each hit's ``bbox`` to its best-matching sentence, in place."""
    items: list[tuple[int, list[int]]] = []  # (hit index, line indices) per candidate sentence
    texts: list[str] = []
    for h_i, hit in enumerate(hits):
        if not hit.line_spans or len(hit.line_spans) != len(hit.line_boxes):
            continue
        for a, b in sentence_spans(hit.text):
            lines = [i for i, (s, e) in enumerate(hit.line_spans) if s < b and e > a]
            if lines and b - a >= 3:
                items.append((h_i, lines))
                texts.append(hit.text[a:b])
    if not texts:
        return
    vecs = embedder.embed_documents(texts)
    cos = vecs @ np.asarray(query_vec, dtype=np.float32)
    q_words = _words(query)
    best: dict[int, tuple[float, list[int]]] = {}
    for (h_i, lines), text, c in zip(items, texts, cos):
        shared = len(q_words & _words(text)) / len(q_words) if q_words else 0.0
        score = float(c) + 0.25 * shared
        if h_i not in best or score > best[h_i][0]:
            best[h_i] = (score, lines)
    for h_i, (_, lines) in best.items():
        hit = hits[h_i]
        hit.bbox = union([hit.line_boxes[i] for i in lines])
