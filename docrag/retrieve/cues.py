"""Document cues in a query: the company and fiscal year a question names.

"What was Northwind's FY2019 capex?" names a filing, not just a topic. The
query side of document context (:mod:`docrag.chunk.context` builds each
document's profile at ingest): the years and capitalised names a question
mentions, and the indexed documents whose profile they match, which
:func:`docrag.retrieve.search` boosts.

>>> cues = query_cues("What was Northwind's FY2019 capex?")
>>> sorted(cues["years"]), sorted(cues["words"])
(['2019'], ['northwind', 'what'])
"""

from __future__ import annotations

import re

from docrag.chunk.context import YEAR
from docrag.index import LocalStore

__all__ = ["query_cues", "cued_documents"]

# Words of a company name or title that every filing shares: they name no one.
_GENERIC_NAME_WORDS = frozenset({"inc", "corp", "corporation", "company", "ltd", "limited", "llc", "plc", "group",
                                 "holdings", "the", "and", "annual", "report", "form"})


def query_cues(query: str) -> dict[str, set[str]]:
    """Years and capitalised names a query mentions, to match document profiles.

    >>> sorted(query_cues("What was Northwind's FY2019 capex?")["years"])
    ['2019']
    >>> sorted(query_cues("capex in FY'21")["years"])
    ['2021']
    """
    years = set(YEAR.findall(query)) | {("20" + y) for y in re.findall(r"\bFY'?(\d{2})\b", query, re.I)}
    words = {w.lower() for w in re.findall(r"\b[A-Z][a-zA-Z&-]{2,}", query)}
    return {"years": years, "words": words}


def cued_documents(store: LocalStore, query: str) -> list[str]:
    """Documents whose profile matches a year or a name the query mentions (none if all or none match).

    Documents matching both a name and a year beat those matching one.

    >>> import tempfile
    >>> cued_documents(LocalStore(tempfile.mkdtemp(), embedder="fake", dim=2), "Northwind FY2019")
    []
    """
    cues = query_cues(query)
    if not cues["years"] and not cues["words"]:
        return []
    profiles = store.profiles()
    scored = {}
    for doc_id, p in profiles.items():
        name_words = {w.lower() for w in re.findall(r"[A-Za-z][A-Za-z&-]{2,}", p.get("company", "") or p.get("title", ""))}
        name_words -= _GENERIC_NAME_WORDS
        year = p.get("fiscal_year") or p.get("year")
        hit = (1 if name_words & cues["words"] else 0) + (1 if year and year in cues["years"] else 0)
        if hit:
            scored[doc_id] = hit
    if not scored or len(scored) == len(profiles):
        return []
    best = max(scored.values())
    return sorted(d for d, v in scored.items() if v == best)
