"""What a financial page is: its statement, the periods of its columns, its units.

A page of a filing says "CONDENSED CONSOLIDATED BALANCE SHEETS" once at the
top and "June 25, 2022 | September 25, 2021" once above its columns; the rows
below ("Total current liabilities 129,873 125,481") say neither. The chunks cut
from the page carry these in their context header (:mod:`docrag.chunk.context`),
so "Apple's current liabilities at June 25, 2022" can match a table row.

Works on lines from the text layer and from OCR alike: only line texts and
boxes are read.

>>> from docrag.types import Block, Line, Page
>>> page = Page(number=4, width=612, height=792, blocks=[Block([
...     Line("CONDENSED CONSOLIDATED STATEMENTS OF OPERATIONS (Unaudited)", (150, 60, 460, 70)),
...     Line("(In millions, except per share amounts)", (200, 72, 410, 82)),
...     Line("Three Months Ended", (330, 100, 420, 110)), Line("Nine Months Ended", (470, 100, 560, 110)),
...     Line("June 25,", (330, 112, 370, 122)), Line("June 26,", (390, 112, 430, 122)),
...     Line("June 25,", (470, 112, 510, 122)), Line("June 26,", (530, 112, 570, 122)),
...     Line("2022", (335, 124, 360, 134)), Line("2021", (395, 124, 420, 134)),
...     Line("2022", (475, 124, 500, 134)), Line("2021", (535, 124, 560, 134))], (150, 60, 570, 134)),
...     Block([Line(f"{n:,}", (335, 140 + 12 * i, 360, 150 + 12 * i)) for i, n in enumerate(range(63355, 63361))],
...           (335, 140, 360, 222), kind="table")])
>>> facts = page_facts(page)
>>> facts.statement, facts.units
('Condensed Consolidated Statements of Operations', 'in millions')
>>> facts.periods_text()
'Three Months Ended June 25, 2022 and June 26, 2021; Nine Months Ended June 25, 2022 and June 26, 2021'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from docrag.chunk.periods import date_words, parse_date
from docrag.types import Line, Page

__all__ = ["PageFacts", "page_facts", "statement_kind", "STATEMENT_KINDS"]

STATEMENT_KINDS = ("balance_sheet", "income_statement", "comprehensive_income", "cash_flow", "equity")
"""The primary statements, by the ids the concept lexicon (``docrag/data/*.json``) uses."""

_STATEMENT = re.compile(
    r"^(?:[A-Z][\w.,&' -]{0,60}?\s+)??(?:(?:condensed|consolidated|combined|interim|unaudited)\s+)*"
    r"(balance\s+sheets?|statements?\s+of\s+(?:consolidated\s+)?(?:financial\s+position|"
    r"(?:comprehensive\s+)?(?:income|loss|earnings|operations)(?:\s*\(loss\))?(?:\s+and\s+comprehensive\s+"
    r"(?:income|loss))?|cash\s+flows?|(?:redeemable\s+)?(?:non-?controlling\s+interests?\s+and\s+)?"
    r"(?:changes\s+in\s+)?(?:(?:shareholders|stockholders|owners)['’]?\s+)?"
    r"(?:equity|deficit)(?:\s*\(deficit\))?))\b(?!\s+(?:data|information|item))",
    re.I)
_KIND_WORDS = [
    ("comprehensive_income", re.compile(r"comprehensive\s+(income|loss)", re.I)),
    ("balance_sheet", re.compile(r"balance\s+sheet|financial\s+position", re.I)),
    ("cash_flow", re.compile(r"cash\s+flow", re.I)),
    ("equity", re.compile(r"equity|deficit", re.I)),
    ("income_statement", re.compile(r"operations|income|earnings|loss", re.I)),
]
_UNITS = re.compile(r"\(\s*(?:dollars\s+|amounts\s+|\$\s*)?in\s+(millions|thousands|billions)\b", re.I)
_LENGTH_HEAD = re.compile(r"^(three|six|nine|twelve)\s+months\s+ended\b|^(?:fiscal\s+)?(?:years?|quarters?)\s+ended\b",
                          re.I)
_MONTH_DAY = re.compile(r"^(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{1,2},?$", re.I)
_YEAR_ONLY = re.compile(r"^(?:19|20)\d\d$")
_FULL_DATE = re.compile(r"(?:as\s+of\s+|at\s+)?[A-Za-z]+\.? \d{1,2},? (?:19|20)\d\d", re.I)
# A reported figure ("63,355", "(1,787)", "2.48" is too small to tell); a year is not one.
_FIGURE = re.compile(r"(?<![\w.,])\(?\$?\d{1,3}(?:,\d{3})+(?:\.\d+)?\)?(?![\w,])"
                     r"|(?<![\w.,])(?!(?:19|20)\d\d\b)\d{3,}(?![\w,])")
_ENDED = re.compile(r"^.*?ended\s+", re.I)
_MONTHS = {"three": 3, "six": 6, "nine": 9, "twelve": 12}


@dataclass
class PageFacts:
    """What a page's furniture says about its figures.

    Attributes:
        statement: The primary statement's title in Title Case, or "".
        kind: Its id in :data:`STATEMENT_KINDS`, or "".
        periods: ``(months, end date)`` of the columns in order; months None for a balance date.
        units: ``in millions`` / ``in thousands`` / ``in billions``, or "".
    """

    statement: str = ""
    kind: str = ""
    periods: list[tuple[int | None, date]] = field(default_factory=list)
    units: str = ""

    def periods_text(self) -> str:
        """The columns in a filing's words, grouped by length: ``Three Months Ended A and B; ...``."""
        groups: dict[int | None, list[date]] = {}
        for months, d in self.periods:
            groups.setdefault(months, [])
            if d not in groups[months]:
                groups[months].append(d)
        parts = []
        for months, dates in groups.items():
            when = " and ".join(date_words(d) for d in dates)
            if months is None:
                parts.append(f"As of {when}")
            elif months == 12:
                parts.append(f"Year Ended {when}")
            else:
                name = {3: "Three", 6: "Six", 9: "Nine"}.get(months, str(months))
                parts.append(f"{name} Months Ended {when}")
        return "; ".join(parts)


def statement_kind(title: str) -> str:
    """The statement id of a title, or "".

    >>> statement_kind("Consolidated Statements of Cash Flows")
    'cash_flow'
    >>> statement_kind("Segment Information")
    ''
    """
    m = _STATEMENT.match(" ".join(title.split()))
    if not m:
        return ""
    return next((kind for kind, rx in _KIND_WORDS if rx.search(m.group(1))), "")


def _title_case(text: str) -> str:
    small = {"of", "and", "in", "on", "the", "for", "to"}
    words = text.split()
    return " ".join(w.lower() if i and w.lower() in small else w[:1].upper() + w[1:].lower() if w.isupper() else w
                    for i, w in enumerate(words))


def page_facts(page: Page, max_top: float = 0.45) -> PageFacts:
    """The statement title, column periods and units of ``page`` (empty fields when it has none).

    The title must stand on its own line in the top ``max_top`` of the page, as
    statements are printed; a sentence that mentions "balance sheets" is not one.
    """
    facts = PageFacts()
    lines = [ln for b in page.blocks if b.kind not in ("page_footer",) for ln in b.lines]
    top = page.height * max_top if page.height else float("inf")
    # A statement is a table of figures; a contents page lists the same titles without them.
    numeric = sum(len(_FIGURE.findall(ln.text)) for ln in lines) >= 6
    for ln in lines:
        text = " ".join(ln.text.split())
        if numeric and not facts.statement and ln.bbox[1] <= top and len(text) <= 110:
            m = _STATEMENT.match(text)
            if m and not text.endswith(".") and "see " not in text.lower():
                facts.kind = statement_kind(text)
                facts.statement = _title_case(re.sub(r"\s*\((?:unaudited|continued)\)\s*", " ", text,
                                                     flags=re.I).strip())
        if not facts.units and ln.bbox[1] <= top:
            u = _UNITS.search(text)
            if u:
                facts.units = f"in {u.group(1).lower()}"
    facts.periods = column_periods(lines)
    return facts


def column_periods(lines: list[Line]) -> list[tuple[int | None, date]]:
    """``(months, end)`` of each column header: "Three Months Ended" over "June 25," over "2022".

    A date split over two lines ("June 25," above "2022") is joined when the
    year sits under the month in the same column; a header of years under one
    "Year Ended December 31," becomes one date per year.
    """
    heads = [(ln, _length(ln.text)) for ln in lines if _LENGTH_HEAD.match(" ".join(ln.text.split()))]
    years = [ln for ln in lines if _YEAR_ONLY.match(ln.text.strip())]
    out: list[tuple[int | None, date]] = []
    for ln in lines:
        text = " ".join(ln.text.split())
        d = None
        if _MONTH_DAY.match(text):
            below = [y for y in years if 0 <= y.bbox[1] - ln.bbox[1] <= 2.5 * _height(ln) and _overlap(y, ln)]
            if below:
                d = parse_date(f"{text.rstrip(',')}, {below[0].text.strip()}")
        elif len(text) <= 40 and _FULL_DATE.fullmatch(text):
            d = parse_date(text)
        elif _LENGTH_HEAD.match(text) and re.search(r"\d{1,2},?$", text):
            # "Year Ended December 31," over a row of years: one column per year.
            row = [y for y in years if 0 < y.bbox[1] - ln.bbox[1] <= 3 * _height(ln)]
            month_day = _ENDED.sub("", text).rstrip(",")
            for y in sorted(row, key=lambda y: y.bbox[0]):
                dy = parse_date(f"{month_day}, {y.text.strip()}")
                if dy:
                    out.append((_length(text), dy))
            continue
        if d is None:
            continue
        out.append((_head_over(ln, heads), d))
    return out


def _length(text: str) -> int | None:
    m = _LENGTH_HEAD.match(" ".join(text.split()))
    if not m:
        return None
    return _MONTHS[m.group(1).lower()] if m.group(1) else (3 if "quarter" in m.group(0).lower() else 12)


def _height(ln: Line) -> float:
    return max(1.0, ln.bbox[3] - ln.bbox[1])


def _overlap(a: Line, b: Line) -> bool:
    return min(a.bbox[2], b.bbox[2]) - max(a.bbox[0], b.bbox[0]) > 0


def _head_over(ln: Line, heads: list[tuple[Line, int | None]]) -> int | None:
    """The length header nearest above a date line (by column centre), or None (a balance date)."""
    cx = (ln.bbox[0] + ln.bbox[2]) / 2
    above = [(abs((h.bbox[0] + h.bbox[2]) / 2 - cx), months) for h, months in heads
             if 0 < ln.bbox[1] - h.bbox[1] <= 4 * _height(ln) and h.bbox[0] - 40 <= cx <= h.bbox[2] + 40]
    return min(above)[1] if above else None
