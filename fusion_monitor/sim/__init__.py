"""Synthetic multi-sensor drives with ground truth on a nuScenes-like rig (training, demo, tests)."""

from fusion_monitor.sim.drive import (
    EPOCH_NS,
    Drive,
    Frame,
    GroundTruth,
    SensorMessage,
    ground_truth,
    render_frame,
    scale_intrinsics,
    simulate_drive,
)
from fusion_monitor.sim.sensors import RADAR_DTYPE
from fusion_monitor.sim.world import CLASSES, World, make_world

__all__ = ["CLASSES", "EPOCH_NS", "RADAR_DTYPE", "Drive", "Frame", "GroundTruth", "SensorMessage", "World",
           "ground_truth", "make_world", "render_frame", "scale_intrinsics", "simulate_drive"]
