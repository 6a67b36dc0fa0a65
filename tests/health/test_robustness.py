"""Checks never crash on odd but well-typed input (NaN points, empty scans, constant images, odd sizes)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fusion_monitor.health import CameraChecker, Level, LidarChecker, RadarChecker
from fusion_monitor.sensors.types import NUSCENES_RADAR_DTYPE

LEVELS = set(Level)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 3000), st.floats(0, 0.5), st.integers(0, 2**31 - 1))
def test_lidar_checker_survives_nan_and_degenerate_clouds(n, nan_frac, seed):
    rng = np.random.default_rng(seed)
    pts = np.column_stack([rng.normal(0, 30, (n, 3)), rng.uniform(0, 255, n), rng.integers(0, 32, n)]).astype(np.float32)
    pts[rng.random(n) < nan_frac, rng.integers(0, 5)] = np.nan
    if n and rng.random() < 0.2:
        pts[:, :3] = 0.0  # a driver that zero-fills
    ch = LidarChecker("L")
    for _ in range(2):
        res = ch.update(pts)
    assert {r.level for r in res.values()} <= LEVELS
    assert all("value" in r.values and "bound" in r.values for r in res.values())


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 200), st.integers(0, 2**31 - 1))
def test_radar_checker_survives_random_scans(n, seed):
    rng = np.random.default_rng(seed)
    a = np.zeros(n, NUSCENES_RADAR_DTYPE)
    for f in ("x", "y", "rcs", "vx", "vy", "vx_comp", "vy_comp"):
        a[f] = rng.normal(0, 50, n)
    a["dyn_prop"] = rng.integers(0, 8, n)
    if n:
        a["x"][0] = np.nan
    ch = RadarChecker("R")
    for _ in range(4):
        res = ch.update(a)
    assert {r.level for r in res.values()} <= LEVELS


@settings(max_examples=30, deadline=None)
@given(st.integers(24, 300), st.integers(24, 300), st.integers(0, 255), st.booleans())
def test_camera_checker_survives_constant_and_odd_sized_images(h, w, value, gray):
    img = np.full((h, w) if gray else (h, w, 3), value, np.uint8)
    ch = CameraChecker("C")
    for _ in range(3):
        res = ch.update(img)
    assert {r.level for r in res.values()} <= LEVELS
    assert res["frozen"].level == Level.OK  # a flat image is not judged frozen
