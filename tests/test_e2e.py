"""The walking skeleton end to end on the fixtures, with the real default engines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest
from conftest import load_gt
from textmetrics import cer, normalize

import docrag
from docrag.types import iou

# Real default engines throughout: every test reads the session index or an OCR'd scan.
pytestmark = pytest.mark.slow

UNIQUE = "The Halvorsen depot in Tromso recorded zero lost-time injuries for the third consecutive winter."


@pytest.fixture(scope="session")
def scan_pages(ocr_pages: Callable[..., list[docrag.Page]], session_options) -> list[docrag.Page]:
    return ocr_pages("report_scan.pdf", session_options)  # the session index's reading of the scan


def test_scanned_only_sentence_is_rank_one_with_its_line_box(built_index) -> None:
    index, _ = built_index
    hits = index.search(UNIQUE, k=5)
    top = hits[0]
    assert Path(top.source).name == "mixed.pdf" and top.page == 2
    gt_line = next(ln for ln in load_gt("mixed")["pages"][1]["lines"] if ln["text"] == UNIQUE)
    assert iou(top.bbox, tuple(gt_line["bbox"])) > 0.5, (top.bbox, gt_line["bbox"])


@pytest.mark.parametrize("page_no", [1, 2, 3])
def test_ocr_of_scanned_report_cer_under_3_percent(scan_pages: list[docrag.Page], page_no: int) -> None:
    page = scan_pages[page_no - 1]
    assert page.method == "ocr"
    gt_lines = [ln["text"] for ln in load_gt("report_scan")["pages"][page_no - 1]["lines"]]
    got = " ".join(ln.text for ln in page.lines)
    assert cer(got, " ".join(gt_lines)) <= 0.03
    # Every line is there, long ones included: each GT line is matched by one OCR line.
    ocr_lines = [normalize(ln.text) for ln in page.lines]
    for want in gt_lines:
        best = min(cer(g, want) for g in ocr_lines)
        assert best <= 0.1, f"missing or garbled line: {want!r}"


def test_long_line_is_read_whole(scan_pages: list[docrag.Page]) -> None:
    gt_lines = load_gt("report_scan")["pages"][0]["lines"]
    longest = max(gt_lines, key=lambda ln: len(ln["text"]))
    assert len(longest["text"]) > 100
    match = min(scan_pages[0].lines, key=lambda ln: cer(ln.text, longest["text"]))
    assert cer(match.text, longest["text"]) <= 0.03
    assert iou(match.bbox, tuple(longest["bbox"])) > 0.5


def test_pages_are_routed_and_recorded(built_index) -> None:
    index, _ = built_index
    store = index.store()
    methods = {Path(d["source"]).name: [p["method"] for p in store.pages(d["doc_id"])] for d in store.documents()}
    assert methods["report.pdf"] == ["text"] * 3
    assert methods["report_scan.pdf"] == ["ocr"] * 3
    assert methods["mixed.pdf"] == ["text", "ocr", "text"]
    assert methods["pages_scan.tiff"] == ["ocr", "ocr"] and methods["page_scan.png"] == ["ocr"]


def test_fixture_questions_find_their_page(built_index, fixtures_dir: Path) -> None:
    index, _ = built_index
    found = []
    for row in map(json.loads, (fixtures_dir / "qa.jsonl").read_text().splitlines()):
        gold = {(row["source"], row["page"])} | {(a["source"], a["page"]) for a in row.get("also_in", [])}
        hits = index.search(row["question"], k=5)
        found.append(any((Path(h.source).name, h.page) in gold for h in hits))
    assert sum(found) / len(found) >= 0.9, found


def test_langchain_retriever_returns_documents_with_provenance(built_index) -> None:
    from langchain_core.documents import Document

    from docrag.integrations.langchain import DocragRetriever

    index, _ = built_index
    docs = DocragRetriever(index=str(index.path), k=3).invoke("battery-electric delivery vans")
    assert len(docs) == 3 and all(isinstance(d, Document) for d in docs)
    for d in docs:
        assert {"source", "page", "bbox", "kind", "score"} <= set(d.metadata)
        assert d.page_content and len(d.metadata["bbox"]) == 4 and d.metadata["kind"] == "text"
    assert "1,150" in docs[0].page_content
