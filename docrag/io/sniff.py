"""Tell what a file really is from its first bytes, before any parser sees it.

>>> from pathlib import Path; import tempfile
>>> p = Path(tempfile.mkdtemp()) / "x.pdf"; _ = p.write_bytes(b"<!DOCTYPE html><html>")
>>> sniff(p)
Traceback (most recent call last):
...
docrag.errors.LoadError: ...x.pdf: not a PDF or image (it looks like an HTML page); ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from docrag.errors import LoadError

FileType = Literal["pdf", "png", "jpeg", "tiff"]

__all__ = ["FileType", "sniff", "SUPPORTED"]

SUPPORTED = "PDF, PNG, JPEG or TIFF"

_MAGIC: list[tuple[bytes, FileType]] = [
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
]

_LOOKALIKES: list[tuple[bytes, str]] = [
    (b"<!doctype html", "an HTML page"),
    (b"<html", "an HTML page"),
    (b"<?xml", "an XML file"),
    (b"pk\x03\x04", "a ZIP archive (e.g. DOCX/XLSX)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"gif8", "a GIF image"),
    (b"riff", "a RIFF file (e.g. WebP)"),
    (b"{", "a JSON file"),
]


def sniff(path: str | Path) -> FileType:
    """The type of ``path`` judged by its content, not its name.

    Raises:
        LoadError: the path is missing, a directory, empty, or not a PDF/image.
    """
    p = Path(path)
    if not p.exists():
        raise LoadError(str(path), "no such file", hint="check the path")
    if p.is_dir():
        raise LoadError(str(path), "is a directory", hint="pass the files inside it")
    try:
        with p.open("rb") as fh:
            head = fh.read(2048)
    except OSError as exc:
        raise LoadError(str(path), f"cannot be read ({exc.strerror})") from None
    if not head:
        raise LoadError(str(path), "empty file (0 bytes)", hint="re-export or re-download it")
    # The PDF spec allows junk before the header; readers accept it within 1 KiB.
    if b"%PDF-" in head[:1024]:
        return "pdf"
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    lowered = head.lstrip().lower()
    for magic, what in _LOOKALIKES:
        if lowered.startswith(magic):
            break
    else:
        what = "a text file" if _looks_like_text(head) else "an unknown binary format"
    raise LoadError(
        str(path),
        f"not a PDF or image (it looks like {what})",
        hint=f"docrag reads {SUPPORTED} files",
    )


def _looks_like_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
