"""`fusion-monitor export` and its SPEC parsing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fusion_monitor.inference import load_package
from fusion_monitor.inference.examples import parse_example_spec, parse_modalities
from fusion_monitor.tools.cli import main

SPEC = "camera=1x2x3x24x32,lidar=1x4x16x16,radar=1x2x16x16:float32,calib=1x4"
MODS = "camera=camera,lidar=lidar,radar=radar,calib=none"
MODEL = "fusion_monitor.inference.toy:tiny_fusion_net"


def test_example_spec_string():
    ex = parse_example_spec("camera=1x6x3x96x176,lidar=1x10x128x128:float32,mask=1x3:bool,idx=4:int64", seed=1)
    assert {k: (v.shape, v.dtype.name) for k, v in ex.items()} == {
        "camera": ((1, 6, 3, 96, 176), "float32"), "lidar": ((1, 10, 128, 128), "float32"),
        "mask": ((1, 3), "bool"), "idx": ((4,), "int64")}
    again = parse_example_spec("camera=1x6x3x96x176,lidar=1x10x128x128:float32,mask=1x3:bool,idx=4:int64", seed=1)
    np.testing.assert_array_equal(ex["camera"], again["camera"])


@pytest.mark.parametrize(("spec", "message"), [
    ("camera=1x3x", "is not NAME=DIMS"),
    ("camera=1x3:complex64", "dtype 'complex64'"),
    ("a=1,a=2", "names input 'a' twice"),
    ("", "empty"),
])
def test_bad_example_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_example_spec(spec)


def test_example_files(tmp_path):
    arrays = {"lidar": np.ones((1, 2), np.float32), "calib": np.eye(4, dtype=np.float32)[None]}
    np.savez(tmp_path / "ex.npz", **arrays)
    torch.save({k: torch.from_numpy(v) for k, v in arrays.items()}, tmp_path / "ex.pt")
    for name in ("ex.npz", "ex.pt"):
        got = parse_example_spec(str(tmp_path / name))
        assert set(got) == set(arrays) and all(np.array_equal(got[k], arrays[k]) for k in arrays)
    with pytest.raises(ValueError, match="example file does not exist"):
        parse_example_spec(str(tmp_path / "missing.npz"))


def test_modalities_spec():
    assert parse_modalities(MODS) == {"camera": "camera", "lidar": "lidar", "radar": "radar", "calib": None}
    assert parse_modalities(None) is None
    with pytest.raises(ValueError, match="is not INPUT=MODALITY"):
        parse_modalities("camera")


def test_cli_exports_a_verified_plain_package(tmp_path, capsys):
    out = tmp_path / "pkg"
    ckpt = tmp_path / "weights.pt"
    from fusion_monitor.inference.toy import tiny_fusion_net

    torch.save({"state_dict": tiny_fusion_net(seed=7).state_dict()}, ckpt)
    meta = tmp_path / "extra.yaml"
    meta.write_text("classes: [car, pedestrian, cyclist]\nbev_grid: {cells: 16}\nowner: perception\n")
    rc = main(["export", "--model", MODEL, "--checkpoint", str(ckpt), "--example", SPEC, "--modalities", MODS,
               "--plain", "--metadata", str(meta), "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert "ONNX Runtime vs PyTorch max relative error" in capsys.readouterr().out
    md = load_package(out).metadata
    assert md.classes == ("car", "pedestrian", "cyclist") and md.extra == {"owner": "perception"}
    assert md.modalities == {"camera": "camera", "lidar": "lidar", "radar": "radar", "calib": None}
    assert md.source["factory"] == MODEL
    # the checkpoint's weights, not the factory's defaults, were exported
    from fusion_monitor.inference.factory import state_dict_sha256

    assert md.source["model_sha256"] == state_dict_sha256(tiny_fusion_net(seed=7))


@pytest.mark.parametrize(("argv", "message"), [
    (["--example", SPEC, "--out", "x"], "give exactly one of --model"),
    (["--model", MODEL, "--out", "x"], "--example SPEC is required"),
    (["--model", MODEL, "--example", "camera=1x"], "is not NAME=DIMS"),
    (["--model", "no_such_module:make", "--example", SPEC, "--out", "x"], "cannot import module 'no_such_module'"),
    (["--model", MODEL, "--checkpoint", "missing.pt", "--example", SPEC, "--out", "x"], "checkpoint file does not exist"),
])
def test_cli_bad_arguments(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(["export", *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_engine_build_on_a_machine_without_tensorrt(plain_package, capsys):
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    assert main(["export", "--package", str(plain_package.path), "--engine"]) == 2
    assert "TensorRT is not importable" in capsys.readouterr().err


def test_cli_refuses_a_corrupt_package(package_copy, capsys):
    (package_copy / "model.onnx").write_bytes(b"not onnx")
    assert main(["export", "--package", str(package_copy), "--engine"]) == 2
    err = capsys.readouterr().err
    assert "model.onnx" in err and "sha256" in err


def test_cli_exports_a_decomposed_package(tmp_path, capsys):
    try:
        from fusion_monitor.lmd import decompose, export_onnx  # noqa: F401
    except ImportError as e:
        pytest.skip(f"fusion_monitor.lmd does not provide decompose/export_onnx yet ({e})")
    out = tmp_path / "lmd"
    rc = main(["export", "--model", MODEL, "--example", SPEC, "--modalities", MODS, "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    md = load_package(out).metadata
    assert md.decomposed and md.stream_names == ("camera", "lidar", "radar", "bias")
    assert md.verification["max_relative_error"] <= 1e-4
