"""Points land where the calibration says: real nuScenes and View-of-Delft geometry checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fusion_monitor.ros import conversions as conv  # duck-typed, no rclpy needed
from fusion_monitor.sensors import readers
from fusion_monitor.sensors.calibration import invert, rotation_angle_deg
from fusion_monitor.sensors.errors import MessageError
from fusion_monitor.sensors.rig import load_rig, make_transform
from fusion_monitor.sensors.types import project_points, transform_points

SAMPLE = "nuscenes_mini_scene-0061_sample0"


@pytest.fixture(scope="module")
def nusc(real_data: Path) -> dict:
    return json.loads((real_data / SAMPLE / "calib_and_gt.json").read_text())


def _points_in_box(xyz: np.ndarray, box) -> int:
    """Points inside an upright box [x y z l w h yaw] with z at the box centre (slow, obvious)."""
    x, y, z, l, w, h, yaw = box
    p = xyz - np.array([x, y, z])
    c, s = np.cos(yaw), np.sin(yaw)
    lx = p[:, 0] * c + p[:, 1] * s
    ly = -p[:, 0] * s + p[:, 1] * c
    return int(((np.abs(lx) <= l / 2) & (np.abs(ly) <= w / 2) & (np.abs(p[:, 2]) <= h / 2)).sum())


def test_nuscenes_gt_boxes_contain_their_recorded_lidar_point_counts(real_data, nusc):
    """Through the PointCloud2 boundary: the scan read back holds each box's recorded point count."""
    cloud = readers.read_nuscenes_lidar_bin(real_data / SAMPLE / nusc["lidar"]["file"])
    msg = conv.array_to_pointcloud2(cloud.points, "LIDAR_TOP", cloud.stamp_ns, factory=conv.rosbags_factory())
    xyz = conv.pointcloud2_to_cloud(msg).xyz_m()
    boxes = nusc["gt_boxes"]
    exact = sum(_points_in_box(xyz, b["bbox_3d_lidar_xyzlwh_yaw"]) == b["num_lidar_pts"] for b in boxes)
    assert len(boxes) == 69
    assert exact >= 61, f"only {exact}/69 boxes contain their recorded point count"
    # control: the same scan shifted by 1 m no longer fits the labels
    shifted = sum(_points_in_box(xyz + [1.0, 0, 0], b["bbox_3d_lidar_xyzlwh_yaw"]) == b["num_lidar_pts"]
                  for b in boxes if b["num_lidar_pts"] > 5)
    assert shifted <= 3


def test_rig_profile_agrees_with_the_dataset_calibration(real_data, nusc):
    rig = load_rig()
    T_ego_lidar = np.array(nusc["lidar"]["lidar2ego"])
    assert np.abs(rig.sensors["LIDAR_TOP"].T_base_sensor - T_ego_lidar).max() < 1e-6
    for name, cam in nusc["cameras"].items():
        spec = rig.sensors[name]
        np.testing.assert_allclose(spec.T_base_sensor, np.array(cam["cam2ego"]), atol=1e-6)
        np.testing.assert_allclose(spec.K, np.array(cam["K_cam2img"]), atol=1e-6)
        # LiDAR -> camera composed from the rig vs the dataset's lidar2cam, which also holds the
        # ego motion between the two capture times (~35 ms at ~9 m/s): same rotation, < 0.5 m apart
        T_cam_lidar = invert(spec.T_base_sensor) @ rig.sensors["LIDAR_TOP"].T_base_sensor
        T_ds = np.array(cam["lidar2cam"])
        assert rotation_angle_deg(T_cam_lidar[:3, :3], T_ds[:3, :3]) < 0.2, name
        assert np.linalg.norm(T_cam_lidar[:3, 3] - T_ds[:3, 3]) < 0.5, name
    for name, radar in nusc["radars"].items():
        np.testing.assert_allclose(rig.sensors[name].T_base_sensor, np.array(radar["radar2ego"]), atol=1e-6)


def test_rig_profile_is_one_of_the_calibrated_sensor_table_entries(real_data):
    entries = readers.read_nuscenes_calibrated_sensors(real_data / "nuscenes_v1.0-mini_tables_partial")
    rig = load_rig()
    for name, spec in rig.sensors.items():
        best = min(
            (e for e in entries if e["channel"] == name),
            key=lambda e: np.linalg.norm(np.array(e["translation"]) - spec.T_base_sensor[:3, 3]),
        )
        T = make_transform(best["translation"], best["rotation"])
        assert np.linalg.norm(T[:3, 3] - spec.T_base_sensor[:3, 3]) < 1e-6, name
        assert rotation_angle_deg(T[:3, :3], spec.T_base_sensor[:3, :3]) < 1e-4, name


def test_lidar_projects_into_the_camera_images(real_data, nusc):
    """LiDAR points through the rig calibration fall inside each image in plausible numbers."""
    rig = load_rig()
    cloud = readers.read_nuscenes_lidar_bin(real_data / SAMPLE / nusc["lidar"]["file"])
    xyz_base = transform_points(rig.sensors["LIDAR_TOP"].T_base_sensor, cloud.xyz_m())
    counts = {}
    for cam in rig.of("camera"):
        uv, valid = project_points(cam.K, transform_points(invert(cam.T_base_sensor), xyz_base), min_depth_m=1.0)
        inside = valid & (uv[:, 0] >= 0) & (uv[:, 0] < cam.width) & (uv[:, 1] >= 0) & (uv[:, 1] < cam.height)
        counts[cam.name] = int(inside.sum())
    # six cameras cover 360 deg with overlap: together they see most of the scan, each a share
    assert all(n > 1000 for n in counts.values()), counts
    assert sum(counts.values()) > 0.5 * len(cloud)


def _vod_boxes_hit(frame: dict, xyz_cam: np.ndarray, margin_m: float = 0.2):
    """Per label: mask of points inside the KITTI 3D box (camera frame, bottom centre, yaw about y)."""
    out = []
    for lab in frame["labels_kitti_camera_frame"]:
        h, w, l = lab["hwl"]
        p = xyz_cam - np.array(lab["location_cam_bottom_centre"])
        c, s = np.cos(lab["rotation_y"]), np.sin(lab["rotation_y"])
        lx = p[:, 0] * c - p[:, 2] * s
        lz = p[:, 0] * s + p[:, 2] * c
        m = (np.abs(lx) <= l / 2 + margin_m) & (np.abs(lz) <= w / 2 + margin_m)
        m &= (p[:, 1] <= margin_m) & (p[:, 1] >= -h - margin_m)
        out.append((lab, m))
    return out


def _radar_on_labels(real_data: Path, T_key: str) -> tuple[int, int, int]:
    vod = json.loads((real_data / "vod_example_set" / "vod_frames.json").read_text())
    in_3d = in_2d = boxes_hit = 0
    for fr in vod["frames"]:
        radar = readers.read_vod_radar_bin(real_data / "vod_example_set" / fr["radar_file"])
        calib = readers.read_kitti_calib(real_data / "vod_example_set" / fr["radar_file"].replace(
            "velodyne", "calib").replace(".bin", ".txt"))
        T = calib.T_rect_sensor() if T_key == "calib" else np.array(fr[T_key])
        K = calib.intrinsics("P2").K
        xyz_cam = transform_points(T, radar.xyz_m())
        uv, valid = project_points(K, xyz_cam)
        for lab, m in _vod_boxes_hit(fr, xyz_cam):
            m = m & valid
            boxes_hit += bool(m.any())
            x0, y0, x1, y1 = lab["bbox2d_xyxy"]
            in_3d += int(m.sum())
            in_2d += int(((uv[m, 0] >= x0 - 5) & (uv[m, 0] <= x1 + 5) & (uv[m, 1] >= y0 - 5)
                          & (uv[m, 1] <= y1 + 5)).sum())
    return in_3d, in_2d, boxes_hit


def test_vod_radar_projects_onto_labelled_objects(real_data):
    """Radar -> camera with the KITTI-format calib file: radar hits on labelled 3D objects land in their 2D boxes."""
    in_3d, in_2d, boxes_hit = _radar_on_labels(real_data, "calib")
    assert in_3d >= 150 and boxes_hit >= 40, (in_3d, boxes_hit)
    assert in_2d / in_3d >= 0.9, (in_2d, in_3d)
    # control: the LiDAR extrinsics applied to the radar put far fewer radar points on the labels
    wrong_3d, _, _ = _radar_on_labels(real_data, "lidar2cam")
    assert wrong_3d < 0.5 * in_3d, (wrong_3d, in_3d)


def test_vod_calib_file_matches_parsed_json(real_data):
    vod = json.loads((real_data / "vod_example_set" / "vod_frames.json").read_text())
    for fr in vod["frames"]:
        lc = readers.read_kitti_calib(real_data / "vod_example_set" / "lidar" / "training" / "calib" /
                                      f"{fr['frame']}.txt")
        np.testing.assert_allclose(lc.T_rect_sensor(), np.array(fr["lidar2cam"]), atol=1e-9)
        np.testing.assert_allclose(lc.intrinsics("P2").K, np.array(fr["K"]), atol=1e-9)
        assert lc.T_velo_imu is None  # the empty Tr_imu_to_velo line is absent, not zeros


def test_truncated_files_are_reported(tmp_path, real_data):
    src = next((real_data / "nuscenes_radar_pcd").glob("*.pcd")).read_bytes()
    cut = tmp_path / "cut__RADAR_FRONT__1526915243042374.pcd"
    cut.write_bytes(src[:2000])
    with pytest.raises(MessageError, match="PCD body has"):
        readers.read_nuscenes_radar_pcd(cut)
    b = tmp_path / "x.bin"
    b.write_bytes(b"\0" * 21)
    with pytest.raises(MessageError, match="not a multiple of the 20-byte"):
        readers.read_nuscenes_lidar_bin(b)
    calib = tmp_path / "c.txt"
    calib.write_text("P2: 1 2 3\n")
    with pytest.raises(MessageError, match="P2 has 3 values"):
        readers.read_kitti_calib(calib)


def test_ascii_pcd(tmp_path):
    p = tmp_path / "a.pcd"
    p.write_text("VERSION 0.7\nFIELDS x y z rgb\nSIZE 4 4 4 4\nTYPE F F F U\nCOUNT 1 1 1 1\nWIDTH 2\nHEIGHT 1\n"
                 "VIEWPOINT 0 0 0 1 0 0 0\nPOINTS 2\nDATA ascii\n1 2 3 7\n4.5 5 6 8\n")
    pts = readers.read_pcd(p)
    assert pts["x"].tolist() == [1.0, 4.5] and pts["rgb"].tolist() == [7, 8]


def test_kitti_lidar_lands_in_its_labelled_boxes(real_data):
    """KITTI 000008: the reduced scan through lidar2cam fills each labelled box with ~its recorded point count."""
    import pickle

    info = pickle.loads((real_data / "kitti_000008" / "000008.pkl").read_bytes())["data_list"][0]
    cloud = readers.read_kitti_lidar_bin(real_data / "kitti_000008" / "000008.bin")
    assert cloud.points.dtype.names == ("x", "y", "z", "reflectance") and len(cloud) == 17238
    T = np.array(info["images"]["CAM2"]["lidar2cam"])
    R0 = np.array(info["images"]["R0_rect"])
    np.testing.assert_allclose(R0 @ np.array(info["lidar_points"]["Tr_velo_to_cam"]), T, atol=1e-6)
    xyz_cam = transform_points(T, cloud.xyz_m())

    def counts(yaw_sign: float) -> list[tuple[int, int]]:
        out = []
        for inst in info["instances"]:
            if inst["bbox_label_3d"] < 0:
                continue
            x, y, z, l, h, w, ry = inst["bbox_3d"]  # camera frame, bottom centre, yaw about camera y
            p = xyz_cam - np.array([x, y, z])
            c, s = np.cos(yaw_sign * ry), np.sin(yaw_sign * ry)
            lx, lz = p[:, 0] * c - p[:, 2] * s, p[:, 0] * s + p[:, 2] * c
            m = (np.abs(lx) <= l / 2) & (np.abs(lz) <= w / 2) & (p[:, 1] <= 0) & (p[:, 1] >= -h)
            out.append((inst["num_lidar_pts"], int(m.sum())))
        return out

    good = counts(1.0)
    assert len(good) == 6
    assert all(abs(got - want) <= 0.1 * want + 5 for want, got in good), good
    # control: the yaw mirrored leaves most boxes far from their counts
    bad = counts(-1.0)
    assert sum(abs(got - want) > 0.1 * want + 5 for want, got in bad) >= 4, bad
