"""Request and response bodies of the HTTP service (:mod:`docrag.integrations.http`).

Pydantic models: FastAPI validates requests with them and documents both in OpenAPI.

>>> SearchRequest(query="fleet size", pages="2-5").pages
(2, 5)
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from docrag.errors import ConfigError
from docrag.index import parse_pages

__all__ = ["SearchRequest", "HitOut", "DocumentOut", "JobOut", "EmbeddingsRequest", "ErrorOut"]


class SearchRequest(BaseModel):
    """A search: the same options as ``docrag search``."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(..., max_length=10_000, description="What to look for, in natural language.")
    k: int = Field(5, ge=1, le=1000, description="Number of hits.")
    kind: Literal["any", "text", "table", "figure", "chart", "caption"] = Field(
        "any", description="Only hits of this kind ('figure' includes charts).")
    mode: Literal["hybrid", "dense", "bm25"] = Field(
        "hybrid", description="hybrid: BM25 and dense fused by reciprocal rank fusion.")
    source: Optional[str] = Field(None, description="Only documents whose source or file name matches this glob.")
    pages: Optional[tuple[int, int]] = Field(
        None, description="Only this page range, 1-based and inclusive: \"2-5\", \"3\", [2, 5] or [3].")
    tags: dict[str, str] = Field(default_factory=dict, description="Only documents with all these tags.")
    rerank: Optional[str] = Field(
        None, description="Re-score the top hits with this cross-encoder; only models the server enables.")
    window: int = Field(0, ge=0, le=20, description="Add N neighbouring chunks of the same page to each hit.")
    group: Literal["chunk", "page"] = Field("chunk", description="page: one hit per page (its best chunk).")
    rrf_k: int = Field(60, ge=1, le=10_000, description="RRF constant of hybrid mode.")

    @field_validator("pages", mode="before")
    @classmethod
    def _pages(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return parse_pages(value)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if isinstance(value, list) and len(value) == 1:
            value = [value[0], value[0]]
        if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
            if not 1 <= value[0] <= value[1]:
                raise ValueError(f"bad page range {list(value)}: pages are 1-based and first <= last")
        return value


class HitOut(BaseModel):
    """One hit, as ``docrag search --json`` prints it."""

    source: str = Field(description="The document's source (its file name for uploads).")
    doc_id: str = Field(description="sha256 of the document's bytes.")
    page: int = Field(description="1-based page number.")
    bbox: tuple[float, float, float, float] = Field(
        description="Evidence box (the lines matching the query): x0, y0, x1, y1 in PDF points, top-left origin.")
    chunk_bbox: Optional[tuple[float, float, float, float]] = Field(description="Box of the whole chunk.")
    kind: str = Field(description="text, table, figure, chart or caption.")
    text: str = Field(description="The chunk's text (with its neighbours when window > 0).")
    score: float = Field(description="Relevance score (higher is better; scale depends on the mode).")
    image: Optional[str] = Field(description="For figures and tables: URL path of the crop (GET /crops/{name}).")
    context: str = Field("", description="Document and section header the chunk was indexed with.")


class DocumentOut(BaseModel):
    """A document of the index."""

    doc_id: str = Field(description="sha256 of the document's bytes.")
    source: str = Field(description="The source label (file name for uploads, path for CLI ingests).")
    pages: int = Field(description="Number of pages.")
    chunks: int = Field(description="Number of chunks indexed.")
    size: int = Field(description="File size in bytes.")
    added_at: float = Field(description="When it was indexed (Unix time).")
    tags: dict[str, str] = Field(description="Tags given at ingest.")


class JobOut(BaseModel):
    """A background job (an upload's ingest, or a delete) and its per-file report."""

    id: str = Field(description="Job id; poll GET /jobs/{id}.")
    kind: Literal["ingest", "delete"] = Field(description="What the job does.")
    status: Literal["queued", "running", "done", "failed"] = Field(description="Where the job stands.")
    created_at: float = Field(description="Unix time the job was queued.")
    started_at: Optional[float] = Field(description="Unix time it started.")
    finished_at: Optional[float] = Field(description="Unix time it finished.")
    files: list[dict[str, Any]] = Field(
        description="Per file: source, status (indexed/unchanged/replaced/failed), doc_id, pages, chunks, error...")
    error: Optional[str] = Field(description="Why the job failed, one line per failed file.")
    deleted: Optional[int] = Field(description="For deletes: how many documents were removed.")


class EmbeddingsRequest(BaseModel):
    """OpenAI-compatible embeddings request."""

    input: Union[str, list[str]] = Field(..., description="A text or a list of texts (token arrays are not accepted).")
    model: Optional[str] = Field(None, description="Must be the index's embedder (see GET /v1/models) when given.")
    encoding_format: Literal["float", "base64"] = Field("float", description="float lists or base64 float32.")
    dimensions: Optional[int] = Field(None, description="Must equal the embedder's dimension when given.")
    user: Optional[str] = Field(None, description="Ignored.")


class ErrorOut(BaseModel):
    """Every error: ``{"error": {"message": ..., "type": ...}}``."""

    error: dict[str, str] = Field(description="message (what went wrong and what to do) and type.")
