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

#: Bumped when the same seed gives different drives (caches of simulated bags are keyed by it).
#: 1: traffic drove through the ego car; 2: collision avoidance on by default.
SIM_REVISION = 2

__all__ = ["CLASSES", "EPOCH_NS", "RADAR_DTYPE", "SIM_REVISION", "Drive", "Frame", "GroundTruth", "SensorMessage", "World",
           "ground_truth", "make_world", "render_frame", "scale_intrinsics", "simulate_drive"]
