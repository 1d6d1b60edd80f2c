"""The index directory: SQLite (documents, pages, chunks, FTS5, vectors) + FAISS caches + in-memory term postings."""

from __future__ import annotations

from docrag.index.filters import Filters, parse_pages, parse_tags
from docrag.index.store import DB_NAME, LocalStore
from docrag.index.vectors import VectorCache

__all__ = ["LocalStore", "VectorCache", "DB_NAME", "Filters", "parse_pages", "parse_tags"]
