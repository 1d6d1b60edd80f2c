"""Graph rewrites that make the page models' ONNX files cheaper to run, cached on disk.

PaddlePaddle's ONNX exporter writes hard-swish, ``x * relu6(x + 3) / 6``, as four
operators (``Add``, ``Clip``, ``Mul``, ``Div``). onnxruntime runs each as its own
pass over the feature map, and between its blocked-layout (NCHWc) convolutions
each costs a layout reorder as well. The layout model (PP-PicoDet, 94 of them)
spent about half of a page's time outside its convolutions. Written as
``x * HardSigmoid(x)`` (alpha 1/6, beta 1/2: the same function, in every opset
since 6, so the model's opset stays as it is), a page takes 88 ms instead of
126 (one thread), and the outputs differ by at most 6e-6. A ``HardSwish``
operator would need opset 14 and is no faster.

:func:`cheaper_model` returns the rewritten copy of a model file, made once and
kept under ``$DOCRAG_CACHE/onnx-graphs/<sha256 of the file>/``, or the file
itself when nothing in it needs rewriting (or the cache cannot be written).

>>> from onnx import helper, TensorProto
>>> x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
>>> y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
>>> c = [helper.make_node("Constant", [], [n], value=helper.make_tensor(n, TensorProto.FLOAT, [], [v]))
...      for n, v in (("three", 3.0), ("zero", 0.0), ("six", 6.0))]
>>> ops = [helper.make_node("Add", ["x", "three"], ["a"]), helper.make_node("Clip", ["a", "zero", "six"], ["c"]),
...        helper.make_node("Mul", ["x", "c"], ["m"]), helper.make_node("Div", ["m", "six"], ["y"])]
>>> model = helper.make_model(helper.make_graph(c + ops, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 13)])
>>> fuse_hardswish(model), [n.op_type for n in model.graph.node]
(1, ['HardSigmoid', 'Mul'])
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from docrag.config import environment
from docrag.files import locked, replace_atomically, sha256_of

__all__ = ["cheaper_model", "fuse_hardswish", "GRAPH_RECIPE"]

GRAPH_RECIPE = "hardswish-v1"
"""Bump when a rewrite changes: it re-keys the cache."""

_log = logging.getLogger(__name__)


def cheaper_model(path: Path) -> Path:
    """``path`` with its rewrites applied: a cached copy, or ``path`` itself when there are none.

    A file that cannot be rewritten or cached is run as it is (slower, same results).
    """
    try:
        folder = environment().cache_dir() / "onnx-graphs" / f"{sha256_of(path)[:16]}-{GRAPH_RECIPE}"
        out, same = folder / path.name, folder / "unchanged.json"
        if out.is_file():
            return out
        if same.is_file():
            return path
        with locked(folder):
            if not (out.is_file() or same.is_file()):  # another process may have finished while we waited
                _rewrite(path, out, same)
        return out if out.is_file() else path
    except Exception as exc:  # noqa: BLE001 - an unrewritten graph is slower, not wrong
        _log.warning("running %s without graph rewrites: %s", path.name, exc)
        return path


def _rewrite(path: Path, out: Path, same: Path) -> None:
    import onnx

    model = onnx.load(str(path))
    fused = fuse_hardswish(model)
    if fused:
        onnx.checker.check_model(model)
        replace_atomically(lambda tmp: onnx.save(model, str(tmp)), out)
    else:
        replace_atomically(lambda tmp: tmp.write_text(json.dumps({"source": str(path), "rewrites": 0})), same)


def fuse_hardswish(model: Any) -> int:
    """Replace each ``Div(Mul(x, Clip(Add(x, 3), 0, 6)), 6)`` of ``model`` by ``Mul(x, HardSigmoid(x))``, in place.

    Returns how many were replaced. Each intermediate must feed only the next step
    (and be no output of the graph), so nothing else loses an input.
    """
    from onnx import helper

    graph = model.graph
    consts = _scalar_constants(graph)
    users: dict[str, list[Any]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            users[name].append(node)

    outputs = {o.name for o in graph.output}

    def only_user(node: Any, op: str) -> Any:
        """The one node reading ``node``'s result, if it is an ``op`` (and the result is no graph output)."""
        after = users[node.output[0]] if node.output[0] not in outputs else []
        return after[0] if len(after) == 1 and after[0].op_type == op else None

    def is_const(name: str, value: float) -> bool:
        return consts.get(name) == value

    replaced: dict[int, list[Any]] = {}
    dropped: set[int] = set()
    for add in graph.node:
        if add.op_type != "Add" or len(add.input) != 2 or not is_const(add.input[1], 3.0):
            continue
        x = add.input[0]
        clip = only_user(add, "Clip")
        if clip is None or len(clip.input) != 3 or not (is_const(clip.input[1], 0.0) and is_const(clip.input[2], 6.0)):
            continue
        mul = only_user(clip, "Mul")
        if mul is None or sorted(mul.input) != sorted([x, clip.output[0]]):
            continue
        div = only_user(mul, "Div")
        if div is None or div.input[0] != mul.output[0] or not is_const(div.input[1], 6.0):
            continue
        gate = f"{div.output[0]}_gate"
        dropped.update(id(n) for n in (add, clip, mul))
        replaced[id(div)] = [helper.make_node("HardSigmoid", [x], [gate], alpha=1 / 6, beta=0.5, name=f"{div.name}_gate"),
                             helper.make_node("Mul", [x, gate], list(div.output), name=f"{div.name}_hardswish")]
    if not replaced:
        return 0
    nodes = [m for n in graph.node if id(n) not in dropped for m in replaced.get(id(n), [n])]
    used = {name for node in nodes for name in node.input}
    del graph.node[:]
    graph.node.extend(n for n in nodes if n.op_type != "Constant" or n.output[0] in used)
    return len(replaced)


def _scalar_constants(graph: Any) -> dict[str, float]:
    """Single-value constants of ``graph`` (``Constant`` nodes and initializers) by name."""
    from onnx import numpy_helper

    out: dict[str, float] = {}
    tensors = [(n.output[0], a.t) for n in graph.node if n.op_type == "Constant"
               for a in n.attribute if a.name == "value"]
    tensors += [(t.name, t) for t in graph.initializer]
    for name, tensor in tensors:
        if tensor.data_type == 1 and math.prod(tensor.dims) == 1:  # float32
            out[name] = float(numpy_helper.to_array(tensor).reshape(-1)[0])
    return out

