"""Text comparison used by OCR tests and benches: NFKC, whitespace collapsed, Levenshtein CER."""

from __future__ import annotations

import re
import unicodedata


def normalize(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip()


def levenshtein(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def cer(got: str, want: str) -> float:
    got, want = normalize(got), normalize(want)
    return levenshtein(got, want) / max(1, len(want))
