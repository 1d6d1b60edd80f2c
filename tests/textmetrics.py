"""Text comparison used by OCR tests and benches: NFKC, whitespace collapsed, Levenshtein CER."""

from __future__ import annotations

import re
import unicodedata


def normalize(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip()


def levenshtein(a: str, b: str) -> int:
    """Unit-cost edit distance, by Myers' bit-parallel algorithm (Hyyrö's form for whole strings).

    One column of the edit table is a pair of bit vectors held in Python ints, so a page
    of text (thousands of characters each side) takes milliseconds, where the cell-by-cell
    table took seconds. Exact: ``tests/test_textmetrics.py`` checks it against the table.

    >>> levenshtein("kitten", "sitting")
    3
    """
    if len(a) < len(b):
        a, b = b, a
    m = len(b)
    if not m:
        return len(a)
    peq: dict[str, int] = {}  # per character of b: the bit set of its positions
    for i, c in enumerate(b):
        peq[c] = peq.get(c, 0) | (1 << i)
    mask, last = (1 << m) - 1, 1 << (m - 1)
    pv, mv, dist = mask, 0, m  # vertical +1 / -1 deltas of the current column; its bottom cell
    for c in a:
        eq = peq.get(c, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | ~(xh | pv)
        mh = pv & xh
        if ph & last:
            dist += 1
        elif mh & last:
            dist -= 1
        ph = (ph << 1) | 1  # the top row grows by one per character of a
        pv = ((mh << 1) | ~(xv | ph)) & mask
        mv = ph & xv
    return dist


def cer(got: str, want: str) -> float:
    got, want = normalize(got), normalize(want)
    return levenshtein(got, want) / max(1, len(want))
