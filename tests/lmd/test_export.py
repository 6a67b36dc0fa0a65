"""The deployable single-pass form: one ONNX graph (detector output + streams) that ONNX Runtime
runs with the same numbers as PyTorch, and the generated GraphModule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fusion_monitor.lmd import export_onnx, onnx_names

from .helpers import leaves, rel_err, zoo_case

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
pytest.importorskip("onnxscript", reason="the torch.export-based ONNX exporter needs onnxscript")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet_bn", "transformer"])
def test_onnx_matches_pytorch(name, tmp_path):
    model, ex, other, dm = zoo_case(name, torch.float32)
    path = export_onnx(dm, ex, tmp_path / f"{name}.onnx")
    assert path.exists() and not (tmp_path / f"{name}.onnx.data").exists()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    in_names, out_names = onnx_names(dm)
    assert [i.name for i in sess.get_inputs()] == list(ex) == in_names
    assert [o.name for o in sess.get_outputs()] == out_names
    for x in (ex, other):  # the graph is input-independent: any inputs of the example's shapes
        res = sess.run(None, {k: v.numpy() for k, v in x.items()})
        out = dm(**x)
        want = leaves(out.output) + leaves(out.streams)
        assert len(res) == len(want)
        for got, w in zip(res, want, strict=True):
            assert got.shape == tuple(w.shape)
            assert rel_err(torch.from_numpy(np.asarray(got)), w) <= 1e-4
    if name == "resnet_bn":
        assert out_names == ["output_heatmap", "output_reg", "streams_heatmap", "streams_reg"]


def test_compiled_graph_module_matches_interpreter():
    model, ex, other, dm = zoo_case("simplebev", torch.float32)
    compiled = dm.compile(**ex)
    assert isinstance(compiled.graph_module, torch.nn.Module)
    for x in (ex, other):
        a, b = compiled(**x), dm(**x)
        assert a.stream_names == b.stream_names
        for u, v in zip(leaves(a.streams) + leaves(a.output), leaves(b.streams) + leaves(b.output), strict=True):
            assert rel_err(u, v) <= 1e-6
