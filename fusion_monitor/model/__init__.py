"""Reference camera + LiDAR + radar BEV detector: network, lift tables, targets, decode, metrics, shipped weights.

Names are imported on first use (PEP 562), so torch-free users (``fusion_monitor.model.decode`` in the
ONNX Runtime pipeline) do not pay torch's import time.
"""

from __future__ import annotations

import importlib

# torch-free parts, imported now (``decode`` is also a submodule name: the function must win)
from fusion_monitor.model.decode import Detections as Detections
from fusion_monitor.model.decode import decode as decode
from fusion_monitor.model.lift import CameraCalib as CameraCalib
from fusion_monitor.model.lift import lift_tables as lift_tables

_EXPORTS = {
    "build_model": "build", "rig_cameras": "build", "with_cameras": "build",
    "ReferenceDetector": "network",
    "INPUT_NAMES": "reference", "MODALITIES": "reference", "OUTPUT_NAMES": "reference",
    "example_inputs": "reference", "export_onnx": "reference", "infer": "reference",
    "load_reference": "reference", "metadata": "reference",
}

__all__ = sorted([*_EXPORTS, "CameraCalib", "Detections", "decode", "lift_tables"])


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
