"""Reporting periods in words: "quarter ended April 1, 2023", "Q2 FY2023", "first six months of fiscal 2023".

Filings answer "when" in a few set phrases, and analysts ask in a few more.
One parser serves both sides: at ingest it reads a filing's own period from
its cover ("For the quarterly period ended June 25, 2022") and the periods of
a statement's columns ("Six Months Ended ... April 1, 2023"); at search time
it reads the periods a question names (:mod:`docrag.retrieve.query`), so the
two can be compared without a model.

A :class:`Period` holds what the words say and nothing more: an end date when
one is given, the length in months ("three months", "first half", "fiscal
year"), a fiscal year and quarter when named ("Q2 FY2023").

>>> [p.label() for p in parse_periods("net sales in the first six months of fiscal 2023")]
['6M FY2023']
>>> [p.label() for p in parse_periods("quarter ended April 1, 2023 (Q2 FY2023)")]
['3M ended 2023-04-01', 'Q2 FY2023']
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

__all__ = ["Period", "parse_periods", "parse_date", "date_words", "MONTHS"]

MONTHS = {m: i for i, m in enumerate(
    "january february march april may june july august september october november december".split(), 1)}
_MONTH_ABBR = {m[:3]: i for m, i in MONTHS.items()} | {"sept": 9}
_MONTH = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|" \
         r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
_DATE = re.compile(rf"\b({_MONTH})\s+(\d{{1,2}}),?\s+((?:19|20)\d\d)\b|\b((?:19|20)\d\d)-(\d\d)-(\d\d)\b", re.I)
_MONTH_YEAR = re.compile(rf"\b({_MONTH})\s+((?:19|20)\d\d)\b", re.I)
_ORD = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4}
_NUM = {"three": 3, "3": 3, "six": 6, "6": 6, "nine": 9, "9": 9, "twelve": 12, "12": 12}
_FY = r"(?:fiscal\s+(?:year\s+)?|fy\s*'?)"
_YEAR = r"((?:19|20)\d\d|'?\d\d)"
_QUARTER = [
    # Q2 FY2023, Q2 2023, Q2'23, 2Q23, Q2 fiscal 2023
    re.compile(rf"\bq([1-4])\s*(?:of\s+)?{_FY}?{_YEAR}\b", re.I),
    re.compile(rf"\b([1-4])q\s*{_FY}?{_YEAR}\b", re.I),
    # FY2023 Q2, fiscal 2023 second quarter
    re.compile(rf"\b{_FY}{_YEAR}\s+(?:q([1-4])|(first|second|third|fourth)\s+quarter)\b", re.I),
    # (fiscal) second quarter (of) (fiscal) (year) 2023
    re.compile(rf"\b(?:fiscal\s+)?(first|second|third|fourth|1st|2nd|3rd|4th)\s+(?:fiscal\s+)?quarter\s+"
               rf"(?:of\s+|in\s+)?{_FY}?{_YEAR}\b", re.I),
]
_HALF = re.compile(rf"\b(?:first|1st)\s+half\s+(?:of\s+)?{_FY}?{_YEAR}?", re.I)
_YTD = re.compile(rf"\b(?:first\s+)?(three|six|nine|twelve|3|6|9|12)[\s-]+months?(?:\s+(?:ended|ending|of|to|through))?"
                  rf"(?:\s+{_FY}?{_YEAR}\b)?", re.I)
_LENGTH = [
    (re.compile(r"\b(?:quarter|quarterly|three[\s-]+months?)\b", re.I), 3),
    (re.compile(r"\b(?:fiscal\s+year|full[\s-]+year|annual|twelve[\s-]+months|year\s+ended)\b", re.I), 12),
]
# A fiscal year: "fiscal 2023", "FY'21", or a bare year ("2021 revenue", "in 2021").
_FISCAL_YEAR = re.compile(rf"(?:\b{_FY})?(?<![\d.,/-])((?:19|20)\d\d)\b(?![.,/-]?\d)|\bfy\s*'?(\d\d)\b", re.I)


@dataclass(frozen=True)
class Period:
    """A reporting period as named in words.

    Attributes:
        end: The last day, when a date is given ("ended April 1, 2023", "as of June 25, 2022").
        months: Length: 3 (quarter), 6 or 9 (year to date), 12 (year); None for a point in time or unknown.
        fiscal_year: The fiscal year named ("FY2023", "fiscal 2023", "in 2021").
        quarter: The fiscal quarter named (1-4), or for a year-to-date length the quarter it ends.
        end_month: ``(year, month)`` when only a month is named ("the June 2022 quarter").
        text: The words it was read from.
    """

    end: date | None = None
    months: int | None = None
    fiscal_year: int | None = None
    quarter: int | None = None
    end_month: tuple[int, int] | None = None
    text: str = ""

    def label(self) -> str:
        """A short stable name: ``3M ended 2023-04-01``, ``Q2 FY2023``, ``6M FY2023``, ``FY2021``.

        >>> Period(months=12, fiscal_year=2021).label()
        'FY2021'
        """
        if self.end is not None or self.end_month is not None:
            when = self.end.isoformat() if self.end is not None else \
                f"{self.end_month[0]}-{self.end_month[1]:02d}"  # type: ignore[index]
            return f"{self.months}M ended {when}" if self.months else f"at {when}"
        fy = f"FY{self.fiscal_year}" if self.fiscal_year else "FY?"
        if self.quarter and self.months in (None, 3):
            return f"Q{self.quarter} {fy}"
        if self.months and self.months != 12:
            return f"{self.months}M {fy}"
        return fy


def _year(text: str | None) -> int | None:
    if not text:
        return None
    digits = text.strip("'")
    return int(digits) if len(digits) == 4 else 2000 + int(digits)


def parse_date(text: str) -> date | None:
    """The first date in ``text`` ("June 25, 2022", "Sept. 30 2021", "2023-04-01"), or None.

    >>> parse_date("For the quarterly period ended June 25, 2022")
    datetime.date(2022, 6, 25)
    """
    for d, _ in _dates(text):
        return d
    return None


def _dates(text: str) -> list[tuple[date, tuple[int, int]]]:
    out = []
    for m in _DATE.finditer(text):
        try:
            if m.group(1):
                month = _MONTH_ABBR[m.group(1).lower().rstrip(".")[:4] if m.group(1).lower().startswith("sept")
                                    else m.group(1).lower()[:3]]
                out.append((date(int(m.group(3)), month, int(m.group(2))), m.span()))
            else:
                out.append((date(int(m.group(4)), int(m.group(5)), int(m.group(6))), m.span()))
        except (ValueError, KeyError):  # "February 30": not a date
            continue
    return out


def date_words(d: date) -> str:
    """A date the way filings print it: ``June 25, 2022``.

    >>> date_words(date(2023, 4, 1))
    'April 1, 2023'
    """
    return f"{d.strftime('%B')} {d.day}, {d.year}"


def _length_before(text: str, start: int) -> int | None:
    """The period length a date's lead-in names: "three months ended", "quarter ended", "year ended"."""
    lead = text[max(0, start - 60):start]
    m = re.search(r"(three|six|nine|twelve|3|6|9|12)[\s-]+months?\s+(?:ended|ending|through)\s*$", lead, re.I)
    if m:
        return _NUM[m.group(1).lower()]
    if re.search(r"\b(?:half|first\s+six\s+months)\b[^.]{0,30}$", lead, re.I):
        return 6
    if re.search(r"\bquarter(?:ly)?(?:\s+period)?\s+(?:ended|ending)\s*$|\bquarter\s+\w*\s*(?:ended|ending)\s*$",
                 lead, re.I):
        return 3
    if re.search(r"\b(?:fiscal\s+)?year\s+(?:ended|ending)\s*$", lead, re.I):
        return 12
    return None


def parse_periods(text: str) -> list[Period]:
    """Every period ``text`` names, in order of appearance (dates first when both are given).

    >>> [p.label() for p in parse_periods("What was net income in Q2 FY2023?")]
    ['Q2 FY2023']
    >>> [p.label() for p in parse_periods("the first nine months of fiscal 2022 (through June 25, 2022)")]
    ['9M ended 2022-06-25', '9M FY2022']
    >>> [p.label() for p in parse_periods("What was revenue in 2021?")]
    ['FY2021']
    >>> [p.label() for p in parse_periods("second quarter of fiscal 2024")]
    ['Q2 FY2024']
    >>> [p.label() for p in parse_periods("balance as of April 30, 2023")]
    ['at 2023-04-30']
    """
    out: list[Period] = []
    used: list[tuple[int, int]] = []

    def free(span: tuple[int, int]) -> bool:
        return all(span[1] <= a or span[0] >= b for a, b in used)

    ytd_len = None
    m_ytd = _YTD.search(text)
    if m_ytd:
        ytd_len = _NUM[m_ytd.group(1).lower()]
    for d, span in _dates(text):
        months = _length_before(text, span[0]) or ytd_len
        out.append(Period(end=d, months=months, text=text[span[0]:span[1]]))
        used.append(span)
    for rx in _QUARTER:
        for m in rx.finditer(text):
            if not free(m.span()):
                continue
            groups = [g for g in m.groups() if g]
            q = next((int(g) if g.isdigit() and len(g) == 1 else _ORD.get(g.lower()) for g in groups
                      if (g.isdigit() and len(g) == 1) or g.lower() in _ORD), None)
            year = next((_year(g) for g in groups if not (g.isdigit() and len(g) == 1) and g.lower() not in _ORD), None)
            if q:
                out.append(Period(months=3, fiscal_year=year, quarter=q, text=m.group(0)))
                used.append(m.span())
    for m in _HALF.finditer(text):
        if free(m.span()):
            year = _year(m.group(1))
            out.append(Period(months=6, fiscal_year=year, quarter=2, text=m.group(0).strip()))
            used.append(m.span())
    for m in _YTD.finditer(text):
        if not free(m.span()) or m.group(2) is None:
            continue
        months = _NUM[m.group(1).lower()]
        out.append(Period(months=months, fiscal_year=_year(m.group(2)), quarter=months // 3 if months < 12 else None,
                          text=m.group(0).strip()))
        used.append(m.span())
    month_spans = [m.span(2) for m in _MONTH_YEAR.finditer(text)]
    for m in _FISCAL_YEAR.finditer(text):
        if not free(m.span()) or any(a <= m.start(1) < b for a, b in month_spans if m.group(1)):
            continue
        year = _year(m.group(1) or m.group(2))
        if any(p.fiscal_year == year or (p.end and p.end.year == year) for p in out):
            continue
        if re.search(r"-\s*$", text[:m.start()]) or re.match(r"\d", text[m.end():m.end() + 1]):
            continue  # part of an identifier ("10-K 2021-3")
        # A year alone ("in 2021") names no length: a 10-K's year, or a quarter's fiscal year.
        months = next((n for rx, n in _LENGTH if rx.search(text)), None)
        out.append(Period(months=12 if months == 12 else None, fiscal_year=year, text=m.group(0).strip()))
        used.append(m.span())
    for m in _MONTH_YEAR.finditer(text):
        month = _MONTH_ABBR.get(m.group(1).lower()[:3])
        if month and not any(p.end for p in out):
            # "the June 2022 quarter": a month, not a day; the period ending in it.
            months = next((n for rx, n in _LENGTH if rx.search(text)), None)
            out = [p for p in out if p.fiscal_year != int(m.group(2)) or p.quarter]
            out.append(Period(months=months, end_month=(int(m.group(2)), month), text=m.group(0)))
            used.append(m.span())
    return _sorted(out, text)


def _sorted(periods: list[Period], text: str) -> list[Period]:
    return sorted(periods, key=lambda p: (p.end is None, text.find(p.text)))
