"""Issue #15: no text a page holds is lost: every layout-dev page keeps >= 97% of its words
in docrag's lines (``docrag ocr --json``) and in the searchable PDF, whatever regions are found.

The born-digital pages run here (fast); the 23 scans run in ``bench/layout.py`` (minutes of OCR).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
layout_bench = pytest.importorskip("layout", reason="bench/layout.py")

pytestmark = pytest.mark.slow
PAGES = layout_bench.load_pages(["born"], None) if layout_bench.LAYOUT_DEV.exists() else []


@pytest.mark.skipif(not PAGES, reason="needs ../shared/data/layout-dev")
@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_a_born_digital_page_keeps_its_words(page, tmp_path: Path, ocr_pages, monkeypatch: pytest.MonkeyPatch) -> None:
    import docrag

    # The bench's reader as it is, on the session's one docrag.ocr reading of the page
    # (test_layout_model reads the same pages with the same options).
    monkeypatch.setattr(docrag, "ocr", ocr_pages)
    read = layout_bench.read_docrag(page.path, tmp_path / "searchable.pdf")
    assert layout_bench.word_coverage(page.truth, read["lines"]) >= 0.97
    assert layout_bench.word_coverage(page.truth, read["pdf"]) >= 0.97
