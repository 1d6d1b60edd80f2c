"""The page models' graph rewrites: same outputs, cached once, never in the way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from docrag.detect.graphs import cheaper_model, fuse_hardswish


def _session(path: Path):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def test_layout_model_rewritten_computes_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnx

    from docrag.layout.picodet import layout_model_path

    monkeypatch.setenv("DOCRAG_CACHE", str(tmp_path))
    source = layout_model_path()
    fast = cheaper_model(source)
    assert fast != source and fast.is_relative_to(tmp_path)
    ops = [n.op_type for n in onnx.load(str(fast)).graph.node]
    assert "Clip" not in ops and ops.count("HardSigmoid") >= 90  # every hard-swish of PP-PicoDet
    assert cheaper_model(source) == fast  # cached: made once
    x = np.random.default_rng(0).random((1, 3, 800, 608), dtype=np.float32)
    before, after = _session(source), _session(fast)
    name = before.get_inputs()[0].name
    for a, b in zip(before.run(None, {name: x}), after.run(None, {name: x})):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_model_without_the_pattern_runs_as_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from onnx import TensorProto, helper, save

    monkeypatch.setenv("DOCRAG_CACHE", str(tmp_path / "cache"))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]))
    assert fuse_hardswish(model) == 0
    path = tmp_path / "relu.onnx"
    save(model, str(path))
    assert cheaper_model(path) == path
    assert cheaper_model(path) == path  # the verdict is cached too


def test_a_shared_use_of_an_intermediate_is_left_alone() -> None:
    from onnx import TensorProto, helper

    def const(name: str, value: float):  # type: ignore[no-untyped-def]
        return helper.make_node("Constant", [], [name], value=helper.make_tensor(name, TensorProto.FLOAT, [], [value]))

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 2]) for n in ("y", "c")]
    nodes = [const("three", 3.0), const("zero", 0.0), const("six", 6.0),
             helper.make_node("Add", ["x", "three"], ["a"]), helper.make_node("Clip", ["a", "zero", "six"], ["c"]),
             helper.make_node("Mul", ["x", "c"], ["m"]), helper.make_node("Div", ["m", "six"], ["y"])]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], outs))  # "c" is an output too
    assert fuse_hardswish(model) == 0
    assert [n.op_type for n in model.graph.node].count("Clip") == 1


def test_unwritable_cache_runs_the_original(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from docrag.layout.picodet import layout_model_path

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("DOCRAG_CACHE", str(blocker))
    assert cheaper_model(layout_model_path()) == layout_model_path()
