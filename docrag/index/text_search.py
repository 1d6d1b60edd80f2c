"""BM25 over the SQLite FTS5 table, with queries that can never be FTS5 syntax.

Users type questions, not FTS5 expressions: quotes, ``*``, ``AND``, ``-``,
``:`` and unbalanced parentheses must not raise. Every word of the query is
quoted as a literal term and the terms are OR-ed, so BM25 ranks by how many
(and how rare) of them a chunk contains.

>>> fts_query('Net "income" AND (2019 -- FY2019: *')
'"net" OR "income" OR "2019" OR "fy2019"'
>>> fts_query('?!') is None
True
"""

from __future__ import annotations

import re
import sqlite3

from docrag.index.filters import Filters

__all__ = ["fts_query", "query_terms", "bm25_search"]

_TOKEN = re.compile(r"\w+", re.UNICODE)
# Function words match nearly every chunk and only add noise to the ranking
# (and to fusion); they are dropped unless the query has nothing else.
STOPWORDS = frozenset(
    "a an and are as at be been but by did do does for from had has have how i in into is it its of on or "
    "our so than that the their them there these they this those to was we were what when where which who "
    "whom why will with you your".split()
)


def query_terms(text: str) -> list[str]:
    """The distinct words of ``text`` that are searched, in order: function words dropped unless
    there is nothing else, at most 64.

    >>> query_terms("What was the net income of the company?")
    ['net', 'income', 'company']
    """
    seen: list[str] = []
    for tok in _TOKEN.findall(text.lower()):
        tok = tok.replace('"', "")
        if tok and tok not in seen:
            seen.append(tok)
    content = [t for t in seen if t not in STOPWORDS]
    return (content or seen)[:64]


def fts_query(text: str) -> str | None:
    """A safe FTS5 MATCH expression for free text, or None when it has no words."""
    terms = query_terms(text)
    return " OR ".join(f'"{t}"' for t in terms) if terms else None


def bm25_search(db: sqlite3.Connection, query: str, k: int, filters: Filters | None = None) -> list[tuple[int, float]]:
    """Top ``k`` (chunk id, BM25 score; higher is better) for ``query`` under ``filters``, ties to the
    lower id. FTS5 scores every row holding a query word (~3 µs a row); :class:`docrag.index.terms.TermIndex`
    ranks the same way in memory."""
    match = fts_query(query)
    if match is None or k <= 0:
        return []
    if filters is None or filters.is_empty:  # every row has its chunk and document: no join to make
        rows = db.execute("SELECT rowid, bm25(chunks_fts) AS s FROM chunks_fts WHERE chunks_fts MATCH ? "
                          "ORDER BY s, rowid LIMIT ?", [match, k]).fetchall()
        return [(int(r[0]), -float(r[1])) for r in rows]
    where, params = filters.sql()
    rows = db.execute(
        "SELECT f.rowid, bm25(chunks_fts) AS s FROM chunks_fts f "
        "JOIN chunks c ON c.id = f.rowid JOIN documents d ON d.doc_id = c.doc_id "
        f"WHERE chunks_fts MATCH ? AND {where} ORDER BY s, f.rowid LIMIT ?",
        [match, *params, k],
    ).fetchall()
    return [(int(r[0]), -float(r[1])) for r in rows]
