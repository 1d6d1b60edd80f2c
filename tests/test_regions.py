"""Figure, chart, table and caption regions against the visual fixtures' ground truth.

Acceptance: on ``visual.pdf`` at least 90% of figures and tables are found
with IoU >= 0.7 and 90% of captions are linked to the right region; on
``visual_scan.pdf`` (OCR lines) at least 80% with IoU >= 0.5. The figures are
printed (``pytest -s``) so a change that moves them shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest

from docrag.io import open_document
from docrag.layout.captions import find_captions
from docrag.layout.regions import find_regions, lines_inside
from docrag.layout.tables import table_to_markdown
from docrag.pipeline import text_layer_lines
from docrag.types import Line, Region, iou

from conftest import FIXTURES, load_gt

DIGITAL, SCAN = FIXTURES / "visual.pdf", FIXTURES / "visual_scan.pdf"
pytestmark = pytest.mark.skipif(not SCAN.exists(), reason="run fixtures/make_visual_fixtures.py")


@dataclass
class Score:
    """Counts over a file: regions found, captions linked, subtypes right, markdown rows kept."""

    regions: int = 0
    found: int = 0
    captions: int = 0
    linked: int = 0
    classified: int = 0
    false_pos: int = 0
    rows: int = 0
    rows_kept: int = 0
    misses: list[str] = field(default_factory=list)

    def line(self, name: str, thr: float) -> str:
        return (f"{name}: found {self.found}/{self.regions} at IoU>={thr}, captions linked "
                f"{self.linked}/{self.captions}, classified {self.classified}/{self.found}, "
                f"false positives {self.false_pos}, table rows kept {self.rows_kept}/{self.rows}")


def _family(kind: str) -> str:
    return "table" if kind == "table" else "figure"


def _cells(md: str) -> list[list[str]]:
    return [[c.strip() for c in row.strip().strip("|").split("|")] for row in md.splitlines()]


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


def score(pages: list[tuple[list[Region], list[Line]]], truth: dict, thr: float) -> Score:
    """Match predictions to ground truth greedily by IoU within table/figure families."""
    s = Score()
    for (pred, lines), page in zip(pages, truth["pages"]):
        pairs = sorted(((iou(p.bbox, tuple(g["bbox"])), i, j) for i, p in enumerate(pred)
                        for j, g in enumerate(page["regions"]) if _family(p.kind) == _family(g["kind"])), reverse=True)
        used_p: set[int] = set()
        match: dict[int, Region] = {}
        for v, i, j in pairs:
            if v >= thr and i not in used_p and j not in match:
                used_p.add(i)
                match[j] = pred[i]
        s.false_pos += len(pred) - len(used_p)
        for j, g in enumerate(page["regions"]):
            s.regions += 1
            p = match.get(j)
            if p is None:
                s.misses.append(f"p{page['page']} {g['subtype']} not found")
                continue
            s.found += 1
            s.classified += (p.kind, p.subtype) == (g["kind"], g["subtype"])
            if g["caption"]:
                s.captions += 1
                ok = p.caption_bbox is not None and iou(p.caption_bbox, tuple(g["caption_bbox"])) >= 0.5
                s.linked += ok
                if not ok:
                    s.misses.append(f"p{page['page']} caption {g['caption']!r} got {p.caption!r}")
            elif p.caption is not None:
                s.misses.append(f"p{page['page']} {g['subtype']} given a caption it has not: {p.caption!r}")
            for row in g.get("table_rows") or []:
                s.rows += 1
                md_rows = [[_norm(c) for c in r] for r in _cells(table_to_markdown(p, lines))]
                s.rows_kept += any(all(_norm(c) in r for c in row) for r in md_rows)
    return s


@pytest.fixture(scope="module")
def digital() -> list[tuple[list[Region], list[Line]]]:
    with open_document(DIGITAL) as doc:
        out = []
        for src in doc.pages():
            lines = text_layer_lines(src)
            out.append((find_regions(src, lines), lines))
        return out


@pytest.fixture(scope="module")
def scanned() -> list[tuple[list[Region], list[Line]]]:
    from docrag.config import IngestOptions
    from docrag.pipeline import ocr_lines

    options = IngestOptions(ocr="always")
    with open_document(SCAN) as doc:
        out = []
        for src in doc.pages():
            raster = src.render(200)  # the scan's own resolution (300 dpi found the same regions)
            lines = ocr_lines(raster, options)
            out.append((find_regions(src, lines, raster), lines))
        return out


def test_digital_acceptance(digital) -> None:
    s = score(digital, load_gt("visual"), 0.7)
    print("\n" + s.line("visual.pdf", 0.7), *s.misses, sep="\n  ")
    assert s.found >= 0.9 * s.regions, s.misses
    assert s.linked >= 0.9 * s.captions, s.misses
    assert s.classified >= 0.8 * s.found, s.misses  # measured 10/10
    assert s.false_pos <= 1
    assert s.rows_kept == s.rows, s.misses


@pytest.mark.slow
def test_scan_acceptance(scanned) -> None:
    s = score(scanned, load_gt("visual_scan"), 0.5)
    print("\n" + s.line("visual_scan.pdf", 0.5), *s.misses, sep="\n  ")
    assert s.found >= 0.8 * s.regions, s.misses
    assert s.linked >= 0.7 * s.captions, s.misses  # measured 7/7; OCR may split a caption
    assert s.classified >= 0.7 * s.found, s.misses  # measured 10/10
    assert s.false_pos <= 2
    assert s.rows_kept >= 0.8 * s.rows, s.misses


def test_labels_belong_to_their_figure(digital) -> None:
    regions, lines = digital[0]
    chart = next(r for r in regions if r.subtype == "bar")
    inside = {lines[i].text for i in lines_inside(chart, lines)}
    assert {"Midwest", "Canada", "thousands"} <= inside
    assert not any(t.startswith(("Figure 1", "Northwind")) for t in inside)


def test_ruled_table_markdown_keeps_label_with_values(digital) -> None:
    regions, lines = digital[0]
    table = next(r for r in regions if r.kind == "table")
    assert "| Purchases of PP&E | 2018 | (1,577) | -4.2% |" in table_to_markdown(table, lines)


def test_descriptions_do_not_reuse_caption_words() -> None:
    for page in load_gt("visual")["pages"]:
        for r in page["regions"]:
            assert r["description"]
            if r["caption"]:
                words = {w for w in re.findall(r"[a-z]+", r["caption"].lower()) if len(w) > 3}
                assert not words & set(re.findall(r"[a-z]+", r["description"].lower()))


def test_body_text_is_not_a_table() -> None:
    # Two columns of prose side by side share rows but are no table.
    lines = [Line(f"left words {i}", (50, 100 + 14 * i, 290, 110 + 14 * i)) for i in range(6)]
    lines += [Line(f"right words {i}", (310, 100 + 14 * i, 550, 110 + 14 * i)) for i in range(6)]
    from docrag.layout.tables import borderless_tables

    assert borderless_tables(lines) == []


@pytest.mark.parametrize("text,is_caption", [
    ("Figure 3: Revenue", True), ("Fig. 3. Revenue", True), ("Table 2 - Costs", True),
    ("Chart 1 Sales", True), ("Exhibit 4", True), ("Figures show that", False), ("Tablets 3", False),
])
def test_caption_patterns(text: str, is_caption: bool) -> None:
    assert bool(find_captions([Line(text, (0, 0, 100, 10))])) is is_caption


def test_region_round_trip() -> None:
    r = Region("chart", (1.0, 2.0, 3.0, 4.0), "bar", caption="Figure 1", caption_bbox=(1.0, 5.0, 3.0, 6.0))
    assert Region.from_dict(r.to_dict()).to_dict() == r.to_dict()


def test_ocr_cells_of_tight_rows_stay_in_their_rows() -> None:
    # OCR boxes stand ~1.55x as tall as the type (paper_table_chart_scan: 15-pt boxes on rows
    # 8.5 pt apart, and one 30-pt box over two rows' cells); at half a box height the rows merged
    # and their cells interleaved (CER 0.115, now 0.065).
    from docrag.layout.grouping import _rows
    from docrag.layout.tables import table_to_markdown
    from docrag.types import Line, Region

    def cell(text: str, x: float, y: float, h: float = 15) -> Line:
        return Line(text, (x, y, x + 30, y + h), source="ocr")

    lines = [cell("PFOS", 40, 99), cell("2.20", 115, 99.5), cell("0.910", 304, 100), cell("52.2 157.1", 209, 97, 30),
             cell("PFOA", 40, 107.5), cell("1.03", 115, 108), cell("0.869", 304, 108.5)]
    assert [ln.text for ln in _rows(lines)] == ["PFOS", "2.20", "52.2 157.1", "0.910", "PFOA", "1.03", "0.869"]
    rows = table_to_markdown(Region("table", (30, 90, 340, 130)), lines).splitlines()
    assert rows[0].startswith("| PFOS | 2.20 |") and rows[2].startswith("| PFOA | 1.03 |"), rows
