"""Numpy sensor types: columns, positions, projection, rig lookups."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_monitor.sensors.rig import load_rig
from fusion_monitor.sensors.types import (
    NUSCENES_RADAR_DTYPE,
    columns,
    finite_mask,
    project_points,
    transform_points,
    xyz_m,
)


def test_columns_select_cast_and_fill_from_any_byte_order():
    pts = np.zeros(3, dtype=NUSCENES_RADAR_DTYPE.newbyteorder(">"))
    pts["x"] = [1, 2, np.nan]
    pts["rcs"] = [5, 6, 7]
    out = columns(pts, ("x", "rcs", "ring"))
    assert out.dtype == np.float32 and out.shape == (3, 3)
    np.testing.assert_array_equal(out[:2], [[1, 5, 0], [2, 6, 0]])
    assert finite_mask(pts).tolist() == [True, True, False]
    with pytest.raises(ValueError, match="no field"):
        xyz_m(np.zeros(2, dtype=[("range_m", "f4")]))
    with pytest.raises(ValueError, match="not a scalar column"):
        columns(np.zeros(2, dtype=[("v", "f4", (3,))]), ("v",))


def test_projection_of_a_point_on_the_optical_axis_hits_the_principal_point():
    K = np.array([[1000.0, 0, 800], [0, 1000.0, 450], [0, 0, 1]])
    uv, valid = project_points(K, np.array([[0, 0, 10.0], [1, 0.5, 10.0], [0, 0, -1.0]]))
    np.testing.assert_allclose(uv[:2], [[800, 450], [900, 500]])
    assert valid.tolist() == [True, True, False] and np.isnan(uv[2]).all()
    T = np.eye(4)
    T[:3, 3] = [1, 2, 3]
    np.testing.assert_allclose(transform_points(T, np.zeros((1, 3))), [[1, 2, 3]])


def test_rig_lookups_by_topic_and_frame():
    rig = load_rig()
    assert rig.by_topic("/CAM_FRONT/camera_info").name == "CAM_FRONT"
    assert rig.by_topic("/RADAR_FRONT").modality == "radar"
    assert rig.by_frame("/LIDAR_TOP").name == "LIDAR_TOP"
    assert rig.by_topic("/nope") is None and rig.by_frame("nope") is None


def test_field_sets_are_recognised_whatever_the_layout():
    from fusion_monitor.sensors.types import FIELD_SETS, match_field_set

    assert match_field_set(NUSCENES_RADAR_DTYPE) == "nuscenes_radar"
    assert match_field_set(FIELD_SETS["vod_radar"]) == "vod_radar"
    assert match_field_set(FIELD_SETS["nuscenes_lidar"]) == "nuscenes_lidar"
    # a driver's own layout: doubles, a uint16 ring, padding, extra fields
    drv = np.dtype({"names": ["x", "y", "z", "intensity", "ring", "t"],
                    "formats": ["<f8", "<f8", "<f8", "<f4", "<u2", "<u4"],
                    "offsets": [0, 8, 16, 32, 36, 40], "itemsize": 48})
    assert match_field_set(drv) == "nuscenes_lidar"
    assert match_field_set(np.dtype([("x", "f4"), ("y", "f4"), ("z", "f4"), ("reflectance", "f4")])) == "vod_lidar"
    assert match_field_set(np.dtype([("range_m", "f4")])) is None
