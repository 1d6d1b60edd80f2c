"""Regions group lines; they never remove them.

After the reading order is found, the lines that lie in a region (a table, a
boxed note, a figure) are gathered into one block of the region's kind, placed
where the region's first line is read. Every line stays on the page exactly
once: in ``Page.lines`` (``docrag ocr --json``, the searchable PDF) and in the
blocks. Table blocks read row by row, box blocks stay where they are read, and
figure blocks hold the figure's labels; ``Page.text`` leaves figure blocks out
(their words go with the figure's own chunk, after its caption).

A region that holds running prose (text printed over a photo, a page-sized
false figure on a bilevel scan) is a picture *behind* text: its lines stay in
the running text.

>>> from docrag.types import Block, Line, Region
>>> body = [Line("Intro text", (0, 0, 100, 10)), Line("Sales 12", (0, 20, 100, 30)), Line("End", (0, 40, 50, 50))]
>>> blocks = group_regions([Block(body, (0, 0, 100, 50))], [Region("table", (0, 18, 100, 32))])
>>> [(b.kind, b.text) for b in blocks]
[('text', 'Intro text'), ('table', 'Sales 12'), ('text', 'End')]
"""

from __future__ import annotations

from typing import Callable

from docrag.types import Block, BlockKind, Line, Region, Word, area, inside_share, text_height, union

__all__ = ["group_regions", "region_lines", "holds_prose", "FIGURE_BLOCKS"]

FIGURE_BLOCKS = ("figure", "chart")
"""Block kinds whose text belongs to a picture, not to the running text."""
# Share of a line's box that must lie in a region for the line to belong to it.
INSIDE = 0.5
# A region whose lines carry this many words at this many words per line is prose
# with a picture behind it (a full-bleed photo, a tinted page), not a figure's labels.
PROSE_WORDS = 40
PROSE_WORDS_PER_LINE = 5.0
# A line this long inside a figure is a sentence (body text a loose figure box overlaps), not a label.
SENTENCE_WORDS = 7


def region_lines(region: Region, lines: list[Line]) -> list[int]:
    """Indices of ``lines`` that lie in ``region``."""
    return [i for i, ln in enumerate(lines) if inside_share(ln.bbox, region.bbox) >= INSIDE]


def holds_prose(lines: list[Line]) -> bool:
    """True when ``lines`` read as running text (many words, long lines), not as labels.

    >>> from docrag.types import Line
    >>> holds_prose([Line("0 10 20 30", (0, 0, 9, 9))])
    False
    """
    words = sum(len(ln.text.split()) for ln in lines)
    return words >= PROSE_WORDS and words / max(1, len(lines)) >= PROSE_WORDS_PER_LINE


def group_regions(blocks: list[Block], regions: list[Region],
                  relayout: Callable[[list[Line]], list[Block]] | None = None,
                  frame_box: Callable[[Line], tuple] | None = None) -> list[Block]:
    """``blocks`` with each region's lines gathered into one block of its kind, at its reading place.

    A line in several regions goes to the smallest. Figures holding prose keep
    their lines in the running text. With ``relayout`` (the layout analyzer, in
    page space) the reading order is found again with each region standing as
    one tall line: labels, ticks and cells no longer hide the column gutters.
    ``frame_box`` gives a line's box in the frame it was read in (a tilted scan),
    where a table's cells are put in rows.
    """
    lines = [ln for b in blocks for ln in b.lines]
    owner: dict[int, int] = {}  # id(line) -> region index
    for r_idx in sorted(range(len(regions)), key=lambda i: area(regions[i].bbox)):
        region = regions[r_idx]
        mine = [lines[i] for i in region_lines(region, lines) if id(lines[i]) not in owner]
        if region.kind in FIGURE_BLOCKS and holds_prose(mine):
            continue
        if region.kind in FIGURE_BLOCKS:  # a sentence inside a loose figure box is body text, not a label
            mine = [ln for ln in mine if len(ln.text.split()) < SENTENCE_WORDS]
        for ln in mine:
            owner[id(ln)] = r_idx
    # Every region that holds labels, or no text at all, stands in as one tall line: it
    # takes its room in its column (a photo at the head of a column, too; or one across the
    # page, which cuts the columns above it from a footer below it).
    held: dict[int, list[Line]] = {} if relayout is None else {
        i: [] for i in range(len(regions)) if i not in owner.values() and not region_lines(regions[i], lines)}
    if relayout is not None and (owner or held):
        free = [ln for ln in lines if id(ln) not in owner]
        for ln in lines:
            if id(ln) in owner:
                held.setdefault(owner[id(ln)], []).append(ln)
        stand_ins = {r_idx: Line(text=f"[{regions[r_idx].kind}]", bbox=regions[r_idx].bbox,
                                 words=[Word(ln.text, ln.bbox) for ln in held[r_idx]], source="region")
                     for r_idx in sorted(held)}
        ordered = relayout(free + list(stand_ins.values()))
        if sum(len(b.lines) for b in ordered) == len(free) + len(stand_ins):  # nothing dropped or split
            for r_idx, stand_in in stand_ins.items():
                owner[id(stand_in)] = r_idx
            return _walk(ordered, owner, regions, held, frame_box)
    members = {r_idx: [ln for ln in lines if owner.get(id(ln)) == r_idx] for r_idx in set(owner.values())}
    return _walk(blocks, owner, regions, members, frame_box)


def _walk(blocks: list[Block], owner: dict[int, int], regions: list[Region],
          members: dict[int, list[Line]], frame_box: Callable[[Line], tuple] | None = None) -> list[Block]:
    """Blocks in order, each region's block standing where its first line (or stand-in) is read."""
    out: list[Block] = []
    placed: set[int] = set()
    for block in blocks:
        run: list[Line] = []
        for ln in block.lines:
            r_idx = owner.get(id(ln))
            if r_idx is None:
                run.append(ln)
                continue
            if r_idx in placed or not members[r_idx]:  # a text-less region only held its room
                continue
            if run:
                out.append(_like(block, run))
                run = []
            placed.add(r_idx)
            out.append(_region_block(regions[r_idx], members[r_idx], block.column, frame_box))
        if run:
            out.append(_like(block, run))
    return out


def _region_block(region: Region, lines: list[Line], column: int,
                  frame_box: Callable[[Line], tuple] | None = None) -> Block:
    kind: BlockKind = region.kind
    ordered = _rows(lines, frame_box) if region.kind == "table" else lines
    return Block(lines=ordered, bbox=union([ln.bbox for ln in ordered]), kind=kind, column=column)


def _rows(lines: list[Line], frame_box: Callable[[Line], tuple] | None = None) -> list[Line]:
    """Lines row by row (rows by vertical centre, top to bottom), cells left to right, in the
    reading frame: on a page read turned, page space runs the rows sideways, and on one read
    tilted a row's far cells sit a row higher or lower (``frame_box``: the frame's boxes)."""
    if frame_box is None:
        turn = _upright(lines)
        boxes = {id(ln): turn(ln.bbox) for ln in lines}
    else:
        boxes = {id(ln): frame_box(ln) for ln in lines}
    rows: list[list[Line]] = []
    for ln in sorted(lines, key=lambda x: (boxes[id(x)][1] + boxes[id(x)][3]) / 2):
        b = boxes[id(ln)]
        mid, h = (b[1] + b[3]) / 2, text_height(b, ln.source)
        if rows:
            last = rows[-1]
            last_mid = sum((boxes[id(x)][1] + boxes[id(x)][3]) / 2 for x in last) / len(last)
            if abs(mid - last_mid) < 0.5 * max(h, min(text_height(boxes[id(x)], x.source) for x in last)):
                last.append(ln)
                continue
        rows.append([ln])
    return [ln for row in rows for ln in sorted(row, key=lambda x: boxes[id(x)][0])]


def _upright(lines: list[Line]) -> Callable[[tuple], tuple]:
    """The map of page boxes into the reading frame, told by where the lines' words run."""
    dx = dy = 0.0
    for ln in lines:
        if ln.words and len(ln.words) >= 2:
            a, b = ln.words[0].bbox, ln.words[-1].bbox
            dx += (b[0] + b[2]) - (a[0] + a[2])
            dy += (b[1] + b[3]) - (a[1] + a[3])
    if abs(dy) <= abs(dx):
        return (lambda b: b) if dx >= 0 else (lambda b: (-b[2], -b[3], -b[0], -b[1]))
    # text running down the page: read turned a quarter clockwise (its top at the right), else anticlockwise
    return (lambda b: (b[1], -b[2], b[3], -b[0])) if dy > 0 else (lambda b: (-b[3], b[0], -b[1], b[2]))


def _like(block: Block, lines: list[Line]) -> Block:
    return Block(lines=lines, bbox=union([ln.bbox for ln in lines]), kind=block.kind, column=block.column)
