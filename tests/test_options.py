"""Issue #14: options defined once (CLI flags, HTTP body, Index.search), environment read in one place."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import click
import pytest

import docrag
from docrag.cli import cli
from docrag.config import ENV_VARS, IngestOptions, ReadingOptions, SearchOptions, ServingOptions
from docrag.types import HIT_FIELDS

PKG = Path(docrag.__file__).parent


def _flags(command: str) -> set[str]:
    cmd = cli.commands[command]
    return {p.name for p in cmd.params if isinstance(p, click.Option)}


def test_search_options_have_one_definition() -> None:
    fields = set(SearchOptions.model_fields)
    assert fields <= _flags("search")
    signature = inspect.signature(docrag.Index.search).parameters
    assert fields <= set(signature)
    for name, f in SearchOptions.model_fields.items():
        assert signature[name].default == f.get_default(call_default_factory=True), name
        assert f.description, name
    pytest.importorskip("fastapi")
    from docrag.integrations.http import create_app

    schema = create_app("unused-index").openapi()["components"]["schemas"]["SearchRequest"]["properties"]
    assert set(schema) == fields | {"query"}
    for name in fields:
        assert schema[name]["description"] == SearchOptions.model_fields[name].description


def test_ingest_ocr_and_serve_flags_come_from_their_models() -> None:
    assert set(IngestOptions.model_fields) <= _flags("ingest")
    assert _flags("ocr") - {"as_json", "as_text", "pdf_out", "render_dir", "password"} == set(ReadingOptions.model_fields)
    assert set(ServingOptions.model_fields) | set(IngestOptions.model_fields) <= _flags("serve")


def test_hit_keys_are_defined_once() -> None:
    from docrag.integrations.http_models import HitOut
    from docrag.integrations.langchain import hit_to_document
    from docrag.types import Hit

    hit = Hit("d", "a.pdf", 1, "t", (0.0, 0.0, 1.0, 1.0), "text", 0.5)
    assert list(hit.to_json()) == list(HIT_FIELDS)
    assert set(HitOut.model_fields) == set(HIT_FIELDS)
    doc = hit_to_document(hit)
    assert set(doc.metadata) | {"text"} == set(HIT_FIELDS) and doc.page_content == "t"


def test_kinds_are_defined_once() -> None:
    from docrag.config import KINDS
    from docrag.types import Kind

    assert KINDS == ("text", "table", "figure", "chart", "caption")
    kind_flag = next(p for p in cli.commands["search"].params if p.name == "kind")
    assert set(kind_flag.type.choices) == set(KINDS) | {"any"}
    assert Kind.__args__ == KINDS  # type: ignore[attr-defined]


# Reading the environment: os.environ.get / [..] / getenv / copying it, but not setting a variable.
_READ = re.compile(r"os\.getenv|os\.environ\.get|os\.environ\[[^\]]+\](?!\s*=[^=])|\*\*os\.environ|os\.environ\.copy")


def test_environment_is_read_in_one_place() -> None:
    offenders = [f"{path.relative_to(PKG)}:{n}" for path in PKG.rglob("*.py") if path.name != "config.py"
                 for n, line in enumerate(path.read_text().splitlines(), 1) if _READ.search(line)]
    assert not offenders, offenders
    assert "envvar=" not in (PKG / "cli.py").read_text()  # click must not read it either


def test_every_variable_is_documented() -> None:
    from click.testing import CliRunner

    readme = (PKG.parent / "README.md").read_text()
    help_text = CliRunner().invoke(cli, ["--help"]).output
    for name in ENV_VARS:
        assert name in help_text, name
        assert name in readme, name
