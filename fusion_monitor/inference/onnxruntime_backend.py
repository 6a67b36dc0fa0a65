"""ONNX Runtime backend: CPU, CUDA and TensorRT execution providers, I/O binding to preallocated outputs."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from fusion_monitor.inference.backend import Backend
from fusion_monitor.inference.errors import BackendUnavailableError, PackageError
from fusion_monitor.inference.package import ModelPackage

log = logging.getLogger(__name__)

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")

_OPT_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
               "all": "ORT_ENABLE_ALL"}


def available_providers() -> list[str]:
    """ONNX Runtime execution providers compiled into the installed onnxruntime."""
    import onnxruntime as ort

    return list(ort.get_available_providers())


class OnnxRuntimeBackend(Backend):
    """Run a package's ONNX graph with ONNX Runtime.

    Parameters
    ----------
    package : ModelPackage
        The loaded package.
    device : {"cpu", "cuda", "tensorrt"}
        Execution provider: CPU, CUDA, or TensorRT (with CUDA and CPU fallback for
        unsupported nodes). A GPU provider that is not compiled in, or that ONNX Runtime
        drops at session creation, raises BackendUnavailableError.
    intra_op_threads : int or None
        Threads inside one operator (None: ONNX Runtime's default, one per core).
    inter_op_threads : int
        Threads across operators (only used with parallel execution mode).
    spinning : bool
        Let idle pool threads busy-wait for the next parallel section (ONNX Runtime's default). False
        frees the cores between operators, but measured 1.5x slower for the reference detector on 2
        cores; kept as a setting for machines where other processes need those cores more.
    graph_optimization : {"disable", "basic", "extended", "all"}
        ONNX Runtime graph optimisation level.
    device_id : int
        GPU index for the CUDA / TensorRT providers.
    fp16 : bool
        TensorRT provider only: allow fp16 kernels.
    engine_cache_dir : str or Path or None
        TensorRT provider only: its engine cache (default: the package's engines/ort-trt).
    copy_outputs : bool
        See :class:`Backend`.
    """

    kind = "onnxruntime"

    def __init__(self, package: ModelPackage, *, device: str = "cpu", intra_op_threads: int | None = None,
                 inter_op_threads: int = 1, graph_optimization: str = "all", device_id: int = 0,
                 fp16: bool = False, engine_cache_dir: str | Path | None = None, copy_outputs: bool = True,
                 spinning: bool = True):
        super().__init__(package, copy_outputs=copy_outputs)
        import onnxruntime as ort

        if device not in PROVIDERS:
            raise ValueError(f"onnxruntime device must be one of {list(PROVIDERS)}, got {device!r}")
        if graph_optimization not in _OPT_LEVELS:
            raise ValueError(f"graph_optimization must be one of {list(_OPT_LEVELS)}, got {graph_optimization!r}")
        for label, value in (("intra_op_threads", intra_op_threads), ("inter_op_threads", inter_op_threads)):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"{label} must be a non-negative integer or None, got {value!r}")
        wanted = PROVIDERS[device]
        have = ort.get_available_providers()
        if wanted not in have:
            raise BackendUnavailableError(f"onnxruntime provider {wanted} is not available (installed onnxruntime "
                                          f"{ort.__version__} has {have})")
        providers: list = []
        if device == "tensorrt":
            cache = Path(engine_cache_dir) if engine_cache_dir else package.engine_dir / "ort-trt"
            cache.mkdir(parents=True, exist_ok=True)
            providers.append((wanted, {"device_id": device_id, "trt_fp16_enable": bool(fp16),
                                       "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache),
                                       "trt_timing_cache_enable": True}))
        if device in ("cuda", "tensorrt") and "CUDAExecutionProvider" in have:
            providers.append(("CUDAExecutionProvider", {"device_id": device_id}))
        providers.append("CPUExecutionProvider")

        opts = ort.SessionOptions()
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _OPT_LEVELS[graph_optimization])
        if intra_op_threads is not None:
            opts.intra_op_num_threads = intra_op_threads
        opts.inter_op_num_threads = inter_op_threads
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        for scope in ("intra_op", "inter_op"):
            opts.add_session_config_entry(f"session.{scope}.allow_spinning", "1" if spinning else "0")
        onnx_path = package.onnx_path
        try:
            self.session = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=providers)
        except Exception as e:  # ORT raises its own Fail / InvalidGraph / InvalidProtobuf types
            raise PackageError(onnx_path, f"ONNX Runtime cannot load the graph: {e}") from e
        active = self.session.get_providers()
        if wanted not in active:
            raise BackendUnavailableError(f"onnxruntime dropped provider {wanted} when loading {onnx_path} "
                                          f"(active: {active}); is the CUDA/TensorRT runtime installed?")
        self.providers = active
        self.device = device
        self.device_id = device_id
        self.name = f"onnxruntime-{device}"
        self._check_session_io(onnx_path)
        self._binding = self.session.io_binding()
        self._host_out: dict[str, np.ndarray] = {}
        self._dev_out: dict[str, object] = {}
        for spec in self.metadata.output_specs:
            if device == "cpu":
                buf = np.empty(spec.shape, dtype=spec.dtype)
                self._host_out[spec.name] = buf
                self._binding.bind_output(spec.name, "cpu", 0, buf.dtype, list(buf.shape), buf.ctypes.data)
            else:
                value = ort.OrtValue.ortvalue_from_shape_and_type(list(spec.shape), np.dtype(spec.dtype), "cuda",
                                                                  device_id)
                self._dev_out[spec.name] = value
                self._binding.bind_ortvalue_output(spec.name, value)

    def _check_session_io(self, onnx_path: Path) -> None:
        got_in = [i.name for i in self.session.get_inputs()]
        got_out = [o.name for o in self.session.get_outputs()]
        if got_in != list(self.metadata.input_names):
            raise PackageError(onnx_path, f"session inputs {got_in} do not match the metadata {list(self.metadata.input_names)}")
        if got_out != list(self.metadata.outputs):
            raise PackageError(onnx_path, f"session outputs {got_out} do not match the metadata {list(self.metadata.outputs)}")

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name, arr in inputs.items():
            self._binding.bind_cpu_input(name, arr)
        self.session.run_with_iobinding(self._binding)
        if self.device == "cpu":
            return dict(self._host_out)
        return {name: value.numpy() for name, value in self._dev_out.items()}

    def close(self) -> None:
        super().close()
        self._binding = None
        self.session = None
