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

from docrag.types import Block, Page

__all__ = ["document_profile", "section_of_blocks", "context_header", "YEAR"]

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
    if not title or title.lower() in ("untitled", "") or title.lower().endswith((".pdf", ".doc", ".docx")):
        title = _biggest_line(pages[0]) if pages else ""
    if title:
        profile["title"] = title[:200]
    for text in (cover, headers, title, metadata.get("author") or ""):
        m = _COMPANY.search(text)
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
    return profile


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
    a full stop). The running header, when the page has one, comes first.
    """
    header = next((b.text for b in page.blocks if b.kind == "page_header"), "")
    body = [ln.bbox[3] - ln.bbox[1] for b in page.blocks if b.kind == "text" for ln in b.lines]
    body_h = sorted(body)[len(body) // 2] if body else 0.0
    current = carried
    paths = []
    for block in page.blocks:
        heading = _block_heading(block, body_h) if block.kind == "text" else None
        if heading:
            current = heading
        parts = [p for p in (_clean_header(header), current) if p]
        paths.append(" › ".join(dict.fromkeys(parts)))
    return paths, current


def _block_heading(block: Block, body_h: float) -> str | None:
    """The heading a block starts with: its leading lines set larger than the body, or a
    short heading-shaped block of its own."""
    lead = []
    for ln in block.lines:
        if body_h > 0 and ln.bbox[3] - ln.bbox[1] > 1.12 * body_h and len(ln.text) <= 120:
            lead.append(" ".join(ln.text.split()))
        else:
            break
    if lead and len(lead) < len(block.lines) + 1:
        return " › ".join(lead)[:160]
    return " ".join(block.text.split())[:120] if _is_heading(block, body_h) else None


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
    return re.sub(r"\s*[-·|]?\s*(page\s+)?\d+\s*(of\s+\d+)?\s*$", "", " ".join(text.split()), flags=re.I)


def context_header(profile: dict[str, str], section: str) -> str:
    """A one-line header: company or title, report type, fiscal year, section path."""
    parts = [profile.get("company") or profile.get("title", "")]
    if profile.get("report_type"):
        parts.append(profile["report_type"])
    if profile.get("fiscal_year"):
        parts.append("FY" + profile["fiscal_year"])
    if section:
        parts.append(section)
    return " · ".join(p for p in parts if p)
