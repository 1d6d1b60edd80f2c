"""Query understanding without a model: periods, concepts, and what to look for on a page.

An analyst's question names a period ("Q2 FY2023", "first six months of fiscal
2023"), a company, and a concept in its own words ("capex", "quick ratio").
:func:`plan_query` reads the periods (:mod:`docrag.chunk.periods`) and the
concepts of a :class:`~docrag.retrieve.lexicon.Lexicon`, and turns them into
what retrieval uses:

- ``focus``: the query without its period words plus the document words of its
  concepts, for an extra BM25 and dense ranking ("capex" also searches
  "purchases of property and equipment");
- ``statements`` / ``sections``: where the answer is disclosed, a page-level cue;
- ``period_words``: the column heads a page answering it prints ("Six Months Ended", "April 1, 2023").

>>> plan = plan_query("What was Apple's capex in the first six months of fiscal 2023?")
>>> plan.statements
{'cash_flow': 0.75}
>>> "purchases of property and equipment" in plan.expansion
True
>>> plan.period_words
['Six Months Ended']
"""

from __future__ import annotations

from dataclasses import dataclass, field

from docrag.chunk.periods import Period, date_words, parse_periods
from docrag.retrieve.lexicon import Lexicon, Match, load_lexicon

__all__ = ["QueryPlan", "plan_query"]

_LENGTH_WORDS = {3: "Three Months Ended", 6: "Six Months Ended", 9: "Nine Months Ended", 12: "Year Ended"}


@dataclass
class QueryPlan:
    """What a query asks for, read without a model.

    Attributes:
        text: The query as typed.
        periods: The periods it names, in order (:class:`docrag.chunk.periods.Period`).
        matches: The lexicon concepts it names.
        expansion: The query followed by its concepts' document words ("" when it names none).
        focus: The same without the query's period words (what retrieval searches).
        statements: Statement id -> cue strength (1.0 for a specific term, less for a one-word one).
        sections: Section heading words -> cue strength.
        period_words: Column heads and dates a page answering it prints.
        strength: How firmly its concepts were named: the strongest match's cue strength
            (1.0 for a phrase such as "quick ratio", 0.5 for a word such as "revenue"; 0 without one).
    """

    text: str
    periods: list[Period] = field(default_factory=list)
    matches: list[Match] = field(default_factory=list)
    expansion: str = ""
    focus: str = ""
    statements: dict[str, float] = field(default_factory=dict)
    sections: dict[str, float] = field(default_factory=dict)
    period_words: list[str] = field(default_factory=list)
    strength: float = 0.0


def _strength(match: Match) -> float:
    """A phrase ("quick ratio") is a firm cue; a one-word alias of a compound concept ("capex") a
    fair one; a one-word concept ("revenue", "segments") a weak one: they name many pages."""
    if " " in match.term.strip() or "-" in match.term:
        return 1.0
    return 0.75 if " " in match.concept.name else 0.5


def plan_query(query: str, lexicon: Lexicon | None = None) -> QueryPlan:
    """Read the periods and concepts of ``query`` (with the built-in finance lexicon by default).

    >>> plan_query("Judged by its quick ratio, how liquid was it on June 25, 2022?").period_words
    ['June 25, 2022']
    """
    lexicon = lexicon or load_lexicon()
    plan = QueryPlan(text=query, periods=parse_periods(query), matches=lexicon.match(query))
    extra: list[str] = []
    for m in plan.matches:
        strength = _strength(m)
        plan.strength = max(plan.strength, strength)
        if m.concept.statement:
            plan.statements[m.concept.statement] = max(plan.statements.get(m.concept.statement, 0.0), strength)
        for section in m.concept.sections:
            plan.sections[section] = max(plan.sections.get(section, 0.0), strength)
        extra += [w for w in m.concept.line_items if w not in extra]
    if extra:
        bare = query
        for p in plan.periods:
            bare = bare.replace(p.text, " ")
        plan.expansion = query + " " + " ".join(extra)
        plan.focus = " ".join(bare.split()) + " " + " ".join(extra)
    words: list[str] = []
    for p in plan.periods:
        if p.months and p.months in _LENGTH_WORDS and (p.months != 3 or p.end is not None or p.quarter):
            words.append(_LENGTH_WORDS[p.months])
        if p.end is not None:
            words.append(date_words(p.end))
    plan.period_words = list(dict.fromkeys(words))
    return plan
