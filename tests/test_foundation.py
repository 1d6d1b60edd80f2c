"""Import cost, public API, layering, registries and option errors."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import docrag
from docrag.config import IngestOptions, options_from_env
from docrag.errors import ConfigError
from docrag.types import Block, Chunk, Hit, Line, Page, Word

PKG = Path(docrag.__file__).parent

# Stage order of DESIGN.md: a module may import only from stages before it and the foundation.
STAGES = ["io", "detect", "recognize", "layout", "chunk", "embed", "index", "retrieve"]
FOUNDATION = {"types", "errors", "config", "registry"}


def test_import_is_light() -> None:
    code = "import docrag, sys; bad = {'torch','transformers','onnxruntime','sentence_transformers','faiss'} & set(sys.modules); assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_api_is_deliberate() -> None:
    assert sorted(docrag.__all__) == sorted([
        "Index", "IngestOptions", "IngestReport", "ocr", "Hit", "Chunk", "Page",
        "DocragError", "LoadError", "ModelError", "StoreError", "ConfigError", "__version__",
    ])
    for name in docrag.__all__:
        assert getattr(docrag, name) is not None


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("docrag."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("docrag."):
                    found.add(alias.name.split(".")[1])
    return found


@pytest.mark.parametrize("stage", STAGES)
def test_data_flows_one_way(stage: str) -> None:
    allowed = FOUNDATION | set(STAGES[: STAGES.index(stage) + 1])
    for path in (PKG / stage).rglob("*.py"):
        bad = _imports(path) - allowed
        assert not bad, f"{path.relative_to(PKG)} imports later stages or edges: {bad}"


def test_foundation_imports_no_stage() -> None:
    for name in FOUNDATION:
        assert _imports(PKG / f"{name}.py") <= FOUNDATION


def test_results_round_trip_json() -> None:
    import json

    line = Line("Total 12", (1.0, 2.0, 3.0, 4.0), 0.9, [Word("Total", (1.0, 2.0, 2.0, 4.0), 0.9)], "ocr")
    page = Page(number=2, width=612, height=792, method="ocr", reason="scan", blocks=[Block([line], line.bbox)])
    assert Page.from_dict(json.loads(json.dumps(page.to_dict()))) == page
    chunk = Chunk("d", "a.pdf", 1, "t", (0.0, 0.0, 1.0, 1.0), [(0.0, 0.0, 1.0, 1.0)])
    assert Chunk.from_dict(json.loads(json.dumps(chunk.to_dict()))) == chunk
    hit = Hit("d", "a.pdf", 1, "t", (0.0, 0.0, 1.0, 1.0), "text", 0.5)
    assert Hit.from_dict(json.loads(json.dumps(hit.to_dict()))) == hit


def test_unknown_engine_lists_known_names() -> None:
    from docrag.detect import get_detector
    from docrag.layout import get_layout
    from docrag.recognize import get_recognizer

    for get, known in [(get_detector, "dbnet"), (get_recognizer, "ppocr"), (get_layout, "heuristic")]:
        with pytest.raises(ConfigError, match=known):
            get("nope")


def test_options_validate_with_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCRAG_OCR", "sometimes")
    with pytest.raises(ConfigError, match="ocr"):
        options_from_env(IngestOptions)
    monkeypatch.setenv("DOCRAG_OCR", "always")
    assert options_from_env(IngestOptions).ocr == "always"
    assert options_from_env(IngestOptions, ocr="never").ocr == "never"
    with pytest.raises(ConfigError, match="chunk_overlap"):
        options_from_env(IngestOptions, chunk_tokens=50, chunk_overlap=50)


def test_ocr_function_is_not_shadowed_by_a_subpackage() -> None:
    import docrag.pipeline  # noqa: F401  (imports every stage package)

    assert callable(docrag.ocr) and callable(docrag.Index)
