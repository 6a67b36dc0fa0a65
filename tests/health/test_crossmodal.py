"""What the LiDAR tells the camera checks: near objects filling image columns, cells with structure to see."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_monitor.health import HealthMonitor
from fusion_monitor.health.crossmodal import CameraProjection, camera_context
from fusion_monitor.sensors.rig import load_rig


@pytest.fixture(scope="module")
def rig():
    return load_rig()


def wall(y_m: float, x_range=(-10.0, 12.0), z_range=(0.0, 3.0), step=0.1) -> np.ndarray:
    """(3, N) points of a vertical wall parallel to the car at lateral offset ``y_m`` (base frame)."""
    x, z = np.meshgrid(np.arange(*x_range, step), np.arange(*z_range, step))
    return np.stack([x.ravel(), np.full(x.size, y_m), z.ravel()]).astype(np.float32)


def ctx(rig, cam, pts):
    proj = CameraProjection.from_spec(rig.sensors[cam])
    return camera_context(pts, proj, 4, 4, near_m=5.0, ground_z_m=0.3, min_fraction=0.5, min_points=5,
                          min_cover_points=5)


def test_a_truck_side_beside_the_car_fills_the_side_camera_only(rig):
    truck = wall(2.5)  # 2.5 m to the left
    left = ctx(rig, "CAM_FRONT_LEFT", truck)
    assert left.near_columns.all() and left.explained().all()
    right = ctx(rig, "CAM_FRONT_RIGHT", truck)
    assert not right.near_columns.any() and not right.covered.any()  # the right camera does not see it


def test_a_far_facade_covers_cells_but_explains_nothing(rig):
    facade = wall(15.0, z_range=(0.0, 12.0))
    c = ctx(rig, "CAM_FRONT_LEFT", facade)
    assert not c.near_columns.any() and not c.explained().any()
    assert c.covered[1:].any()


def test_a_truck_in_the_next_lane_explains_the_front_cameras_cells_it_fills(rig):
    """A truck side 4 m to the right, 2-14 m ahead and 3.5 m high: too far to fill CAM_FRONT's columns (5 m),
    near enough (10 m) to explain the cells showing its flat side."""
    truck = wall(-4.0, x_range=(5.0, 17.0), z_range=(0.3, 3.5))
    proj = CameraProjection.from_spec(rig.sensors["CAM_FRONT"])
    kw = dict(near_m=5.0, ground_z_m=0.3, min_fraction=0.5, min_points=5, min_cover_points=5)
    five = camera_context(truck, proj, 8, 8, **kw)
    ten = camera_context(truck, proj, 8, 8, **kw, near_cell_m=10.0)
    assert not five.near_columns.any() and not five.explained().any()
    assert np.array_equal(ten.near_columns, five.near_columns)  # whole-view rules keep the 5 m columns
    assert ten.explained()[:, -1].sum() >= 3 and not ten.explained()[:, :4].any()  # right edge only


def test_road_returns_are_never_a_near_object(rig):
    x, y = np.meshgrid(np.arange(0.5, 8, 0.1), np.arange(-4, 4, 0.1))
    road = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)]).astype(np.float32)
    c = ctx(rig, "CAM_FRONT", road)
    assert not c.near_columns.any()
    assert c.covered[-1].all()  # the road fills the bottom row with returns


def test_monitor_feeds_the_latest_recent_sweep_to_the_cameras(rig):
    mon = HealthMonitor(rig)
    lidar = rig.of("lidar")[0]
    T = np.linalg.inv(np.asarray(lidar.T_base_sensor))
    pts = wall(2.5)
    sensor = (T[:3, :3] @ pts + T[:3, 3:4]).T.astype(np.float32)
    mon.on_lidar(lidar.name, np.c_[sensor, np.full((len(sensor), 1), 20.0), np.zeros((len(sensor), 1))], 1_000_000)
    assert mon._camera_context("CAM_FRONT_LEFT", 1_050_000).near_columns.all()
    assert mon._camera_context("CAM_FRONT_LEFT", 2_000_000_000) is None  # too old to explain an image


def test_close_cells_count_only_what_is_within_the_near_object_distance(rig):
    """A low car 3 m to the right fills the lower cells of CAM_FRONT_RIGHT (close cells: the whole-view rules may
    use them); the truck side 4 m to the right and 2-14 m ahead explains CAM_FRONT's cells at 10 m but fills
    none within 5 m (so the front camera's blur and exposure checks stay judged)."""
    kw = dict(near_m=5.0, ground_z_m=0.3, min_fraction=0.5, min_points=5, min_cover_points=5, near_cell_m=10.0)
    car = wall(-2.9, x_range=(-1.0, 4.0), z_range=(0.3, 1.5))
    side = camera_context(car, CameraProjection.from_spec(rig.sensors["CAM_FRONT_RIGHT"]), 8, 8, **kw)
    assert side.close_cells.sum() >= 8 and not side.close_cells[0].any()  # lower part only, nothing at the top
    truck = wall(-4.0, x_range=(5.0, 17.0), z_range=(0.3, 3.5))
    front = camera_context(truck, CameraProjection.from_spec(rig.sensors["CAM_FRONT"]), 8, 8, **kw)
    assert front.explained().any() and not front.close_cells.any()
