"""Fixtures for the health tests: real nuScenes frames (visible skip without them) and synthetic data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fusion_monitor.sensors.rig import load_rig


@pytest.fixture(scope="session")
def rig():
    return load_rig()


@pytest.fixture(scope="session")
def cam_front_sequence(real_data: Path) -> list[np.ndarray]:
    """The 19 CAM_FRONT keyframes of nuScenes scene-0061 as (900, 1600, 3) uint8 RGB."""
    from PIL import Image

    files = sorted((real_data / "nuscenes_mini_scene-0061_CAM_FRONT_keyframes").glob("*.jpg"))
    if len(files) < 10:
        pytest.skip(f"CAM_FRONT keyframes missing under {real_data}")
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


@pytest.fixture(scope="session")
def lidar_sweep(real_data: Path) -> np.ndarray:
    """The nuScenes LIDAR_TOP sweep of scene-0061 sample 0: (34688, 5) float32 x y z intensity ring."""
    files = sorted((real_data / "nuscenes_mini_scene-0061_sample0" / "samples" / "LIDAR_TOP").glob("*.pcd.bin"))
    if not files:
        pytest.skip(f"LIDAR_TOP sweep missing under {real_data}")
    return np.fromfile(files[0], dtype=np.float32).reshape(-1, 5)


@pytest.fixture(scope="session")
def radar_scans(real_data: Path) -> list:
    from fusion_monitor.sensors.readers import read_nuscenes_radar_pcd

    files = sorted((real_data / "nuscenes_radar_pcd").glob("*.pcd"))
    if not files:
        pytest.skip(f"nuScenes radar .pcd files missing under {real_data}")
    return [read_nuscenes_radar_pcd(f) for f in files]
