"""The quickstart notebook runs top to bottom (its code cells, in order, in one namespace)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


@pytest.mark.slow
def test_quickstart_notebook_runs(index_copy, monkeypatch: pytest.MonkeyPatch) -> None:
    # Start from the session's index: the notebook's ingest is then the no-op re-ingest.
    monkeypatch.setenv("DOCRAG_QUICKSTART_INDEX", str(index_copy.path))
    monkeypatch.chdir(NOTEBOOK.parents[1])
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    namespace: dict = {"__name__": "__main__"}
    for i, cell in enumerate(c for c in cells if c["cell_type"] == "code"):
        source = "".join(cell["source"])
        exec(compile(source, f"{NOTEBOOK.name}[cell {i}]", "exec"), namespace)  # noqa: S102
    assert os.path.exists(namespace["png"])
