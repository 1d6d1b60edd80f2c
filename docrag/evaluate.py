"""``docrag eval``: page-level retrieval quality of an index on a QA set.

QA file: JSON Lines, one question per line::

    {"question": "How many vans are in the fleet?", "source": "report.pdf", "page": 2}
    {"question": "...", "doc": "<sha256 doc id>", "page": 5, "also_in": [{"source": "scan.pdf", "page": 2}]}

``source`` matches the document's path as ingested, its absolute path or its
file name; ``doc`` matches the doc id. ``page`` is 1-based. ``also_in`` lists
other pages that answer the question equally well (duplicates of a document).

Hits are collapsed to distinct (document, page) pairs in rank order; a page is
relevant when it is one of the question's gold pages. Reported per mode:
recall@1/5/10 (a gold page in the top k), MRR@10, nDCG@10 (binary gains), and
doc_recall@1 (the top hit comes from a gold document, whatever its page).
Rows may carry a ``type`` ("table-number", "period-trap"...): the same metrics
are then reported per type. :func:`explain_misses` says, for each question whose
gold page is not in the top k, where the gold page ranked and what came first.

>>> round(_ndcg([False, True, False], 1), 3)
0.631
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from docrag.errors import ConfigError

__all__ = ["load_qa", "evaluate", "explain_misses"]


def load_qa(path: str | Path) -> list[dict[str, Any]]:
    """Read and check a QA JSONL file."""
    rows = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{n}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not row.get("question") or not (row.get("source") or row.get("doc")):
            raise ConfigError(f"{path}:{n}: needs 'question' and 'source' or 'doc'")
        if not isinstance(row.get("page"), int) or row["page"] < 1:
            raise ConfigError(f"{path}:{n}: 'page' must be a 1-based integer")
        rows.append(row)
    if not rows:
        raise ConfigError(f"{path}: no questions")
    return rows


def _gold(row: dict[str, Any]) -> list[tuple[str | None, str | None, int]]:
    pairs = [(row.get("source"), row.get("doc"), row["page"])]
    for alt in row.get("also_in", []) or []:
        pairs.append((alt.get("source"), alt.get("doc"), int(alt["page"])))
    return pairs


def _matches(source: str, doc_id: str, page: int, gold: tuple[str | None, str | None, int]) -> bool:
    g_source, g_doc, g_page = gold
    if page != g_page:
        return False
    if g_doc and doc_id.startswith(g_doc):
        return True
    if g_source:
        return source == g_source or Path(source).name == Path(g_source).name or \
            str(Path(source).resolve()) == str(Path(g_source).resolve())
    return False


def _ndcg(relevant: list[bool], n_gold: int, k: int = 10) -> float:
    dcg = sum(1.0 / math.log2(i + 2) for i, r in enumerate(relevant[:k]) if r)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(n_gold, k)))
    return dcg / ideal if ideal else 0.0


_KEYS = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "doc_recall@1")


def _judge(index: Any, row: dict[str, Any], mode: str, search_kwargs: dict[str, Any]) -> dict[str, Any]:
    """One question's page ranking: the gold page's rank in the top 10 (None past it), nDCG@10,
    whether the top hit is from a gold document, and the top hit itself."""
    hits = index.search(row["question"], k=10, mode=mode, group="page", locate=False, **search_kwargs)
    gold = _gold(row)
    relevant = [any(_matches(h.source, h.doc_id, h.page, g) for g in gold) for h in hits]
    return {"rank": next((i + 1 for i, r in enumerate(relevant) if r), None),
            "ndcg": _ndcg(relevant, len({(g[0] or g[1], g[2]) for g in gold})),
            # Did the top hit come from a right document (any page)?
            "doc1": bool(hits) and any(_matches(hits[0].source, hits[0].doc_id, g[2], g) for g in gold),
            "top": hits[0] if hits else None}


def _summary(judged: list[dict[str, Any]]) -> dict[str, float]:
    """Mean metrics over some questions' judgements."""
    sums = dict.fromkeys(_KEYS, 0.0)
    for j in judged:
        first = j["rank"]
        for k in (1, 5, 10):
            sums[f"recall@{k}"] += float(first is not None and first <= k)
        sums["mrr@10"] += 1.0 / first if first else 0.0
        sums["ndcg@10"] += j["ndcg"]
        sums["doc_recall@1"] += float(j["doc1"])
    return {key: round(v / len(judged), 4) for key, v in sums.items()}


def _miss(row: dict[str, Any], j: dict[str, Any]) -> dict[str, Any]:
    top = j["top"]
    return {"question": row["question"], "type": row.get("type"),
            "gold": f"{row.get('source') or row.get('doc')}:{row['page']}", "gold_rank": j["rank"],
            "top": f"{Path(top.source).name}:{top.page}" if top else None,
            "top_context": top.context if top else None}


def evaluate(index: Any, rows: list[dict[str, Any]], modes: list[str], *, explain: int = 0,
             **search_kwargs: Any) -> dict[str, Any]:
    """Metrics per mode (and per question ``type`` when rows have one); ``search_kwargs`` go to
    :meth:`docrag.Index.search` (filters, rerank).

    Returns ``{"questions", "modes": {mode: metrics}, "per_question": {mode: [rank or None]},
    "per_type": {mode: {type: {"questions", **metrics}}}}`` (``per_type`` only when some row has
    a ``type``). With ``explain=k``, also ``"misses": {mode: [...]}``, the records of
    :func:`explain_misses` at ``k``, from the same searches.
    """
    out: dict[str, Any] = {"questions": len(rows), "modes": {}, "per_question": {}}
    types = sorted({str(r["type"]) for r in rows if r.get("type")})
    for mode in modes:
        judged = [_judge(index, row, mode, search_kwargs) for row in rows]
        out["modes"][mode] = _summary(judged)
        out["per_question"][mode] = [j["rank"] for j in judged]
        for t in types:
            part = [j for j, r in zip(judged, rows) if str(r.get("type")) == t]
            out.setdefault("per_type", {}).setdefault(mode, {})[t] = {"questions": len(part), **_summary(part)}
        if explain:
            out.setdefault("misses", {})[mode] = [_miss(r, j) for r, j in zip(rows, judged)
                                                  if j["rank"] is None or j["rank"] > explain]
    return out


def explain_misses(index: Any, rows: list[dict[str, Any]], mode: str = "hybrid", k: int = 5,
                   **search_kwargs: Any) -> list[dict[str, Any]]:
    """One record per question whose gold page is not in the top ``k``: the question, its type,
    the gold page (``source:page``), its rank in the top 10 (None past it), and the top page with
    its context header (statement or section title)."""
    return evaluate(index, rows, [mode], explain=k, **search_kwargs)["misses"][mode]
