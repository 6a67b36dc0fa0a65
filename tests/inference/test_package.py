"""Model package: round trip, and every kind of bad package failing with the file and the mismatch."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fusion_monitor.inference import (
    FORMAT_VERSION,
    ExportError,
    PackageError,
    ParityError,
    create_backend,
    load_package,
    write_package,
)
from fusion_monitor.inference.toy import TINY_FACTORY as FACTORY
from fusion_monitor.inference.toy import TINY_MODALITIES


def _edit_metadata(pkg_dir, fn):
    path = pkg_dir / "metadata.json"
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def test_round_trip_keeps_every_field(plain_package, tiny_inputs, extra_metadata):
    EXTRA = extra_metadata
    md = load_package(plain_package.path).metadata
    assert md == plain_package.metadata
    assert md.format_version == FORMAT_VERSION
    assert [(i.name, i.shape, i.dtype, i.modality) for i in md.inputs] == [
        (n, a.shape, "float32", TINY_MODALITIES[n]) for n, a in tiny_inputs.items()]
    assert md.outputs == ("heatmap", "boxes")
    assert md.stream_names == () and not md.decomposed
    assert md.classes == tuple(EXTRA["classes"])
    assert md.bev_grid == EXTRA["bev_grid"] and md.preprocessing == EXTRA["preprocessing"]
    assert md.decoding == EXTRA["decoding"]
    assert md.extra == {"note": "test package"}
    assert md.source["factory"] == FACTORY and md.source["checkpoint"] == "checkpoint.pt"
    assert len(md.source["model_sha256"]) == 64
    assert md.exporter["opset"] >= 17 and md.exporter["torch"] and md.exporter["onnxruntime"]
    assert md.verification["max_relative_error"] <= 1e-4
    assert plain_package.onnx_path.is_file() and plain_package.checkpoint_path.is_file()
    assert not any(p.name.endswith(".data") for p in plain_package.path.iterdir()), "weights must be inside the ONNX"


def test_metadata_inputs_are_name_shape_dtype_modality_tuples(plain_package):
    name, shape, dtype, modality = plain_package.metadata.inputs[0]
    assert (name, shape, dtype, modality) == ("camera", (1, 2, 3, 24, 32), "float32", "camera")
    assert plain_package.metadata.modalities["calib"] is None


def test_missing_directory(tmp_path):
    with pytest.raises(PackageError, match="does not exist") as e:
        load_package(tmp_path / "nope")
    assert e.value.path == tmp_path / "nope"


def test_invalid_json_names_the_metadata_file(package_copy):
    (package_copy / "metadata.json").write_text("{not json")
    with pytest.raises(PackageError, match="not valid JSON") as e:
        load_package(package_copy)
    assert e.value.path.name == "metadata.json"


def test_newer_format_version_is_refused(package_copy):
    _edit_metadata(package_copy, lambda d: d.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(PackageError, match=f"version {FORMAT_VERSION + 1} is newer than the supported version"):
        load_package(package_copy)


def test_unknown_metadata_key_is_refused(package_copy):
    _edit_metadata(package_copy, lambda d: d.update(surprise=1))
    with pytest.raises(PackageError, match="unknown metadata keys \\['surprise'\\]"):
        load_package(package_copy)


def test_truncated_onnx_fails_the_hash_check(package_copy):
    onnx_path = package_copy / "model.onnx"
    onnx_path.write_bytes(onnx_path.read_bytes()[:1000])
    with pytest.raises(PackageError, match="sha256 .* does not match") as e:
        load_package(package_copy)
    assert e.value.path == onnx_path


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_onnx_is_named_even_without_a_hash(package_copy, damage):
    onnx_path = package_copy / "model.onnx"
    data = onnx_path.read_bytes()
    onnx_path.write_bytes(data[: len(data) // 3] if damage == "truncate" else b"\x08\xff\xff\xff garbage" * 50)
    _edit_metadata(package_copy, lambda d: d.update(onnx_sha256=""))
    with pytest.raises(PackageError) as e:
        load_package(package_copy)
    assert e.value.path == onnx_path
    assert "ONNX" in e.value.reason


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["inputs"][1].update(name="lidar_points"), "graph inputs .* do not match the metadata inputs"),
        (lambda d: d["inputs"][1].update(shape=[1, 4, 32, 32]), "input 'lidar': graph shape \\[1, 4, 16, 16\\] does "
                                                                "not match the metadata shape \\[1, 4, 32, 32\\]"),
        (lambda d: d["inputs"][0].update(dtype="float16"), "input 'camera': graph dtype float32 does not match"),
        (lambda d: d["outputs"].reverse(), "graph outputs \\['heatmap', 'boxes'\\] do not match"),
        (lambda d: d["outputs"][0].update(shape=[1, 9, 16, 16]), "output 'heatmap': graph shape"),
    ],
)
def test_metadata_that_does_not_match_the_graph(package_copy, edit, message):
    _edit_metadata(package_copy, edit)
    with pytest.raises(PackageError, match=message) as e:
        load_package(package_copy)
    assert e.value.path == package_copy / "model.onnx"


def test_missing_checkpoint_is_named(package_copy):
    (package_copy / "checkpoint.pt").unlink()
    with pytest.raises(PackageError, match="checkpoint .* is missing"):
        load_package(package_copy)


def test_bad_metadata_values_are_named(package_copy):
    _edit_metadata(package_copy, lambda d: d["inputs"][0].update(dtype="complex64"))
    with pytest.raises(PackageError, match="input 'camera': dtype 'complex64' is not one of"):
        load_package(package_copy)


def test_pytorch_backend_rebuilds_from_factory_and_checkpoint(plain_package, tiny_inputs, tiny_model, reference):
    with create_backend(plain_package, "pytorch") as backend:
        got = backend.run(tiny_inputs)
    ref = reference(tiny_model, tiny_inputs)
    for name in ref:
        np.testing.assert_array_equal(got[name], ref[name])


def test_export_refuses_to_write_a_package_that_disagrees(tmp_path, tiny_model, tiny_inputs):
    out = tmp_path / "strict"
    # float32 rounding differences between ONNX Runtime and PyTorch exceed an absurd tolerance
    with pytest.raises(ParityError, match="disagrees with PyTorch beyond 1e-12 relative"):
        write_package(out, tiny_model, tiny_inputs, TINY_MODALITIES, decomposed=False, tolerance=1e-12)
    assert not out.exists()
    assert not list(tmp_path.iterdir()), "a failed export must leave no files behind"


def test_export_validates_its_arguments(tmp_path, tiny_model, tiny_inputs):
    with pytest.raises(ExportError, match="not arguments of TinyFusionNet.forward"):
        write_package(tmp_path / "a", tiny_model, {**tiny_inputs, "sonar": tiny_inputs["calib"]}, decomposed=False)
    with pytest.raises(ExportError, match="lack required arguments \\['calib'\\]"):
        write_package(tmp_path / "b", tiny_model, {k: v for k, v in tiny_inputs.items() if k != "calib"},
                      decomposed=False)
    with pytest.raises(ExportError, match="do not say which modality inputs \\['calib'\\]"):
        write_package(tmp_path / "c", tiny_model, tiny_inputs, {"camera": "camera", "lidar": "lidar", "radar": "radar"},
                      decomposed=False)


def test_export_refuses_to_overwrite(plain_package, tiny_model, tiny_inputs):
    with pytest.raises(ExportError, match="exists and is not empty"):
        write_package(plain_package.path, tiny_model, tiny_inputs, decomposed=False)


def test_export_does_not_mutate_the_model(tmp_path, tiny_inputs):
    import torch

    from fusion_monitor.inference.toy import tiny_fusion_net

    model = tiny_fusion_net(seed=3).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    write_package(tmp_path / "p", model, tiny_inputs, TINY_MODALITIES, decomposed=False)
    assert model.training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_attribution_identity_survives_an_equivalent_re_export_only(decomposed_package):
    """Baselines are keyed by what attribution depends on (weights, streams, LMD rules), not the graph file."""
    from dataclasses import replace

    md = decomposed_package.metadata
    assert md.source.get("model_sha256") and md.attribution_sha256 != md.onnx_sha256
    re_export = replace(md, onnx_sha256="0" * 64, exporter={**md.exporter, "opset": 99})
    assert re_export.attribution_sha256 == md.attribution_sha256
    retrained = replace(md, source={**md.source, "model_sha256": "f" * 64})
    other_rule = replace(md, lmd={**md.lmd, "bn_rule": "uniform"})
    assert len({md.attribution_sha256, retrained.attribution_sha256, other_rule.attribution_sha256}) == 3
    unknown_source = replace(md, source={})
    assert unknown_source.attribution_sha256 == md.onnx_sha256  # nothing better to go on: the graph file
