"""TensorRT backend (TensorRT 10 Python API, imported lazily): build, cache, validate and run engines.

Device buffers and the CUDA stream come from torch (a hard dependency), so no pycuda /
cuda-python is needed: inputs are copied into preallocated device tensors, the engine runs
with ``execute_async_v3`` on a dedicated stream, outputs are copied into preallocated pinned
host buffers.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fusion_monitor.inference.backend import Backend
from fusion_monitor.inference.engine_cache import PRECISIONS, EngineCache, EngineKey
from fusion_monitor.inference.errors import BackendUnavailableError, EngineCacheError, PackageError
from fusion_monitor.inference.package import ModelPackage

log = logging.getLogger(__name__)


def import_tensorrt():
    """``import tensorrt`` or BackendUnavailableError saying why (not installed, wrong major version)."""
    try:
        import tensorrt as trt
    except Exception as e:  # ImportError, or the PyPI placeholder's RuntimeError
        raise BackendUnavailableError(f"TensorRT is not importable: {type(e).__name__}: {e}") from None
    major = int(str(trt.__version__).split(".")[0])
    if major < 10:
        raise BackendUnavailableError(f"TensorRT {trt.__version__} is too old: the backend needs TensorRT >= 10")
    return trt


def current_device(device_id: int = 0) -> tuple[str, str]:
    """(GPU name, "major.minor" compute capability) of a CUDA device, via torch."""
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailableError("no CUDA device (torch.cuda.is_available() is False)")
    if device_id >= torch.cuda.device_count():
        raise BackendUnavailableError(f"CUDA device {device_id} does not exist ({torch.cuda.device_count()} devices)")
    major, minor = torch.cuda.get_device_capability(device_id)
    return torch.cuda.get_device_name(device_id), f"{major}.{minor}"


def engine_key_for(package: ModelPackage, precision: str, device_id: int = 0) -> EngineKey:
    """The cache key of ``package``'s engine on this machine's TensorRT and GPU."""
    trt = import_tensorrt()
    gpu, cc = current_device(device_id)
    sha = package.metadata.onnx_sha256
    if not sha:
        from fusion_monitor.inference.package import file_sha256

        sha = file_sha256(package.onnx_path)
    return EngineKey(onnx_sha256=sha, tensorrt_version=str(trt.__version__), gpu_name=gpu,
                     compute_capability=cc, precision=precision)


@dataclass(frozen=True)
class BuildOptions:
    """Engine build settings.

    Attributes
    ----------
    precision : {"fp32", "fp16", "int8"}
        fp16 / int8 set the builder flags (int8 also allows fp16). int8 needs an explicitly
        quantized graph (Q/DQ nodes): no calibrator is run.
    workspace_mib : int
        Builder workspace memory pool limit in MiB.
    timing_cache : Path or None
        Timing cache file, read if present and updated after the build (speeds rebuilds).
    """

    precision: str = "fp32"
    workspace_mib: int = 1024
    timing_cache: Path | None = None

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {self.precision!r}")
        if not isinstance(self.workspace_mib, int) or self.workspace_mib <= 0:
            raise ValueError(f"workspace_mib must be a positive integer, got {self.workspace_mib!r}")


def build_engine(package: ModelPackage, options: BuildOptions) -> bytes:
    """Build a serialized TensorRT engine from the package's ONNX graph.

    Raises
    ------
    PackageError
        When TensorRT's ONNX parser rejects the graph (the parser's errors are quoted).
    EngineCacheError
        When the builder fails.
    """
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    onnx_path = package.onnx_path
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise PackageError(onnx_path, "TensorRT's ONNX parser rejected the graph: " + "; ".join(errors))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mib << 20)
    if options.precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # TF32 (on by default on Ampere+) breaks fp32 parity
    if options.precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if options.precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
    dynamic = False
    profile = builder.create_optimization_profile()
    for spec in package.metadata.inputs:
        tensor = next((network.get_input(i) for i in range(network.num_inputs)
                       if network.get_input(i).name == spec.name), None)
        if tensor is None:
            raise PackageError(onnx_path, f"TensorRT network has no input {spec.name!r}")
        if any(d < 0 for d in tensor.shape):
            dynamic = True
            profile.set_shape(spec.name, spec.shape, spec.shape, spec.shape)
    if dynamic:
        config.add_optimization_profile(profile)
    cache_bytes = b""
    if options.timing_cache is not None and Path(options.timing_cache).is_file():
        cache_bytes = Path(options.timing_cache).read_bytes()
    timing_cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(timing_cache, ignore_mismatch=False)
    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineCacheError(onnx_path, f"TensorRT failed to build a {options.precision} engine (see the TensorRT log)")
    log.info("built %s TensorRT engine for %s in %.1f s", options.precision, onnx_path, time.perf_counter() - t0)
    if options.timing_cache is not None:
        Path(options.timing_cache).parent.mkdir(parents=True, exist_ok=True)
        Path(options.timing_cache).write_bytes(bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)


class TensorRTBackend(Backend):
    """Run a package as a TensorRT engine, from the engine cache (or built, when allowed).

    Parameters
    ----------
    package : ModelPackage
        The loaded package.
    precision : {"fp32", "fp16", "int8"}
        Engine precision (part of the cache key).
    rebuild : bool
        When no cached engine fits this TensorRT / GPU / precision / ONNX: True builds one
        (minutes for large graphs) and stores it; False (default) refuses with
        EngineCacheError saying what the cache holds. Nothing is rebuilt silently.
    engine_cache_dir : str or Path or None
        Engine cache directory (default: the package's ``engines/``).
    engine_path : str or Path or None
        Use this engine file; its sidecar ``<name>.json`` must record this machine's key.
    workspace_mib : int
        Builder workspace limit in MiB.
    timing_cache : str or Path or None
        Builder timing cache file (default: ``timing.cache`` in the engine cache directory).
    device_id : int
        CUDA device index.
    copy_outputs : bool
        See :class:`Backend`.
    """

    kind = "tensorrt"

    def __init__(self, package: ModelPackage, *, precision: str = "fp32", rebuild: bool = False,
                 engine_cache_dir: str | Path | None = None, engine_path: str | Path | None = None,
                 workspace_mib: int = 1024, timing_cache: str | Path | None = None, device_id: int = 0,
                 copy_outputs: bool = True):
        super().__init__(package, copy_outputs=copy_outputs)
        trt = import_tensorrt()
        import torch

        key = engine_key_for(package, precision, device_id)
        torch.cuda.set_device(device_id)  # TensorRT builds and runs on the current CUDA device
        cache = EngineCache(engine_cache_dir or package.engine_dir)
        self.key = key
        self.cache = cache
        if engine_path is not None:
            path = Path(engine_path)
            if not path.is_file():
                raise EngineCacheError(path, "engine file does not exist")
            from fusion_monitor.inference.engine_cache import read_sidecar

            recorded = read_sidecar(path.with_suffix(".json"))
            if recorded is None:
                raise EngineCacheError(path, f"engine has no readable key file {path.with_suffix('.json').name}")
            if recorded != key:
                raise EngineCacheError(path, "engine was built for " + ", ".join(key.differences(recorded)))
        else:
            try:
                path = cache.lookup(key)
            except EngineCacheError:
                if not rebuild:
                    raise
                path = None  # a damaged cache entry is rebuilt only when rebuilding is allowed
            if path is None:
                if not rebuild:
                    raise EngineCacheError(cache.directory, cache.explain_miss(key) + f"; wanted TensorRT "
                                           f"{key.tensorrt_version} on {key.gpu_name} (sm {key.compute_capability}), "
                                           f"{precision}. Build it with `fusion-monitor export --package "
                                           f"{package.path} --engine --precision {precision}` or pass rebuild=True")
                options = BuildOptions(precision=precision, workspace_mib=int(workspace_mib),
                                       timing_cache=Path(timing_cache) if timing_cache else cache.directory / "timing.cache")
                engine_bytes = build_engine(package, options)
                path = cache.store(key, engine_bytes, {"workspace_mib": options.workspace_mib,
                                                       "built_unix_s": time.time()})
        self.engine_path = path
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise EngineCacheError(path, f"TensorRT {trt.__version__} cannot deserialize this engine (built for "
                                         "another TensorRT version or GPU, or corrupt)")
        self._validate_io(trt, path)
        self.context = self.engine.create_execution_context()
        self.device = torch.device("cuda", device_id)
        self.stream = torch.cuda.Stream(device=self.device)
        self._torch = torch
        self._dev_in = {}
        self._dev_out = {}
        self._host_out = {}
        for spec in self.metadata.inputs:
            t = torch.empty(spec.shape, dtype=getattr(torch, spec.dtype), device=self.device)
            self._dev_in[spec.name] = t
            if -1 in tuple(self.engine.get_tensor_shape(spec.name)):
                self.context.set_input_shape(spec.name, spec.shape)
            self.context.set_tensor_address(spec.name, t.data_ptr())
        for spec in self.metadata.output_specs:
            t = torch.empty(spec.shape, dtype=getattr(torch, spec.dtype), device=self.device)
            self._dev_out[spec.name] = t
            self._host_out[spec.name] = torch.empty(spec.shape, dtype=t.dtype, pin_memory=True)
            self.context.set_tensor_address(spec.name, t.data_ptr())
        self.precision = precision
        self.name = f"tensorrt-{precision}"

    def _validate_io(self, trt, path: Path) -> None:
        engine = self.engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if sorted(inputs) != sorted(self.metadata.input_names):
            raise EngineCacheError(path, f"engine inputs {inputs} do not match the package inputs "
                                         f"{list(self.metadata.input_names)}")
        if sorted(outputs) != sorted(self.metadata.outputs):
            raise EngineCacheError(path, f"engine outputs {outputs} do not match the package outputs "
                                         f"{list(self.metadata.outputs)}")
        for spec in (*self.metadata.inputs, *self.metadata.output_specs):
            shape = tuple(engine.get_tensor_shape(spec.name))
            if len(shape) != len(spec.shape) or any(d not in (-1, s) for d, s in zip(shape, spec.shape)):
                raise EngineCacheError(path, f"engine tensor {spec.name!r} has shape {list(shape)}, the package "
                                             f"says {list(spec.shape)}")
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(spec.name))).name
            if dtype != spec.dtype:
                raise EngineCacheError(path, f"engine tensor {spec.name!r} has dtype {dtype}, the package says {spec.dtype}")

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        with torch.cuda.stream(self.stream):
            for name, arr in inputs.items():
                self._dev_in[name].copy_(torch.from_numpy(arr), non_blocking=True)
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise EngineCacheError(self.engine_path, "TensorRT execute_async_v3 failed (see the TensorRT log)")
            for name, t in self._dev_out.items():
                self._host_out[name].copy_(t, non_blocking=True)
        self.stream.synchronize()
        return {name: t.numpy() for name, t in self._host_out.items()}

    def close(self) -> None:
        super().close()
        self.context = None
        self.engine = None
        self._dev_in = {}
        self._dev_out = {}


PARITY_TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "int8": 5e-2}
"""Relative error vs ONNX Runtime CPU accepted when validating a freshly built engine."""


def build_and_validate(package: ModelPackage, inputs: dict[str, np.ndarray] | None = None, *, precision: str = "fp32",
                       tolerance: float | None = None, **options) -> tuple[TensorRTBackend, dict[str, float]]:
    """Build (or reuse) the engine of ``package`` and check it against ONNX Runtime CPU.

    Parameters
    ----------
    package : ModelPackage
        The package.
    inputs : dict of str to numpy.ndarray, optional
        Validation inputs (default: seeded standard normal of the package's input specs).
    precision : {"fp32", "fp16", "int8"}
        Engine precision.
    tolerance : float, optional
        Accepted relative error (default PARITY_TOLERANCE[precision]).
    **options
        Further TensorRTBackend options (engine_cache_dir, workspace_mib, timing_cache, device_id).

    Returns
    -------
    (TensorRTBackend, dict of str to float)
        The backend and the relative error per output.

    Raises
    ------
    EngineCacheError
        When the engine disagrees with ONNX Runtime beyond the tolerance (the engine file is
        then removed from the cache).
    """
    from fusion_monitor.inference.export import compare_outputs
    from fusion_monitor.inference.onnxruntime_backend import OnnxRuntimeBackend

    if inputs is None:
        rng = np.random.default_rng(0)
        inputs = {i.name: rng.standard_normal(i.shape).astype(i.dtype) for i in package.metadata.inputs}
    tol = PARITY_TOLERANCE[precision] if tolerance is None else tolerance
    backend = TensorRTBackend(package, precision=precision, rebuild=True, **options)
    got = backend.run(inputs)
    with OnnxRuntimeBackend(package, device="cpu") as ort_backend:
        reference = ort_backend.run(inputs)
    errors = compare_outputs(got, reference)
    bad = {n: e for n, e in errors.items() if not e <= tol}
    if bad:
        path = backend.engine_path
        backend.close()
        if path.parent == backend.cache.directory:
            path.unlink(missing_ok=True)
            path.with_suffix(".json").unlink(missing_ok=True)
        detail = ", ".join(f"{n}: {e:.3g}" for n, e in bad.items())
        raise EngineCacheError(path, f"{precision} engine disagrees with ONNX Runtime beyond {tol:g} relative "
                                     f"({detail}); engine removed")
    return backend, errors
