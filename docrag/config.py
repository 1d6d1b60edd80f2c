"""Options for every stage, as pydantic models with a description on each field.

Environment variables with the ``DOCRAG_`` prefix override defaults
(``DOCRAG_OCR=always``, ``DOCRAG_EMBEDDER=...``); the CLI builds its flags from
these fields, so ``--help`` shows the same descriptions.

>>> IngestOptions(ocr="never").ocr
'never'
"""

from __future__ import annotations

import os
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from docrag.errors import ConfigError

__all__ = ["IngestOptions", "SearchOptions", "options_from_env"]

OcrMode = Literal["auto", "always", "never"]


class IngestOptions(BaseModel):
    """How documents are read, chunked and embedded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ocr: OcrMode = Field(
        "auto",
        description="auto: OCR pages whose text layer is missing or unusable; "
        "always: OCR every page; never: use the text layer only.",
    )
    dpi: int = Field(300, ge=72, le=600, description="Raster resolution for OCR, in dots per inch.")
    detector: str = Field("dbnet", description="Text-region detector engine.")
    ocr_engine: str = Field(
        "ppocr",
        description="Text recognizer: ppocr (default, CPU), florence2 (transformers; set --ocr-model), "
        "tesseract (needs the tesseract binary; set --lang).",
    )
    ocr_model: Optional[str] = Field(
        None,
        description="Model of the OCR engine: a hub id or a local directory (florence2), "
        "or a tessdata directory (tesseract).",
    )
    lang: Optional[str] = Field(
        None, description="OCR languages for tesseract, e.g. 'eng+fra+deu' (ppocr reads English and Chinese)."
    )
    orientation: bool = Field(
        True, description="Detect pages scanned at 90/180/270 degrees and skew, and read them upright."
    )
    figures: bool = Field(
        True, description="Find figures, charts and tables, crop them and index them as visual chunks."
    )
    image_embedder: Optional[str] = Field(
        None,
        description="Also embed figure crops with an image model (siglip or clip; set --image-model) and fuse "
        "its scores at search time. Default: figures are found by their description text only.",
    )
    image_model: Optional[str] = Field(None, description="Image model weights: a hub id or a local directory.")
    crop_dpi: int = Field(144, ge=36, le=600, description="Resolution of figure and table crops, in dots per inch.")
    min_ocr_confidence: float = Field(
        0.5, ge=0.0, le=1.0, description="Drop OCR lines read with a lower mean confidence."
    )
    embedder: str = Field(
        "minilm-onnx-int8",
        description="Text embedder: 'minilm-onnx-int8' (offline default: all-MiniLM-L6-v2 on onnxruntime, "
        "int8), 'minilm-onnx' (fp32, same vectors as torch), 'minilm' (sentence-transformers on torch), "
        "'openai', or any sentence-transformers model id or local directory. An existing index keeps its own.",
    )
    chunk_tokens: int = Field(
        200, ge=16, le=8192, description="Target chunk size in embedder tokens (words as a proxy)."
    )
    chunk_overlap: int = Field(
        40, ge=0, description="Tokens repeated between consecutive chunks of one page."
    )
    batch_size: int = Field(32, ge=1, description="Chunks embedded per batch.")
    page_timeout: float = Field(
        300.0, ge=0, description="Skip (and report) a page that takes longer than this many seconds; 0: no limit."
    )
    engine: Literal["local", "ray"] = Field(
        "local",
        description="Where pages are read: local (this machine, --workers processes) or ray (a Ray cluster; "
        "pip install 'docrag[ray]', set --ray-address).",
    )
    workers: int = Field(
        0, ge=0, le=256,
        description="Page-reading worker processes (local engine); 0: one per CPU core; 1: read in this process.",
    )
    ray_address: Optional[str] = Field(
        None, description="Ray cluster address for --engine ray (e.g. ray://head:10001); default: a local Ray."
    )
    context_headers: bool = Field(
        True, description="Embed and BM25-index each chunk with its document/section header (company, "
        "report type, fiscal year, section)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> IngestOptions:
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError("chunk_overlap must be smaller than chunk_tokens")
        if self.lang is not None and self.ocr_engine != "tesseract":
            raise ValueError(f"lang applies to the tesseract engine, not {self.ocr_engine!r}")
        return self

    def reading_key(self) -> str:
        """A short hash of the options that change what a page reads as (OCR, dpi, figures...).

        Pages journaled by an interrupted ingest are reused only under the same key;
        chunking, embedding and where pages are read (engine, workers) do not count.

        >>> IngestOptions(workers=1).reading_key() == IngestOptions(workers=4).reading_key()
        True
        >>> IngestOptions(dpi=200).reading_key() == IngestOptions().reading_key()
        False
        """
        import hashlib
        import json

        values = self.model_dump(include=set(READING_FIELDS))
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:12]


READING_FIELDS = ("ocr", "dpi", "detector", "ocr_engine", "ocr_model", "lang", "orientation", "figures",
                  "crop_dpi", "min_ocr_confidence")
"""The :class:`IngestOptions` fields that change what a page reads as."""


class SearchOptions(BaseModel):
    """How a query is answered."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    k: int = Field(5, ge=1, le=1000, description="Number of hits to return.")
    kind: Literal["any", "text", "table", "figure", "chart", "caption"] = Field(
        "any", description="Only return hits of this kind."
    )


def options_from_env(cls: type[BaseModel], **overrides: Any) -> Any:
    """Build ``cls`` from ``DOCRAG_<FIELD>`` environment variables, then ``overrides``.

    ``None`` overrides are ignored so CLI flags left unset fall back to the
    environment and then to the defaults.

    Raises:
        ConfigError: a value is invalid; the message names the option.
    """
    values: dict[str, Any] = {}
    for name in cls.model_fields:
        env = os.environ.get(f"DOCRAG_{name.upper()}")
        if env is not None:
            values[name] = env
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return cls(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'options'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid {cls.__name__}: {problems}") from None
