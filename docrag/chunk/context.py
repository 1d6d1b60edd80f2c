"""Document context for chunks: who, what, when, and where in the document.

Filings of one kind share their vocabulary; the page that answers "Northwind's
FY2019 capital expenditure" usually names neither Northwind nor 2019. Each
document gets a profile (title, company, report type, fiscal year) read from
its cover, running headers, PDF metadata and file name; each chunk a section
path (running header and the heading above it). Chunks are embedded and
BM25-indexed *with* a short header built from both, and displayed without it.

>>> from docrag.types import Block, Line, Page
>>> cover = Page(number=1, width=612, height=792, blocks=[
...     Block([Line("Northwind Corp", (72, 100, 300, 130))], (72, 100, 300, 130)),
...     Block([Line("Annual Report on Form 10-K", (72, 140, 300, 152))], (72, 140, 300, 152)),
...     Block([Line("Fiscal Year Ended December 31, 2019", (72, 160, 300, 172))], (72, 160, 300, 172))])
>>> p = document_profile([cover], metadata={}, filename="nw.pdf")
>>> (p["company"], p["report_type"], p["fiscal_year"])
('Northwind Corp', '10-K', '2019')
>>> context_header(p, "Item 8 › Cash Flows")
'Northwind Corp · 10-K · FY2019 · Item 8 › Cash Flows'
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from docrag.chunk.periods import date_words, parse_date
from docrag.chunk.statements import page_facts, statement_kind
from docrag.types import Block, Page, Region

__all__ = ["document_profile", "section_of_blocks", "region_sections", "context_header", "period_phrase", "YEAR"]

_SUFFIX = (r"Inc|Incorporated|Corp|Corporation|Company|Co|Ltd|Limited|LLC|L\.L\.C|PLC|plc|AG|SA|S\.A|NV|N\.V|GmbH|"
           r"Holdings|Group|Logistics|Industries|Industrial|Partners|Bancorp|Technologies|Systems")
# A name is a few capitalised words on one line ending in a corporate suffix.
_COMPANY = re.compile(rf"\b((?:[A-Z][\w&'-]*\.?[ \t]+){{0,3}}[A-Z][\w&'-]*,?[ \t]+(?:{_SUFFIX}))\b\.?")
_TYPES = [
    (re.compile(r"\bform\s+10-?k\b|\b10-?k\b", re.I), "10-K"),
    (re.compile(r"\bform\s+10-?q\b|\b10-?q\b", re.I), "10-Q"),
    (re.compile(r"\bform\s+20-?f\b", re.I), "20-F"),
    (re.compile(r"\bannual\s+report\b", re.I), "Annual Report"),
    (re.compile(r"\bquarterly\s+report\b", re.I), "Quarterly Report"),
    (re.compile(r"\bsustainability\s+report\b", re.I), "Sustainability Report"),
    (re.compile(r"\bproxy\s+statement\b", re.I), "Proxy Statement"),
]
_FISCAL = re.compile(r"\b(?:fiscal(?:\s+year)?(?:\s+ended\s+\w+\s+\d{1,2},)?|FY|year\s+ended\s+\w+\s+\d{1,2},)\s*'?(\d{4}|\d{2})\b", re.I)
# A year a filing may be about (1980-2039), not part of a longer number. Shared with the
# query side (docrag.retrieve.cues), so a question and a profile name years alike.
YEAR = re.compile(r"(?<!\d)(19[89]\d|20[0-3]\d)(?!\d)")
# An EDGAR accession number ("0000320193-22-000070") is often all a filing's PDF title says.
_ACCESSION = re.compile(r"\d{10}-\d{2}-\d{6}")
_NAME_END = re.compile(rf"\b(?:{_SUFFIX}|Trust|Bank|Fund)\b\.?$", re.I)
_REGISTRANT = re.compile(r"\(\s*exact\s+name\s+of\s+(?:the\s+)?registrant", re.I)
_PERIOD_ENDED = re.compile(r"for\s+the\s+(quarterly\s+period|fiscal\s+year|year)\s+ended\s+"
                           r"([A-Za-z]+\.?\s+\d{1,2},?\s+(?:19|20)\d\d)", re.I)
_ORDINAL = {"first": 1, "second": 2, "third": 3, "fourth": 4}
_QUARTER_OF = re.compile(r"\b(first|second|third|fourth)\s+(?:fiscal\s+)?quarter\s+of\s+(?:fiscal\s+)?(?:year\s+)?"
                         r"((?:19|20)\d\d)\b", re.I)
# Column heads and navigation that look like headings but name no section.
_NOT_HEADING = re.compile(
    r"^(?:(?:three|six|nine|twelve)\s+months|(?:fiscal\s+)?(?:years?|quarters?)\s+ended|as\s+of\b|"
    r"(?:%\s*)?change\b|total\b|table\s+of\s+contents$|\(?unaudited\)?$|\(?in\s+(?:millions|thousands))"
    r"|^\W*(?:19|20)\d\d\W*$", re.I)
_FIGURE_CELL = re.compile(r"^\(?\$?\s*[\d,.]+\)?%?$|^—$")
_HEADING = re.compile(r"^(item\s+\d+[a-z]?\.?|part\s+[ivx]+|\d+(\.\d+)*\.?\s+[A-Z]|[A-Z][A-Za-z ,&'-]{2,80}$)")


def _cover_text(pages: list[Page]) -> str:
    return "\n".join(b.text for p in pages[:2] for b in p.blocks if b.kind not in ("page_footer",))


def _headers(pages: list[Page]) -> list[str]:
    return [b.text for p in pages for b in p.blocks if b.kind == "page_header"]


def document_profile(pages: list[Page], metadata: dict[str, Any], filename: str) -> dict[str, str]:
    """Title, company, report type and fiscal year of a document (missing ones left out)."""
    cover = _cover_text(pages)
    headers = " \n".join(_headers(pages)[:5])
    profile: dict[str, str] = {}
    title = (metadata.get("title") or "").strip()
    if not title or title.lower() in ("untitled", "") or title.lower().endswith((".pdf", ".doc", ".docx")) \
            or _ACCESSION.fullmatch(title):
        title = _biggest_line(pages[0]) if pages else ""
    if title:
        profile["title"] = title[:200]
    # The registrant on an SEC cover, else a title that is a company's name ("Apple Inc.", the
    # biggest line of an OCR'd cover whose reading order lost the registrant line).
    registrant = _registrant(cover) or (title.rstrip(",") if _NAME_END.search(title) and len(title) <= 80 else None)
    if registrant:
        profile["company"] = registrant
    for text in (cover, headers, title, metadata.get("author") or ""):
        m = _COMPANY.search(text) if not registrant else None
        if m:
            profile["company"] = " ".join(m.group(1).split()).rstrip(",")
            break
    for text in (cover, headers, title, filename):
        found = next((name for rx, name in _TYPES if rx.search(text)), None)
        if found:
            profile["report_type"] = found
            break
    year = _fiscal_year(cover + "\n" + headers) or _fiscal_year(filename)
    if year:
        profile["fiscal_year"] = year
    profile.update(_filing_period(cover, pages))
    return profile


def _registrant(cover: str) -> str | None:
    """The name an SEC cover page prints above "(Exact name of registrant as specified in its charter)".

    The name ends in a corporate suffix ("Inc.", "Corporation"); OCR may read the cover in another
    order, so a line that is not a name ("Commission File Number: 001-36743") is passed over, and
    None lets the caller fall back to the suffix search over the whole cover.
    """
    m = _REGISTRANT.search(cover)
    if not m:
        return None
    for line in reversed(cover[:m.start()].strip().splitlines()[-3:]):
        name = " ".join(line.split()).rstrip(",")
        if 2 <= len(name) <= 80 and ":" not in name and _NAME_END.search(name):
            if name.isupper():  # "UBER TECHNOLOGIES, INC." -> "Uber Technologies, Inc."
                name = " ".join(w if w in ("LLC", "PLC", "N.V.", "S.A.", "AG", "SE") else w.capitalize()
                                for w in name.split())
            return name
    return None


def _filing_period(cover: str, pages: list[Page]) -> dict[str, str]:
    """The period a filing reports on: its end date and length from the cover, and its fiscal quarter.

    "For the quarterly period ended April 1, 2023" gives the end; the quarter is
    the one the body keeps naming ("the second quarter of fiscal 2023"); a 10-K
    is the fiscal year ended on its cover date.
    """
    out: dict[str, str] = {}
    m = _PERIOD_ENDED.search(cover)
    end = parse_date(m.group(2)) if m else None
    if end is None:
        return out
    quarterly = "quarter" in m.group(1).lower()  # type: ignore[union-attr]
    out["period_end"] = end.isoformat()
    out["period_months"] = "3" if quarterly else "12"
    if not quarterly:
        out["fiscal_year"] = str(end.year)
        return out
    body = " ".join(b.text for p in pages for b in p.blocks if b.kind == "text")
    named = Counter((_ORDINAL[q.lower()], y) for q, y in _QUARTER_OF.findall(" ".join(body.split())))
    if named:
        (quarter, year), _ = named.most_common(1)[0]
        out["fiscal_quarter"] = str(quarter)
        out["fiscal_year"] = year
    return out


def period_phrase(profile: dict[str, str]) -> str:
    """The filing's period in words: ``Q2 FY2023 · quarter ended April 1, 2023`` (or "").

    >>> period_phrase({"period_end": "2023-04-01", "period_months": "3", "fiscal_quarter": "2", "fiscal_year": "2023"})
    'Q2 FY2023 · quarter ended April 1, 2023'
    >>> period_phrase({"period_end": "2021-12-31", "period_months": "12", "fiscal_year": "2021"})
    'FY2021 · year ended December 31, 2021'
    """
    end = parse_date(profile.get("period_end", ""))
    if end is None:
        return "FY" + profile["fiscal_year"] if profile.get("fiscal_year") else ""
    fy = "FY" + profile["fiscal_year"] if profile.get("fiscal_year") else ""
    if profile.get("period_months") == "3":
        q = f"Q{profile['fiscal_quarter']} {fy}".strip() if profile.get("fiscal_quarter") else fy
        return " · ".join(p for p in (q, f"quarter ended {date_words(end)}") if p)
    return " · ".join(p for p in (fy, f"year ended {date_words(end)}") if p)


def _fiscal_year(text: str) -> str | None:
    m = _FISCAL.search(text)
    if m:
        y = m.group(1)
        return y if len(y) == 4 else ("20" + y if int(y) < 50 else "19" + y)
    years = Counter(YEAR.findall(text))
    return years.most_common(1)[0][0] if years else None


def _biggest_line(page: Page) -> str:
    lines = [ln for b in page.blocks for ln in b.lines if len(ln.text) > 3]
    if not lines:
        return ""
    return max(lines, key=lambda ln: ln.bbox[3] - ln.bbox[1]).text


def section_of_blocks(page: Page, carried: str = "") -> tuple[list[str], str]:
    """The section path of each block of ``page`` and the heading carried to the next page.

    A heading is a short block of one or two lines, taller than the page's
    body lines or shaped like one ("Item 8.", "3.2 Results", Title Case without
    a full stop), or the short first line of a block standing above its body.
    Column heads ("Three Months Ended", "Change") and row labels of a table
    ("Total", "Diluted") are not headings. The running header, when the page
    has one, comes first. On a financial statement page the statement's title
    leads the path, followed by the periods of its columns and its units
    (:func:`docrag.chunk.statements.page_facts`):
    ``Condensed Consolidated Balance Sheets › Current liabilities · As of June 25, 2022 and
    September 25, 2021 · in millions``.
    """
    header = _clean_header(next((b.text for b in page.blocks if b.kind == "page_header"), ""))
    body = [ln.bbox[3] - ln.bbox[1] for b in page.blocks if b.kind == "text" for ln in b.lines]
    body_h = sorted(body)[len(body) // 2] if body else 0.0
    facts = page_facts(page)
    figure_rows = [(ln.bbox[1] + ln.bbox[3]) / 2 for ln in page.lines if _FIGURE_CELL.match(ln.text.strip())]
    detail = " · ".join(p for p in (facts.periods_text(), facts.units) if p)
    # A statement's title names its own page, not the notes that follow it.
    current = facts.statement or ("" if statement_kind(carried) else carried)
    sub = ""
    paths = []
    for block in page.blocks:
        heading = _block_heading(block, body_h, figure_rows) if block.kind in ("text", "box") else None
        if heading and page.width and block.bbox[0] > 0.3 * page.width \
                and abs((block.bbox[0] + block.bbox[2]) / 2 - page.width / 2) > 0.1 * page.width:
            heading = None  # a column head over figures, neither flush left nor centred
        if heading and facts.statement:
            # Under a statement's title, headings are its parts ("Current liabilities:").
            if not statement_kind(heading):
                sub = heading.rstrip(":")
        elif heading:
            current = heading
        where = " › ".join(dict.fromkeys(p for p in (header, current, sub) if p))
        paths.append(" · ".join(p for p in (where, detail) if p))
    return paths, current


def region_sections(page: Page, paths: list[str], regions: list[Region]) -> list[str]:
    """The section path of each region (a table, a figure): that of the last block starting above it.

    ``paths`` are :func:`section_of_blocks`' paths of ``page``. A statement's table
    thus carries the statement's title, periods and units, like its text.

    >>> from docrag.types import Block, Line, Page, Region
    >>> page = Page(number=1, width=612, height=792, blocks=[
    ...     Block([Line("Segment Information", (72, 100, 200, 112))], (72, 100, 200, 112))])
    >>> region_sections(page, ["Segment Information"], [Region(kind="table", bbox=(72, 120, 500, 300))])
    ['Segment Information']
    """
    out = []
    for region in regions:
        above = [i for i, b in enumerate(page.blocks) if b.bbox[1] <= region.bbox[1] + 2 and i < len(paths)]
        out.append(paths[above[-1]] if above else (paths[0] if paths else ""))
    return out


def _block_heading(block: Block, body_h: float, figure_rows: list[float] | None = None) -> str | None:
    """The heading a block starts with: its leading lines set larger than the body, a short
    heading-shaped first line above the body, or a short heading-shaped block of its own."""
    lead = []
    for ln in block.lines:
        if body_h > 0 and ln.bbox[3] - ln.bbox[1] > 1.12 * body_h and len(ln.text) <= 120:
            lead.append(" ".join(ln.text.split()))
        else:
            break
    if lead and len(lead) < len(block.lines) + 1:
        text = " › ".join(lead)[:160]
        return text if _could_be_heading(text) else None
    if len(block.lines) >= 3 and _lead_line_heading(block):
        return " ".join(block.lines[0].text.split())
    if not _is_heading(block, body_h):
        return None
    text = " ".join(block.text.split())[:120]
    if not _could_be_heading(text):
        return None
    centre = (block.bbox[1] + block.bbox[3]) / 2
    if len(text.split()) <= 3 and any(abs(centre - y) <= 3 for y in figure_rows or []):
        return None  # a table's row label ("Total", "Diluted") sits on a row of figures
    return text


def _could_be_heading(text: str) -> bool:
    """False for column heads, dates, figures and navigation links, which are never section titles."""
    letters = re.sub(r"[^A-Za-z]", "", text)
    return len(letters) >= 4 and not _NOT_HEADING.search(text) and not parse_date(text)


def _lead_line_heading(block: Block) -> bool:
    """A block's short first line stands above its body: "Liquidity and Capital Resources" over a paragraph."""
    first = " ".join(block.lines[0].text.split())
    rest = block.lines[1:]
    widest = max(ln.bbox[2] - ln.bbox[0] for ln in rest)
    short = block.lines[0].bbox[2] - block.lines[0].bbox[0] < 0.6 * widest
    words = [w for w in first.split() if len(w) >= 4]
    shaped = bool(words) and (first.isupper() or sum(w[0].isupper() for w in words) == len(words)) \
        or bool(re.match(r"^(item\s+\d|note\s+\d)", first, re.I))
    return short and shaped and len(first) <= 80 and not first.endswith((".", ",", ";", ":")) \
        and _could_be_heading(first)


def _is_heading(block: Block, body_h: float) -> bool:
    if len(block.lines) > 2:
        return False
    text = " ".join(block.text.split())
    if not text or len(text) > 120 or text.endswith((".", ",", ";")) and not re.match(r"^item\s+\d", text, re.I):
        return False
    tall = body_h > 0 and max(ln.bbox[3] - ln.bbox[1] for ln in block.lines) > 1.15 * body_h
    long_words = [w for w in text.split() if len(w) >= 4]
    title_case = bool(long_words) and sum(w[0].isupper() for w in long_words) >= 0.6 * len(long_words)
    numbered = bool(re.match(r"^(item\s+\d|part\s+[ivx]|\d+(\.\d+)*\.?\s)", text, re.I))
    shaped = bool(_HEADING.match(text)) and len(text.split()) <= 12 and (title_case or numbered)
    return tall or shaped


def _clean_header(text: str) -> str:
    text = re.sub(r"\btable\s+of\s+contents\b", "", " ".join(text.split()), flags=re.I).strip()
    return re.sub(r"\s*[-·|]?\s*(page\s+)?\d+\s*(of\s+\d+)?\s*$", "", text, flags=re.I)


def context_header(profile: dict[str, str], section: str) -> str:
    """A one-line header: company or title, report type, fiscal period, section path."""
    parts = [profile.get("company") or profile.get("title", "")]
    if profile.get("report_type"):
        parts.append(profile["report_type"])
    parts.append(period_phrase(profile))
    if section:
        parts.append(section)
    return " · ".join(p for p in parts if p)
