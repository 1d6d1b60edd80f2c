"""A text embedder behind any OpenAI-compatible ``/v1/embeddings`` endpoint.

OpenAI itself, vLLM, text-embeddings-inference, Ollama, LiteLLM, or another
``docrag serve`` (whose ``POST /v1/embeddings`` serves its index's embedder,
so several machines can share one model). Texts are sent in batches of
``batch_size``; 429 and 5xx answers and dropped connections are retried with
a bounded exponential backoff; vectors come back L2-normalized float32 in
input order. The dimension is learned from the first answer, and an answer of
another dimension later is a :class:`~docrag.errors.ModelError`.

The recorded name is ``openai:MODEL@BASE_URL`` (never the key), so an index
built with it reopens against the same endpoint and model.

>>> emb = OpenAIEmbedder("http://127.0.0.1:8080/v1", model="minilm")  # doctest: +SKIP
>>> emb.embed_documents(["fleet size", "revenue"]).shape  # doctest: +SKIP
(2, 384)
>>> emb.name  # doctest: +SKIP
'openai:minilm@http://127.0.0.1:8080/v1'
"""

from __future__ import annotations

import base64
import re
import threading
import time
from typing import Any, Literal

import numpy as np

from docrag.embed import EMBEDDERS, TextEmbedder, check_vectors
from docrag.config import environment
from docrag.errors import ConfigError, ModelError

__all__ = ["OpenAIEmbedder", "from_name", "parse_name"]

_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_NAME = re.compile(r"^openai:(?P<model>.*)@(?P<url>https?://\S+)$")


def parse_name(name: str) -> tuple[str | None, str]:
    """``(model, base_url)`` of an ``openai:MODEL@BASE_URL`` name (``model`` is ``None`` when empty).

    >>> parse_name("openai:text-embedding-3-small@https://api.openai.com/v1")
    ('text-embedding-3-small', 'https://api.openai.com/v1')
    >>> parse_name("openai:@http://127.0.0.1:8080/v1")
    (None, 'http://127.0.0.1:8080/v1')
    """
    match = _NAME.match(name.strip())
    if match is None:
        raise ConfigError(f"bad OpenAI embedder name {name!r}; write openai:MODEL@BASE_URL, "
                          "e.g. openai:text-embedding-3-small@https://api.openai.com/v1")
    return match["model"] or None, match["url"]


def from_name(name: str, batch_size: int = 64) -> OpenAIEmbedder:
    """The embedder an ``openai:MODEL@BASE_URL`` name stands for (what an index records)."""
    model, url = parse_name(name)
    return OpenAIEmbedder(url, model=model, batch_size=batch_size)


class OpenAIEmbedder:
    """Embeds texts with a remote OpenAI-compatible embeddings endpoint.

    Args:
        base_url: The API root, with its version: ``https://api.openai.com/v1``,
            ``http://127.0.0.1:8080/v1`` for ``docrag serve``. ``/embeddings`` is appended.
        model: The model to ask for; ``None`` lets the server pick (the name it answers
            with is then used in :attr:`name`).
        api_key: Bearer token; defaults to ``$OPENAI_API_KEY``, else ``$DOCRAG_TOKEN``.
        batch_size: Texts per request.
        timeout: Seconds per request (connect and read).
        encoding_format: ``float`` (every server) or ``base64`` (smaller answers).
        max_retries: Retries of one batch after a 429, a 5xx or a dropped connection.
        backoff: First wait between retries in seconds, doubled each time (at most 30 s;
            a ``Retry-After`` header wins when given and shorter than that).
        http_client: An ``httpx.Client`` to use instead of a new one (proxies, tests).

    Raises:
        ModelError: From the embed calls, when the server cannot be reached, refuses the
            request, or answers with vectors of the wrong count, dimension or values.
    """

    def __init__(self, base_url: str, model: str | None = None, api_key: str | None = None, batch_size: int = 64,
                 timeout: float = 60, *, encoding_format: Literal["float", "base64"] = "float",
                 max_retries: int = 4, backoff: float = 0.5, http_client: Any = None) -> None:
        if not re.match(r"^https?://[^/\s]+", base_url or ""):
            raise ConfigError(f"bad base_url {base_url!r}; give the API root, e.g. http://127.0.0.1:8080/v1")
        if batch_size < 1 or max_retries < 0 or timeout <= 0:
            raise ConfigError("batch_size must be >= 1, max_retries >= 0 and timeout > 0")
        if encoding_format not in ("float", "base64"):
            raise ConfigError(f"encoding_format must be 'float' or 'base64', not {encoding_format!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model or None
        self.batch_size = batch_size
        self.timeout = timeout
        self.encoding_format = encoding_format
        self.max_retries = max_retries
        self.backoff = backoff
        self._api_key = api_key or environment().openai_api_key or None
        self._client = http_client
        self._owns_client = http_client is None
        self._dim: int | None = None
        self._answered = False
        self._lock = threading.Lock()  # the service shares one embedder between its threads

    # -- what the index reads --------------------------------------------------

    @property
    def name(self) -> str:
        """``openai:MODEL@BASE_URL``; asks the server once when no model was given."""
        if self.model is None:
            self._probe()
        return f"openai:{self.model or ''}@{self.base_url}"

    @property
    def dim(self) -> int:
        """The vector size, from the first answer (one short request if nothing was embedded yet)."""
        if self._dim is None:
            self._probe()
        assert self._dim is not None
        return self._dim

    def __repr__(self) -> str:  # no key in logs
        return f"OpenAIEmbedder({self.base_url!r}, model={self.model!r}, batch_size={self.batch_size})"

    # -- embedding ---------------------------------------------------------------

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        """Unit vectors for ``texts``, shape ``(len(texts), dim)``, float32, in input order."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        blocks = [self._embed_batch(texts[i:i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        return check_vectors(np.concatenate(blocks), self._dim)

    def embed_query(self, text: str) -> np.ndarray:
        """The unit vector of one query, shape ``(dim,)``."""
        return self.embed_documents([text])[0]

    def close(self) -> None:
        """Close the HTTP connections (only those of a client this object made)."""
        if self._client is not None and self._owns_client:
            self._client.close()
            self._client = None

    def _probe(self) -> None:
        if not self._answered:
            self._embed_batch(["dimension probe"])

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        # OpenAI (and docrag serve) refuse empty strings; a blank embeds as "no words" would.
        inputs = [t if t.strip() else " " for t in texts]
        body: dict[str, Any] = {"input": inputs, "encoding_format": self.encoding_format}
        if self.model is not None:
            body["model"] = self.model
        answer = self._post(body)
        vectors = self._parse(answer, len(texts))
        with self._lock:
            if self._dim is None:
                self._dim = vectors.shape[1]
            elif vectors.shape[1] != self._dim:
                raise ModelError(f"{self.base_url}: the server changed dimension from {self._dim} to "
                                 f"{vectors.shape[1]} (another model behind the same URL?); re-create the index "
                                 "or pin the model")
            if self.model is None and isinstance(answer.get("model"), str) and answer["model"]:
                self.model = answer["model"]
            self._answered = True
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if not np.all(norms > 0):
            raise ModelError(f"{self.base_url}: the server returned a zero vector; it cannot be normalized")
        return vectors / norms

    def _parse(self, answer: Any, count: int) -> np.ndarray:
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list) or len(data) != count:
            got = len(data) if isinstance(data, list) else "no"
            raise ModelError(f"{self.base_url}: expected {count} embeddings in 'data', got {got}; "
                             "is this an OpenAI-compatible /embeddings endpoint?")
        try:
            items = sorted(data, key=lambda d: int(d.get("index", 0)))
            if [int(d.get("index", i)) for i, d in enumerate(items)] != list(range(count)):
                raise ValueError("indices are not 0..n-1")
            rows = [self._decode(d["embedding"]) for d in items]
            if len({len(r) for r in rows}) != 1 or len(rows[0]) == 0:
                raise ValueError(f"vectors of sizes {sorted({len(r) for r in rows})}")
            return check_vectors(np.stack(rows))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"{self.base_url}: malformed embeddings answer ({exc})") from None

    @staticmethod
    def _decode(embedding: Any) -> np.ndarray:
        if isinstance(embedding, str):  # base64 of little-endian float32, as OpenAI sends it
            return np.frombuffer(base64.b64decode(embedding, validate=True), dtype="<f4").astype(np.float32)
        return np.asarray(embedding, dtype=np.float64).astype(np.float32)

    # -- HTTP ----------------------------------------------------------------------

    def _http(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    try:
                        import httpx
                    except ImportError:
                        raise ImportError("the openai embedder needs httpx: pip install httpx") from None
                    self._client = httpx.Client(timeout=self.timeout)
        return self._client

    def _post(self, body: dict[str, Any]) -> Any:
        import httpx

        url = f"{self.base_url}/embeddings"
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        client = self._http()
        problem = ""
        for attempt in range(self.max_retries + 1):
            wait = min(30.0, self.backoff * 2 ** attempt)
            try:
                response = client.post(url, json=body, headers=headers, timeout=self.timeout)
            except httpx.TransportError as exc:  # refused, reset, timed out: maybe restarting
                problem = f"cannot reach {url} ({type(exc).__name__}: {exc})"
            else:
                if response.status_code == 200:
                    try:
                        return response.json()
                    except ValueError:
                        raise ModelError(f"{url}: answer is not JSON ({response.text[:200]!r})") from None
                problem = f"{url} answered {response.status_code}: {_message(response)}"
                if response.status_code not in _RETRY_STATUS:
                    raise ModelError(problem + _hint(response.status_code))
                wait = _retry_after(response, wait)
            if attempt < self.max_retries:
                time.sleep(wait)
        raise ModelError(f"{problem}; gave up after {self.max_retries + 1} tries")


def _message(response: Any) -> str:
    """The server's own words: OpenAI's ``{"error": {"message"}}``, else the start of the body."""
    try:
        error = response.json().get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str) and error:
            return error
    except (ValueError, AttributeError):
        pass
    return response.text[:200].strip() or response.reason_phrase


def _hint(status: int) -> str:
    if status == 401:
        return " (pass api_key, or set OPENAI_API_KEY or DOCRAG_TOKEN)"
    if status == 404:
        return " (check base_url, which ends with the version such as /v1, and the model name)"
    return ""


def _retry_after(response: Any, default: float) -> float:
    try:
        return max(0.0, min(30.0, float(response.headers.get("retry-after", ""))))
    except ValueError:
        return default


@EMBEDDERS.register("openai")
def _openai(batch_size: int = 64) -> TextEmbedder:
    # The endpoint comes from the environment, as other DOCRAG_ settings do.
    env = environment()
    url = env.openai_base_url or ""
    if not url:
        raise ConfigError("the 'openai' embedder needs DOCRAG_OPENAI_BASE_URL (e.g. http://127.0.0.1:8080/v1) "
                          "and optionally DOCRAG_OPENAI_MODEL; or name it openai:MODEL@BASE_URL")
    return OpenAIEmbedder(url, model=env.openai_model or None, batch_size=batch_size)
