"""MiniLM through onnxruntime: the default text embedder without torch at run time.

The packaged all-MiniLM-L6-v2 is exported once with ``torch.onnx.export``
(mean pooling and L2 normalization are part of the graph), its BERT
sub-graphs are fused by onnxruntime's transformer optimizer, and the result is
cached under ``$DOCRAG_CACHE/onnx/<key>/`` (default ``~/.cache/docrag``), where
``<key>`` hashes the weights file and :data:`EXPORT_RECIPE`. Nothing is
downloaded. ``minilm-onnx-int8`` adds dynamic int8 quantization (per-channel
weights) on top of the same export.

Texts are tokenized with the model's fast tokenizer, sorted by token count and
batched so that a batch pads only to its own longest text; vectors come back
in input order. Batches run concurrently, one per thread, on a session whose
operators are single-threaded (see :class:`OnnxEmbedder` for why).

>>> emb = OnnxEmbedder()  # doctest: +SKIP
>>> emb.embed_documents(["hello", "world"]).shape  # doctest: +SKIP
(2, 384)
"""

from __future__ import annotations

import hashlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from docrag.embed import EMBEDDERS, TextEmbedder, check_vectors
from docrag.config import default_threads, environment
from docrag.errors import ModelError
from docrag.files import file_sha256, locked, replace_atomically, sha256_of

__all__ = ["OnnxEmbedder", "export_model", "cache_root", "EXPORT_RECIPE"]

EXPORT_RECIPE = "minilm-onnx-v2"
"""Bump when the export, fusion or quantization recipe changes: it re-keys the cache."""

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
GROUP = 512
"""Texts tokenized, sorted and batched together: memory stays flat however many texts come in."""


def cache_root() -> Path:
    """Where exported models live: ``$DOCRAG_CACHE/onnx``, else ``$XDG_CACHE_HOME/docrag/onnx``, else ``~/.cache/docrag/onnx``."""
    return environment().cache_dir() / "onnx"


def _weights_file(model_dir: Path) -> Path:
    for name in _WEIGHT_FILES:
        if (model_dir / name).is_file():
            return model_dir / name
    raise ModelError(f"{model_dir}: no {' or '.join(_WEIGHT_FILES)}; pass the directory of a BERT-style sentence-transformers model")


def _model_key(model_dir: Path) -> str:
    weights = _weights_file(model_dir)
    h = hashlib.sha256()
    h.update(sha256_of(weights).encode())
    for name in ("config.json", "tokenizer.json"):
        if (model_dir / name).is_file():
            h.update((model_dir / name).read_bytes())
    h.update(EXPORT_RECIPE.encode())
    return h.hexdigest()[:16]


def _max_seq_length(model_dir: Path) -> int:
    try:
        return int(json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, KeyError, ValueError):
        return 256


def _export_fp32(model_dir: Path, dest: Path) -> dict[str, Any]:
    """Trace the encoder + mean pooling + L2 normalization into ``dest`` (fused when possible)."""
    try:
        import torch
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging
    except ImportError:
        raise ImportError("exporting the ONNX embedder needs torch and transformers: pip install torch transformers") from None
    hf_logging.disable_progress_bar()
    # Eager attention traces to plain MatMul/Softmax, which onnxruntime fuses; sdpa traces its mask logic as constants.
    encoder = AutoModel.from_pretrained(str(model_dir), local_files_only=True, attn_implementation="eager").eval()

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    # Trace with padding in the batch so the mask path is recorded, not folded away.
    ids = torch.tensor([[101, 7592, 2088, 2023, 2003, 1037, 3231, 102], [101, 7592, 102, 0, 0, 0, 0, 0]])
    mask = (ids != 0).long()
    axes = {name: {0: "batch", 1: "sequence"} for name in _INPUTS}
    axes["embedding"] = {0: "batch"}

    def write(tmp: Path) -> None:
        import warnings

        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer chatter about constants that are constant for BERT
            torch.onnx.export(
                Pooled(), (ids, mask, torch.zeros_like(ids)), str(tmp), input_names=list(_INPUTS),
                output_names=["embedding"], dynamic_axes=axes, opset_version=17, dynamo=False,
            )
        _fuse(tmp, encoder.config)

    replace_atomically(write, dest)
    return {"torch": torch.__version__}


_UNFUSED = ["SkipLayerNormFusion"]
"""Session-level fusions an embedder session leaves out (see :func:`_fuse`)."""


def _fuse(path: Path, config: Any) -> None:
    """Fuse attention, GELU and layer norms in place (onnxruntime's BERT optimizer); leave the graph as is if that fails.

    The residual adds stay apart from their layer norms (no ``SkipLayerNormalization``):
    onnxruntime's CPU kernel for it took 315 µs on a 148 x 384 chunk against 58 µs for
    ``Add`` + ``LayerNormalization`` (onnxruntime 1.32, one thread), a fifth of the whole
    encoder's time. Sessions keep it so with :data:`_UNFUSED`.
    """
    try:
        from onnxruntime.transformers.fusion_options import FusionOptions
        from onnxruntime.transformers.optimizer import optimize_model

        fusions = FusionOptions("bert")
        fusions.enable_skip_layer_norm = False
        opt = optimize_model(str(path), model_type="bert", num_heads=config.num_attention_heads,
                             hidden_size=config.hidden_size, opt_level=1, optimization_options=fusions)
        opt.save_model_to_file(str(path))
    except Exception:  # noqa: BLE001 - an unfused graph is slower, not wrong
        pass


def _quantize(src: Path, dest: Path) -> None:
    """Dynamic int8: per-channel int8 weights, uint8 activations quantized per batch."""
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        raise ImportError("int8 quantization needs the onnx package: pip install onnx") from None

    def write(tmp: Path) -> None:
        import logging

        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # quantize_dynamic warns on the root logger about optional pre-processing
        try:
            quantize_dynamic(
                str(src), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                op_types_to_quantize=["MatMul", "Attention"],
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},  # fused ops have no inferred types
            )
        finally:
            root.setLevel(level)

    replace_atomically(write, dest)


def _valid(path: Path) -> bool:
    """``path`` exists and matches the size and hash recorded when it was written."""
    meta = path.with_name(path.name + ".json")
    try:
        info = json.loads(meta.read_text())
        return path.stat().st_size == info["size"] and file_sha256(path) == info["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _record(path: Path, **extra: Any) -> None:
    info = {"size": path.stat().st_size, "sha256": file_sha256(path), "recipe": EXPORT_RECIPE, **extra}
    meta = path.with_name(path.name + ".json")
    replace_atomically(lambda tmp: tmp.write_text(json.dumps(info, indent=1)), meta)


def export_model(model_dir: str | Path, quantize: bool = False, cache_dir: str | Path | None = None) -> Path:
    """The cached ONNX file for ``model_dir``, exporting (and quantizing) it first when needed.

    A missing, truncated or otherwise altered file is exported again.

    >>> export_model(minilm_path()).name  # doctest: +SKIP
    'model.onnx'
    """
    model_dir = Path(model_dir).expanduser()
    folder = Path(cache_dir).expanduser() if cache_dir else cache_root()
    folder = folder / _model_key(model_dir)
    fp32 = folder / "model.onnx"
    target = folder / "model.int8.onnx" if quantize else fp32
    if _valid(target):
        return target
    with locked(folder):
        if not _valid(fp32):  # another process may have finished while we waited
            extra = _export_fp32(model_dir, fp32)
            _record(fp32, source=str(model_dir), **extra)
        if quantize and not _valid(target):
            _quantize(fp32, target)
            _record(target, source=str(model_dir), quantized="dynamic int8, per-channel")
    return target


class OnnxEmbedder:
    """A BERT-style sentence-transformers model (mean pooling) run by onnxruntime on CPU.

    Args:
        model_dir: Model directory; defaults to the packaged all-MiniLM-L6-v2.
        name: Name recorded in the index (defaults by variant: ``minilm-onnx``, ``minilm-onnx-int8``).
        quantize: Use the dynamic int8 model (faster, cosine ~0.99 to the fp32 vectors).
        batch_size: Most texts per forward pass, after sorting by token count (the int8 model
            runs one at a time: see the constructor).
        max_batch_tokens: Most padded tokens per forward pass (bounds the memory of a run:
            2048 is ~8 chunks of 200 words, ~120 MB for two runs at once, and as fast
            as larger batches).
        max_tokens: Truncation length in tokens; defaults to the model's ``max_seq_length``
            (256), where sentence-transformers truncates too, so the vectors stay the same.
        num_threads: Batches run at once; defaults to ``DOCRAG_THREADS`` when set (page
            workers set it to their share), else the cores this process may use.
        intra_op_threads: onnxruntime operator threads per batch (1: see below).
        cache_dir: Where exports are kept (default :func:`cache_root`).

    Threads: each batch runs single-threaded and ``num_threads`` batches run at once,
    rather than one batch at a time on ``num_threads`` intra-op threads. A MiniLM
    forward pass is ~100 small operators, each a barrier for an intra-op pool; when
    another process takes a core (the page workers, other jobs) every barrier waits
    for the descheduled thread. Independent batches never wait for each other:
    measured on 2 loaded cores, 37-49 chunks/s against 26-30 for 2 intra-op threads
    (``bench/README.md``). Text is embedded in the main process while the page
    workers are idle (a document's pages are all read first), so all cores are ours.

    >>> emb = OnnxEmbedder(quantize=True, num_threads=1)  # doctest: +SKIP
    >>> emb.name, emb.dim  # doctest: +SKIP
    ('minilm-onnx-int8', 384)
    """

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        name: str | None = None,
        quantize: bool = False,
        batch_size: int = 32,
        max_tokens: int | None = None,
        num_threads: int | None = None,
        intra_op_threads: int = 1,
        max_batch_tokens: int = 2048,
        cache_dir: str | Path | None = None,
    ) -> None:
        if model_dir is None:
            from docrag.embed.sentence import minilm_path

            model_dir = minilm_path()
        self.model_dir = Path(model_dir).expanduser()
        self.quantize = quantize
        self.name = name or ("minilm-onnx-int8" if quantize else "minilm-onnx")
        # The int8 model runs one text at a time: onnxruntime quantizes a run's activations with one
        # range over the whole batch, padding included, so in a batch a text's vector would depend on
        # its batch-mates (cosine to itself down to 0.986 when the order changed) and a query would not
        # get its document's vector. Alone, a text gets one vector wherever it is embedded, and no
        # slower: no padding (filings-dev chunks, 2 cores: 36 chunks/s against 31 in batches of ~11).
        self.batch_size = 1 if quantize else max(1, int(batch_size))
        self.max_tokens = int(max_tokens or _max_seq_length(self.model_dir))
        self.num_threads = max(1, int(num_threads or default_threads()))
        self.intra_op_threads = max(1, int(intra_op_threads))
        self.max_batch_tokens = max(1, int(max_batch_tokens))
        self._pool: ThreadPoolExecutor | None = None
        self.model_path = export_model(self.model_dir, quantize=quantize, cache_dir=cache_dir)
        self._session = self._open()
        self._query_session: Any = None  # opened by the first embed_query
        self._query_lock = threading.Lock()
        self._tokenizer = self._load_tokenizer()
        self.dim = int(self._session.get_outputs()[0].shape[-1])

    def _open(self, threads: int | None = None) -> Any:
        """A session whose runs use ``threads`` operator threads (default ``intra_op_threads``)."""
        try:
            import onnxruntime as ort
        except ImportError:
            raise ImportError("the ONNX embedder needs onnxruntime: pip install onnxruntime") from None
        opts = ort.SessionOptions()
        # One thread per run: parallelism comes from concurrent batches (see the class docstring);
        # onnxruntime's default would start a pool on every core in each process that embeds.
        opts.intra_op_num_threads = threads or self.intra_op_threads
        opts.inter_op_num_threads = 1
        if threads and threads > 1:  # a waiting thread sleeps rather than spin, so a busy core is not taken
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            return ort.InferenceSession(str(self.model_path), opts, providers=["CPUExecutionProvider"],
                                        disabled_optimizers=_UNFUSED)
        except Exception as exc:  # noqa: BLE001
            raise ModelError(
                f"cannot open {self.model_path} ({type(exc).__name__}); delete that folder to export it again"
            ) from None

    def _load_tokenizer(self) -> Any:
        from tokenizers import Tokenizer

        path = self.model_dir / "tokenizer.json"
        if not path.is_file():
            raise ModelError(f"{self.model_dir}: no tokenizer.json (a fast tokenizer is needed)")
        tok = Tokenizer.from_file(str(path))
        tok.no_padding()  # the file pads to 128; we pad per batch instead
        tok.enable_truncation(self.max_tokens)
        return tok

    def token_lengths(self, texts: list[str]) -> np.ndarray:
        """Token count of each text after truncation (``[CLS]`` and ``[SEP]`` included)."""
        return np.array([len(e.ids) for e in self._tokenizer.encode_batch(list(texts))], dtype=np.int64)

    def batches(self, lengths: np.ndarray) -> list[np.ndarray]:
        """Row indices of each batch, longest texts first.

        A batch pads to its own longest text and holds at most ``batch_size`` texts and
        ``max_batch_tokens`` padded tokens (what bounds a run's memory: long chunks go
        fewer at a time, short ones more); no batch takes more than its share of the
        texts, so every thread gets work.

        >>> emb = OnnxEmbedder.__new__(OnnxEmbedder)
        >>> emb.batch_size, emb.num_threads, emb.max_batch_tokens = 4, 2, 12
        >>> [b.tolist() for b in emb.batches(np.array([3, 9, 5, 7, 2]))]
        [[1], [3], [2, 0], [4]]
        """
        order = np.argsort(-lengths, kind="stable")
        cap = max(1, min(self.batch_size, -(-len(order) // self.num_threads)))
        out: list[np.ndarray] = []
        start = 0
        while start < len(order):
            width = int(lengths[order[start]])  # the longest of the batch: the order is descending
            size = max(1, min(cap, self.max_batch_tokens // max(width, 1)))
            out.append(order[start:start + size])
            start += size
        return out

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        """Unit vectors for ``texts``, shape ``(len(texts), dim)``, in input order."""
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # A group at a time, so memory does not grow with the number of texts (a 1,000-page document).
        for start in range(0, len(texts), GROUP):
            out[start:start + GROUP] = self._embed_group(texts[start:start + GROUP])
        return check_vectors(out, self.dim)

    def _embed_group(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(texts)
        lengths = np.array([len(e.ids) for e in encodings])

        def run(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            feed = _feed([encodings[i] for i in rows])
            return rows, self._session.run(None, feed)[0]  # releases the GIL while it computes

        batches = self.batches(lengths)
        done = map(run, batches) if len(batches) == 1 or self.num_threads == 1 else self._executor().map(run, batches)
        for rows, vecs in done:
            out[rows] = vecs
        return out

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.num_threads, thread_name_prefix="docrag-embed")
        return self._pool

    def embed_queries(self, texts: list[str], alone: bool = True) -> np.ndarray:
        """Unit vectors of a search's query texts (the query, its expansion), shape ``(len(texts), dim)``.

        ``alone`` (no other search embeds at the same time): one text runs alone on all threads
        (:meth:`embed_query`); several run one per thread at once, as documents do: two texts on 2
        cores take 4.0 ms that way, 4.9 ms one after the other on both cores, 5.3 ms at once on both
        cores each. Not ``alone``: one after the other on this thread, one operator thread each (other
        searches keep the other cores busy). MiniLM embeds queries and documents alike, so each text
        gets the vector ``embed_query`` would give it.
        """
        if not alone:
            return np.concatenate([self.embed_documents([text]) for text in texts])  # one run, this thread
        if len(texts) == 1:
            return self.embed_query(texts[0])[None, :]
        return self.embed_documents(texts)

    def embed_query(self, text: str) -> np.ndarray:
        """The unit vector of one query, shape ``(dim,)``: the vector ``embed_documents`` gives it.

        A query is one short text, run alone with its operators split over ``num_threads``
        threads (a search waits for it; a document's texts keep the cores busy run by run):
        2.4 ms against 4.0 on one thread for filings-dev questions, 2 idle cores.
        """
        if self.num_threads <= self.intra_op_threads:
            return self.embed_documents([text])[0]
        with self._query_lock:  # the first searches may come at once (a query and its expansion)
            if self._query_session is None:
                self._query_session = self._open(self.num_threads)
        feed = _feed([self._tokenizer.encode(text)])
        return check_vectors(self._query_session.run(None, feed)[0], self.dim)[0]


def _feed(encodings: list[Any]) -> dict[str, np.ndarray]:
    """The model's inputs for one run: the encodings padded to the longest of them."""
    width = max(len(enc.ids) for enc in encodings)
    ids = np.zeros((len(encodings), width), dtype=np.int64)
    types = np.zeros_like(ids)
    mask = np.zeros_like(ids)
    for r, enc in enumerate(encodings):
        n = len(enc.ids)
        ids[r, :n] = enc.ids
        types[r, :n] = enc.type_ids
        mask[r, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


@EMBEDDERS.register("minilm-onnx")
def _minilm_onnx(batch_size: int = 32, **kwargs: Any) -> TextEmbedder:
    return OnnxEmbedder(batch_size=batch_size, **kwargs)


@EMBEDDERS.register("minilm-onnx-int8")
def _minilm_onnx_int8(batch_size: int = 32, **kwargs: Any) -> TextEmbedder:
    return OnnxEmbedder(quantize=True, batch_size=batch_size, **kwargs)
