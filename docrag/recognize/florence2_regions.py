"""Florence-2 region output: ``<loc_*>`` parsing, page tiles and their merging.

Florence-2 writes a located text line as the text followed by eight location
tokens, ``Hello<loc_x1><loc_y1>...<loc_x4><loc_y4>``: the corners top-left,
top-right, bottom-right, bottom-left, each coordinate a bin ``0..999`` of the
width or height of the image it was shown. This module turns that into pixel
quads, cuts pages into overlapping tiles and merges the lines read in them.
Pure numpy: no torch, no model.

>>> answer = "Hi<loc_0><loc_0><loc_999><loc_0><loc_999><loc_999><loc_0><loc_999>"
>>> text, quad = parse_ocr_regions(answer, 2000, 1000)[0]
>>> text, quad.tolist()
('Hi', [[1.0, 0.5], [1999.0, 0.5], [1999.0, 999.5], [1.0, 999.5]])
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["LOC_BINS", "TiledLine", "parse_ocr_regions", "split_segments", "tile_grid", "merge_tiled_lines"]

LOC_BINS = 1000  # Florence-2 quantizes each coordinate into 1000 bins
_LOC = r"<loc_(\d+)>"
# Text, then exactly eight location tokens. Whitespace between tokens is allowed:
# some tokenizers (word-level ones, older BART decoders) join tokens with spaces.
_REGION = re.compile(r"(.+?)" + r"\s*".join([_LOC] * 8), re.DOTALL)
_NOISE = re.compile(r"<loc_\d+>|</?s>|<pad>")

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in page pixels


@dataclass
class TiledLine:
    """A line read in one tile, already in page pixel coordinates."""

    text: str
    confidence: float
    quad: np.ndarray  # (4, 2) float32
    tile: Box


def parse_ocr_regions(
    text: str, width: float, height: float, origin: tuple[float, float] = (0.0, 0.0)
) -> list[tuple[str, np.ndarray]]:
    """``(text, quad)`` per located line of an ``<OCR_WITH_REGION>`` answer.

    Bins are mapped to the centre of their pixel range over ``width`` x
    ``height`` (the image the model saw, e.g. a tile), then shifted by
    ``origin`` (the tile's top-left corner on the page).

    Args:
        text: The decoded answer, special tokens kept.
        width: Width of the image the answer refers to, in pixels.
        height: Its height.
        origin: Added to every point: where that image sits on the page.

    Returns:
        One ``(text, quad)`` per line with non-empty text; quads are ``(4, 2)``
        float32, corners clockwise from the top-left.

    >>> s = "</s><s>Total<loc_100><loc_200><loc_300><loc_200><loc_300><loc_250><loc_100><loc_250></s>"
    >>> [(t, q[0].tolist()) for t, q in parse_ocr_regions(s, 1000, 1000, origin=(10, 20))]
    [('Total', [110.5, 220.5])]
    """
    out = []
    for match in _REGION.finditer(text):
        words = _NOISE.sub(" ", match.group(1))
        words = " ".join(words.split())
        if not words:
            continue
        bins = np.array([int(b) for b in match.groups()[1:]], np.float64).clip(0, LOC_BINS - 1).reshape(4, 2)
        quad = (bins + 0.5) / LOC_BINS * np.array([width, height]) + np.asarray(origin, np.float64)
        out.append((words, quad.astype(np.float32)))
    return out


def split_segments(
    ids: Sequence[int],
    probs: Sequence[float],
    loc_ids: set[int],
    skip_ids: set[int],
    stop_id: int | None,
    decode: Callable[[list[int]], str],
) -> list[tuple[str, float]]:
    """Cut generated token ids after every run of eight location tokens.

    Each piece decodes to one ``text<loc_*>x8`` line (or, for plain ``<OCR>``
    answers, to the whole text); its confidence is the mean probability of its
    tokens, so one garbled line does not drag down the others of the tile.

    Args:
        ids: Generated ids, without the decoder start token.
        probs: The probability the model gave each of those ids.
        loc_ids: Ids of ``<loc_0>`` ... ``<loc_999>``.
        skip_ids: Ids dropped silently (``<s>``, ``<pad>``).
        stop_id: Id ending the answer (``</s>``).
        decode: Token ids -> text, keeping the location tokens.

    >>> split_segments([7, 1, 1, 1, 1, 1, 1, 1, 1, 9, 2], [0.5] + [1.0] * 10, {1}, set(), 2, str)
    [('[7, 1, 1, 1, 1, 1, 1, 1, 1]', 0.9444444444444444), ('[9]', 1.0)]
    """
    segments: list[tuple[str, float]] = []
    cur: list[int] = []
    cur_p: list[float] = []
    run = 0
    for tok, p in zip(ids, probs):
        if tok == stop_id:
            break
        if tok in skip_ids:
            continue
        cur.append(int(tok))
        cur_p.append(float(p))
        run = run + 1 if tok in loc_ids else 0
        if run == 8:
            segments.append((decode(cur), float(np.mean(cur_p))))
            cur, cur_p, run = [], [], 0
    if cur:
        segments.append((decode(cur), float(np.mean(cur_p))))
    return segments


def tile_grid(width: int, height: int, tile: int, overlap: int) -> list[Box]:
    """Tiles of at most ``tile`` pixels a side covering the page, ``overlap`` apart at least.

    Tiles are spread evenly, so each overlap is at least ``overlap``; a page
    no larger than ``tile`` is one tile. Order: rows top to bottom, then left
    to right.

    >>> tile_grid(2550, 1000, 1536, 160)
    [(0, 0, 1536, 1000), (1014, 0, 2550, 1000)]
    """
    if tile <= overlap:
        raise ValueError(f"tile ({tile}) must be larger than overlap ({overlap})")

    def starts(size: int) -> list[int]:
        if size <= tile:
            return [0]
        n = math.ceil((size - overlap) / (tile - overlap))
        return [round(i * (size - tile) / (n - 1)) for i in range(n)]

    tw, th = min(tile, width), min(tile, height)
    return [(x, y, x + tw, y + th) for y in starts(height) for x in starts(width)]


def _aabb(quad: np.ndarray) -> np.ndarray:
    return np.concatenate([quad.min(0), quad.max(0)])


def _cut_sides(box: np.ndarray, tile: Box, width: int, height: int, margin: float) -> tuple[bool, bool, bool, bool]:
    """Whether ``box`` touches the tile's left, top, right, bottom edge inside the page."""
    tx0, ty0, tx1, ty1 = tile
    return (
        tx0 > 0 and box[0] - tx0 < margin,
        ty0 > 0 and box[1] - ty0 < margin,
        tx1 < width and tx1 - box[2] < margin,
        ty1 < height and ty1 - box[3] < margin,
    )


def _join_words(left: str, right: str) -> str:
    """``left + right`` without the words both read in the tiles' overlap."""
    a, b = left.split(), right.split()
    for k in range(min(len(a), len(b)), 0, -1):
        if a[-k:] == b[:k]:
            return " ".join(a + b[k:])
    return " ".join(a + b)


def _merge_seams(lines: list[TiledLine], width: int, height: int, margin: float) -> list[TiledLine]:
    """Join fragments of one text line cut by a vertical seam between two tiles."""
    lines = sorted(lines, key=lambda ln: float(ln.quad[:, 0].min()))
    merged: list[TiledLine] = []
    for line in lines:
        box = _aabb(line.quad)
        cut_left = _cut_sides(box, line.tile, width, height, margin)[0]
        partner = None
        if cut_left:
            for j, prev in enumerate(merged):
                pbox = _aabb(prev.quad)
                cut_right = _cut_sides(pbox, prev.tile, width, height, margin)[2]
                v_overlap = min(box[3], pbox[3]) - max(box[1], pbox[1])
                min_h = min(box[3] - box[1], pbox[3] - pbox[1])
                if (
                    cut_right
                    and prev.tile[2] > line.tile[0]  # neighbouring tiles that overlap
                    and v_overlap > 0.5 * min_h
                    and box[0] <= pbox[2] + margin
                ):
                    partner = j
                    break
        if partner is None:
            merged.append(line)
            continue
        prev = merged[partner]
        pts = np.vstack([prev.quad, line.quad])
        x0, y0 = pts.min(0)
        x1, y1 = pts.max(0)
        n_a, n_b = len(prev.text), len(line.text)
        merged[partner] = TiledLine(
            text=_join_words(prev.text, line.text),
            confidence=(prev.confidence * n_a + line.confidence * n_b) / max(1, n_a + n_b),
            quad=np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32),
            # The union of both tiles, so a fragment further right can join on.
            tile=(
                min(prev.tile[0], line.tile[0]),
                min(prev.tile[1], line.tile[1]),
                line.tile[2],
                max(prev.tile[3], line.tile[3]),
            ),
        )
    return merged


def merge_tiled_lines(
    lines: list[TiledLine], width: int, height: int, margin: float = 4.0, min_overlap: float = 0.5
) -> list[TiledLine]:
    """Lines of all tiles as one page: seams joined, duplicates dropped, reading order.

    A line read whole in one tile and cut in a neighbour is kept whole: lines
    that touch an inner tile edge (within ``margin`` pixels) lose against
    those that do not, then smaller boxes against larger ones; a line is
    dropped when more than ``min_overlap`` of its box lies in a kept one.

    Args:
        lines: Lines in page coordinates, with the tile each was read in.
        width: Page width in pixels.
        height: Page height in pixels.
        margin: How close to a tile edge a box must come to count as cut.
        min_overlap: Share of the smaller box covered that makes a duplicate.

    >>> q = lambda x0, x1: np.array([[x0, 10], [x1, 10], [x1, 30], [x0, 30]], np.float32)
    >>> a = TiledLine("Hello wor", 0.9, q(50, 100), (0, 0, 100, 100))
    >>> b = TiledLine("Hello world", 0.9, q(70, 110), (60, 0, 160, 100))
    >>> [ln.text for ln in merge_tiled_lines([a, b], 160, 100)]
    ['Hello world']
    """
    lines = _merge_seams(lines, width, height, margin)
    boxes = [_aabb(ln.quad) for ln in lines]
    areas = [max(1e-6, float((b[2] - b[0]) * (b[3] - b[1]))) for b in boxes]
    cut = [any(_cut_sides(b, ln.tile, width, height, margin)) for b, ln in zip(boxes, lines)]
    order = sorted(range(len(lines)), key=lambda i: (cut[i], -areas[i]))
    kept: list[int] = []
    for i in order:
        b = boxes[i]
        dup = False
        for k in kept:
            c = boxes[k]
            iw = min(b[2], c[2]) - max(b[0], c[0])
            ih = min(b[3], c[3]) - max(b[1], c[1])
            if iw > 0 and ih > 0 and iw * ih > min_overlap * min(areas[i], areas[k]):
                dup = True
                break
        if not dup:
            kept.append(i)
    out = [lines[i] for i in kept]
    # Reading order: rows of about one line height, then left to right.
    heights = [float(boxes[i][3] - boxes[i][1]) for i in kept]
    row = max(1.0, float(np.median(heights))) if heights else 1.0
    out.sort(key=lambda ln: (int(float(ln.quad[:, 1].mean()) // row), float(ln.quad[:, 0].min())))
    return out
