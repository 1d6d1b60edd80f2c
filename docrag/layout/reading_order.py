"""Lines into blocks in reading order, for one-, two- and more-column pages.

The page is cut recursively at *gutters*: vertical white strips that only a few
lines cross. Lines crossing a gutter (a title, a full-width figure caption) cut
the page into sections read top to bottom; inside a section the left side is
read before the right. Aligned paragraph gaps across columns do not fool it,
unlike a plain XY-cut, because sections are only ever cut at spanning lines.

>>> from docrag.types import Line
>>> L = lambda t, x0, y0, x1: Line(t, (x0, y0, x1, y0 + 10))
>>> lines = [L("Title", 50, 40, 550)] + [L(f"l{i}", 50, 70 + 14 * i, 290) for i in range(4)] \\
...         + [L(f"r{i}", 310, 70 + 14 * i, 550) for i in range(4)]
>>> [l.text for l in order_lines(lines)]
['Title', 'l0', 'l1', 'l2', 'l3', 'r0', 'r1', 'r2', 'r3']
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

from docrag.types import Block, Line, Word, union

if TYPE_CHECKING:
    import numpy as np

# Two lines share a row when their centres are less than this share of the smaller height apart.
SAME_ROW = 0.4
# A column of short lines (key/value rows) must run this share of the page's height to be a page column.
TALL_COLUMN = 0.6
# A column is flush against its gutter: this share of its lines come within FLUSH line heights of it.
FLUSH, FLUSH_SHARE = 1.5, 0.3

__all__ = ["order_lines", "group_blocks", "join_line_fragments", "split_line_at_gaps", "split_at_word_gutters",
           "words_to_line"]


def order_lines(lines: list[Line], height: float | None = None) -> list[Line]:
    """Return ``lines`` in reading order (``height``: the page's, in the lines' units)."""
    return [line for _, line in order_lines_with_columns(lines, height)]


def order_lines_with_columns(lines: list[Line], height: float | None = None) -> list[tuple[int, Line]]:
    """Like :func:`order_lines`, with a column index (0 = leftmost) per line."""
    if height is None:
        height = max((ln.bbox[3] for ln in lines), default=0.0) - min((ln.bbox[1] for ln in lines), default=0.0)
    return _order(lines, 0, height)


def _order(lines: list[Line], column: int, height: float) -> list[tuple[int, Line]]:
    if len(lines) < 4:
        return [(column, line) for line in _rows(lines)]
    gutter = _find_gutter(lines, height)
    if gutter is None:
        return [(column, line) for line in _rows(lines)]
    g0, g1 = gutter
    spanning = sorted((ln for ln in lines if _side(ln, g0, g1) == 0), key=lambda ln: ln.bbox[1])
    rest = [ln for ln in lines if _side(ln, g0, g1) != 0]
    out: list[tuple[int, Line]] = []
    # Cut the page into sections at the spanning lines, top to bottom.
    cuts = [(ln.bbox[1] + ln.bbox[3]) / 2 for ln in spanning] + [float("inf")]
    prev = float("-inf")
    for i, cut in enumerate(cuts):
        section = [ln for ln in rest if prev <= (ln.bbox[1] + ln.bbox[3]) / 2 < cut]
        left = [ln for ln in section if _side(ln, g0, g1) < 0]
        right = [ln for ln in section if _side(ln, g0, g1) > 0]
        out += _order(left, column, height)
        out += _order(right, column + 1, height)
        if i < len(spanning):
            out.append((column, spanning[i]))
        prev = cut
    return out


def _find_gutter(lines: list[Line], page_height: float) -> tuple[float, float] | None:
    """The vertical white strip crossed by the fewest lines that has real columns on both sides.

    Works on the coverage profile (lines covering each x, 1 pt bins): for
    c = 0, 1, 2 ... crossing lines, the widest run of bins covered by at most c
    lines is tried; the first that separates two columns wins.
    """
    import numpy as np

    box = np.array([ln.bbox for ln in lines], dtype=np.float64)
    x0, y0, x1, y1 = box.T
    h = float(np.median(y1 - y0))
    x_min, x_max = float(x0.min()), float(x1.max())
    span = x_max - x_min
    if span <= 0 or h <= 0:
        return None
    # A region's stand-in counts as the lines it holds.
    weight = np.array([max(1, len(ln.words)) if ln.source == "region" else 1 for ln in lines], dtype=np.float64)
    cols = _Columns(box, weight, span, h, page_height)
    n_bins = int(np.ceil(span)) + 1
    delta = np.zeros(n_bins + 1, dtype=np.int32)
    np.add.at(delta, (x0 - x_min).astype(int), 1)
    np.add.at(delta, np.ceil(x1 - x_min).astype(int), -1)
    cover = np.cumsum(delta)[:n_bins]
    min_width = max(0.5 * h, 0.012 * span)
    lo, hi = int(0.1 * span), int(0.9 * span)
    for c in np.unique(cover[lo:hi]):
        if c > 0.5 * len(lines):
            break
        runs = _runs(cover[lo:hi] <= c)
        for a, b in sorted(runs, key=lambda r: r[0] - r[1]):  # widest first
            if b - a < min_width:
                break
            # The gutter is the emptiest part of the strip: a column's first lines may run into a
            # strip widened by white space beside a picture below them.
            strip = cover[lo + a:lo + b]
            a2, b2 = max(_runs(strip == strip.min()), key=lambda r: r[1] - r[0])
            g0, g1 = x_min + lo + a + a2, x_min + lo + a + b2
            if cols.separates(g0, g1):
                return g0, g1
    return None


class _Columns:
    """Tests a candidate gutter against the lines (as arrays): are both sides real columns?

    A column holds several lines of prose, or runs most of the page's height as a
    column of short rows set flush against the gutter (a share of its lines come
    within a few points of it). A table's number column, or its
    ragged keys beside their values, are not columns.
    """

    def __init__(self, box: np.ndarray, weight: np.ndarray, span: float, h: float, page_height: float) -> None:
        self.box, self.weight, self.span, self.h, self.height = box, weight, span, h, page_height
        self.total = float(weight.sum())

    def separates(self, g0: float, g1: float) -> bool:
        x0, x1 = self.box[:, 0], self.box[:, 2]
        mid, gc = (x0 + x1) / 2, (g0 + g1) / 2
        return (self._column((x1 <= g1) & (mid < gc), x1, g0)
                and self._column((x0 >= g0) & (mid > gc), x0, g1))

    def _column(self, side: np.ndarray, facing: np.ndarray, edge: float) -> bool:
        import numpy as np

        w = self.weight[side]
        n = float(w.sum())
        if side.sum() < 1 or n < 2 or n < 0.15 * self.total:
            return False
        box = self.box[side]
        widths = np.repeat(box[:, 2] - box[:, 0], w.astype(int))
        if float(np.median(widths)) >= 0.2 * self.span:
            return True
        return (float(box[:, 2].max() - box[:, 0].min()) >= 0.2 * self.span
                and float(box[:, 3].max() - box[:, 1].min()) >= TALL_COLUMN * self.height
                and float(w[np.abs(facing[side] - edge) <= FLUSH * self.h].sum()) >= FLUSH_SHARE * n)


def _side(line: Line, g0: float, g1: float) -> int:
    """-1 left of the gutter, 1 right of it, 0 across it.

    A line may poke into the gutter (skewed scans, loose OCR boxes) but not
    through it.
    """
    x0, _, x1, _ = line.bbox
    if x1 <= g1 and (x0 + x1) / 2 < (g0 + g1) / 2:
        return -1
    if x0 >= g0 and (x0 + x1) / 2 > (g0 + g1) / 2:
        return 1
    return 0


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` index ranges where ``mask`` is true."""
    import numpy as np

    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def _rows(lines: list[Line]) -> list[Line]:
    """Top to bottom; lines sharing a row (most of their height) left to right."""
    rows: list[list[Line]] = []
    for ln in sorted(lines, key=lambda ln: (ln.bbox[1] + ln.bbox[3]) / 2):
        if rows and _same_row(rows[-1][-1], ln):
            rows[-1].append(ln)
        else:
            rows.append([ln])
    return [ln for row in rows for ln in sorted(row, key=lambda ln: ln.bbox[0])]


def _same_row(a: Line, b: Line) -> bool:
    # Centres, not overlap: padded OCR boxes of tightly set lines overlap their neighbours by half.
    h = min(a.bbox[3] - a.bbox[1], b.bbox[3] - b.bbox[1])
    return abs((a.bbox[1] + a.bbox[3]) - (b.bbox[1] + b.bbox[3])) / 2 < SAME_ROW * h


def group_blocks(ordered: list[tuple[int, Line]]) -> list[Block]:
    """Group consecutive lines of one column into paragraphs.

    A new block starts at a change of column, a vertical gap larger than the
    line height, a jump back up the page, or a clear change of text size.
    """
    blocks: list[Block] = []
    current: list[Line] = []
    current_col = -1
    for col, line in ordered:
        if current and (col != current_col or _breaks(current[-1], line)):
            blocks.append(Block(lines=current, bbox=union([ln.bbox for ln in current]), column=current_col))
            current = []
        current.append(line)
        current_col = col
    if current:
        blocks.append(Block(lines=current, bbox=union([ln.bbox for ln in current]), column=current_col))
    return blocks


def _breaks(prev: Line, line: Line) -> bool:
    hp = prev.bbox[3] - prev.bbox[1]
    hl = line.bbox[3] - line.bbox[1]
    gap = line.bbox[1] - prev.bbox[3]
    if gap < -0.5 * hp:  # went back up: another column or region
        return True
    if gap > 0.9 * max(hp, hl):
        return True
    if max(hp, hl) > 1.35 * min(hp, hl):
        return True
    # Same-height lines that do not overlap horizontally are not one paragraph.
    return min(prev.bbox[2], line.bbox[2]) < max(prev.bbox[0], line.bbox[0])


def words_to_line(words: list[Word], source: str = "text") -> Line:
    """One :class:`Line` from words already in left-to-right order."""
    conf = sum(w.confidence for w in words) / len(words)
    return Line(
        text=" ".join(w.text for w in words),
        bbox=union([w.bbox for w in words]),
        confidence=conf,
        words=list(words),
        source="ocr" if source == "ocr" else "text",
    )


def split_at_word_gutters(lines: list[Line]) -> list[Line]:
    """Split lines that run across a narrow column gutter.

    A detector can bridge a gutter only a few word-spaces wide, giving lines
    like "... ultricies et, Sed bibendum ...". The gutter still shows in the
    words: a vertical strip that almost no word covers, with whole lines on
    both sides of it elsewhere on the page. Lines whose words jump across that
    strip are cut there.

    >>> from docrag.types import Word
    >>> def L(*spans):
    ...     ws = [Word(t, (x0, 0, x1, 10)) for t, x0, x1 in spans]
    ...     return words_to_line(ws, source="ocr")
    >>> cols = [L(("left", 50, 100), ("col", 110, 290)), L(("right", 310, 400), ("col", 410, 550))] * 3
    >>> lines = cols + [L(("merged", 50, 150), ("line", 160, 292), ("other", 312, 420), ("side", 430, 548))] * 3
    >>> [ln.text for ln in split_at_word_gutters(lines)][-2:]
    ['merged line', 'other side']
    """
    if len(lines) < 8 or not all(ln.words for ln in lines):
        return lines
    import numpy as np

    x_min = min(ln.bbox[0] for ln in lines)
    span = max(ln.bbox[2] for ln in lines) - x_min
    if span <= 0:
        return lines
    cover = np.zeros(int(np.ceil(span)) + 2, dtype=np.int32)
    for ln in lines:
        for w in ln.words:
            cover[int(w.bbox[0] - x_min):int(np.ceil(w.bbox[2] - x_min))] += 1
    lo, hi = int(0.25 * span), int(0.75 * span)
    # "Almost no word": padded word boxes and a centred title still touch a real gutter.
    limit = max(2, int(0.12 * np.percentile(cover[lo:hi], 75)))
    for a, b in sorted(_runs(cover[lo:hi] <= limit), key=lambda r: r[0] - r[1]):
        if b - a < 1.5:  # points; OCR word boxes are padded, so a real gutter shows narrow
            break
        g0, g1 = x_min + lo + a, x_min + lo + b
        left = sum(ln.bbox[2] <= g0 + 0.5 for ln in lines)
        right = sum(ln.bbox[0] >= g1 - 0.5 for ln in lines)
        # Only OCR lines are cut: a PDF's own lines are what its author set.
        cut = [_cut_index(ln, g0, g1) if ln.source == "ocr" else None for ln in lines]
        if left < 2 or right < 2 or sum(c is not None for c in cut) == 0:
            continue
        out: list[Line] = []
        for ln, c in zip(lines, cut):
            if c is None:
                out.append(ln)
            else:
                out += [words_to_line(ln.words[:c], ln.source), words_to_line(ln.words[c:], ln.source)]
        return out
    return lines


def _cut_index(line: Line, g0: float, g1: float) -> int | None:
    """Index of the first word right of the strip when the line jumps across it."""
    words = line.words
    min_gap = 0.2 * (line.bbox[3] - line.bbox[1])  # wider than a padded word space
    for i in range(1, len(words)):
        a, b = words[i - 1].bbox[2], words[i].bbox[0]
        if a <= g0 + 0.5 and b >= g1 - 0.5 and b - a >= min_gap:
            return i
    return None


def split_line_at_gaps(words: list[Word], factor: float = 1.6) -> list[list[Word]]:
    """Split a line's words where the gap exceeds ``factor`` x the line height.

    PDF lines and detector boxes sometimes run across a column gutter; this
    puts each side in its own line.
    """
    if not words:
        return []
    words = sorted(words, key=lambda w: w.bbox[0])
    h = statistics.median(w.bbox[3] - w.bbox[1] for w in words)
    parts = [[words[0]]]
    for w in words[1:]:
        if w.bbox[0] - parts[-1][-1].bbox[2] > factor * h:
            parts.append([w])
        else:
            parts[-1].append(w)
    return parts


def join_line_fragments(groups: list[list[Word]], factor: float = 1.0) -> list[list[Word]]:
    """Join consecutive PDF lines that are pieces of one printed line.

    Some producers write every word (or every few words) as a line of its own;
    read as they are, a page becomes a column of single words and its table
    rows fall apart. A group continues the previous one when it sits on the
    same baseline, at the same size, and starts less than ``factor`` x the
    line height after it ends: a word space, not a column gutter.

    >>> def W(t, x0, x1, y=0): return Word(t, (x0, y, x1, y + 10))
    >>> groups = [[W("Fig.", 0, 20)], [W("4.", 23, 33)], [W("gutter", 60, 90)], [W("next", 0, 20, y=12)]]
    >>> [" ".join(w.text for w in g) for g in join_line_fragments(groups)]
    ['Fig. 4.', 'gutter', 'next']
    """
    out: list[list[Word]] = []
    for group in groups:
        if out and group and _continues(out[-1], group, factor):
            out[-1] = out[-1] + group
        else:
            out.append(list(group))
    return out


def _continues(prev: list[Word], group: list[Word], factor: float) -> bool:
    a, b = union([w.bbox for w in prev]), union([w.bbox for w in group])
    ha, hb = a[3] - a[1], b[3] - b[1]
    if min(ha, hb) <= 0 or max(ha, hb) > 1.3 * min(ha, hb):
        return False
    if min(a[3], b[3]) - max(a[1], b[1]) < 0.6 * min(ha, hb):
        return False
    gap = group[0].bbox[0] - prev[-1].bbox[2]
    return -0.2 * min(ha, hb) <= gap <= factor * max(ha, hb)
