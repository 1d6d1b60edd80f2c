"""The tests' edit distance is exact: the bit-parallel one against the textbook table."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from textmetrics import cer, levenshtein


def table_levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="abc é\u00a0", max_size=40), st.text(alphabet="abc é\u00a0", max_size=40))
def test_bit_parallel_levenshtein_equals_the_table(a: str, b: str) -> None:
    assert levenshtein(a, b) == levenshtein(b, a) == table_levenshtein(a, b)


def test_long_strings_past_a_machine_word() -> None:
    a = "the quick brown fox jumps over the lazy dog " * 5
    b = a.replace("quick", "quack").replace("lazy ", "") + "!"
    assert levenshtein(a, b) == table_levenshtein(a, b) == 5 + 25 + 1
    assert cer("a  b", "a b") == 0.0 and cer("", "") == 0.0
