"""create_backend: one entry point for every backend, with an explained `auto` choice."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fusion_monitor.inference.backend import Backend
from fusion_monitor.inference.errors import BackendUnavailableError, EngineCacheError
from fusion_monitor.inference.package import ModelPackage, load_package

log = logging.getLogger(__name__)

KINDS = ("auto", "onnxruntime", "pytorch", "tensorrt")

# Options each backend accepts; `auto` forwards to each candidate only what it understands.
_OPTIONS = {
    "onnxruntime": {"device", "intra_op_threads", "inter_op_threads", "graph_optimization", "device_id", "fp16",
                    "engine_cache_dir", "copy_outputs", "spinning"},
    "pytorch": {"model", "device", "threads", "compiled", "copy_outputs"},
    "tensorrt": {"precision", "rebuild", "engine_cache_dir", "engine_path", "workspace_mib", "timing_cache",
                 "device_id", "copy_outputs"},
}


_THREAD_OPTIONS = ("intra_op_threads", "inter_op_threads", "spinning")  # CPU thread-pool settings


def _make(kind: str, package: ModelPackage, options: dict[str, Any]) -> Backend:
    options = dict(options)
    if kind == "pytorch" and "intra_op_threads" in options:  # thread counts are generic CPU settings
        options.setdefault("threads", options.pop("intra_op_threads"))
    if kind in ("pytorch", "tensorrt"):
        for key in _THREAD_OPTIONS:
            options.pop(key, None)
    unknown = sorted(set(options) - _OPTIONS[kind])
    if unknown:
        raise TypeError(f"{kind} backend got unknown options {unknown} (accepted: {sorted(_OPTIONS[kind])})")
    if kind == "onnxruntime":
        from fusion_monitor.inference.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(package, **options)
    if kind == "pytorch":
        from fusion_monitor.inference.pytorch_backend import PyTorchBackend

        return PyTorchBackend(package, **options)
    from fusion_monitor.inference.tensorrt_backend import TensorRTBackend

    return TensorRTBackend(package, **options)


def create_backend(package: ModelPackage | str | Path, kind: str = "auto", **options: Any) -> Backend:
    """Create a backend for a model package.

    Parameters
    ----------
    package : ModelPackage or str or Path
        A loaded package, or its directory (loaded with :func:`load_package`).
    kind : {"auto", "onnxruntime", "pytorch", "tensorrt"}
        ``auto`` tries TensorRT (engine cached for this GPU, or ``rebuild=True``), then ONNX
        Runtime with a GPU provider (TensorRT, then CUDA), then ONNX Runtime on CPU; the
        reason for the choice is logged and kept in ``backend.why``.
    **options
        Backend options (see OnnxRuntimeBackend, PyTorchBackend, TensorRTBackend). With
        ``auto``, each candidate receives the options it accepts (``device`` is chosen by
        auto and must not be given). ``intra_op_threads`` / ``inter_op_threads`` are accepted
        by every kind: PyTorch maps ``intra_op_threads`` to ``threads``, TensorRT ignores them.

    Returns
    -------
    Backend
        Ready to ``run``; ``.name`` says backend and device, ``.why`` why it was chosen.

    Raises
    ------
    ValueError
        Unknown kind.
    BackendUnavailableError, EngineCacheError, PackageError
        From an explicitly requested backend that cannot run.
    """
    if kind not in KINDS:
        raise ValueError(f"backend kind must be one of {list(KINDS)}, got {kind!r}")
    if not isinstance(package, ModelPackage):
        package = load_package(package)
    if kind != "auto":
        backend = _make(kind, package, options)
        backend.why = f"{backend.name} requested explicitly"
        log.info("backend %s for %s: %s", backend.name, package.path, backend.why)
        return backend
    if "device" in options:
        raise TypeError("backend 'auto' chooses the device itself; pass kind='onnxruntime' or 'pytorch' with device=")
    tried: list[str] = []

    def pick(k: str, **extra: Any) -> Backend:
        opts = {key: v for key, v in options.items() if key in _OPTIONS[k] or key in _THREAD_OPTIONS}
        opts.update(extra)
        return _make(k, package, opts)

    backend: Backend | None = None
    try:
        backend = pick("tensorrt")
    except (BackendUnavailableError, EngineCacheError) as e:
        tried.append(f"tensorrt: {e}")
    if backend is None:
        from fusion_monitor.inference.onnxruntime_backend import available_providers

        have = available_providers()
        for device, provider in (("tensorrt", "TensorrtExecutionProvider"), ("cuda", "CUDAExecutionProvider")):
            if provider not in have:
                tried.append(f"onnxruntime-{device}: provider {provider} not in onnxruntime's {have}")
                continue
            try:
                backend = pick("onnxruntime", device=device)
                break
            except BackendUnavailableError as e:
                tried.append(f"onnxruntime-{device}: {e}")
    if backend is None:
        backend = pick("onnxruntime", device="cpu")
    backend.why = f"auto chose {backend.name}" + (" after: " + " | ".join(tried) if tried else " (first choice)")
    log.info("backend for %s: %s", package.path, backend.why)
    return backend
