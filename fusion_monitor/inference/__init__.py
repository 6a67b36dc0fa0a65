"""fusion_monitor.inference: model packages, export, and the PyTorch / ONNX Runtime / TensorRT backends.

Public API::

    package = load_package(path)                   # -> ModelPackage (.onnx_path, .metadata)
    backend = create_backend(package, "auto")      # -> Backend (.run, .warmup, .name, .why)
    outputs = backend.run({"camera": ..., ...})    # numpy in, numpy out, by name
    write_package(out_dir, model, example_inputs, modalities, decomposed=True, extra_metadata={...})

Heavy libraries (torch, onnxruntime, tensorrt) are imported only when used.
"""

from fusion_monitor.inference.backend import Backend
from fusion_monitor.inference.engine_cache import EngineCache, EngineKey
from fusion_monitor.inference.errors import (
    BackendUnavailableError,
    EngineCacheError,
    ExportError,
    InferenceError,
    InputMismatchError,
    PackageError,
    ParityError,
)
from fusion_monitor.inference.export import compare_outputs, relative_error, write_package
from fusion_monitor.inference.package import (
    FORMAT_VERSION,
    InputSpec,
    ModelPackage,
    OutputSpec,
    PackageMetadata,
    load_package,
)
from fusion_monitor.inference.select import create_backend

__all__ = [
    "FORMAT_VERSION",
    "Backend",
    "BackendUnavailableError",
    "EngineCache",
    "EngineCacheError",
    "EngineKey",
    "ExportError",
    "InferenceError",
    "InputMismatchError",
    "InputSpec",
    "ModelPackage",
    "OutputSpec",
    "PackageError",
    "PackageMetadata",
    "ParityError",
    "compare_outputs",
    "create_backend",
    "load_package",
    "relative_error",
    "write_package",
]
