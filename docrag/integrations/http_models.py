"""Request and response bodies of the HTTP service (:mod:`docrag.integrations.http`).

Pydantic models: FastAPI validates requests with them and documents both in OpenAPI.

>>> SearchRequest(query="fleet size", pages="2-5").pages
(2, 5)
>>> sorted(HitOut.model_fields) == sorted(HIT_FIELDS)
True
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, Field

from docrag.config import SearchOptions
from docrag.types import HIT_FIELDS

__all__ = ["SearchRequest", "HitOut", "DocumentOut", "JobOut", "EmbeddingsRequest", "ErrorOut"]


class SearchRequest(SearchOptions):
    """A search: the query and the same options as ``docrag search`` (:class:`docrag.config.SearchOptions`)."""

    query: str = Field(..., max_length=10_000, description="What to look for, in natural language.")

    def options(self) -> SearchOptions:
        """The search options without the query."""
        return SearchOptions(**self.model_dump(exclude={"query"}))


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
    score: float = Field(description="Relevance score, higher is better; only the order means anything. hybrid: "
                         "BM25 and dense fused by rank and relative score (a first place in one ranking adds 1); dense: cosine similarity; bm25: BM25; with "
                         "rerank: the cross-encoder's score.")
    image: Optional[str] = Field(description="For figures and tables: URL path of the crop (GET /crops/{name}).")
    context: str = Field("", description="Document and section header the chunk was indexed with.")
    read_by: str = Field("", description="How the evidence was read: text-layer, or the OCR engine's name (ppocr...).")
    confidence: Optional[float] = Field(None, description="Mean recognition confidence of the evidence lines, "
                                        "0-1 (1.0 for the text layer).")


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
