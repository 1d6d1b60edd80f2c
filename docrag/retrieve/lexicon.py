"""A concept lexicon: the words an analyst asks in, mapped to the words a filing prints.

"capex" is printed "Purchases of property and equipment"; a "quick ratio" is
read off the balance sheet. A lexicon is a JSON file of concepts, each with
the ``terms`` that name it in a question, the ``line_items`` a document uses
for it, and where it is disclosed: a primary ``statement``
(:data:`docrag.chunk.statements.STATEMENT_KINDS`) and/or ``sections``
(heading words). docrag ships a finance pack (``docrag/data/finance_lexicon.json``,
its format and sources in ``docrag/data/README.md``); a user file in the same
format adds concepts to it (``--lexicon FILE``).

Matching is on word sequences after light normalisation (lower case,
punctuation and possessives dropped, a plural's ``s`` ignored); where matches
overlap the longest wins, so "free cash flow" is not also "cash flow".

>>> lex = load_lexicon()
>>> [m.concept.name for m in lex.match("What was Northwind's capex in FY2019?")]
['capital expenditures']
>>> lex.match("Judged by its quick ratio, how liquid was it?")[0].concept.statement
'balance_sheet'
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from docrag.errors import ConfigError

__all__ = ["Concept", "Match", "Lexicon", "load_lexicon", "normalize", "BUILTIN"]

BUILTIN = "finance_lexicon.json"
"""The built-in pack, a file of ``docrag/data``."""

_WORD = re.compile(r"[a-z0-9&]+")


def normalize(text: str) -> list[str]:
    """Lower-case word stems: possessives dropped, "&" kept, a plural's final ``s`` removed.

    >>> normalize("Shareholders' equity & R&D expenses")
    ['shareholder', 'equity', '&', 'r&d', 'expense']
    """
    text = text.lower().replace("’", "'")
    text = re.sub(r"'s?\b", "", text)
    text = re.sub(r"(?<=\w)-(?=\w)", " ", text)
    return [_stem(w) for w in _WORD.findall(text)]


def _stem(word: str) -> str:
    if len(word) > 3 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


@dataclass(frozen=True)
class Concept:
    """One entry of a lexicon (see the module docstring for the fields)."""

    name: str
    terms: tuple[str, ...]
    line_items: tuple[str, ...]
    statement: str = ""
    sections: tuple[str, ...] = ()
    source: str = ""


@dataclass(frozen=True)
class Match:
    """A concept found in a query: which words (token positions ``start:end``) named it."""

    concept: Concept
    term: str
    start: int
    end: int


@dataclass
class Lexicon:
    """Concepts indexed by their terms' first word, for matching queries.

    Attributes:
        concepts: Every concept, built-in first.
        statements: Statement id -> its title phrases (from the built-in pack).
    """

    concepts: list[Concept] = field(default_factory=list)
    statements: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _index: dict[str, list[tuple[tuple[str, ...], Concept, str]]] = field(default_factory=dict, repr=False)

    def add(self, data: dict[str, Any], origin: str = "lexicon") -> None:
        """Add the concepts (and statement titles) of one lexicon file's JSON."""
        if not isinstance(data, dict) or not isinstance(data.get("concepts"), list):
            raise ConfigError(f"{origin}: a lexicon is a JSON object with a 'concepts' list "
                              "(see docrag/data/README.md)")
        for key, titles in (data.get("statements") or {}).items():
            self.statements[key] = tuple(dict.fromkeys(self.statements.get(key, ()) + tuple(titles)))
        for n, raw in enumerate(data["concepts"]):
            if not isinstance(raw, dict) or not raw.get("name") or not raw.get("terms"):
                raise ConfigError(f"{origin}: concept #{n + 1} needs a 'name' and a list of 'terms'")
            concept = Concept(name=str(raw["name"]), terms=tuple(raw["terms"]),
                              line_items=tuple(raw.get("line_items") or ()), statement=raw.get("statement") or "",
                              sections=tuple(raw.get("sections") or ()), source=raw.get("source") or "")
            self.concepts.append(concept)
            for term in concept.terms:
                words = tuple(normalize(term))
                if words:
                    self._index.setdefault(words[0], []).append((words, concept, term))

    def match(self, query: str) -> list[Match]:
        """Concepts the query names, longest match first where they overlap, in query order.

        >>> lex = Lexicon()
        >>> lex.add({"concepts": [{"name": "fcf", "terms": ["free cash flow"], "line_items": ["x"]},
        ...                       {"name": "cf", "terms": ["cash flow"], "line_items": ["y"]}]})
        >>> [m.concept.name for m in lex.match("free cash flow and cash flows")]
        ['fcf', 'cf']
        """
        words = normalize(query)
        found: list[Match] = []
        for i, w in enumerate(words):
            for seq, concept, term in self._index.get(w, ()):
                if tuple(words[i:i + len(seq)]) == seq:
                    found.append(Match(concept, term, i, i + len(seq)))
        found.sort(key=lambda m: (-(m.end - m.start), m.start))
        taken: set[int] = set()
        kept: list[Match] = []
        for m in found:
            # Longest first; words already used by a longer term are not read again, unless the
            # very same words name a second concept ("debt": total and long-term debt).
            same_words = any((k.start, k.end) == (m.start, m.end) for k in kept)
            if any(i in taken for i in range(m.start, m.end)) and not same_words:
                continue
            if any(k.concept == m.concept for k in kept):
                continue
            taken.update(range(m.start, m.end))
            kept.append(m)
        return sorted(kept, key=lambda m: m.start)


@lru_cache(maxsize=8)
def load_lexicon(user: str | None = None) -> Lexicon:
    """The built-in finance pack, plus the concepts of ``user`` (a JSON file) when given; cached.

    Raises:
        ConfigError: the user file is missing or not a lexicon.
    """
    lex = Lexicon()
    builtin = resources.files("docrag").joinpath("data", BUILTIN)
    lex.add(json.loads(builtin.read_text(encoding="utf-8")), BUILTIN)
    if user:
        path = Path(user).expanduser()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"lexicon {user}: no such file") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"lexicon {user}: not JSON ({exc.msg}, line {exc.lineno})") from None
        lex.add(data, str(path))
    return lex
