"""Sessions for the page stages' ONNX models (text detection, recognition, layout).

Two runtimes behind the few calls those stages make (``run(None, feed)``,
``get_inputs()``, ``get_modelmeta()``): onnxruntime's ``InferenceSession`` (the
default) and :class:`OpenVinoSession`, chosen with ``DOCRAG_OCR_RUNTIME=openvino``
(``pip install openvino``). Where the CPU computes bfloat16 natively (AVX512-BF16,
AMX) OpenVINO runs the convolutions in bf16 with float32 accumulation, and
``bench/ocr.py`` read scans 1.5-1.7x faster (2 cores, AMD EPYC with avx512_bf16:
ocr-dev 1.03 against 0.61 pages/s, layout-dev scans 0.35 against 0.24) with the
same text (ocr-dev CER 0.0009 both; layout-dev scans 0.127 against 0.126).

It is not the default because of memory. OpenVINO keeps, for the life of the
process, the buffers of the largest input each model has seen and kernels for
every input shape: a page worker holds 800-950 MB after a dozen 200-dpi scan
pages where onnxruntime (no arena) goes back to 260 MB, and a 50-page scan
ingest peaks at 2.1-2.2 GB against 1.5 GB (``bench/memory.py --cases scan-50``).
Take it where memory is plentiful. Where bf16 is emulated it runs float32, no
faster than onnxruntime.

>>> session_runtime("onnxruntime")
'onnxruntime'
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from docrag.config import environment
from docrag.errors import ConfigError, ModelError

__all__ = ["make_session", "session_runtime", "OpenVinoSession", "RUNTIMES"]

RUNTIMES = ("onnxruntime", "openvino")


def session_runtime(wanted: str | None = None) -> str:
    """The runtime a session gets: ``wanted``, else ``DOCRAG_OCR_RUNTIME``, else onnxruntime.

    Raises:
        ConfigError: an unknown runtime, or ``openvino`` asked for where it is not installed.
    """
    name = (wanted or environment().ocr_runtime or "onnxruntime").lower()
    if name not in RUNTIMES:
        raise ConfigError(f"unknown OCR runtime {name!r}; known: {', '.join(RUNTIMES)}")
    if name == "openvino" and _openvino_core() is None:
        raise ConfigError("DOCRAG_OCR_RUNTIME=openvino, but OpenVINO is not installed: `pip install openvino`")
    return name


def make_session(path: Path, num_threads: int, streams: int = 1, runtime: str | None = None) -> Any:
    """A CPU session on the ONNX file ``path``: ``num_threads`` threads a run, ``streams`` runs at once.

    ``streams`` > 1 is for callers that run the session from that many threads at
    once (the recognizer's line batches); onnxruntime needs nothing for it. The file
    runs with :func:`docrag.detect.graphs.cheaper_model`'s rewrites.
    """
    from docrag.detect.graphs import cheaper_model

    path = cheaper_model(Path(path))
    if session_runtime(runtime) == "openvino":
        return OpenVinoSession(path, num_threads, streams)
    try:
        import onnxruntime as ort
    except ImportError:
        raise ImportError("docrag's OCR needs onnxruntime: `pip install onnxruntime`") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = num_threads
    opts.inter_op_num_threads = 1
    # No arena: it keeps the peak of the largest page ever seen for the life of the process.
    opts.enable_cpu_mem_arena = False
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelError(f"cannot load ONNX model {path}: {exc}") from exc


class OpenVinoSession:
    """An ONNX model compiled by OpenVINO for the CPU, called like an onnxruntime session.

    Each calling thread has its own infer request; ``streams`` of them run at
    once. Threads are not pinned to cores: page workers are processes of their
    own, and pinning would put every worker's threads on the same first cores.

    ``shape_step``: OpenVINO prepares its kernels for each new input shape
    (~20-30 ms for the recognizer), so a caller free to pad its input (a text
    line's width) rounds it up to a multiple of this and shapes repeat.
    """

    shape_step = 32

    def __init__(self, path: Path, num_threads: int, streams: int = 1) -> None:
        core = _openvino_core()
        if core is None:
            raise ImportError("the openvino runtime needs OpenVINO: `pip install openvino`")
        try:
            model = core.read_model(str(path))
            self._compiled = core.compile_model(model, "CPU", {
                "INFERENCE_NUM_THREADS": max(1, num_threads) * max(1, streams),
                "NUM_STREAMS": max(1, streams),
                "ENABLE_CPU_PINNING": False,
            })
        except Exception as exc:
            raise ModelError(f"cannot load ONNX model {path} with OpenVINO: {exc}") from exc
        self._inputs = [SimpleNamespace(name=port.get_any_name()) for port in self._compiled.inputs]
        info = model.get_rt_info()  # the ONNX file's metadata_props are its "framework" entry
        meta = info["framework"] if "framework" in info else {}
        meta = meta.astype(dict) if hasattr(meta, "astype") else dict(meta)
        self._meta = SimpleNamespace(custom_metadata_map={
            str(k): v.astype(str) if hasattr(v, "astype") else str(v) for k, v in meta.items()})
        self._local = threading.local()

    def get_inputs(self) -> list[Any]:
        return self._inputs

    def get_modelmeta(self) -> Any:
        return self._meta

    def run(self, output_names: list[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Every output of the model (``output_names`` must be None), as onnxruntime's ``run`` gives them."""
        if output_names is not None:
            raise ValueError("OpenVinoSession.run computes every output: pass None")
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        result = request.infer({k: np.ascontiguousarray(v) for k, v in feed.items()})
        return [np.asarray(result[port]) for port in self._compiled.outputs]


@functools.lru_cache(maxsize=1)
def _openvino_core() -> Any:
    """OpenVINO's ``Core``, made once per process; None where OpenVINO is not installed."""
    try:
        import openvino
    except ImportError:
        return None
    return openvino.Core()
