"""Calibration sources: tf trees, TFMessage parsing, rig overrides and per-sensor reports."""

from __future__ import annotations

from types import SimpleNamespace as NS

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from fusion_monitor.sensors.calibration import (
    StampedTransform,
    TransformTree,
    apply_overrides,
    check_extrinsics,
    check_intrinsics,
    invert,
    rig_transforms,
    tf_message_to_transforms,
)
from fusion_monitor.sensors.errors import MessageError
from fusion_monitor.sensors.rig import CalibrationError, load_rig, rig_from_dict
from fusion_monitor.sensors.types import CameraIntrinsics


def _T(rng):
    T = np.eye(4)
    T[:3, :3] = Rotation.random(random_state=rng).as_matrix()
    T[:3, 3] = rng.normal(size=3)
    return T


def test_lookup_composes_chains_both_ways():
    rng = np.random.default_rng(0)
    A, B, C = _T(rng), _T(rng), _T(rng)
    tree = TransformTree([StampedTransform("base_link", "lidar", 0, A), StampedTransform("lidar", "cam", 0, B),
                          StampedTransform("base_link", "radar", 0, C)])
    np.testing.assert_allclose(tree.lookup("base_link", "cam"), A @ B, atol=1e-12)
    np.testing.assert_allclose(tree.lookup("cam", "base_link"), invert(A @ B), atol=1e-12)
    np.testing.assert_allclose(tree.lookup("radar", "cam"), invert(C) @ A @ B, atol=1e-12)
    p = np.array([1.0, 2.0, 3.0, 1.0])
    np.testing.assert_allclose(tree.lookup("cam", "radar") @ (tree.lookup("radar", "cam") @ p), p, atol=1e-12)
    with pytest.raises(CalibrationError, match="not in the tf tree") as e:
        tree.lookup("base_link", "CAM_FRONT")
    assert e.value.sensor == "CAM_FRONT"
    tree.add(StampedTransform("odom", "map_thing", 0, np.eye(4)))
    with pytest.raises(CalibrationError, match="no tf chain"):
        tree.lookup("base_link", "map_thing")


def _tf_msg(entries):
    out = []
    for parent, child, t, q_xyzw in entries:
        out.append(NS(header=NS(frame_id=parent, stamp=NS(sec=1, nanosec=5)), child_frame_id=child,
                      transform=NS(translation=NS(x=t[0], y=t[1], z=t[2]),
                                   rotation=NS(x=q_xyzw[0], y=q_xyzw[1], z=q_xyzw[2], w=q_xyzw[3]))))
    return NS(transforms=out)


def test_tf_message_parsing_and_errors_name_the_frame():
    q = Rotation.from_euler("z", 90, degrees=True).as_quat()
    [t] = tf_message_to_transforms(_tf_msg([("/base_link", "RADAR_FRONT", (3.4, 0, 0.5), q)]))
    assert (t.parent_frame, t.child_frame, t.stamp_ns) == ("base_link", "RADAR_FRONT", 1_000_000_005)
    np.testing.assert_allclose(t.T_parent_child @ [1, 0, 0, 1], [3.4, 1, 0.5, 1], atol=1e-12)
    with pytest.raises(MessageError, match="not a rotation") as e:
        tf_message_to_transforms(_tf_msg([("base_link", "CAM_BACK", (0, 0, 0), (0, 0, 0, 0))]))
    assert e.value.sensor == "CAM_BACK"
    with pytest.raises(MessageError, match="translation") as e:
        tf_message_to_transforms(_tf_msg([("base_link", "LIDAR_TOP", (np.nan, 0, 0), q)]))
    assert e.value.sensor == "LIDAR_TOP"
    with pytest.raises(MessageError, match="itself"):
        tf_message_to_transforms(_tf_msg([("a", "a", (0, 0, 0), q)]))


def test_overrides_replace_profile_values_and_reports_say_which():
    rig = load_rig()
    tree = TransformTree(rig_transforms(rig))
    T = rig.sensors["RADAR_FRONT"].T_base_sensor.copy()
    T[0, 3] += 0.10
    tree.add(StampedTransform("base_link", "RADAR_FRONT", 0, T))
    K = rig.sensors["CAM_FRONT"].K.copy()
    half = CameraIntrinsics(K=K, width=1600, height=900).scaled(800, 450)
    new = apply_overrides(rig, tree, {"CAM_FRONT": half})
    assert new.sensors["RADAR_FRONT"].T_base_sensor[0, 3] == pytest.approx(rig.sensors["RADAR_FRONT"].T_base_sensor[0, 3]
                                                                        + 0.1)
    assert (new.sensors["CAM_FRONT"].width, new.sensors["CAM_FRONT"].K[0, 0]) == (800, pytest.approx(K[0, 0] / 2))
    assert rig.sensors["CAM_FRONT"].width == 1600  # the input rig is untouched
    ext = check_extrinsics(rig, tree)
    assert ext["RADAR_FRONT"].status == "mismatch" and ext["RADAR_FRONT"].values["translation_error_m"] == \
        pytest.approx(0.1)
    assert [n for n, r in ext.items() if not r.ok] == ["RADAR_FRONT"]
    # a half-resolution CameraInfo of the same camera is consistent; the other cameras are missing
    intr = check_intrinsics(rig, {"CAM_FRONT": half})
    assert intr["CAM_FRONT"].ok and intr["CAM_BACK"].status == "missing"


def test_scaled_intrinsics_keep_pixel_centres():
    K = np.array([[1000.0, 0, 799.5], [0, 1000.0, 449.5], [0, 0, 1]])
    s = CameraIntrinsics(K=K, width=1600, height=900).scaled(400, 225)
    np.testing.assert_allclose(s.K, [[250, 0, 199.5], [0, 250, 112.0], [0, 0, 1]])


@pytest.mark.parametrize(
    "entry, words",
    [
        ({"modality": "sonar", "translation": [0, 0, 0], "rotation": [1, 0, 0, 0]}, "modality 'sonar'"),
        ({"modality": "radar", "rotation": [1, 0, 0, 0]}, "missing translation"),
        ({"modality": "radar", "translation": [0, 0, 0], "rotation": [0, 0, 0, 0]}, "not a rotation"),
        ({"modality": "camera", "translation": [0, 0, 0], "rotation": [1, 0, 0, 0]}, "camera_intrinsic"),
    ],
)
def test_profile_errors_name_the_sensor(entry, words):
    with pytest.raises(CalibrationError, match=words) as e:
        rig_from_dict({"sensors": {"RADAR_X": entry}})
    assert e.value.sensor == "RADAR_X"
