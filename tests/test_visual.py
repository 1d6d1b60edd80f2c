"""Visual RAG: figures, charts and tables as searchable crops (offline default: their descriptions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from docrag import Index
from docrag.types import iou

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def visual_index(built_index) -> Index:
    """The session index (it holds visual.pdf); searches are restricted to that file."""
    index, _ = built_index
    return _OnlyVisual(index)


class _OnlyVisual:
    def __init__(self, index: Index) -> None:
        self.index = index

    def search(self, query: str, **kw):
        return self.index.search(query, source="visual.pdf", **kw)


@pytest.fixture(scope="module")
def truth(fixtures_dir: Path) -> list[tuple[int, dict]]:
    gt = json.loads((fixtures_dir / "gt" / "visual.json").read_text())
    return [(p["page"], r) for p in gt["pages"] for r in p["regions"]]


def test_description_queries_find_their_figure_in_the_top_3(visual_index: Index, truth) -> None:
    found = []
    for page, region in truth:
        kind = "table" if region["kind"] == "table" else "figure"
        hits = visual_index.search(region["description"], k=3, kind=kind)
        found.append(any(h.page == page and iou(h.bbox, tuple(region["bbox"])) > 0.5 for h in hits))
    assert sum(found) / len(found) >= 0.8, found


def test_kind_figure_returns_only_visual_hits(visual_index: Index) -> None:
    hits = visual_index.search("fleet and parcels", k=10, kind="figure")
    assert hits and {h.kind for h in hits} <= {"figure", "chart"}
    assert {h.kind for h in visual_index.search("fleet and parcels", k=10, kind="table")} == {"table"}


def test_visual_hits_carry_a_png_crop_matching_their_box(visual_index: Index) -> None:
    hits = [h for kind in ("figure", "table") for h in visual_index.search("chart table photo diagram", k=20, kind=kind)]
    assert len(hits) >= 8
    for h in hits:
        path = Path(h.image)
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(path) as img:
            aspect = img.width / img.height
        box_aspect = (h.bbox[2] - h.bbox[0]) / (h.bbox[3] - h.bbox[1])
        assert abs(aspect - box_aspect) / box_aspect <= 0.02, (h.text[:40], aspect, box_aspect)


def test_tables_keep_row_labels_with_their_values(visual_index: Index, truth) -> None:
    tables = visual_index.search("table", k=10, kind="table")
    texts = "\n".join(h.text for h in tables)
    rows = [r for _, region in truth if region["kind"] == "table" for r in region.get("table_rows") or []]
    assert rows
    kept = sum(all(cell in line for cell in row) for row in rows for line in [next(
        (ln for ln in texts.splitlines() if row[0] in ln), "")])
    assert kept / len(rows) >= 0.8


def test_langchain_retriever_filters_kind_and_carries_the_image(visual_index: Index) -> None:
    from docrag.integrations.langchain import DocragRetriever

    docs = DocragRetriever(index=visual_index.index, k=3, kind="figure").invoke("pie chart of fuel types")
    assert docs and all(d.metadata["kind"] in ("figure", "chart") and Path(d.metadata["image"]).is_file() for d in docs)


def test_image_embedder_crops_go_to_image_faiss_and_join_the_fusion(tmp_path: Path, fixtures_dir: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    from test_embed_image import FakeImageEmbedder

    from docrag import IngestOptions
    from docrag.embed.image import IMAGE_EMBEDDERS

    # Registered for this test only: the registry lists its engines to users and to other tests.
    monkeypatch.setitem(IMAGE_EMBEDDERS._factories, "fake-colour", lambda model=None, device="auto": FakeImageEmbedder())
    index = Index(tmp_path / "ix", IngestOptions(embedder="fake-hash", image_embedder="fake-colour", workers=1))
    index.ingest([fixtures_dir / "visual.pdf"])
    store = index.store()
    n_crops = store.db.execute("SELECT COUNT(*) FROM chunks WHERE image IS NOT NULL").fetchone()[0]
    assert n_crops >= 8
    assert store.db.execute("SELECT COUNT(*) FROM image_vectors").fetchone()[0] == n_crops
    assert store.image_model() == ("fake-colour", None, FakeImageEmbedder.dim)
    # The image side alone: the greenest crop answers "green".
    from docrag.index import Filters

    rows = store.db.execute("SELECT v.chunk_id, v.vector FROM image_vectors v JOIN chunks c ON c.id = v.chunk_id "
                            "WHERE c.kind IN ('figure', 'chart')").fetchall()
    greenest = max(rows, key=lambda r: np.frombuffer(r[1], np.float32)[1])[0]
    query = FakeImageEmbedder().embed_text(["green"])[0]
    assert store.search_image(query, 3, Filters(kind="figure"))[0][0] == greenest
    assert (tmp_path / "ix" / "image.faiss").is_file()
    # Fused: no caption says "green", yet the greenest picture comes up through the image side.
    reopened = Index(tmp_path / "ix")
    hits = reopened.search("green", k=3, kind="figure")
    assert greenest in [h.chunk_id for h in hits]
