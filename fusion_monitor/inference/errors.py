"""Exceptions of the inference layer: every one names the file (or input) and the mismatch."""

from __future__ import annotations

from pathlib import Path


class InferenceError(RuntimeError):
    """Base class of every error raised by fusion_monitor.inference."""


class PackageError(InferenceError, ValueError):
    """A model package (directory, metadata or ONNX file) is unusable.

    Parameters
    ----------
    path : str or Path
        The offending file or package directory.
    reason : str
        What is wrong with it (the mismatch, in words).
    """

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # keep the exception picklable (multiprocessing, Ray)
        return (type(self), (self.path, self.reason))


class ExportError(InferenceError):
    """Exporting a PyTorch model to a package failed or did not verify."""


class ParityError(ExportError):
    """ONNX Runtime disagrees with PyTorch beyond the tolerance; no package is written."""


class InputMismatchError(InferenceError, ValueError):
    """Inputs given to a backend do not match the package's input specification.

    Parameters
    ----------
    source : str or Path
        The package (or ONNX / engine file) whose specification is violated.
    reason : str
        Which input and how it differs (name, shape or dtype, expected vs got).
    """

    def __init__(self, source: str | Path, reason: str):
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")

    def __reduce__(self):
        return (type(self), (self.source, self.reason))


class BackendUnavailableError(InferenceError):
    """The requested backend cannot run here (library or device missing)."""


class EngineCacheError(InferenceError):
    """A TensorRT engine is missing, stale or built for another TensorRT / GPU / precision.

    Parameters
    ----------
    path : str or Path
        The engine (or engine cache directory) concerned.
    reason : str
        The mismatch, in words.
    """

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):
        return (type(self), (self.path, self.reason))
