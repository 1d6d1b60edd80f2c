"""Captions and labels: the text that names or annotates a figure, chart or table.

Captions ("Figure 3:", "Fig. 3.", "Table 2 -", "Chart 1", "Exhibit 4") are found
with their continuation lines and linked to the nearest fitting region above or
below; labels (tick labels, legends, titles) are the lines touching a figure's ink.

>>> from docrag.types import Line
>>> [text for _, text, _ in find_captions([Line("Table 2 - Fleet", (0, 0, 80, 10))])]
['Table 2 - Fleet']
"""

from __future__ import annotations

import re

from docrag.types import BBox, Line, Region, inside_share, union

__all__ = ["CAPTION_RE", "find_captions", "link_captions", "absorb_labels", "near"]

CAPTION_RE = re.compile(r"^\s*(figure|fig\.?|table|tab\.|chart|exhibit|graph|plate)\s*(\d+[a-z]?|[ivxl]+)\b"
                        r"\s*([:.\-\u2013\u2014]|\s|$)", re.IGNORECASE)
# Distances in points.
LABEL_MARGIN = 6.0    # text this close to a figure's ink is its label
CAPTION_REACH = 40.0  # farthest a caption sits from its region


def find_captions(lines: list[Line], exclude: list[BBox] = ()) -> list[tuple[list[int], str, BBox]]:  # type: ignore[assignment]
    """Caption candidates: (line indices, text, box), continuation lines included.

    >>> from docrag.types import Line
    >>> find_captions([Line("Fig. 2. Dwell time", (0, 0, 80, 10)), Line("by week", (0, 11, 40, 21))])
    [([0, 1], 'Fig. 2. Dwell time by week', (0.0, 0.0, 80.0, 21.0))]
    """
    out = []
    for i, ln in enumerate(lines):
        if not CAPTION_RE.match(ln.text):
            continue
        ids = [i]
        while True:
            last = lines[ids[-1]].bbox
            h = last[3] - last[1]
            nxt = [j for j, o in enumerate(lines) if j not in ids and 0 <= o.bbox[1] - last[3] + 0.4 * h < 0.8 * h
                   and abs(o.bbox[0] - lines[ids[0]].bbox[0]) < 3 and abs((o.bbox[3] - o.bbox[1]) - h) < 0.2 * h
                   and not CAPTION_RE.match(o.text) and not any(inside_share(o.bbox, b) > 0.5 for b in exclude)]
            if not nxt:
                break
            ids.append(nxt[0])
        out.append((ids, " ".join(lines[j].text.strip() for j in ids), union([lines[j].bbox for j in ids])))
    return out


def link_captions(regions: list[Region], captions: list[tuple[list[int], str, BBox]], lines: list[Line]) -> None:
    """Give each region the nearest fitting caption above or below it (in place).

    Tables prefer a caption above, figures one below; the caption's word must
    fit the kind ("Table" for tables, "Figure"/"Chart" for figures), except
    "Exhibit" and the like, which fit both.
    """
    pairs = []
    for c, (_, text, cb) in enumerate(captions):
        word = CAPTION_RE.match(text).group(1).lower()  # type: ignore[union-attr]
        for r, reg in enumerate(regions):
            b = reg.bbox
            ov = min(b[2], cb[2]) - max(b[0], cb[0])
            if ov < 0.3 * min(b[2] - b[0], cb[2] - cb[0]):
                continue
            below, above = cb[1] - b[3], b[1] - cb[3]
            dist, side_above = (below, False) if below > above else (above, True)
            if not -4.0 <= dist <= CAPTION_REACH:
                continue
            is_table = reg.kind == "table"
            cost = max(dist, 0.0) + (0 if side_above == is_table else 10.0)
            if word.startswith(("tab",)) != is_table and not word.startswith(("exhibit", "plate")):
                cost += 30.0
            pairs.append((cost, c, r))
    used_c: set[int] = set()
    used_r: set[int] = set()
    for _, c, r in sorted(pairs):
        if c in used_c or r in used_r:
            continue
        used_c.add(c)
        used_r.add(r)
        regions[r].caption, regions[r].caption_bbox = captions[c][1], captions[c][2]



def near(a: BBox, b: BBox, margin: float) -> bool:
    return a[0] - margin <= b[2] and b[0] <= a[2] + margin and a[1] - margin <= b[3] and b[1] <= a[3] + margin


def absorb_labels(box: BBox, lines: list[Line], skip: set[int]) -> tuple[BBox, set[int]]:
    """Grow a figure box by the text lines touching it (tick labels, legends, titles).

    Lines wider than the figure are body text and stay out.
    """
    taken: set[int] = set()
    grown = True
    while grown:
        grown = False
        for i, ln in enumerate(lines):
            if i in skip or i in taken or not near(box, ln.bbox, LABEL_MARGIN):
                continue
            if inside_share(ln.bbox, box) < 0.5 and (_wider(ln, box) or _ends_paragraph(i, lines, box)):
                continue
            taken.add(i)
            box = union([box, ln.bbox])
            grown = True
    return box, taken


def _wider(line: Line, box: BBox) -> bool:
    return line.bbox[2] - line.bbox[0] > 0.9 * (box[2] - box[0])


def _ends_paragraph(i: int, lines: list[Line], box: BBox) -> bool:
    """Whether line ``i`` is the short last line of a body paragraph running above it.

    Such a line is narrower than the figure, but the line just above it starts
    at the same left edge, is wider than the figure and lies outside it.
    """
    x0, y0, _, y1 = lines[i].bbox
    h = y1 - y0
    for ln in lines:
        a0, b0, _, b1 = ln.bbox
        if (ln is not lines[i] and b1 <= y1 - 0.3 * h and y0 - b1 < 0.6 * h and abs(a0 - x0) < h
                and _wider(ln, box) and inside_share(ln.bbox, box) < 0.5):
            return True
    return False

