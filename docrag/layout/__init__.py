"""Layout analysis: lines -> blocks in reading order.

Engines register in :data:`LAYOUTS`; ``heuristic`` (default) orders lines with
gutter detection (:mod:`docrag.layout.reading_order`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Protocol, runtime_checkable

from docrag.layout.reading_order import group_blocks, order_lines_with_columns, split_at_word_gutters
from docrag.registry import Registry
from docrag.types import Block, Line

__all__ = ["LayoutAnalyzer", "LAYOUTS", "get_layout", "HeuristicLayout"]


@runtime_checkable
class LayoutAnalyzer(Protocol):
    """Turns a page's lines (any order) into blocks in reading order."""

    name: str

    def analyze(self, lines: list[Line], width: float, height: float) -> list[Block]: ...


LAYOUTS: Registry[LayoutAnalyzer] = Registry("layout analyzer")


class HeuristicLayout:
    """Gutter-based column detection and paragraph grouping; no model.

    >>> from docrag.types import Line
    >>> blocks = HeuristicLayout().analyze([Line("a", (0, 0, 10, 10)), Line("b", (0, 12, 10, 22))], 100, 100)
    >>> [b.text for b in blocks]
    ['a\\nb']
    """

    name = "heuristic"

    def analyze(self, lines: list[Line], width: float, height: float) -> list[Block]:
        lines = split_at_word_gutters([ln for ln in lines if ln.text.strip()])
        if not lines:
            return []
        return group_blocks(order_lines_with_columns(lines))


@LAYOUTS.register("heuristic")
def _heuristic() -> LayoutAnalyzer:
    return HeuristicLayout()


@lru_cache(maxsize=None)
def get_layout(name: str = "heuristic") -> LayoutAnalyzer:
    """The layout analyzer called ``name``."""
    return LAYOUTS.create(name)
