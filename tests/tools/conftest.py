"""Simulated drives as real rosbag2 files, shared by the tool tests."""

import pytest

from fusion_monitor.tools.inject import inject_bag

FAULTS = [
    {"fault": "camera_blackout", "sensor": "CAM_FRONT", "severity": 5, "start_s": 0.8, "end_s": 2.2,
     "params": {"p": 1.0}},
    {"fault": "lidar_sector_blockage", "sensor": "LIDAR_TOP", "severity": 4, "start_s": 1.5, "end_s": 3.0,
     "params": {"center_deg": 0.0}},
]


@pytest.fixture(scope="session")
def sim_bag(tmp_path_factory):
    """A 3 s simulated nuScenes-rig drive (6 cameras at reduced resolution, LiDAR, 5 radars), sqlite3."""
    from fusion_monitor.sim.bag import write_bag
    from fusion_monitor.sim.drive import simulate_drive

    path = tmp_path_factory.mktemp("bags") / "drive3s"
    write_bag(simulate_drive(seed=5, duration_s=3.0, upscale=False), path, storage="sqlite3", workers=2)
    return path


@pytest.fixture(scope="session")
def faulted_bag(sim_bag, tmp_path_factory):
    """The same drive with a CAM_FRONT blackout (0.8-2.2 s) and a LiDAR front-sector blockage (1.5-3 s), MCAP."""
    out = tmp_path_factory.mktemp("bags") / "drive3s_faulted"
    inject_bag(sim_bag, out, FAULTS, storage="mcap")
    return out
