"""Backends: parity with PyTorch, input validation, buffers, auto selection; TensorRT on GPUs only."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_monitor.inference import (
    BackendUnavailableError,
    EngineCacheError,
    InputMismatchError,
    compare_outputs,
    create_backend,
    relative_error,
)

TOL = 1e-4


def _shifted(inputs, seed):
    rng = np.random.default_rng(seed)
    return {k: (v + rng.standard_normal(v.shape).astype(v.dtype) * 0.5).astype(v.dtype) for k, v in inputs.items()}


@pytest.mark.parametrize("kind", ["onnxruntime", "pytorch", "auto"])
def test_plain_parity_with_pytorch(plain_package, tiny_model, tiny_inputs, reference, kind):
    backend = create_backend(plain_package, kind)
    for seed in (1, 2):  # inputs other than the export example
        inputs = _shifted(tiny_inputs, seed)
        got = backend.run(inputs)
        ref = reference(tiny_model, inputs)
        assert list(got) == list(plain_package.metadata.outputs)
        errors = compare_outputs(got, ref)
        assert max(errors.values()) <= TOL, errors
    backend.close()


@pytest.mark.parametrize("kind", ["onnxruntime", "pytorch"])
def test_decomposed_parity_with_pytorch(decomposed_package, tiny_model, tiny_inputs, reference, kind):
    md = decomposed_package.metadata
    assert md.decomposed and md.stream_names[-1] == "bias"
    assert len(md.outputs) == 2 * len(md.model_outputs)
    inputs = _shifted(tiny_inputs, 5)
    ref = reference(tiny_model, inputs)
    with create_backend(decomposed_package, "pytorch") as torch_backend:
        torch_out = torch_backend.run(inputs)
    with create_backend(decomposed_package, kind) as backend:
        got = backend.run(inputs)
    for name in md.model_outputs:  # the full stream is the plain model
        assert relative_error(got[name], ref[name]) <= TOL
    errors = compare_outputs(got, torch_out)  # every output and every stream
    assert max(errors.values()) <= TOL, errors
    for name, stream_name in md.stream_outputs.items():  # streams sum to the output (bias closes the sum)
        streams = got[stream_name]
        assert streams.shape == (len(md.stream_names), *got[name].shape)
        assert relative_error(streams.sum(axis=0), got[name]) <= 1e-4


def test_onnxruntime_thread_settings_and_warmup(plain_package, tiny_inputs):
    backend = create_backend(plain_package, "onnxruntime", intra_op_threads=1, inter_op_threads=1,
                             graph_optimization="basic")
    backend.warmup(2)
    assert backend.name == "onnxruntime-cpu" and backend.providers == ["CPUExecutionProvider"]
    assert backend.why == "onnxruntime-cpu requested explicitly"
    out = backend.run(tiny_inputs)
    assert set(out) == {"heatmap", "boxes"}
    opts = backend.session.get_session_options()
    assert opts.intra_op_num_threads == 1 and opts.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    quiet = create_backend(plain_package, "onnxruntime", intra_op_threads=2, spinning=False)
    assert quiet.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert compare_outputs(quiet.run(tiny_inputs), out)["heatmap"] <= TOL


def test_preallocated_output_buffers_are_reused(plain_package, tiny_inputs):
    backend = create_backend(plain_package, "onnxruntime", copy_outputs=False)
    first = backend.run(tiny_inputs)
    first_copy = {k: v.copy() for k, v in first.items()}
    second = backend.run(_shifted(tiny_inputs, 9))
    for name in first:
        assert second[name] is first[name], "outputs must land in the same preallocated buffer"
        assert not np.array_equal(second[name], first_copy[name])
    owned = create_backend(plain_package, "onnxruntime").run(tiny_inputs)
    np.testing.assert_array_equal(owned["heatmap"], first_copy["heatmap"])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("lidar"), "missing inputs \\['lidar'\\]"),
        (lambda d: d.update(sonar=np.zeros(3, np.float32)), "unexpected inputs \\['sonar'\\]"),
        (lambda d: d.update(lidar=np.zeros((1, 4, 16, 15), np.float32)),
         "input 'lidar' has shape \\[1, 4, 16, 15\\], expected \\[1, 4, 16, 16\\]"),
        (lambda d: d.update(calib=d["calib"].astype(np.float64)), "input 'calib' has dtype float64, expected float32"),
        (lambda d: d.update(radar=d["radar"].tolist()), "input 'radar' must be a numpy.ndarray, got list"),
    ],
)
@pytest.mark.parametrize("kind", ["onnxruntime", "pytorch"])
def test_wrong_inputs_are_named(plain_package, tiny_inputs, mutate, message, kind):
    inputs = dict(tiny_inputs)
    mutate(inputs)
    backend = create_backend(plain_package, kind)
    with pytest.raises(InputMismatchError, match=message) as e:
        backend.run(inputs)
    assert str(plain_package.path) in str(e.value)


def test_non_contiguous_inputs_are_accepted(plain_package, tiny_inputs):
    backend = create_backend(plain_package, "onnxruntime")
    lidar_t = np.ascontiguousarray(np.swapaxes(tiny_inputs["lidar"], 2, 3))
    inputs = {**tiny_inputs, "lidar": np.swapaxes(lidar_t, 2, 3)}
    assert not inputs["lidar"].flags.c_contiguous
    np.testing.assert_array_equal(backend.run(inputs)["heatmap"], backend.run(tiny_inputs)["heatmap"])


def test_auto_explains_its_choice(plain_package):
    from fusion_monitor.inference.onnxruntime_backend import available_providers

    backend = create_backend(plain_package.path)  # a path works as well as a ModelPackage
    assert backend.kind in ("tensorrt", "onnxruntime")
    assert backend.why.startswith(f"auto chose {backend.name}")
    if backend.name == "onnxruntime-cpu":
        assert "tensorrt:" in backend.why
        for provider in ("TensorrtExecutionProvider", "CUDAExecutionProvider"):
            if provider not in available_providers():
                assert provider in backend.why


def test_auto_forwards_only_options_a_backend_understands(plain_package):
    backend = create_backend(plain_package, "auto", intra_op_threads=1, precision="fp16")
    assert backend.name
    # thread counts are generic: the PyTorch backend takes intra_op_threads as its thread count
    assert create_backend(plain_package, "pytorch", intra_op_threads=1, inter_op_threads=1).name == "pytorch-cpu"


def test_unknown_kind_and_options(plain_package):
    with pytest.raises(ValueError, match="backend kind must be one of"):
        create_backend(plain_package, "openvino")
    with pytest.raises(TypeError, match="unknown options \\['precision'\\]"):
        create_backend(plain_package, "onnxruntime", precision="fp16")
    with pytest.raises(ValueError, match="onnxruntime device must be one of"):
        create_backend(plain_package, "onnxruntime", device="tpu")


def test_unavailable_gpu_provider_is_refused(plain_package):
    from fusion_monitor.inference.onnxruntime_backend import available_providers

    if "CUDAExecutionProvider" in available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    with pytest.raises(BackendUnavailableError, match="CUDAExecutionProvider is not available"):
        create_backend(plain_package, "onnxruntime", device="cuda")


def test_tensorrt_without_tensorrt_says_why(plain_package):
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    with pytest.raises(BackendUnavailableError, match="TensorRT is not importable"):
        create_backend(plain_package, "tensorrt")


# ---------------------------------------------------------------- TensorRT (GPU machines only)
@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_parity(plain_package, tiny_model, tiny_inputs, reference, tmp_path, precision):
    from fusion_monitor.inference.tensorrt_backend import PARITY_TOLERANCE

    backend = create_backend(plain_package, "tensorrt", precision=precision, rebuild=True, engine_cache_dir=tmp_path)
    inputs = _shifted(tiny_inputs, 3)
    errors = compare_outputs(backend.run(inputs), reference(tiny_model, inputs))
    assert max(errors.values()) <= PARITY_TOLERANCE[precision], errors


@pytest.mark.gpu
def test_tensorrt_decomposed_parity(decomposed_package, tiny_inputs, tmp_path):
    trt = create_backend(decomposed_package, "tensorrt", rebuild=True, engine_cache_dir=tmp_path)
    ort = create_backend(decomposed_package, "onnxruntime")
    errors = compare_outputs(trt.run(tiny_inputs), ort.run(tiny_inputs))
    assert max(errors.values()) <= TOL, errors


@pytest.mark.gpu
def test_tensorrt_engine_cache_reuse_and_refusal(plain_package, tiny_inputs, tmp_path):
    with pytest.raises(EngineCacheError, match="no TensorRT engine cached"):
        create_backend(plain_package, "tensorrt", engine_cache_dir=tmp_path)  # rebuild=False: refuse
    built = create_backend(plain_package, "tensorrt", rebuild=True, engine_cache_dir=tmp_path)
    stamp = built.engine_path.stat().st_mtime_ns
    again = create_backend(plain_package, "tensorrt", engine_cache_dir=tmp_path)  # cache hit, no build
    assert again.engine_path == built.engine_path and again.engine_path.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.run(tiny_inputs)["heatmap"], built.run(tiny_inputs)["heatmap"])
    with pytest.raises(EngineCacheError, match="precision fp32 \\(this is fp16\\)"):
        create_backend(plain_package, "tensorrt", precision="fp16", engine_cache_dir=tmp_path)


@pytest.mark.gpu
def test_tensorrt_engine_from_another_gpu_is_refused(plain_package, tmp_path):
    from dataclasses import replace

    from fusion_monitor.inference.engine_cache import EngineCache
    from fusion_monitor.inference.tensorrt_backend import engine_key_for

    built = create_backend(plain_package, "tensorrt", rebuild=True, engine_cache_dir=tmp_path / "a")
    other = replace(built.key, gpu_name="Orin", compute_capability="8.7")
    if other == built.key:
        pytest.skip("this GPU is an Orin")
    foreign = EngineCache(tmp_path / "b").store(other, built.engine_path.read_bytes())
    with pytest.raises(EngineCacheError, match="GPU Orin"):
        create_backend(plain_package, "tensorrt", engine_path=foreign)
    assert engine_key_for(plain_package, "fp32") == built.key


def test_decomposed_metadata_round_trip(decomposed_package):
    from fusion_monitor.inference import load_package

    md = load_package(decomposed_package.path).metadata
    assert md == decomposed_package.metadata
    assert md.stream_names == ("camera", "lidar", "radar", "bias")
    assert md.outputs == ("heatmap", "boxes", "streams.heatmap", "streams.boxes")
    assert md.stream_outputs == {"heatmap": "streams.heatmap", "boxes": "streams.boxes"}
    assert md.output_specs[2].shape == (4, 1, 3, 16, 16)
    assert md.lmd["modalities"]["calib"] is None
    assert {"bn_rule", "norm_rule"} <= set(md.lmd), "the LMD rules used must be recorded"
    assert md.exporter["exporter"] == "fusion_monitor.lmd.export_onnx"


@pytest.mark.slow
@pytest.mark.parametrize("decomposed", [False, True], ids=["plain", "lmd"])
def test_zoo_model_parity(tmp_path, decomposed):
    """A model of the LMD engine's zoo (grid_sample lifting, a calibration input of no modality)."""
    from fusion_monitor.inference import write_package
    from fusion_monitor.inference.naming import flatten_named, stream_output_name
    from fusion_monitor.inference.toy import ZOO_FACTORY, zoo_model

    zoo = pytest.importorskip("fusion_monitor.lmd.zoo", reason="fusion_monitor.lmd.zoo is not available")
    import torch

    entry = zoo.get("simplebev")
    model, example = zoo_model("simplebev"), entry.inputs(seed=0)
    pkg = write_package(tmp_path / "zoo", model, example, entry.modalities, decomposed=decomposed,
                        factory=ZOO_FACTORY, factory_kwargs={"name": "simplebev"})
    inputs = {k: v.numpy() for k, v in entry.inputs(seed=1).items()}
    with torch.no_grad():
        if decomposed:
            from fusion_monitor.lmd import decompose

            res = decompose(model, example, entry.modalities)(**entry.inputs(seed=1))
            ref = dict(flatten_named(res.output))
            ref.update({stream_output_name(n): t for n, t in flatten_named(res.streams)})
        else:
            ref = dict(flatten_named(model(**entry.inputs(seed=1))))
    ref = {k: v.numpy() for k, v in ref.items()}
    for kind in ("onnxruntime", "pytorch"):
        with create_backend(pkg, kind) as backend:
            errors = compare_outputs(backend.run(inputs), ref)
        assert max(errors.values()) <= TOL, (kind, errors)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["package", "package_plain"])
def test_shipped_reference_packages_agree_across_backends(name):
    """Both shipped packages run on ONNX Runtime and on PyTorch (from their checkpoint) and agree.

    The detector outputs agree to 1e-4 on any input. The LMD streams agree to 1e-4 on the export's example inputs;
    on dense random inputs a few ReLU pre-activations sit within float rounding of zero, and a gate that flips
    moves contribution between streams (their sum, the output, does not change): measured up to 1.6 % of the
    largest stream between the backends, and 0.5 % between PyTorch in float32 and float64 on the golden frame.
    """
    from pathlib import Path

    from fusion_monitor.inference import load_package
    from fusion_monitor.model import example_inputs

    pkg = load_package(Path(__file__).resolve().parents[2] / "models" / "reference" / name)
    rng = np.random.default_rng(3)
    dense = {i.name: (rng.random(i.shape) if i.modality else np.ones(i.shape)).astype(np.float32)
             for i in pkg.metadata.inputs}
    example = {k: v.numpy() for k, v in example_inputs(seed=1).items()}
    with create_backend(pkg, "onnxruntime") as ort_b, create_backend(pkg, "pytorch") as torch_b:
        errors = compare_outputs(ort_b.run(example), torch_b.run(example))
        assert set(errors) == set(pkg.metadata.outputs) and max(errors.values()) <= TOL, errors
        a, b = ort_b.run(dense), torch_b.run(dense)
    errors = compare_outputs(a, b)
    outputs = [k for k in errors if not k.startswith("streams.")]
    assert max(errors[k] for k in outputs) <= TOL, errors
    for k in set(errors) - set(outputs):
        assert errors[k] <= 0.03, (k, errors[k])
        for run in (a, b):  # each backend's streams still sum to its own output
            total, out = run[k].sum(axis=0), run[k.removeprefix("streams.")]
            assert np.abs(total - out).max() <= TOL * np.abs(out).max(), k
