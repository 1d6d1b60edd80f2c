"""Hybrid retrieval: modes, FTS5-safe queries, filters before top-k, rerank, windows, eval."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from docrag import Index, IngestOptions
from docrag.evaluate import evaluate, load_qa
from docrag.index.text_search import STOPWORDS
from docrag.retrieve.fusion import fuse

FAKE = IngestOptions(ocr="never", embedder="fake-hash", chunk_tokens=40, chunk_overlap=10)


@pytest.fixture(scope="module")
def tagged(tmp_path_factory: pytest.TempPathFactory, fixtures_dir: Path) -> Index:
    """report.pdf and mixed.pdf (text layer only, small chunks) with tags, fake embedder."""
    index = Index(tmp_path_factory.mktemp("tagged") / "ix", FAKE)
    index.ingest([fixtures_dir / "report.pdf"], tags={"company": "northwind", "year": "2023"})
    index.ingest([fixtures_dir / "mixed.pdf"], tags={"company": "northwind", "year": "2024"})
    return index


@pytest.mark.parametrize("query", ['"fleet vans', "fleet*", "fleet AND trailers", "-tractors", "depot:Tromso",
                                   "(depot", "depot) injuries", "NOT fleet", "fleet OR OR", "NEAR(fleet vans)",
                                   "^fleet", "{fleet}", "fleet - - -", "\"\"fleet\"\""])
@pytest.mark.parametrize("mode", ["bm25", "hybrid"])
def test_fts5_syntax_characters_return_results(tagged: Index, query: str, mode: str) -> None:
    hits = tagged.search(query, k=3, mode=mode)
    assert hits, query
    # FTS5 syntax is read as plain words: the same hits as the query's words alone. In hybrid
    # mode this is what shows the BM25 side ran (dense hits alone would differ); NOT, AND, OR
    # and NEAR are read like the same words typed plainly, never as operators.
    words = " ".join(re.findall(r"\w+", query))
    plain = tagged.search(words, k=3, mode=mode)
    assert [(h.chunk_id, h.score) for h in hits] == [(h.chunk_id, h.score) for h in plain], (query, words)
    # ... and the best hit contains one of those words (its text or its context header).
    content = {w.lower() for w in re.findall(r"\w+", query)} - STOPWORDS - {"not", "near"}
    top = set(re.findall(r"\w+", f"{hits[0].context} {hits[0].text}".lower()))
    assert content & top, (query, hits[0].text)


def test_sql_in_a_query_is_just_words(tagged: Index) -> None:
    before = tagged.info()["chunks"]
    tagged.search("'; DROP TABLE chunks; --", k=3, mode="bm25")
    assert tagged.info()["chunks"] == before
    # With a word the index has, the injection is searched like the words it contains.
    hits = tagged.search("fleet'; DROP TABLE chunks; --", k=3, mode="bm25")
    assert hits and [h.chunk_id for h in hits] == [
        h.chunk_id for h in tagged.search("fleet DROP TABLE chunks", k=3, mode="bm25")]
    assert tagged.info()["chunks"] == before


def test_punctuation_only_query_is_empty_not_an_error(tagged: Index) -> None:
    assert tagged.search("?!*", k=3, mode="bm25") == []


def _matching(index: Index, filters, query: str, mode: str) -> int:
    """How many chunks could answer: all filtered chunks, or (bm25) those sharing a query word."""
    import re

    store = index.store()
    ids = store.filter_ids(filters)
    ids = store.chunk_ids_all() if ids is None else ids
    if mode != "bm25":
        return len(ids)
    from docrag.index.text_search import STOPWORDS

    words = set(re.findall(r"\w+", query.lower())) - STOPWORDS
    texts = [h.text for h in store.hits([(int(i), 0.0) for i in ids])]
    return sum(bool(words & set(re.findall(r"\w+", t.lower()))) for t in texts)


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
@pytest.mark.parametrize("case", ["source", "glob", "pages", "tag", "kind", "none-match"])
def test_filters_apply_before_top_k(tagged: Index, mode: str, case: str) -> None:
    from docrag.index import Filters

    query, k = "Northwind depot fleet injuries winter trucks drivers year", 4
    kwargs, check = {
        "source": ({"source": "mixed.pdf"}, lambda h: Path(h.source).name == "mixed.pdf"),
        "glob": ({"source": "*/rep*.pdf"}, lambda h: Path(h.source).name == "report.pdf"),
        "pages": ({"pages": (2, 3)}, lambda h: 2 <= h.page <= 3),
        "tag": ({"tags": {"year": "2024"}}, lambda h: Path(h.source).name == "mixed.pdf"),
        "kind": ({"kind": "text"}, lambda h: h.kind == "text"),
        "none-match": ({"tags": {"year": "1999"}}, lambda h: False),
    }[case]
    hits = tagged.search(query, k=k, mode=mode, **kwargs)
    assert all(check(h) for h in hits)
    expected = min(k, _matching(tagged, Filters(**kwargs), query, mode))
    assert len(hits) == expected
    if case != "none-match":
        assert expected == k  # the case is meaningful: at least k chunks match
    if mode == "dense" and case != "none-match":
        # Same as ranking everything and keeping the first k that pass.
        everything = tagged.search(query, k=200, mode="dense")
        assert [h.chunk_id for h in hits] == [h.chunk_id for h in everything if check(h)][:k]


def test_fusion_weighs_ranks_and_scores() -> None:
    fused = fuse([[(1, 0.9), (2, 0.5), (3, 0.1)], [(2, 9.0), (3, 5.0)]], k=60)
    # 2 is high in both; 1 is first in one ranking; 3 is last in both (reciprocal ranks alone put it
    # above 1: 1/63 + 1/62 > 1/61).
    assert [i for i, _ in fused] == [2, 1, 3]
    assert dict(fused)[1] == pytest.approx(1.0)


def test_group_page_returns_one_hit_per_page(tagged: Index) -> None:
    hits = tagged.search("the Northwind", k=10, group="page")
    keys = [(h.doc_id, h.page) for h in hits]
    pages_with_text = set(tagged.store().db.execute("SELECT DISTINCT doc_id, page FROM chunks").fetchall())
    assert len(keys) == len(set(keys)) == len(pages_with_text) == 5


def test_no_two_hits_share_most_lines(tagged: Index) -> None:
    hits = tagged.search("fleet tractors trailers vans", k=8)
    for i, a in enumerate(hits):
        for b in hits[i + 1:]:
            if (a.doc_id, a.page) == (b.doc_id, b.page):
                shared = set(map(tuple, a.line_boxes)) & set(map(tuple, b.line_boxes))
                assert len(shared) < 0.5 * min(len(a.line_boxes), len(b.line_boxes))


def test_window_adds_neighbours_of_the_same_page(tagged: Index) -> None:
    plain = tagged.search("battery-electric delivery vans", k=1)[0]
    wide = tagged.search("battery-electric delivery vans", k=1, window=1)[0]
    assert (wide.doc_id, wide.page, wide.chunk_id) == (plain.doc_id, plain.page, plain.chunk_id)
    assert plain.text in wide.text or len(wide.text) > len(plain.text)
    assert len(wide.line_boxes) > len(plain.line_boxes)
    assert len(set(map(tuple, wide.line_boxes))) == len(wide.line_boxes)  # overlap lines once
    assert wide.bbox == plain.bbox  # the evidence box does not move


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A randomly initialised BERT cross-encoder built from a config, saved offline."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    out = tmp_path_factory.mktemp("xenc")
    words = "the a of and in to fleet vans depot northwind injuries report revenue 2023 tractors".split()
    (out / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tok = BertTokenizerFast(vocab_file=str(out / "vocab.txt"))
    cfg = BertConfig(vocab_size=len(words) + 5, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=512, num_labels=1)
    BertForSequenceClassification(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def test_rerank_with_a_cross_encoder_reorders_by_its_scores(tagged: Index, tiny_cross_encoder: str) -> None:
    from docrag.retrieve.rerank import get_reranker

    hits = tagged.search("fleet vans", k=5, rerank=tiny_cross_encoder)
    assert len(hits) == 5
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    expected = get_reranker(tiny_cross_encoder).score("fleet vans", [h.text for h in hits])
    assert [round(float(s), 5) for s in expected] == [round(s, 5) for s in scores]


def test_unknown_mode_is_a_config_error(tagged: Index) -> None:
    from docrag.errors import ConfigError

    with pytest.raises(ConfigError, match="hybrid"):
        tagged.search("x", mode="fuzzy")


@pytest.mark.slow
def test_eval_hybrid_recall_at_5_is_at_least_the_best_single_mode(built_index, fixtures_dir: Path) -> None:
    index, _ = built_index
    results = evaluate(index, load_qa(fixtures_dir / "qa.jsonl"), modes=["dense", "bm25", "hybrid"])
    m = results["modes"]
    assert m["hybrid"]["recall@5"] >= max(m["dense"]["recall@5"], m["bm25"]["recall@5"])
    assert m["hybrid"]["recall@5"] >= 0.9
    for row in m.values():
        assert 0 <= row["mrr@10"] <= row["recall@10"] <= 1 and 0 <= row["ndcg@10"] <= 1


@pytest.mark.slow
def test_eval_cli_json(built_index, fixtures_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from docrag.cli import main

    index, _ = built_index
    main(["eval", "--qa", str(fixtures_dir / "qa.jsonl"), "--index", str(index.path), "--json", "--modes", "bm25"])
    data = json.loads(capsys.readouterr().out)
    assert data["questions"] == 12
    assert set(data["modes"]["bm25"]) == {"recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "doc_recall@1"}


def test_bad_qa_file_is_a_clear_error(tmp_path: Path) -> None:
    from docrag.errors import ConfigError

    bad = tmp_path / "qa.jsonl"
    bad.write_text('{"question": "q", "source": "a.pdf", "page": 0}\n')
    with pytest.raises(ConfigError, match="1-based"):
        load_qa(bad)
