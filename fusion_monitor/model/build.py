"""Constructing the reference detector for a rig (lift tables from the rig's cameras)."""

from __future__ import annotations

import numpy as np
import torch

from fusion_monitor.model.lift import LIFT_GRID, LIFT_LEVELS_Z_M, CameraCalib, lift_tables
from fusion_monitor.model.network import REFERENCE_ARCHITECTURE, CameraLift, ReferenceDetector
from fusion_monitor.sensors.preprocess import DEFAULT_SPEC, InputSpec, scale_intrinsics
from fusion_monitor.sensors.rig import CalibrationError, Rig, load_rig
from fusion_monitor.sim.world import CLASSES


def rig_cameras(rig: Rig, spec: InputSpec) -> list[CameraCalib]:
    """Camera slots of ``spec`` from a rig, with K scaled from the rig's image size to the model's."""
    out = []
    H, W = spec.image_hw
    for name in spec.camera_names:
        if name not in rig.sensors:
            raise CalibrationError(name, f"camera slot {name} is not in rig {rig.name!r}")
        s = rig.sensors[name]
        if s.K is None or not s.width or not s.height:
            raise CalibrationError(name, "camera needs intrinsics and image size")
        out.append(CameraCalib(scale_intrinsics(s.K, W / s.width, H / s.height), s.T_base_sensor))
    return out


def build_model(rig: Rig | None = None, spec: InputSpec = DEFAULT_SPEC, num_classes: int = len(CLASSES),
                cameras: list[CameraCalib | None] | None = None, width: int = REFERENCE_ARCHITECTURE["width"],
                trunk_blocks: int = REFERENCE_ARCHITECTURE["trunk_blocks"]) -> ReferenceDetector:
    """A fresh (untrained) ReferenceDetector whose lift tables come from ``cameras`` or the rig."""
    if cameras is None:
        cameras = rig_cameras(rig or load_rig(), spec)
    if len(cameras) != len(spec.camera_names):
        raise ValueError(f"need {len(spec.camera_names)} camera slots, got {len(cameras)}")
    index, weight = lift_tables(cameras, spec, grid=LIFT_GRID, levels_z_m=LIFT_LEVELS_Z_M)
    return ReferenceDetector(torch.from_numpy(index), torch.from_numpy(weight), num_classes=num_classes,
                             levels=len(LIFT_LEVELS_Z_M), grid=LIFT_GRID, width=width, trunk_blocks=trunk_blocks)


def with_cameras(model: ReferenceDetector, cameras: list[CameraCalib | None], spec: InputSpec) -> ReferenceDetector:
    """A copy of ``model`` whose lift tables use other camera calibration (the input model is unchanged)."""
    import copy

    index, weight = lift_tables(cameras, spec, grid=LIFT_GRID, levels_z_m=LIFT_LEVELS_Z_M)
    new = copy.deepcopy(model)
    old = model.camera_lift
    new.camera_lift = CameraLift(torch.from_numpy(index), torch.from_numpy(weight), old.levels, old.grid)
    return new


def count_parameters(model: torch.nn.Module) -> int:
    return int(sum(int(np.prod(p.shape)) for p in model.parameters()))
