"""Reading order and blocks on one- and two-column pages."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
from conftest import load_gt

from docrag.config import IngestOptions
from docrag.io import open_document
from docrag.layout import LAYOUTS, get_layout
from docrag.pipeline import process_page
from docrag.types import Line


def _order_ratio(got: list[str], want: list[str]) -> float:
    return difflib.SequenceMatcher(a=got, b=want, autojunk=False).ratio()


@pytest.mark.parametrize("page_no", [1, 2, 3])
def test_text_layer_pages_read_in_true_order(fixtures_dir: Path, page_no: int) -> None:
    gt = load_gt("report")["pages"][page_no - 1]
    with open_document(fixtures_dir / "report.pdf") as doc:
        page = process_page(doc.page(page_no), IngestOptions(ocr="never"))
    got = [ln.text for ln in page.lines]
    want = [ln["text"] for ln in gt["lines"]]
    assert got == want


def test_two_column_page_has_two_columns(fixtures_dir: Path) -> None:
    with open_document(fixtures_dir / "report.pdf") as doc:
        page = process_page(doc.page(2), IngestOptions(ocr="never"))
    assert {b.column for b in page.blocks} >= {0, 1}
    left = [b for b in page.blocks if b.column == 0 and b.bbox[2] < 306]
    right = [b for b in page.blocks if b.column == 1]
    assert left and right and max(b.bbox[2] for b in left) < min(b.bbox[0] for b in right)


@pytest.mark.parametrize("name", LAYOUTS.names())
def test_every_layout_engine_orders_a_table_by_rows(name: str) -> None:
    # Label column + number columns: rows must stay rows, not be read column-wise.
    lines = []
    for i, (label, a, b) in enumerate([("Revenue", "4,820", "4,410"), ("Operating income", "512", "470"),
                                       ("Net income", "361", "332"), ("Capital expenditure", "(1,577)", "(1,402)")]):
        y = 100 + 14 * i
        lines += [Line(label, (72, y, 200, y + 10)), Line(a, (400, y, 440, y + 10)), Line(b, (480, y, 520, y + 10))]
    blocks = get_layout(name).analyze(lines, 612, 792)
    texts = [ln.text for b in blocks for ln in b.lines]
    assert texts[:3] == ["Revenue", "4,820", "4,410"]


@pytest.mark.parametrize("turn", [0, 90, 180, 270])
def test_a_table_read_turned_is_ordered_by_its_own_rows(turn: int) -> None:
    """A scan read turned keeps its lines in page space: the table's rows run across the page there."""
    from docrag.layout.grouping import _rows
    from docrag.types import Word

    def to_page(x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
        # the reading frame (600 x 800) as it lies on a page turned by `turn` degrees
        corners = [(x0, y0), (x1, y1)]
        if turn == 90:
            corners = [(800 - y, x) for x, y in corners]
        elif turn == 180:
            corners = [(600 - x, 800 - y) for x, y in corners]
        elif turn == 270:
            corners = [(y, 600 - x) for x, y in corners]
        (a, b), (c, d) = corners
        return min(a, c), min(b, d), max(a, c), max(b, d)

    def line(text: str, x: float, y: float) -> Line:
        first, second = text.split()
        words = [Word(first, to_page(x, y, x + 40, y + 12)), Word(second, to_page(x + 50, y, x + 90, y + 12))]
        return Line(text=text, bbox=to_page(x, y, x + 90, y + 12), words=words)

    cells = [line("Model X1", 100, 100), line("weight 12", 300, 100), line("Model X2", 100, 130),
             line("weight 15", 300, 130)]
    assert [ln.text for ln in _rows(cells[::-1])] == ["Model X1", "weight 12", "Model X2", "weight 15"]
