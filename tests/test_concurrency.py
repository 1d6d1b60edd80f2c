"""Two writers on one index: serialized by the lock, the result equals a sequential ingest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from docrag import Index
from docrag.cli import main

ROOT = Path(__file__).resolve().parents[1]
RUNNER = (
    "import sys; sys.path.insert(0, {tests!r}); import conftest; from docrag.cli import main; "
    "main(sys.argv[1:])"
)


def _ingest_cmd(index: Path, files: list[Path], *extra: str) -> list[str]:
    code = RUNNER.format(tests=str(ROOT / "tests"))
    return [sys.executable, "-c", code, "ingest", *map(str, files), "--index", str(index), "-q",
            "--ocr", "never", "--embedder", "fake-hash", *extra]


def _snapshot(path: Path) -> tuple:
    index = Index(path)
    docs = sorted((d["doc_id"], d["pages"], d["chunks"]) for d in index.documents())
    texts = sorted(r[0] for r in index.store().db.execute("SELECT text FROM chunks"))
    top = [(h.doc_id, h.page, h.text) for h in index.search("depot fleet injuries revenue", k=8)]
    index.close()
    return docs, texts, top


def test_two_concurrent_ingests_equal_a_sequential_one(tmp_path: Path, fixtures_dir: Path) -> None:
    a = [fixtures_dir / "report.pdf", fixtures_dir / "mixed.pdf", fixtures_dir / "visual.pdf"]
    b = [fixtures_dir / "visual.pdf", fixtures_dir / "report.pdf"]  # overlapping on purpose
    both = tmp_path / "both"
    # Pages read in each process (--workers 1): the lock is the subject, not the pools, which would start four more.
    procs = [subprocess.Popen(_ingest_cmd(both, files, "--workers", "1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for files in (a, b)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert all("Traceback" not in err for _, err in outs)
    seq = tmp_path / "seq"
    for files in (a, b):  # the reference: the same commands run one after the other, in this process
        try:
            main(_ingest_cmd(seq, files, "--workers", "1")[3:])
        except SystemExit as exc:
            assert not exc.code, exc.code
    assert _snapshot(both) == _snapshot(seq)
