"""Shared fixtures: paths, a deterministic fake embedder, fixtures OCR'd once, and one real index built once per session."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from docrag.config import IngestOptions
from docrag.embed import EMBEDDERS
from docrag.types import Page

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures" / "data"
SHARED = ROOT.parent / "shared" / "data"
# What the session index holds: every kind of input, one born-digital visual report
# (its scanned twin is left to the region tests, to keep the session short).
SESSION_FILES = ["report.pdf", "report_scan.pdf", "mixed.pdf", "page_scan.png", "pages_scan.tiff", "visual.pdf"]


class HashEmbedder:
    """Deterministic bag-of-words feature hashing: same text, same vector; no model."""

    name = "fake-hash"
    dim = 64

    def __init__(self, batch_size: int = 32) -> None:
        self.batch_size = batch_size

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for tok in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.md5(tok.encode()).digest()[:4], "little")
                out[i, h % self.dim] += 1.0
            norm = np.linalg.norm(out[i])
            out[i] = out[i] / norm if norm else out[i]
            if not norm:
                out[i, 0] = 1.0
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]


if "fake-hash" not in EMBEDDERS.names():
    EMBEDDERS.register("fake-hash")(lambda batch_size=32: HashEmbedder(batch_size))


def load_gt(name: str) -> dict:
    return json.loads((FIXTURES / "gt" / f"{name}.json").read_text())


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def ocr_pages() -> Callable[..., list[Page]]:
    """``ocr_pages(name, options=None)``: the pages of ``fixtures/data/name`` (or of a
    path, such as a ``shared/data`` page) as ``docrag.ocr(path, options)`` reads them,
    read once per session per (file, options); each call gets its own deep copy, so a
    test may change them.

    OCR is most of the suite's time: tests reading the same file the same way share it.
    """
    import docrag

    ocr = docrag.ocr  # kept: a test may stand this fixture in for docrag.ocr
    read: dict[tuple[str, str], list[Page]] = {}

    def pages(name: str | Path, options: IngestOptions | None = None) -> list[Page]:
        path = (FIXTURES / name).resolve()  # an absolute path stays itself
        key = (str(path), options.reading_key() if options is not None else "")  # None: docrag.ocr's own default
        if key not in read:
            read[key] = list(ocr(path, options))
        return copy.deepcopy(read[key])

    return pages


@pytest.fixture(scope="session")
def session_options() -> IngestOptions:
    """The options of the session index: the defaults (and ``DOCRAG_*``), pages read in this process.

    Tests reading a session file with these options share the index's reading of it.
    """
    from docrag.config import options_from_env

    return options_from_env(IngestOptions, workers=1)


class SessionPages:
    """A page engine reading through ``ocr_pages``: each file read once per session and options.

    It reads as the local engine does in this process (``docrag.ocr`` calls the same
    ``read_page`` on each page), so the index it feeds is the one a plain ingest builds.
    """

    def __init__(self, read: Callable[..., list[Page]], options: IngestOptions) -> None:
        self.read_file, self.options = read, options

    def read(self, doc, password: str | None = None, pages=None):
        got = self.read_file(doc.source, self.options)
        return iter([got[n - 1] for n in (pages if pages is not None else range(1, len(got) + 1))])

    def close(self, now: bool = False) -> None:
        pass


@pytest.fixture(scope="session")
def built_index(tmp_path_factory: pytest.TempPathFactory, ocr_pages, session_options):
    """All fixtures ingested once with the real default engines (OCR + MiniLM).

    Pages are read in this process, through the session's readings (``ocr_pages``):
    the scans other tests read with ``session_options`` are OCR'd once.
    """
    from docrag import Index

    path = tmp_path_factory.mktemp("index") / "ix"
    index = Index(path, session_options, page_engine=SessionPages(ocr_pages, session_options))
    report = index.ingest([FIXTURES / name for name in SESSION_FILES])
    assert not report.failures, report.failures
    return index, report


@pytest.fixture()
def index_copy(built_index, tmp_path: Path):
    """A throwaway copy of the session index, for tests that write to it."""
    from docrag import Index

    src, _ = built_index
    dst = tmp_path / "ix"
    shutil.copytree(src.path, dst)
    return Index(dst)
