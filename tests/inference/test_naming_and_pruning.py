"""Output naming of nested outputs, and inputs that do not reach the outputs."""

from __future__ import annotations

import numpy as np
import torch

from fusion_monitor.inference import compare_outputs, create_backend, relative_error, write_package
from fusion_monitor.inference.naming import flatten_named


class NestedOutputs(torch.nn.Module):
    """Tuple-and-dict outputs; ``unused`` never reaches them."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 3, 3, padding=1)

    def forward(self, lidar, radar, unused):
        x = self.conv(lidar + radar)
        return {"heads": (x.sigmoid(), x.mean(dim=1)), "score": x.amax(dim=(2, 3))}


def test_flatten_named_paths():
    t = torch.zeros(1)
    assert [n for n, _ in flatten_named(t)] == ["output"]
    assert [n for n, _ in flatten_named({"hm": t, "reg": (t, [t, t])})] == ["hm", "reg.0", "reg.1.0", "reg.1.1"]


def test_relative_error_definition():
    ref = np.array([0.0, 2.0, -4.0], np.float32)
    assert relative_error(ref + np.float32(1e-3), ref) == np.float32(1e-3) / 4
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(np.array([1, 2]), np.array([1, 3])) == 0.5  # integers: fraction that differ
    assert relative_error(np.array([np.nan]), np.array([1.0])) == float("inf")
    assert relative_error(np.zeros(2), np.zeros(3)) == float("inf")


def test_nested_outputs_and_pruned_inputs(tmp_path):
    torch.manual_seed(0)
    model = NestedOutputs().eval()
    rng = np.random.default_rng(0)
    ex = {"lidar": rng.standard_normal((1, 2, 8, 8)).astype(np.float32),
          "radar": rng.standard_normal((1, 2, 8, 8)).astype(np.float32),
          "unused": rng.standard_normal((1, 4)).astype(np.float32)}
    pkg = write_package(tmp_path / "nested", model, ex, {"lidar": "lidar", "radar": "radar", "unused": None},
                        decomposed=False, factory=None)
    md = pkg.metadata
    assert md.outputs == ("heads.0", "heads.1", "score")
    pruned = md.extra.get("unused_inputs", [])
    if pruned:  # an exporter may drop inputs that do not reach the outputs; the package records them
        assert md.input_names == ("lidar", "radar")
        assert pruned == [{"name": "unused", "shape": [1, 4], "dtype": "float32"}]
    else:
        assert md.input_names == ("lidar", "radar", "unused")
    with torch.no_grad():
        ref = dict(flatten_named(model(**{k: torch.from_numpy(v) for k, v in ex.items()})))
    for kind, options in (("onnxruntime", {}), ("pytorch", {"model": model})):
        backend = create_backend(pkg, kind, **options)
        got = backend.run(ex)  # a pruned input may still be passed (and is ignored)
        errors = compare_outputs(got, {k: v.numpy() for k, v in ref.items()})
        assert max(errors.values()) <= 1e-4, (kind, errors)
        if pruned:
            assert set(backend.run({k: v for k, v in ex.items() if k != "unused"})) == set(md.outputs)
