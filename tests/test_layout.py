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


def test_a_photo_across_the_page_holds_the_footer_below_both_columns() -> None:
    # Two columns, a text-less photo across the page under them, then a footer row (left and
    # right). The photo stands in as one tall line: the footer comes after both columns, not
    # between them (report_photo: CER 0.085 -> 0.000 born-digital, 0.079 -> 0.006 scanned).
    from docrag.layout import HeuristicLayout
    from docrag.layout.grouping import group_regions
    from docrag.types import Region

    def col(x0: float, x1: float, tag: str) -> list[Line]:
        return [Line(f"{tag} line {i} of running text here", (x0, 160 + 16 * i, x1, 170 + 16 * i)) for i in range(12)]

    footer = [Line("11 Corporate Report 2024", (46, 741, 272, 758)), Line("Return to ToC", (501, 749, 553, 763))]
    layout = HeuristicLayout()
    lines = col(54, 276, "left") + col(316, 540, "right") + footer
    blocks = layout.analyze(lines, 612, 792)
    photo = Region("figure", (45, 428, 600, 702))
    grouped = group_regions(blocks, [photo], lambda ls: layout.analyze(ls, 612, 792))
    text = "\n".join(b.text for b in grouped)
    assert text.index("right line 11") < text.index("11 Corporate Report") < text.index("Return to ToC")
    assert text.index("left line 11") < text.index("right line 0")


def test_a_tilted_scan_is_laid_out_again_around_its_boxes_where_it_was_read() -> None:
    # A scan tilted 2 degrees: two columns, then a tinted box across both (two columns
    # inside), then two more. In page space the tilted lines' boxes overlap, so the page
    # is laid out again, each region standing as one block, in the frame it was read in:
    # the box cuts the columns above it from those below (before, the left column was
    # read down through the box to the foot of the page, then the right one).
    import numpy as np

    from docrag.layout.grouping import group_regions
    from docrag.layout.regions import corners
    from docrag.pipeline import ReadingFrame
    from docrag.types import Region, Word

    def column(name: str, x0: float, y0: float, n: int) -> list[Line]:
        out = []
        for i in range(n):
            box = (x0, y0 + 14 * i, x0 + 230, y0 + 14 * i + 10)
            out.append(Line(f"{name}{i} words", box, words=[Word(f"{name}{i}", (box[0], box[1], box[0] + 40, box[3])),
                                                            Word("words", (box[0] + 50, box[1], box[2], box[3]))]))
        return out

    frame_lines = (column("tl", 50, 40, 6) + column("tr", 320, 40, 6) + column("bl", 60, 200, 3)
                   + column("br", 330, 200, 3) + column("pl", 50, 320, 5) + column("pr", 320, 320, 5))
    box_in_frame = (45, 185, 575, 245)
    angle = np.radians(2.0)
    rot = np.array([[np.cos(angle), -np.sin(angle), 20.0], [np.sin(angle), np.cos(angle), -5.0]])

    def to_page(box):
        pts = corners(box) @ rot[:, :2].T + rot[:, 2]
        return (*pts.min(axis=0), *pts.max(axis=0))

    layout = get_layout("heuristic")
    blocks = layout.analyze(frame_lines, 612, 792)
    view = type("View", (), {"to_points": rot, "dpi": 72.0})()  # the raster as read: 1 px a point
    frame = ReadingFrame.of(type("Read", (), {"view": view, "width": 612.0, "height": 792.0})(), blocks)
    for block in blocks:
        for line in block.lines:
            line.bbox = to_page(line.bbox)
            for word in line.words:
                word.bbox = to_page(word.bbox)
    regions = [Region(kind="box", bbox=to_page(box_in_frame))]
    order = [ln.text.split()[0] for b in group_regions(blocks, regions, lambda ls: frame.relayout(layout, ls))
             for ln in b.lines]
    sections = [name[:2] for name in order]
    assert sections == ["tl"] * 6 + ["tr"] * 6 + ["bl"] * 3 + ["br"] * 3 + ["pl"] * 5 + ["pr"] * 5, order
    assert frame.box(regions[0]) == pytest.approx(box_in_frame, abs=0.01)  # a page box mapped back, not grown
    page_order = [ln.text.split()[0][:2] for b in group_regions(blocks, regions, None) for ln in b.lines]
    assert page_order != sections  # without laying out again: the left column runs through the box


@pytest.mark.parametrize("degrees", [0.0, 3.0, -7.0, 91.5, 180.0, -88.0])
def test_a_region_box_maps_back_to_the_upright_box_it_was_found_as(degrees: float) -> None:
    import numpy as np

    from docrag.layout.regions import corners
    from docrag.pipeline import ReadingFrame
    from docrag.types import Region

    angle = np.radians(degrees)
    to_points = 0.5 * np.array([[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0]])
    to_points[:, 2] = (300.0, 400.0)  # a 144-dpi raster turned and tilted onto the page
    view = type("View", (), {"to_points": to_points, "dpi": 144.0})()
    frame = ReadingFrame.of(type("Read", (), {"view": view, "width": 612.0, "height": 792.0})(), [])
    upright = (40.0, 100.0, 420.0, 180.0)  # points in the frame: pixels * 72 / 144
    pts = corners(upright) * 2 @ to_points[:, :2].T + to_points[:, 2]
    region = Region(kind="figure", bbox=(*pts.min(axis=0), *pts.max(axis=0)))
    assert frame.box(region) == pytest.approx(upright, abs=1e-6)


def test_a_tilted_scans_table_is_put_in_rows_where_it_was_read() -> None:
    # Tilted 2 degrees, a 500-pt-wide table's far cells sit 17 pt lower than its first ones in
    # page space: more than a row. Its Markdown is made in the frame the page was read in.
    import numpy as np

    from docrag.layout.tables import table_to_markdown
    from docrag.layout.regions import corners
    from docrag.pipeline import ReadingFrame
    from docrag.types import Block, Region

    rows = [["Year", "Revenue", "Cost", "Margin"], ["2022", "1,200", "800", "400"], ["2023", "1,500", "900", "600"]]
    frame_lines = [Line(text, (60 + 150 * c, 300 + 11 * r, 100 + 150 * c, 308 + 11 * r))
                   for r, row in enumerate(rows) for c, text in enumerate(row)]
    angle = np.radians(2.0)
    rot = np.array([[np.cos(angle), -np.sin(angle), 20.0], [np.sin(angle), np.cos(angle), -5.0]])
    view = type("View", (), {"to_points": rot, "dpi": 72.0})()
    frame = ReadingFrame.of(type("Read", (), {"view": view, "width": 612.0, "height": 792.0})(),
                            [Block(lines=frame_lines, bbox=(60, 300, 600, 330))])

    def to_page(box):
        pts = corners(box) @ rot[:, :2].T + rot[:, 2]
        return (*pts.min(axis=0), *pts.max(axis=0))

    for line in frame_lines:
        line.bbox = to_page(line.bbox)
    region = Region(kind="table", bbox=to_page((55, 295, 605, 335)))
    want = ["| Year | Revenue | Cost | Margin |", "| --- | --- | --- | --- |", "| 2022 | 1,200 | 800 | 400 |",
            "| 2023 | 1,500 | 900 | 600 |"]
    assert table_to_markdown(*frame.table(region, frame_lines)).splitlines() == want
    assert table_to_markdown(region, frame_lines).splitlines() != want  # in page space the rows mix
