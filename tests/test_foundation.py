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

FOUNDATION = {"types", "errors", "config", "registry", "files"}

# Data flows one way (DESIGN.md). Each row is a layer, first to last; a module may
# import only from its own layer and the rows above it. Names are the package's
# top-level modules and subpackages ("__init__" is ``import docrag`` itself).
# A top-level module not named here is orchestration; a new subpackage must be added.
LAYERS: list[tuple[str, set[str]]] = [
    ("foundation", FOUNDATION),
    # the stages, in the order a page goes through them
    ("io", {"io"}),
    ("detect", {"detect"}),
    ("recognize", {"recognize"}),
    ("layout", {"layout"}),
    ("chunk", {"chunk"}),
    ("embed", {"embed"}),
    ("index", {"index"}),
    ("retrieve", {"retrieve"}),
    # runs the stages over pages, documents and question sets (these may import each other)
    ("orchestration", {"pipeline", "workers", "ingest", "evaluate"}),
    # the Python API: docrag.Index, docrag.ocr
    ("api", {"api", "__init__"}),
    # LangChain, HTTP, Ray, searchable PDF: built on the API
    ("integrations", {"integrations"}),
    # the command line, outermost: it may use everything, nothing uses it
    ("cli", {"cli", "__main__"}),
]

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


def _layer_of(name: str) -> int:
    """Row of LAYERS holding top-level module or subpackage ``name``."""
    for i, (_, names) in enumerate(LAYERS):
        if name in names:
            return i
    if (PKG / name).is_dir():
        raise AssertionError(f"docrag/{name}/ is in no layer: add it to LAYERS in {Path(__file__).name}")
    return next(i for i, (layer, _) in enumerate(LAYERS) if layer == "orchestration")


def _docrag_part(module: str) -> str | None:
    """The top-level part of ``docrag.x.y`` (``x``), ``__init__`` for ``docrag``, None outside docrag."""
    parts = module.split(".")
    if parts[0] != "docrag":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _imports_with_lines(path: Path) -> list[tuple[str, int]]:
    """(top-level docrag part, line) of every import in ``path``: module level, in functions, under
    TYPE_CHECKING, relative, and ``importlib.import_module("docrag...")`` with a literal name."""
    package = ["docrag", *path.relative_to(PKG).parent.parts]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(_docrag_part(alias.name), node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            if module == "docrag":  # from docrag import x: a submodule, or a name of the package itself
                found += [(a.name if (PKG / a.name).is_dir() or (PKG / f"{a.name}.py").exists() else "__init__",
                           node.lineno) for a in node.names]
            else:
                found.append((_docrag_part(module), node.lineno))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            found.append((_docrag_part(node.args[0].value), node.lineno))
    return [(part, line) for part, line in found if part is not None]


def _imports(path: Path) -> set[str]:
    return {part for part, _ in _imports_with_lines(path)}


@pytest.mark.parametrize("layer", [name for name, _ in LAYERS])
def test_data_flows_one_way(layer: str) -> None:
    """Every module of the package, at any depth, imports only its own layer and the ones above."""
    row = next(i for i, (name, _) in enumerate(LAYERS) if name == layer)
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        own = path.relative_to(PKG).parts[0].removesuffix(".py")
        if _layer_of(own) != row:
            continue
        for part, line in _imports_with_lines(path):
            if _layer_of(part) > row:
                bad.append(f"docrag/{path.relative_to(PKG)}:{line} imports docrag.{part} "
                           f"({LAYERS[_layer_of(part)][0]} comes after {layer})")
    assert not bad, "\n".join(bad)


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
