"""Reference camera + LiDAR + radar BEV detector: network, lift tables, targets, decode, metrics, shipped weights."""

from fusion_monitor.model.build import build_model, rig_cameras, with_cameras
from fusion_monitor.model.decode import Detections, decode
from fusion_monitor.model.lift import CameraCalib, lift_tables
from fusion_monitor.model.network import ReferenceDetector
from fusion_monitor.model.reference import (
    INPUT_NAMES,
    MODALITIES,
    OUTPUT_NAMES,
    example_inputs,
    export_onnx,
    infer,
    load_reference,
    metadata,
)

__all__ = ["INPUT_NAMES", "MODALITIES", "OUTPUT_NAMES", "CameraCalib", "Detections", "ReferenceDetector",
           "build_model", "decode", "example_inputs", "export_onnx", "infer", "lift_tables", "load_reference",
           "metadata", "rig_cameras", "with_cameras"]
