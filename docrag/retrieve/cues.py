"""Document cues in a query: the company and the period a question names.

"What was Northwind's FY2019 capex?" names a filing, not just a topic. The
query side of document context (:mod:`docrag.chunk.context` builds each
document's profile at ingest): the capitalised names and the periods a
question mentions, and the indexed documents whose profile they match, which
:func:`docrag.retrieve.search` boosts. A period is matched against the
filing's own period (its end date, fiscal year and quarter), so "the quarter
ended June 25, 2022" prefers that quarter's 10-Q over a later one that shows
the same quarter as a prior-year column.

>>> cues = query_cues("What was Northwind's FY2019 capex?")
>>> sorted(cues["years"]), sorted(cues["words"])
(['2019'], ['northwind', 'what'])
"""

from __future__ import annotations

import re
from datetime import date

from docrag.chunk.context import YEAR
from docrag.chunk.periods import Period, parse_periods
from docrag.index import LocalStore

__all__ = ["query_cues", "cued_documents", "document_scores", "period_match"]

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


def period_match(period: Period, profile: dict[str, str]) -> int:
    """How well a filing's own period fits one the query names: 2 (it is that period), 1 (its
    fiscal year), 0.

    >>> q3 = {"period_end": "2022-06-25", "period_months": "3", "fiscal_year": "2022", "fiscal_quarter": "3"}
    >>> [period_match(parse_periods(t)[0], q3) for t in ("June 25, 2022", "first nine months of fiscal 2022",
    ...                                                   "fiscal 2022", "2021")]
    [2, 2, 1, 0]
    """
    try:
        end = date.fromisoformat(profile["period_end"]) if profile.get("period_end") else None
    except ValueError:
        end = None
    fy = int(profile["fiscal_year"]) if (profile.get("fiscal_year") or "").isdigit() else None
    quarter = int(profile["fiscal_quarter"]) if (profile.get("fiscal_quarter") or "").isdigit() else None
    annual = profile.get("period_months") == "12" or profile.get("report_type") in ("10-K", "20-F", "Annual Report")
    if period.end is not None:
        return 2 if end == period.end else 0
    if period.end_month is not None:
        return 2 if end is not None and (end.year, end.month) == period.end_month else 0
    if period.fiscal_year is None or fy != period.fiscal_year:
        return 0
    if period.quarter is not None:
        return 2 if quarter == period.quarter else (1 if quarter is None and not annual else 0)
    return 2 if annual else 1


def document_scores(store: LocalStore, query: str, profiles: dict[str, dict[str, str]] | None = None
                    ) -> dict[str, int]:
    """doc_id -> how many of the query's cues its profile matches: its name (1) and its period
    (2 when it is the named period, 1 for the named year); documents matching nothing are left out.
    ``profiles``: :meth:`LocalStore.profiles`, when the caller has read them already.

    >>> import tempfile
    >>> document_scores(LocalStore(tempfile.mkdtemp(), embedder="fake", dim=2), "Northwind FY2019")
    {}
    """
    cues = query_cues(query)
    periods = parse_periods(query)
    if not cues["years"] and not cues["words"] and not periods:
        return {}
    scored = {}
    for doc_id, p in (profiles if profiles is not None else store.profiles()).items():
        name = p.get("company", "") or p.get("title", "")
        name_words = {w.lower() for w in re.findall(r"[A-Za-z][A-Za-z&-]{2,}", name)}
        name_words -= _GENERIC_NAME_WORDS
        when = max((period_match(q, p) for q in periods), default=0)
        if not when and not p.get("period_end"):
            # A profile without a period (a report, a deck): the year it is about, as before.
            year = p.get("fiscal_year") or p.get("year")
            when = 1 if year and year in cues["years"] else 0
        hit = (1 if name_words & cues["words"] else 0) + when
        if hit:
            scored[doc_id] = hit
    return scored


def cued_documents(store: LocalStore, query: str) -> list[str]:
    """Documents whose profile best matches the names and periods the query mentions (none if all or
    none match).

    Documents matching both a name and a period beat those matching one.

    >>> import tempfile
    >>> cued_documents(LocalStore(tempfile.mkdtemp(), embedder="fake", dim=2), "Northwind FY2019")
    []
    """
    scored = document_scores(store, query)
    if not scored or len(scored) == len(store.profiles()) and len(set(scored.values())) == 1:
        return []
    best = max(scored.values())
    return sorted(d for d, v in scored.items() if v == best)
