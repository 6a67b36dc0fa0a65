"""The Backend interface shared by PyTorch, ONNX Runtime and TensorRT: validated numpy in, numpy out."""

from __future__ import annotations

import abc
import logging
from collections.abc import Mapping

import numpy as np

from fusion_monitor.inference.errors import InputMismatchError
from fusion_monitor.inference.package import ModelPackage

log = logging.getLogger(__name__)


class Backend(abc.ABC):
    """Runs one model package on one device.

    Subclasses load the package in ``__init__`` (building sessions, engines and preallocated
    output buffers) and implement :meth:`_run`. Inputs are validated against the package's
    input specification before every run; outputs come back by name in graph order.
    A backend is not thread-safe: run it from one thread (the pipeline's worker) at a time.

    Parameters
    ----------
    package : ModelPackage
        The loaded package.
    copy_outputs : bool
        True (default): ``run`` returns arrays the caller owns. False: ``run`` returns the
        backend's preallocated output buffers, valid only until the next ``run`` (no copy).

    Attributes
    ----------
    name : str
        Backend and device, e.g. ``"onnxruntime-cpu"``, ``"pytorch-cuda"``, ``"tensorrt-fp16"``.
    kind : str
        ``"onnxruntime"``, ``"pytorch"`` or ``"tensorrt"``.
    why : str
        Why this backend was chosen (set by :func:`create_backend`; the auto-selection reason).
    """

    kind: str = "abstract"

    def __init__(self, package: ModelPackage, *, copy_outputs: bool = True):
        self.package = package
        self.metadata = package.metadata
        self.copy_outputs = bool(copy_outputs)
        self.name = self.kind
        self.why = f"{self.kind} requested explicitly"
        self._specs = {i.name: i for i in self.metadata.inputs}
        self._ignored = frozenset(x["name"] for x in self.metadata.extra.get("unused_inputs", ()) if isinstance(x, dict))
        self._zeros: dict[str, np.ndarray] | None = None

    # -- public API -------------------------------------------------------------------------
    @property
    def input_names(self) -> tuple[str, ...]:
        """Input names in graph order."""
        return self.metadata.input_names

    @property
    def output_names(self) -> tuple[str, ...]:
        """Output names in graph order (model outputs, then stream tensors)."""
        return self.metadata.outputs

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one inference.

        Parameters
        ----------
        inputs : mapping of str to numpy.ndarray
            One array per package input, with exactly the package's shape and dtype.
            Inputs the exporter pruned as unused (metadata ``extra.unused_inputs``) are ignored.

        Returns
        -------
        dict of str to numpy.ndarray
            Outputs by name in graph order (see ``copy_outputs`` for buffer ownership).

        Raises
        ------
        InputMismatchError
            Naming the package and the input that is missing, unexpected, or has the wrong
            shape or dtype.
        """
        arrays = self.check_inputs(inputs)
        outputs = self._run(arrays)
        if self.copy_outputs:
            return {k: np.array(v, copy=True) for k, v in outputs.items()}
        return outputs

    def warmup(self, n: int = 3) -> None:
        """Run ``n`` inferences on zero inputs (allocations, autotuning, lazy init)."""
        if n < 0:
            raise ValueError(f"warmup count must be >= 0, got {n}")
        if self._zeros is None:
            self._zeros = {i.name: np.zeros(i.shape, dtype=i.dtype) for i in self.metadata.inputs}
        for _ in range(n):
            self._run(self._zeros)

    def close(self) -> None:
        """Release sessions, engines and buffers (idempotent); subclasses extend it."""
        self._zeros = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} package={str(self.package.path)!r}>"

    # -- helpers for subclasses -------------------------------------------------------------
    def check_inputs(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Validate names, types, shapes and dtypes; return C-contiguous arrays in graph order."""
        src = self.package.path
        if not isinstance(inputs, Mapping):
            raise InputMismatchError(src, f"inputs must be a mapping name -> numpy array, got {type(inputs).__name__}")
        missing = [n for n in self._specs if n not in inputs]
        unexpected = sorted(n for n in inputs if n not in self._specs and n not in self._ignored)
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing inputs {missing}")
            if unexpected:
                parts.append(f"unexpected inputs {unexpected}")
            raise InputMismatchError(src, "; ".join(parts) + f" (the package expects {list(self._specs)})")
        out: dict[str, np.ndarray] = {}
        for name, spec in self._specs.items():
            arr = inputs[name]
            if not isinstance(arr, np.ndarray):
                raise InputMismatchError(src, f"input {name!r} must be a numpy.ndarray, got {type(arr).__name__}")
            if arr.dtype != np.dtype(spec.dtype):
                raise InputMismatchError(src, f"input {name!r} has dtype {arr.dtype}, expected {spec.dtype}")
            if tuple(arr.shape) != tuple(spec.shape):
                raise InputMismatchError(src, f"input {name!r} has shape {list(arr.shape)}, expected {list(spec.shape)}")
            out[name] = np.ascontiguousarray(arr)
        return out

    @abc.abstractmethod
    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run on validated, contiguous inputs; return outputs by name in graph order."""
