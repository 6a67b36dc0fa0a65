"""Messages built from the real nuScenes / View-of-Delft files round-trip bit-exactly (CDR and bags)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import CameraInfo, CompressedImage, PointCloud2

from fusion_monitor.ros import conversions as conv
from fusion_monitor.sensors import readers
from fusion_monitor.sensors.calibration import (
    StampedTransform,
    check_extrinsics,
    check_intrinsics,
    read_bag_calibration,
    rig_transforms,
)
from fusion_monitor.sensors.rig import load_rig
from fusion_monitor.sensors.types import CameraIntrinsics

RB = conv.rosbags_factory()
RC = conv.rclpy_factory()
SAMPLE = "nuscenes_mini_scene-0061_sample0"


@pytest.fixture(scope="module")
def nusc(real_data: Path) -> dict:
    return json.loads((real_data / SAMPLE / "calib_and_gt.json").read_text())


def _cdr_rosbags(msg, typename):
    """Serialize and deserialize with rosbags' own CDR code (what a bag holds)."""
    store = get_typestore(Stores.ROS2_KILTED)
    return store.deserialize_cdr(bytes(store.serialize_cdr(msg, typename)), typename)


def test_nuscenes_lidar_round_trips_bit_exactly(real_data, nusc):
    cloud = readers.read_nuscenes_lidar_bin(real_data / SAMPLE / nusc["lidar"]["file"])
    file_bytes = (real_data / SAMPLE / nusc["lidar"]["file"]).read_bytes()
    assert len(cloud) == 34688 and cloud.stamp_ns == nusc["lidar_timestamp_us"] * 1000
    # rclpy: numpy -> PointCloud2 -> CDR -> PointCloud2 -> numpy
    msg = conv.array_to_pointcloud2(cloud.points, "LIDAR_TOP", cloud.stamp_ns, factory=RC)
    back = conv.pointcloud2_to_cloud(deserialize_message(serialize_message(msg), PointCloud2))
    assert back.points.tobytes() == file_bytes
    assert (back.stamp_ns, back.frame_id, back.points.dtype.names) == (
        cloud.stamp_ns, "LIDAR_TOP", ("x", "y", "z", "intensity", "ring"))
    # rosbags (no ROS): same bytes
    rmsg = conv.array_to_pointcloud2(cloud.points, "LIDAR_TOP", cloud.stamp_ns, factory=RB)
    rback = conv.pointcloud2_to_cloud(_cdr_rosbags(rmsg, "sensor_msgs/msg/PointCloud2"))
    assert rback.points.tobytes() == file_bytes


def test_nuscenes_radar_pcd_packed_43_byte_layout_round_trips(real_data):
    files = sorted((real_data / "nuscenes_radar_pcd").glob("*.pcd"))
    assert len(files) == 3
    for f in files:
        scan = readers.read_nuscenes_radar_pcd(f)
        assert len(scan) == 125 and scan.points.dtype.itemsize == 43
        assert scan.frame_id.startswith("RADAR_")
        raw = f.read_bytes()
        body_start = raw.index(b"DATA binary\n") + len(b"DATA binary\n")
        assert scan.points.tobytes() == raw[body_start: body_start + 125 * 43]  # trailing bytes ignored
        assert np.all(np.abs(scan.xyz_m()) < 300)
        msg = conv.array_to_pointcloud2(scan.points, scan.frame_id, scan.stamp_ns, factory=RC)
        assert msg.point_step == 43 and [f.name for f in msg.fields][-1] == "vy_rms"
        back = conv.pointcloud2_to_radar_scan(deserialize_message(serialize_message(msg), PointCloud2))
        assert back.points.tobytes() == scan.points.tobytes()
        np.testing.assert_array_equal(back.points["vx_comp"], scan.points["vx_comp"])


def test_vod_lidar_and_radar_round_trip(real_data):
    vod = json.loads((real_data / "vod_example_set" / "vod_frames.json").read_text())
    for fr in vod["frames"]:
        lidar = readers.read_vod_lidar_bin(real_data / "vod_example_set" / fr["lidar_file"])
        radar = readers.read_vod_radar_bin(real_data / "vod_example_set" / fr["radar_file"])
        for data in (lidar.points, radar.points):
            msg = conv.array_to_pointcloud2(data, "vod", 0, factory=RB)
            assert conv.pointcloud2_to_array(_cdr_rosbags(msg, "sensor_msgs/msg/PointCloud2")).tobytes() == \
                data.tobytes()
        assert radar.points.dtype.names[-3:] == ("v_r", "v_r_compensated", "time")


def test_nuscenes_jpegs_round_trip_and_decode_like_pillow(real_data, nusc):
    for name, cam in nusc["cameras"].items():
        path = real_data / SAMPLE / cam["file"]
        data = path.read_bytes()
        msg = conv.compressed_image(data, name, cam["timestamp_us"] * 1000, "jpeg", factory=RC)
        back = deserialize_message(serialize_message(msg), CompressedImage)
        assert bytes(back.data) == data
        frame = conv.decode_compressed(back, expected_size=(1600, 900))
        np.testing.assert_array_equal(frame.image, np.asarray(PILImage.open(path).convert("RGB")))
        assert (frame.frame_id, frame.stamp_ns) == (name, cam["timestamp_us"] * 1000)


def test_camera_info_from_real_intrinsics_matches_rig(real_data, nusc):
    rig = load_rig()
    infos = {}
    for name, cam in nusc["cameras"].items():
        intr = CameraIntrinsics(K=np.array(cam["K_cam2img"]), width=cam["width"], height=cam["height"])
        msg = conv.intrinsics_to_camera_info(intr, name, 0, factory=RC)
        infos[name] = conv.camera_info_to_intrinsics(deserialize_message(serialize_message(msg), CameraInfo))
    report = check_intrinsics(rig, infos)
    assert {n: r.status for n, r in report.items()} == {n: "ok" for n in nusc["cameras"]}
    # a CameraInfo whose principal point moved 20 px is reported for that camera only
    bad = dict(infos)
    K = infos["CAM_BACK"].K.copy()
    K[0, 2] += 20
    bad["CAM_BACK"] = CameraIntrinsics(K=K, width=1600, height=900)
    del bad["CAM_FRONT_LEFT"]
    report = check_intrinsics(rig, bad)
    assert report["CAM_BACK"].status == "mismatch" and "20.00 px" in report["CAM_BACK"].reason
    assert report["CAM_FRONT_LEFT"].status == "missing"
    assert sorted(n for n, r in report.items() if not r.ok) == ["CAM_BACK", "CAM_FRONT_LEFT"]


def _write_bag(path: Path, storage, topics: dict[str, tuple[str, list]]):
    store = get_typestore(Stores.ROS2_KILTED)
    with Writer(path, version=9, storage_plugin=storage) as w:
        for topic, (typename, msgs) in topics.items():
            c = w.add_connection(topic, typename, typestore=store)
            for i, m in enumerate(msgs):
                w.write(c, 1_000_000_000 + i, bytes(store.serialize_cdr(m, typename)))


@pytest.mark.parametrize("storage", [StoragePlugin.SQLITE3, StoragePlugin.MCAP], ids=["sqlite3", "mcap"])
def test_tf_static_and_camera_info_from_a_bag(tmp_path, storage, real_data, nusc):
    rig = load_rig()
    edges = rig_transforms(rig)
    # the bag's tf tree: base_link -> LIDAR_TOP -> cameras (a chain, as drivers publish it);
    # RADAR_BACK_LEFT yawed by 2 degrees; RADAR_BACK_RIGHT missing
    T_base_lidar = rig.sensors["LIDAR_TOP"].T_base_sensor
    tf = []
    for e in edges:
        if e.child_frame == "RADAR_BACK_RIGHT":
            continue
        T = e.T_parent_child
        if e.child_frame == "RADAR_BACK_LEFT":
            a = np.radians(2.0)
            Rz = np.array([[np.cos(a), -np.sin(a), 0, 0], [np.sin(a), np.cos(a), 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
            T = T @ Rz
        if e.child_frame.startswith("CAM_"):
            tf.append(StampedTransform("LIDAR_TOP", e.child_frame, 0, np.linalg.inv(T_base_lidar) @ T))
        else:
            tf.append(StampedTransform(e.parent_frame, e.child_frame, 0, T))
    infos = []
    for name, cam in nusc["cameras"].items():
        intr = CameraIntrinsics(K=np.array(cam["K_cam2img"]), width=cam["width"], height=cam["height"])
        infos.append((f"/{name}/camera_info", conv.intrinsics_to_camera_info(intr, name, 0, factory=RB)))
    topics = {"/tf_static": ("tf2_msgs/msg/TFMessage", [conv.transforms_to_tf_message(tf, RB)])}
    for topic, m in infos:
        topics[topic] = ("sensor_msgs/msg/CameraInfo", [m])
    bag = tmp_path / "bag"
    _write_bag(bag, storage, topics)
    with AnyReader([bag]) as r:
        assert {c.topic for c in r.connections} == set(topics)
    tree, got_infos, errors = read_bag_calibration(bag, rig)
    assert errors == {}
    ext = check_extrinsics(rig, tree)
    assert ext["RADAR_BACK_LEFT"].status == "mismatch" and "2.00 deg" in ext["RADAR_BACK_LEFT"].reason
    assert ext["RADAR_BACK_RIGHT"].status == "missing"
    assert sorted(n for n, r in ext.items() if r.ok) == sorted(set(rig.sensors) - {"RADAR_BACK_LEFT",
                                                                                    "RADAR_BACK_RIGHT"})
    assert max(r.values["translation_error_m"] for r in ext.values() if r.ok) < 1e-9
    assert all(r.ok for r in check_intrinsics(rig, got_infos).values())


def test_real_messages_through_an_mcap_bag_read_without_ros(tmp_path, real_data, nusc):
    """Write LiDAR + radar + JPEG messages to MCAP (rosbags), read back with AnyReader: same bytes."""
    cloud = readers.read_nuscenes_lidar_bin(real_data / SAMPLE / nusc["lidar"]["file"])
    radar = readers.read_nuscenes_radar_pcd(next((real_data / "nuscenes_radar_pcd").glob("*RADAR_FRONT*")))
    cam = nusc["cameras"]["CAM_FRONT"]
    jpeg = (real_data / SAMPLE / cam["file"]).read_bytes()
    topics = {
        "/LIDAR_TOP": ("sensor_msgs/msg/PointCloud2",
                       [conv.array_to_pointcloud2(cloud.points, "LIDAR_TOP", cloud.stamp_ns, factory=RB)]),
        "/RADAR_FRONT": ("sensor_msgs/msg/PointCloud2",
                         [conv.array_to_pointcloud2(radar.points, "RADAR_FRONT", radar.stamp_ns, factory=RB)]),
        "/CAM_FRONT/image_rect_compressed": ("sensor_msgs/msg/CompressedImage",
                                             [conv.compressed_image(jpeg, "CAM_FRONT", 1, "jpeg", factory=RB)]),
    }
    bag = tmp_path / "real"
    _write_bag(bag, StoragePlugin.MCAP, topics)
    got = {}
    with AnyReader([bag]) as r:
        for conn, _t, raw in r.messages():
            got[conn.topic] = r.deserialize(raw, conn.msgtype)
    assert conv.pointcloud2_to_cloud(got["/LIDAR_TOP"]).points.tobytes() == cloud.points.tobytes()
    assert conv.pointcloud2_to_radar_scan(got["/RADAR_FRONT"]).points.tobytes() == radar.points.tobytes()
    frame = conv.decode_compressed(got["/CAM_FRONT/image_rect_compressed"], target_size=(400, 225))
    assert frame.image.shape == (225, 400, 3) and frame.scale == 0.25
