"""Tables read from text lines: borderless tables found by aligned number columns, and
any table's rows as Markdown (ruled grids are found from drawings and page images in
:mod:`docrag.layout.regions`).

>>> from docrag.types import Line
>>> L = lambda t, x, y: Line(t, (x, y, x + 30, y + 10))
>>> rows = [[L("Depot", 0, y), L(str(y), 50, y), L(str(2 * y), 100, y)] for y in (0, 14, 28)]
>>> [t.bbox for t in borderless_tables([ln for r in rows for ln in r])]
[(0.0, 0.0, 130.0, 38.0)]
"""

from __future__ import annotations

import re

from docrag.layout.captions import CAPTION_RE
from docrag.types import BBox, Line, Region, inside_share, text_height, union

__all__ = ["cells", "borderless_tables", "table_to_markdown", "tidy_cells"]

NUMERIC_RE = re.compile(r"^[(\-+\u2212$\u20ac\u00a3]?\d[\d,.]*\s?%?\)?$|^n/?a$|^[-\u2013\u2014]$", re.IGNORECASE)


def cells(line: Line) -> list[tuple[str, BBox]]:
    """A line cut into cells at gaps wider than about one em."""
    words = line.words or []
    if len(words) < 2:
        return [(line.text.strip(), line.bbox)]
    h = line.bbox[3] - line.bbox[1]
    out: list[list] = [[words[0]]]
    for w in words[1:]:
        if w.bbox[0] - out[-1][-1].bbox[2] > 0.8 * h:
            out.append([w])
        else:
            out[-1].append(w)
    return [(" ".join(w.text for w in ws), union([w.bbox for w in ws])) for ws in out]


def _rows(lines: list[Line]) -> list[list[tuple[str, BBox]]]:
    """Cells grouped into rows by vertical centre, rows top to bottom, cells left to right."""
    heights: dict[int, float] = {}
    items: list[tuple[str, BBox]] = []
    for ln in lines:
        for c in cells(ln):
            heights[id(c)] = text_height(c[1], ln.source)
            items.append(c)
    items.sort(key=lambda c: (c[1][1] + c[1][3]) / 2)
    rows: list[list[tuple[str, BBox]]] = []
    for c in items:
        yc, h = (c[1][1] + c[1][3]) / 2, heights[id(c)]
        if rows:
            r = rows[-1]
            ryc = sum((b[1] + b[3]) / 2 for _, b in r) / len(r)
            if abs(yc - ryc) < 0.5 * h:
                r.append(c)
                continue
        rows.append([c])
    return [sorted(r, key=lambda c: c[1][0]) for r in rows]


def borderless_tables(lines: list[Line]) -> list[Region]:
    """Tables without rules: three or more stacked rows of aligned numbers."""
    rows = _rows(lines)

    def tabular(r: list) -> bool:
        return len(r) >= 3 and sum(bool(NUMERIC_RE.match(t)) for t, _ in r) >= 2

    out, i = [], 0
    while i < len(rows):
        if not tabular(rows[i]):
            i += 1
            continue
        j = i + 1
        while j < len(rows) and tabular(rows[j]) and _row_gap(rows[j - 1], rows[j]) < 1.5:
            j += 1
        if j - i >= 3:
            start = i
            if i > 0 and len(rows[i - 1]) >= 2 and _row_gap(rows[i - 1], rows[i]) < 1.8 \
                    and not CAPTION_RE.match(rows[i - 1][0][0]):
                start = i - 1  # a header row of words over the number columns
            box = union([b for r in rows[start:j] for _, b in r])
            out.append(Region("table", box, "borderless", score=0.7, source="columns"))
        i = j
    return out


def _row_gap(a: list, b: list) -> float:
    """Vertical gap between two rows in units of row height."""
    h = max(bb[3] - bb[1] for _, bb in a)
    return (min(bb[1] for _, bb in b) - max(bb[3] for _, bb in a)) / max(h, 1e-6)


def table_to_markdown(region: Region, lines: list[Line]) -> str:
    """The table's rows as Markdown, each row keeping its label with its values.

    Columns come from the grid for ruled tables, from x-overlap of the cells
    otherwise.

    >>> from docrag.types import Line
    >>> L = lambda t, x, y: Line(t, (x, y, x + 30, y + 10))
    >>> ls = [L("Item", 0, 0), L("2019", 50, 0), L("PP&E", 0, 14), L("(1,577)", 50, 14)]
    >>> print(table_to_markdown(Region("table", (0, 0, 80, 24)), ls))
    | Item | 2019 |
    | --- | --- |
    | PP&E | (1,577) |
    """
    rows = _rows([ln for ln in lines if inside_share(ln.bbox, region.bbox) > 0.5])
    if not rows:
        return ""
    if len(region.columns) >= 2:
        bounds = list(zip(region.columns, region.columns[1:]))
    else:
        spans: list[list[float]] = []
        for x0, x1 in sorted((b[0], b[2]) for r in rows for _, b in r if len(r) > 1):
            if spans and x0 < spans[-1][1] - 1:
                spans[-1][1] = max(spans[-1][1], x1)
            else:
                spans.append([x0, x1])
        bounds = [(s[0], s[1]) for s in spans] or [(region.bbox[0], region.bbox[2])]
    grid = []
    for r in rows:
        slots = [""] * len(bounds)
        for text, b in r:
            k = max(range(len(bounds)), key=lambda k: min(b[2], bounds[k][1]) - max(b[0], bounds[k][0]))
            slots[k] = f"{slots[k]} {text}".strip()
        grid.append(slots)
    grid = tidy_cells(grid)
    table = ["| " + " | ".join(s.replace("|", "\\|") for s in slots) + " |" for slots in grid]
    table.insert(1, "| " + " | ".join("---" for _ in grid[0]) + " |")
    return "\n".join(table)


CURRENCY = ("$", "\u20ac", "\u00a3", "\u00a5")
"""Cells holding only a currency sign: set in a column of their own before the amounts in filings."""
CLOSERS = ("%", ")", "%)")
"""Cells holding only what closes the amount to their left."""
YEAR_RE = re.compile(r"^(19|20)\d\d$")


def tidy_cells(grid: list[list[str]]) -> list[list[str]]:
    """A table's cells as a reader sees them: signs joined to their amounts, no empty
    columns, and a heading set on stacked rows (``June 25,`` over ``2022``) as one row.

    Financial statements set ``$`` and ``%`` in cells of their own, and their column
    headings on two or three lines; as cells, each would be a column or row of its own
    and the period would never read as a whole.

    >>> for row in tidy_cells([["", "", "June 25,", "", "June 26,"], ["", "", "2022", "", "2021"],
    ...                        ["Net sales", "$", "82,959", "$", "81,434"], ["Margin", "", "43.3", "% $", "40.1 %"]]):
    ...     print(row)
    ['', 'June 25, 2022', 'June 26, 2021']
    ['Net sales', '$82,959', '$81,434']
    ['Margin', '43.3%', '$40.1%']
    """
    grid = [list(r) for r in grid]
    for row in grid:
        for j in range(len(row)):
            words = row[j].split()
            # A sign that closes the amount before (``%`` of "4 %" set in the next column) goes back...
            while words and words[0] in CLOSERS and j > 0 and row[j - 1]:
                row[j - 1] += words.pop(0)
            # ...and a currency sign at a cell's end opens the amount after it.
            if words and words[-1] in CURRENCY and j + 1 < len(row) and row[j + 1]:
                row[j + 1] = words.pop() + row[j + 1]
            row[j] = re.sub(r"(?<=[\d)]) (?=%)", "", " ".join(words))  # "4 %" -> "4%"
    keep = [j for j in range(len(grid[0])) if any(row[j] for row in grid)] if grid else []
    grid = [[row[j] for j in keep] for row in grid] if keep else grid
    # Stacked headings: the first rows, none with a row label or an amount (a year is a heading).
    head = 0
    while head < len(grid) - 1 and not grid[head][0] and any(grid[head]) \
            and not any(NUMERIC_RE.match(c) and not YEAR_RE.match(c) for c in grid[head]):
        head += 1
    if head >= 2:
        merged = [" ".join(row[j] for row in grid[:head] if row[j]) for j in range(len(grid[0]))]
        grid = [merged] + grid[head:]
    return grid

