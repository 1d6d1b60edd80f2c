"""Pages read so far of a document not yet committed, so an interrupted ingest resumes.

A document goes into the index in one transaction, after all its pages are read:
the index never holds half a document. Reading is the slow part (a 500-page scan
is minutes of OCR), so each OCR'd page is also appended to a journal as it is read,
``<index>/journal/<doc_id>.<key>.jsonl``, one JSON line a page (regions and their
crop images included). Pages read from a text layer are not journaled: they are read
again faster (~30 ms) than a journal line is written and parsed (~4 ms + load). An
ingest of the same bytes with the same reading options (``key``) takes the pages
found there and reads only the others; the journal is removed once the document is
committed. A line cut short by a crash is ignored,
and failed pages are not journaled, so they are read again.

>>> import tempfile
>>> from docrag.types import Page
>>> root = tempfile.mkdtemp()
>>> j = PageJournal(root, "ab12", "k1")
>>> j.append(Page(number=2, width=612, height=792, method="ocr"))
>>> j.append(Page(number=3, width=612, height=792, method="text"))  # cheap to read again: not kept
>>> sorted(PageJournal(root, "ab12", "k1").load())
[2]
>>> PageJournal(root, "ab12", "other-options").load()
{}
>>> discard_journals(root, "ab12")
1
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from docrag.types import Page

__all__ = ["PageJournal", "discard_journals", "pending_journals", "prune_journals", "JOURNAL_DIR"]

JOURNAL_DIR = "journal"
JOURNALED = ("ocr", "mixed")
"""Page methods worth journaling: those that ran OCR."""
MAX_AGE_DAYS = 14
"""A journal untouched this long is dropped at the next ingest (its file was probably changed or removed)."""
log = logging.getLogger(__name__)


class PageJournal:
    """The journal of one document (``doc_id``, its content hash) read with options ``key``."""

    def __init__(self, index_dir: str | Path, doc_id: str, key: str) -> None:
        self.path = Path(index_dir) / JOURNAL_DIR / f"{doc_id}.{key}.jsonl"
        self._broken = False

    def load(self) -> dict[int, Page]:
        """Pages journaled so far, by number; unreadable lines are skipped."""
        pages: dict[int, Page] = {}
        try:
            with open(self.path, "rb") as fh:
                for raw in fh:
                    page = _decode(raw)
                    if page is not None:
                        pages[page.number] = page
        except OSError:
            return {}
        return pages

    def append(self, page: Page) -> None:
        """Add ``page`` if it was OCR'd (see :data:`JOURNALED`); a journal that cannot be written is
        given up, not fatal."""
        if self._broken or page.method not in JOURNALED or page.error:
            return
        line = _encode(page)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # One write of a whole line, under a lock: two ingests of the same file may append at once.
            with open(self.path, "ab") as fh:
                _lock(fh)
                fh.write(line)
                fh.flush()
        except OSError as exc:
            self._broken = True
            log.warning("%s: cannot journal pages (%s); an interrupted ingest will read this document again",
                        self.path, exc)


def discard_journals(index_dir: str | Path, doc_id: str) -> int:
    """Remove every journal of ``doc_id`` (all option keys); returns how many there were."""
    removed = 0
    for path in (Path(index_dir) / JOURNAL_DIR).glob(f"{doc_id}.*.jsonl"):
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:  # another process committed the same document
            pass
    return removed


def prune_journals(index_dir: str | Path, max_age_days: float = MAX_AGE_DAYS) -> int:
    """Remove journals not written to for ``max_age_days``; returns how many.

    A journal is keyed by the bytes of its file: once the file is changed or
    deleted, no ingest will resume it, and it would be listed by ``docrag info``
    for ever.
    """
    cutoff = time.time() - max_age_days * 86400
    removed = 0
    for path in (Path(index_dir) / JOURNAL_DIR).glob("*.jsonl"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:
            continue
    return removed


def pending_journals(index_dir: str | Path) -> list[dict[str, Any]]:
    """Interrupted documents: ``{"doc_id", "pages", "bytes"}`` per journal, for ``docrag info``."""
    out = []
    for path in sorted((Path(index_dir) / JOURNAL_DIR).glob("*.jsonl")):
        try:
            size = path.stat().st_size
            with open(path, "rb") as fh:
                count = sum(1 for _ in fh)
        except OSError:
            continue
        out.append({"doc_id": path.name.split(".", 1)[0], "pages": count, "bytes": size})
    return out


def _encode(page: Page) -> bytes:
    # Page.to_dict carries every Region field, its crop included (base64).
    return (json.dumps(page.to_dict(), separators=(",", ":")) + "\n").encode("utf-8")


def _decode(raw: bytes) -> Page | None:
    if not raw.endswith(b"\n"):  # the last line of a journal cut short by a crash
        return None
    try:
        data = json.loads(raw)
        if "region_png" in data:  # written before regions kept their text: read the page again
            return None
        return Page.from_dict(data)
    except (ValueError, TypeError, KeyError):
        return None


def _lock(fh: Any) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: appends of one write each
        return
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # released when the file is closed
    fh.seek(0, os.SEEK_END)
