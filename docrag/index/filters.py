"""Search filters, applied in SQL before ranking (never by over-fetching).

>>> Filters(source="*.pdf", pages=(2, 3), kind="text", tags={"year": "2023"}).is_empty
False
>>> where, params = Filters(pages=(2, 3)).sql()
>>> where, params
('c.page BETWEEN ? AND ?', [2, 3])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from docrag.config import parse_pages, parse_tags  # re-exported: the grammar lives with the options

__all__ = ["Filters", "parse_pages", "parse_tags"]


@dataclass(frozen=True)
class Filters:
    """Which chunks a search may return.

    Attributes:
        source: A glob on the document's path as ingested, its absolute path or
            its file name (``reports/*.pdf``, ``*2023*``).
        pages: Inclusive 1-based page range.
        kind: Chunk kind (``text``, ``table``, ``figure`` ...); ``None``/``any`` for all.
        tags: Document tags given at ingest; all must match.
    """

    source: str | None = None
    pages: tuple[int, int] | None = None
    kind: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    doc_ids: tuple[str, ...] = ()
    min_confidence: float = 0.0

    @property
    def is_empty(self) -> bool:
        return not (self.source or self.pages or (self.kind and self.kind != "any") or self.tags or self.doc_ids
                    or self.min_confidence > 0)

    def sql(self) -> tuple[str, list[Any]]:
        """A WHERE clause over ``chunks c JOIN documents d`` and its parameters."""
        parts: list[str] = []
        params: list[Any] = []
        if self.source:
            parts.append("(d.source GLOB ? OR d.path GLOB ? OR d.path GLOB ?)")
            params += [self.source, self.source, "*/" + self.source]
        if self.pages:
            parts.append("c.page BETWEEN ? AND ?")
            params += list(self.pages)
        if self.kind == "figure":  # charts are figures too: "figure" means any picture
            parts.append("c.kind IN ('figure', 'chart')")
        elif self.kind and self.kind != "any":
            parts.append("c.kind = ?")
            params.append(self.kind)
        if self.min_confidence > 0:
            parts.append("c.confidence >= ?")
            params.append(self.min_confidence)
        if self.doc_ids:
            parts.append(f"d.doc_id IN ({','.join('?' * len(self.doc_ids))})")
            params += list(self.doc_ids)
        for key, value in sorted(self.tags.items()):
            parts.append("EXISTS (SELECT 1 FROM tags t WHERE t.doc_id = d.doc_id AND t.key = ? AND t.value = ?)")
            params += [key, value]
        return " AND ".join(parts) or "1", params
