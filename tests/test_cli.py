"""The command line: ingest report and errors, search output, info, delete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bad_inputs import make_bad_inputs

from docrag.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def info(capsys: pytest.CaptureFixture[str], index: Path) -> dict:
    code, out, _ = run(capsys, "info", "--index", str(index), "--json")
    assert code == 0
    return json.loads(out)


def test_bad_inputs_fail_one_line_each_and_leave_the_index_alone(
    index_copy, tmp_path: Path, fixtures_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = info(capsys, index_copy.path)
    bad = make_bad_inputs(tmp_path / "bad", fixtures_dir / "report.pdf")
    for name, (path, pattern) in bad.items():
        code, _, err = run(capsys, "ingest", str(path), "--index", str(index_copy.path), "-q")
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code != 0, name
        assert len(lines) == 1 and str(path) in lines[0], (name, err)
        after = info(capsys, index_copy.path)
        assert (after["documents"], after["chunks"]) == (before["documents"], before["chunks"]), name
        assert [d["doc_id"] for d in after["documents_list"]] == [d["doc_id"] for d in before["documents_list"]]


def test_good_files_in_the_same_call_are_still_ingested(tmp_path: Path, fixtures_dir: Path, capsys) -> None:
    bad = make_bad_inputs(tmp_path / "bad", fixtures_dir / "report.pdf")
    ix = tmp_path / "ix"
    code, out, err = run(capsys, "ingest", str(bad["html"][0]), str(fixtures_dir / "report.pdf"), str(bad["locked"][0]),
                         "--index", str(ix), "-q", "--ocr", "never", "--embedder", "fake-hash")
    assert code == 1
    assert len([ln for ln in err.splitlines() if ln.startswith("error:")]) == 2
    assert "1 indexed" in out and "2 failed" in out
    assert info(capsys, ix)["documents"] == 1


def test_search_json_and_table(built_index, capsys: pytest.CaptureFixture[str]) -> None:
    index, _ = built_index
    code, out, _ = run(capsys, "search", "parcels sorted per day in Memphis", "--index", str(index.path), "-k", "3", "--json")
    assert code == 0
    hits = json.loads(out)
    assert len(hits) == 3
    assert set(hits[0]) >= {"source", "doc_id", "page", "bbox", "kind", "text", "score"}
    assert hits[0]["page"] == 2 and "412,000" in hits[0]["text"]
    code, out, _ = run(capsys, "search", "parcels sorted per day in Memphis", "--index", str(index.path))
    assert code == 0 and " p.2 " in out and "report" in out


def test_delete_removes_a_document(index_copy, fixtures_dir: Path, capsys) -> None:
    before = info(capsys, index_copy.path)
    code, out, _ = run(capsys, "delete", str(fixtures_dir / "mixed.pdf"), "--index", str(index_copy.path))
    assert code == 0 and "deleted" in out
    after = info(capsys, index_copy.path)
    assert after["documents"] == before["documents"] - 1 and after["chunks"] < before["chunks"]
    from docrag import Index

    fresh = Index(index_copy.path)
    assert fresh.store().ensure_vectors().index.ntotal == after["chunks"]
    assert all(Path(h.source).name != "mixed.pdf" for h in fresh.search("Halvorsen depot Tromso", k=10))
    code, _, err = run(capsys, "delete", "nothing.pdf", "--index", str(index_copy.path))
    assert code != 0 and "not in the index" in err


def test_missing_index_is_one_line(tmp_path: Path, capsys) -> None:
    code, _, err = run(capsys, "search", "x", "--index", str(tmp_path / "none"))
    assert code == 1 and err.count("\n") == 1 and "docrag ingest" in err  # a failed operation: 1 (usage: 2)


def test_ingest_twice_keeps_chunk_count(index_copy, fixtures_dir: Path, capsys) -> None:
    before = info(capsys, index_copy.path)
    from conftest import SESSION_FILES

    code, out, _ = run(capsys, "ingest", *[str(fixtures_dir / n) for n in SESSION_FILES], "--index",
                       str(index_copy.path), "-q")
    assert code == 0 and f"{len(SESSION_FILES)} unchanged" in out
    assert info(capsys, index_copy.path)["chunks"] == before["chunks"]


def test_search_highlight_writes_the_page_with_the_box(built_index, tmp_path: Path, capsys) -> None:
    import numpy as np
    from PIL import Image

    index, _ = built_index
    code, _, _ = run(capsys, "search", "Halvorsen depot zero lost-time injuries", "--index", str(index.path),
                     "-k", "1", "--highlight", str(tmp_path / "hl"))
    assert code == 0
    (png,) = sorted((tmp_path / "hl").glob("*.png"))
    assert png.name == "01-mixed-p2.png"
    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    red = (img[:, :, 0] > 180) & (img[:, :, 1] < 80) & (img[:, :, 2] < 80)
    ys, xs = np.nonzero(red)
    hit = index.search("Halvorsen depot zero lost-time injuries", k=1)[0]
    scale = img.shape[1] / 612
    assert abs(xs.min() / scale - hit.bbox[0]) < 3 and abs(ys.max() / scale - hit.bbox[3]) < 3


def test_ocr_command_json_and_render(fixtures_dir: Path, tmp_path: Path, capsys) -> None:
    code, out, _ = run(capsys, "ocr", str(fixtures_dir / "page_scan.png"), "--json", "--render", str(tmp_path / "r"))
    assert code == 0
    data = json.loads(out)
    (page,) = data["pages"]
    assert page["method"] == "ocr" and page["lines"] and page["lines"][0]["words"]
    word = page["lines"][0]["words"][0]
    assert set(word) == {"text", "confidence", "bbox"} and len(word["bbox"]) == 4
    assert (tmp_path / "r" / "page_scan-p1.png").is_file()


def test_mixed_page_ocrs_the_scanned_insert_without_duplicates(fixtures_dir: Path, tmp_path: Path) -> None:
    """A digital page carrying a screenshot of text: both are read, nothing twice."""
    import pymupdf

    from docrag.config import IngestOptions
    from docrag.io import open_document
    from docrag.pipeline import process_page

    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    page.insert_text((72, 60), "Quarterly memo digest prepared by the facilities team", fontsize=11)
    for i in range(12):
        page.insert_text((72, 80 + 14 * i), f"Paragraph line {i} of the digest describes the depot maintenance plan.",
                         fontsize=10)
    page.insert_image(pymupdf.Rect(100, 260, 500, 777), filename=str(fixtures_dir / "page_scan.png"))
    path = tmp_path / "mixed-insert.pdf"
    doc.save(path)
    with open_document(path) as d:
        result = process_page(d.page(1), IngestOptions())
    text = " ".join(ln.text for ln in result.lines)
    assert result.method == "mixed"
    assert text.count("Quarterly memo digest") == 1
    assert "dock leveler at door 14" in text
    assert all(ln.source == "ocr" for ln in result.lines if "leveler" in ln.text)


def test_encrypted_pdf_opens_with_password(tmp_path: Path, fixtures_dir: Path, capsys) -> None:
    from bad_inputs import make_bad_inputs

    locked, _ = make_bad_inputs(tmp_path / "bad", fixtures_dir / "report.pdf")["locked"]
    ix = tmp_path / "ix"
    code, _, err = run(capsys, "ingest", str(locked), "--index", str(ix), "-q", "--ocr", "never", "--embedder", "fake-hash")
    assert code == 1 and "--password" in err
    code, out, _ = run(capsys, "ingest", str(locked), "--index", str(ix), "-q", "--ocr", "never",
                       "--embedder", "fake-hash", "--password", "secret")
    assert code == 0 and "1 indexed" in out


def test_a_page_over_the_time_limit_is_skipped_and_reported(tmp_path: Path, fixtures_dir: Path, monkeypatch) -> None:
    import time

    import docrag.pipeline
    from docrag import Index, IngestOptions

    real = docrag.pipeline.process_page

    def slow_on_page_2(src, options):
        if src.number == 2:
            time.sleep(5)
        return real(src, options)

    monkeypatch.setattr(docrag.pipeline, "process_page", slow_on_page_2)
    index = Index(tmp_path / "ix", IngestOptions(ocr="never", embedder="fake-hash", page_timeout=0.5))
    report = index.ingest([fixtures_dir / "report.pdf"])
    (f,) = report.files
    assert f.status == "indexed" and len(f.page_errors) == 1
    assert "page 2" in f.page_errors[0] and "longer than 0.5 s" in f.page_errors[0]
    assert {h.page for h in index.search("Northwind", k=20)} == {1, 3}


def test_a_missing_optional_package_is_one_line_naming_the_pip_command(capsys, tmp_path: Path, fixtures_dir: Path,
                                                                       monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    code, _, err = run(capsys, "ingest", str(fixtures_dir / "report.pdf"), "--index", str(tmp_path / "ix"), "-q",
                       "--ocr", "never", "--embedder", "fake-hash", "--engine", "ray")
    assert code == 1 and "Traceback" not in err
    assert err.startswith("error: ") and "pip install 'docrag[ray]'" in err and len(err.strip().splitlines()) == 1


# -- issue #14: one shape for the CLI --------------------------------------------------


def test_ocr_json_with_text_is_one_parsable_document(capsys, fixtures_dir: Path) -> None:
    code, out, _ = run(capsys, "ocr", str(fixtures_dir / "report.pdf"), "--ocr", "never", "--json", "--text")
    assert code == 0
    pages = json.loads(out)["pages"]  # no text printed before the JSON
    assert pages[0]["text"] and "regions" in pages[0]
    assert all(line["text"] in pages[0]["text"] for line in pages[0]["lines"])


def test_ocr_takes_reading_options_only_and_a_password(capsys, fixtures_dir: Path) -> None:
    code, _, err = run(capsys, "ocr", str(fixtures_dir / "report.pdf"), "--workers", "2")
    assert code == 2 and "--workers" in err  # an option that would be ignored is refused
    code, out, _ = run(capsys, "ocr", "--help")
    assert "--password" in out and "--embedder" not in out and "--chunk-tokens" not in out


def test_info_takes_index_like_every_command(capsys, built_index) -> None:
    index, _ = built_index
    code, out, _ = run(capsys, "info", "--index", str(index.path), "--json")
    assert code == 0 and json.loads(out)["chunks"] > 0
    code, out, err = run(capsys, "info", str(index.path), "--json")  # the old spelling, for one release
    assert code == 0 and json.loads(out)["chunks"] > 0 and "deprecated" in err


def test_eval_mode_is_used_not_dropped(capsys, tmp_path: Path, fixtures_dir: Path) -> None:
    ix = tmp_path / "ix"
    assert run(capsys, "ingest", str(fixtures_dir / "report.pdf"), "--index", str(ix), "-q", "--ocr", "never",
               "--embedder", "fake-hash")[0] == 0
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"question": "battery-electric vans in the fleet", "source": "report.pdf", "page": 2}) + "\n")
    code, out, _ = run(capsys, "eval", "--qa", str(qa), "--index", str(ix), "--mode", "bm25", "--json")
    assert code == 0 and list(json.loads(out)["modes"]) == ["bm25"]
    code, _, err = run(capsys, "eval", "--qa", str(qa), "--index", str(ix), "--mode", "fuzzy")
    assert code == 2 and "hybrid" in err


def test_eval_prints_recall_per_question_type_and_explains_misses(capsys, tmp_path: Path, fixtures_dir: Path) -> None:
    ix = tmp_path / "ix"
    assert run(capsys, "ingest", str(fixtures_dir / "report.pdf"), "--index", str(ix), "-q", "--ocr", "never",
               "--embedder", "fake-hash")[0] == 0
    qa = tmp_path / "qa.jsonl"
    question = "battery-electric vans in the fleet"
    qa.write_text(json.dumps({"question": question, "source": "report.pdf", "page": 2, "type": "fleet"}) + "\n"
                  + json.dumps({"question": question, "source": "report.pdf", "page": 99, "type": "gap"}) + "\n")
    code, out, _ = run(capsys, "eval", "--qa", str(qa), "--index", str(ix), "--mode", "bm25")
    assert code == 0 and "per question type" in out and "misses" not in out
    rows = {line.split()[1]: line.split()[2:] for line in out.splitlines() if line.startswith("    bm25  ")}
    assert rows["fleet"][:2] == ["1", "1.000"] and rows["gap"][:3] == ["1", "0.000", "0.000"], out
    code, out, _ = run(capsys, "eval", "--qa", str(qa), "--index", str(ix), "--mode", "bm25", "--explain")
    assert code == 0 and "misses at 5, bm25: 1 of 2" in out
    assert f"[gap] {question}" in out and "gold report.pdf:99 (not in the top 10); top report.pdf:2" in out, out
    code, out, _ = run(capsys, "eval", "--qa", str(qa), "--index", str(ix), "--mode", "bm25", "--explain", "--json")
    res = json.loads(out)
    assert set(res["per_type"]["bm25"]) == {"fleet", "gap"} and [m["gold_rank"] for m in res["misses"]["bm25"]] == [None]


def test_an_embedder_typo_lists_the_known_names(capsys, tmp_path: Path, fixtures_dir: Path) -> None:
    code, _, err = run(capsys, "ingest", str(fixtures_dir / "report.pdf"), "--index", str(tmp_path / "ix"), "-q",
                       "--embedder", "minilm-onx")
    assert code == 2 and "minilm-onnx-int8" in err and "Traceback" not in err
    assert not (tmp_path / "ix" / "docrag.sqlite").exists()


def test_exit_codes_usage_2_failure_1(capsys, tmp_path: Path) -> None:
    assert run(capsys, "search")[0] == 2  # usage: the query is missing
    assert run(capsys, "search", "x", "--index", str(tmp_path), "--kind", "poster")[0] == 2
    assert run(capsys, "search", "x", "--index", str(tmp_path / "none"))[0] == 1  # no index: the operation failed
    assert run(capsys, "search", "x", "--index", str(tmp_path), "--pages", "5-2")[0] == 2  # a bad option value


def test_a_bad_environment_variable_is_a_usage_error(capsys, monkeypatch, fixtures_dir: Path) -> None:
    """A variable docrag reads that holds a value it cannot take: named with its value, exit 2, no traceback."""
    for name, value, allowed in (("DOCRAG_OCR_RUNTIME", "bogus", "onnxruntime"), ("DOCRAG_THREADS", "0", "1")):
        with monkeypatch.context() as m:
            m.setenv(name, value)
            code, _, err = run(capsys, "ocr", str(fixtures_dir / "report_scan.pdf"))
        assert code == 2 and f"{name}={value!r}" in err and allowed in err and "Traceback" not in err, err


def test_ingest_reports_each_stage_and_embedding_progress(tmp_path: Path, fixtures_dir: Path, monkeypatch) -> None:
    import docrag.ingest
    from docrag import Index, IngestOptions

    options = IngestOptions(ocr="never", embedder="fake-hash", workers=1)
    whole = Index(tmp_path / "whole", options)
    whole.ingest([fixtures_dir / "report.pdf"])
    monkeypatch.setattr(docrag.ingest, "EMBED_SLICE", 2)  # several slices of a small document
    calls: list[tuple[str, str, int, int]] = []
    index = Index(tmp_path / "ix", options)
    report = index.ingest([fixtures_dir / "report.pdf"], stages=lambda *a: calls.append(a))
    (f,) = report.files
    total = f.chunks
    assert total > 2 and [c[1:] for c in calls] == [("embed", min(n, total), total) for n in range(2, total + 2, 2)]
    assert all(c[0] == str(fixtures_dir / "report.pdf") for c in calls)
    assert set(f.seconds) == {"read", "assemble", "embed", "commit"} and all(s >= 0 for s in f.seconds.values())
    assert report.totals()["stage_seconds"]["read"] == round(f.seconds["read"], 2)
    assert "pages/s" in report.rates() and "chunks/s" in report.rates()
    # Embedded a slice at a time, every chunk gets the vector it gets embedded whole.
    for query in ("fleet size", "Northwind revenue outlook", "safety record"):
        got = [(h.text, round(h.score, 5)) for h in index.search(query, k=total, mode="dense")]
        want = [(h.text, round(h.score, 5)) for h in whole.search(query, k=total, mode="dense")]
        assert got == want and len(got) == total
