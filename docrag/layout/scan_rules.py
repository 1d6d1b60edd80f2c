"""Rules that mend the layout model's boxes on scans, where it is the main source of regions.

On a scan the model (:mod:`docrag.layout.picodet`) sees only pixels, and its
mistakes have shapes: two stacked pictures (or tables) boxed singly and as one,
a column of key/value tables boxed as one table, a figure that is nothing but
the rules and heading bands of tables found elsewhere. The other sources of
scan regions err too: the total rules under a statement's number columns stack
into "tables" that cut across the statement's own. Each rule here undoes one
of them, in the model's pixel boxes or in page points alike.

>>> from docrag.layout.picodet import LayoutBox
>>> pair = [LayoutBox("figure", 0.9, (0, 0, 100, 210)), LayoutBox("figure", 0.8, (0, 0, 100, 100))]
>>> [d.box for d in split_stacked(pair, lambda box: False)]
[(0, 100, 100, 210), (0, 0, 100, 100)]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from docrag.layout.grouping import INSIDE, region_lines
from docrag.layout.tables import NUMERIC_RE
from docrag.types import BBox, Line, Region, area, inside_share

if TYPE_CHECKING:
    from docrag.layout.picodet import LayoutBox

__all__ = ["split_stacked", "holds_tables", "covered", "without_repeats", "figures_only"]

# A model box holding another of its kind that spans 90 % of it across, sits within 10 % of one end
# and takes at most 70 % of its length is two stacked regions (:func:`split_stacked`).
STACK_SPAN, STACK_END, STACK_PART = 0.9, 0.1, 0.7
# A table with this share of its box inside another table is part of it (:func:`without_repeats`).
NESTED = 0.8
# Tokens a line of figures may hold besides the figures (:func:`figures_only`).
_SIGNS = frozenset("$€£%")


def split_stacked(found: list[LayoutBox], text: Callable[[BBox], bool]) -> list[LayoutBox]:
    """Model boxes holding another of their kind at one end, as wide (or tall) as they are, cut to the rest.

    On scans the model often boxes two stacked pictures (or two tables one
    above the other) both singly and as one; the outer box then matches
    neither. What lies beyond the inner box is the other one, unless it is
    text (``text(box)``: a figure's rest reading as running text means the
    outer box was a text column, kept as it is for the later checks).
    """
    out = []
    for d in found:
        box = d.box
        for e in found:
            if e is d or e.label != d.label or inside_share(e.box, d.box) < 0.9:
                continue
            rest = _rest(box, e.box)
            if rest is not None and (d.label == "table" or not text(rest)):
                box = rest
        out.append(d._replace(box=box) if box != d.box else d)
    return out


def _rest(outer: BBox, inner: BBox) -> BBox | None:
    """``outer`` less ``inner`` when ``inner`` spans it across one axis and sits at one end of the other."""
    for a in (0, 1):  # a: the axis ``inner`` sits at an end of; b: the axis it spans
        b = 1 - a
        lo, hi, size = outer[a], outer[a + 2], outer[a + 2] - outer[a]
        spans = inner[b + 2] - inner[b] >= STACK_SPAN * (outer[b + 2] - outer[b])
        if not spans or inner[a + 2] - inner[a] > STACK_PART * size:
            continue
        rest = list(outer)
        if inner[a] - lo <= STACK_END * size:
            rest[a] = inner[a + 2]
        elif hi - inner[a + 2] <= STACK_END * size:
            rest[a + 2] = inner[a]
        else:
            continue
        return tuple(rest)  # type: ignore[return-value]
    return None


def holds_tables(table: Region, tables: list[Region]) -> bool:
    """A model table holding two or more other tables: a block of tables (a spec sheet's column,
    two columns of them) the model took for one; the parts are the tables.

    Borderless tables (number columns, ``source="columns"``) do not count: their finder cuts one
    table at each row that is not number columns (a subheading inside it), so two of them inside
    a model table are that table's parts."""
    return table.source == "picodet" and sum(
        o is not table and o.source != "columns" and inside_share(o.bbox, table.bbox) > 0.8 for o in tables) >= 2


def covered(box: BBox, tables: list[Region]) -> float:
    """Share of ``box`` under the tables (summed; a figure made of the rules and heading bands of
    several tables is those tables, not a picture)."""
    return sum(inside_share(box, t.bbox) for t in tables)


def without_repeats(tables: list[Region], lines: list[Line]) -> list[Region]:
    """``tables`` less those nested in another kept table or whose every line other kept tables
    hold, smallest dropped first.

    A table nested in another (over :data:`NESTED` of its box), or lying across parts of others
    (a stack of total rules under a statement's number columns, found beside the statement's row
    tables), adds no line of its own, or one its box takes from the other's edge: kept, its cells
    would be indexed twice, the second time without their row labels. A table holding no line
    and nested in none is left to the other checks.

    >>> big, part = Region("table", (0, 0, 100, 100)), Region("table", (50, 0, 100, 60))
    >>> rows = [Line("Revenue 12 14", (5, 10, 95, 20)), Line("Cost 3 4", (60, 30, 95, 40))]
    >>> [t.bbox for t in without_repeats([big, part], rows)]
    [(0, 0, 100, 100)]
    """
    held = {id(t): set(region_lines(t, lines)) for t in tables}
    kept = list(tables)
    for t in sorted(tables, key=lambda r: area(r.bbox)):
        mine = held[id(t)]
        rest = [o for o in kept if o is not t]
        if any(inside_share(t.bbox, o.bbox) > NESTED for o in rest) or \
                (mine and mine <= set().union(*(held[id(o)] for o in rest))):
            kept.remove(t)
    return kept


def figures_only(box: BBox, lines: list[Line]) -> bool:
    """Whether every line in ``box`` is figures (amounts, dashes, currency signs), and there are some.

    The rules under a statement's subtotals stack into a box around one of its number
    columns: that is a column of a table whose row labels lie outside it, not a table.
    Taken for one, it would take the numbers from their rows (the page's borderless
    tables are found among the lines no region holds).

    >>> from docrag.types import Line
    >>> column = [Line("21,803", (430, 180, 470, 190)), Line("$ 5,433", (440, 200, 470, 210))]
    >>> figures_only((425, 170, 515, 310), column), figures_only((425, 170, 515, 310), [Line("Total 12", (430, 180, 470, 190))])
    (True, False)
    """
    inside = [ln for ln in lines if inside_share(ln.bbox, box) >= INSIDE]
    return bool(inside) and all(NUMERIC_RE.match(tok) or tok in _SIGNS for ln in inside for tok in ln.text.split())

