"""Generators of broken inputs (each returns a path), shared by io and CLI tests."""

from __future__ import annotations

from pathlib import Path

import pymupdf

ZERO_PAGE_PDF = (
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
    b"trailer << /Root 1 0 R >>\n%%EOF\n"
)


def make_bad_inputs(tmp: Path, good_pdf: Path) -> dict[str, tuple[Path, str]]:
    """name -> (path, a regex the one-line error must match)."""
    tmp.mkdir(parents=True, exist_ok=True)
    html = tmp / "report.pdf"
    html.write_text("<!DOCTYPE html><html><body>Not a PDF</body></html>")
    empty = tmp / "empty.pdf"
    empty.write_bytes(b"")
    data = good_pdf.read_bytes()
    truncated = tmp / "truncated.pdf"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp / "garbage.pdf"
    garbage.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 8)
    zero = tmp / "zero.pdf"
    zero.write_bytes(ZERO_PAGE_PDF)
    locked = tmp / "locked.pdf"
    doc = pymupdf.open(good_pdf)
    doc.save(locked, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="secret", owner_pw="owner")
    doc.close()
    return {
        "html": (html, r"not a PDF or image \(it looks like an HTML page\)"),
        "empty": (empty, r"empty file"),
        "truncated": (truncated, r"truncated|corrupt"),
        "garbage": (garbage, r"corrupt|truncated|no pages"),
        "zero": (zero, r"no pages"),
        "locked": (locked, r"password-protected"),
        "missing": (tmp / "nope.pdf", r"no such file"),
    }
