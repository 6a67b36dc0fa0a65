"""Tiny rosbag2 fixtures for the ROS tests, written with rosbags (no ROS needed).

A nuScenes-named rig at real rates with small payloads: LIDAR_TOP 20 Hz (PointCloud2, x y z
intensity ring), six cameras 12 Hz (64x36 JPEG CompressedImage), five radars 13 Hz
(PointCloud2 x y z rcs vx_comp vy_comp). ``malformed`` lists (topic, t_s) where a broken message
is written instead (truncated cloud data / non-image bytes).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

CAMERAS = ("CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")
RADARS = ("RADAR_FRONT", "RADAR_FRONT_LEFT", "RADAR_FRONT_RIGHT", "RADAR_BACK_LEFT", "RADAR_BACK_RIGHT")
T0_NS = 1_700_000_000_000_000_000


def camera_topic(cam: str) -> str:
    return f"/{cam}/image_rect_compressed"


def _typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(getattr(Stores, "ROS2_KILTED", None) or Stores.LATEST)


def _header(ts, frame_id: str, stamp_ns: int):
    sec, nsec = divmod(stamp_ns, 1_000_000_000)
    return ts.types["std_msgs/msg/Header"](stamp=ts.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec),
                                           frame_id=frame_id)


def _cloud(ts, frame_id: str, stamp_ns: int, names: tuple[str, ...], pts: np.ndarray, truncate: bool = False):
    PF = ts.types["sensor_msgs/msg/PointField"]
    fields = [PF(name=n, offset=4 * i, datatype=7, count=1) for i, n in enumerate(names)]
    data = np.ascontiguousarray(pts, dtype=np.float32).tobytes()
    if truncate:
        data = data[: len(data) // 2 + 3]
    return ts.types["sensor_msgs/msg/PointCloud2"](
        header=_header(ts, frame_id, stamp_ns), height=1, width=len(pts), fields=fields, is_bigendian=False,
        point_step=4 * len(names), row_step=4 * len(names) * len(pts),
        data=np.frombuffer(data, dtype=np.uint8), is_dense=True)


def _jpeg(seed: int, w: int = 64, h: int = 36) -> bytes:
    rng = np.random.default_rng(seed)
    img = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    PILImage.fromarray(img).save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def write_rig_bag(path: Path, seconds: float = 4.0, *, malformed: tuple[tuple[str, float], ...] = (),
                  lidar_points: int = 2000, storage: str = "sqlite3",
                  camera_info_fx: float | None = None, recorded_clock_offset_s: float | None = None
                  ) -> dict[str, list[int]]:
    """Write the bag; return topic -> header stamps (ns) actually written (well-formed ones)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    ts = _typestore()
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    rng = np.random.default_rng(0)
    events: list[tuple[int, str, str, object]] = []
    stamps: dict[str, list[int]] = {}
    bad = {(topic, round(t, 3)) for topic, t in malformed}

    def is_bad(topic: str, t: float, period: float) -> bool:
        return any(b[0] == topic and abs(b[1] - t) < period / 2 for b in bad)

    def sched(topic: str, rate: float, make, msgtype: str, phase: float = 0.0):
        n = int(seconds * rate)
        for k in range(n):
            t = phase + k / rate
            stamp = T0_NS + int(round(t * 1e9))
            broken = is_bad(topic, t, 1.0 / rate)
            events.append((stamp, topic, msgtype, make(stamp, k, broken)))
            if not broken:
                stamps.setdefault(topic, []).append(stamp)

    def lidar(stamp, k, broken):
        pts = np.column_stack([rng.uniform(-40, 40, (lidar_points, 2)), rng.uniform(-1, 3, lidar_points),
                               rng.uniform(0, 100, lidar_points), rng.integers(0, 32, lidar_points)])
        return _cloud(ts, "LIDAR_TOP", stamp, ("x", "y", "z", "intensity", "ring"), pts, truncate=broken)

    sched("/LIDAR_TOP", 20.0, lidar, "sensor_msgs/msg/PointCloud2")
    for i, cam in enumerate(CAMERAS):
        def cam_msg(stamp, k, broken, cam=cam, i=i):
            data = b"\x00not-an-image" * 10 if broken else _jpeg(1000 * i + k)
            return ts.types["sensor_msgs/msg/CompressedImage"](
                header=_header(ts, cam, stamp), format="jpeg", data=np.frombuffer(data, dtype=np.uint8))
        sched(camera_topic(cam), 12.0, cam_msg, "sensor_msgs/msg/CompressedImage", phase=0.004 * (i + 1))
    if camera_info_fx is not None:  # /CAM_FRONT/camera_info at 1 Hz, 1600x900 (the rig's size)
        def info(stamp, k, broken):
            K = [camera_info_fx, 0.0, 800.0, 0.0, camera_info_fx, 450.0, 0.0, 0.0, 1.0]
            return ts.types["sensor_msgs/msg/CameraInfo"](
                header=_header(ts, "CAM_FRONT", stamp), height=900, width=1600, distortion_model="plumb_bob",
                d=np.zeros(5), k=np.array(K), r=np.eye(3).ravel(), p=np.zeros(12), binning_x=0, binning_y=0,
                roi=ts.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                                 do_rectify=False))
        sched("/CAM_FRONT/camera_info", 1.0, info, "sensor_msgs/msg/CameraInfo", phase=0.001)
    for i, rad in enumerate(RADARS):
        def radar_msg(stamp, k, broken, rad=rad):
            pts = np.column_stack([rng.uniform(0, 80, (60, 1)), rng.uniform(-20, 20, (60, 1)), np.zeros((60, 1)),
                                   rng.uniform(-5, 20, (60, 1)), rng.normal(0, 2, (60, 2))])
            return _cloud(ts, rad, stamp, ("x", "y", "z", "rcs", "vx_comp", "vy_comp"), pts, truncate=broken)
        sched(f"/{rad}", 13.0, radar_msg, "sensor_msgs/msg/PointCloud2", phase=0.007 * (i + 1))

    if recorded_clock_offset_s is not None:  # a recorded /clock at 10 Hz, offset from the stamps
        def clock(stamp, k, broken):
            sec, nsec = divmod(stamp + int(recorded_clock_offset_s * 1e9), 1_000_000_000)
            return ts.types["rosgraph_msgs/msg/Clock"](clock=ts.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec))
        sched("/clock", 10.0, clock, "rosgraph_msgs/msg/Clock")

    events.sort(key=lambda e: e[0])
    with Writer(path, version=9, storage_plugin=plugin) as w:
        conns = {}
        for _, topic, msgtype, _ in events:
            if topic not in conns:
                conns[topic] = w.add_connection(topic, msgtype, typestore=ts)
        for stamp, topic, msgtype, msg in events:
            w.write(conns[topic], stamp, bytes(ts.serialize_cdr(msg, msgtype)))
    return stamps
