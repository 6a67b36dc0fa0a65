"""Collision avoidance: with it, simulated vehicles never drive through the ego or each other."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_monitor.sim import make_world, simulate_drive
from fusion_monitor.sim.traffic import EGO_CENTRE_X_M, EGO_LENGTH_M, EGO_WIDTH_M, _extents

DURATION_S = 20.0


def _overlaps(world, step_s: float = 0.1) -> tuple[set, set]:
    """Vehicles/cyclists overlapping the ego footprint, and vehicle pairs overlapping each other, over the drive
    (pairs already overlapping at t = 0 left out: they were placed so)."""
    veh = np.flatnonzero(np.isin(world.obj_cls, (0, 1, 3)))
    ego_ex, ego_ey = (e[0] for e in _extents(np.array([[EGO_LENGTH_M, EGO_WIDTH_M]]), np.array([world.ego_yaw])))
    ego_hits, pairs, at_start = set(), set(), None
    for t in np.arange(0.0, DURATION_S, step_s):
        b = world.object_boxes(float(t))[veh]
        ex, ey = _extents(b[:, 3:5], b[:, 6])
        T = world.ego_pose(float(t))
        c = T[:2, 3] + EGO_CENTRE_X_M * T[:2, 0]
        inside = (np.abs(b[:, 0] - c[0]) < ex + ego_ex) & (np.abs(b[:, 1] - c[1]) < ey + ego_ey)
        ego_hits |= set(veh[inside].tolist())
        ov = (np.abs(b[:, None, 0] - b[None, :, 0]) < ex[:, None] + ex[None]) & (
            np.abs(b[:, None, 1] - b[None, :, 1]) < ey[:, None] + ey[None])
        found = {(int(veh[i]), int(veh[j])) for i, j in zip(*np.nonzero(np.triu(ov, 1)))}
        if at_start is None:
            at_start = found
        pairs |= found - at_start
    return ego_hits, pairs


@pytest.mark.parametrize("seed", [1, 2024])
def test_no_vehicle_drives_through_the_ego_or_another_vehicle(seed):
    free = make_world(seed, DURATION_S, avoid_collisions=False)
    ego_hits, pairs = _overlaps(free)
    assert ego_hits and pairs  # without avoidance they do (the case this guards against)
    avoiding = make_world(seed, DURATION_S)  # the default
    assert _overlaps(avoiding) == (set(), set())
    # the traffic still moves: the ego and most moving vehicles cover most of their free distance
    assert avoiding.ego_lag[-1] < 0.5 * avoiding.ego_v * DURATION_S
    moving = np.flatnonzero(np.hypot(*avoiding.obj_v.T) > 1.0)
    assert np.mean(avoiding.obj_lag[-1, moving] < 1.0) > 0.5


def test_avoidance_is_deterministic_and_leaves_the_scene_as_drawn():
    a, b = make_world(1, DURATION_S, avoid_collisions=True), make_world(1, DURATION_S, avoid_collisions=True)
    np.testing.assert_array_equal(a.obj_lag, b.obj_lag)
    np.testing.assert_array_equal(a.ego_lag, b.ego_lag)
    free = make_world(1, DURATION_S, avoid_collisions=False)
    np.testing.assert_array_equal(a.static_boxes, free.static_boxes)
    assert (a.brightness, a.sun.tolist(), a.ego_v) == (free.brightness, free.sun.tolist(), free.ego_v)
    assert free.obj_lag is None and len(a.obj_cls) <= len(free.obj_cls)


def test_velocities_follow_the_braking():
    w = make_world(2024, DURATION_S, avoid_collisions=True)
    braking = np.flatnonzero(np.diff(w.obj_lag, axis=0).max(0) > 0.05)
    assert len(braking)
    for t in (3.05, 7.33, 12.51):
        h = 1e-3
        finite = (w.object_boxes(t + h)[:, :2] - w.object_boxes(t - h)[:, :2]) / (2 * h)
        np.testing.assert_allclose(w.object_velocity(t), finite, atol=1e-6)
        ego_finite = (w.ego_pose(t + h)[:2, 3] - w.ego_pose(t - h)[:2, 3]) / (2 * h)
        np.testing.assert_allclose(w.ego_velocity(t), ego_finite, atol=1e-6)


def test_drive_with_avoidance_renders_and_reports_the_braking_velocities():
    d = simulate_drive(2024, 4.0, render_hw=(36, 64), avoid_collisions=True)
    stamp = d.schedule()[-1][0]
    gt = d.ground_truth(stamp)
    t = (stamp - d.schedule()[0][0]) * 1e-9
    np.testing.assert_allclose(np.linalg.norm(gt.velocity, axis=1),
                               np.linalg.norm(d.world.object_velocity(t)[gt.instance], axis=1), atol=1e-9)
    msgs = [d.render(stamp, n) for n in ("LIDAR_TOP", "RADAR_FRONT", "CAM_FRONT")]
    assert len(msgs[0].data) > 10_000 and msgs[2].data.shape == (900, 1600, 3)
