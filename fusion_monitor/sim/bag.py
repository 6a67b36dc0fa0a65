"""Writing synthetic drives as rosbag2 (MCAP or sqlite3) with the nuScenes topic names (pure Python: rosbags)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fusion_monitor.sim.drive import Drive

STORAGES = ("mcap", "sqlite3")
_POINTFIELD_TYPES = {np.dtype(np.int8): 1, np.dtype(np.uint8): 2, np.dtype(np.int16): 3, np.dtype(np.uint16): 4,
                     np.dtype(np.int32): 5, np.dtype(np.uint32): 6, np.dtype(np.float32): 7, np.dtype(np.float64): 8}
LIDAR_DTYPE = np.dtype([("x", np.float32), ("y", np.float32), ("z", np.float32), ("intensity", np.float32),
                        ("ring", np.float32)])


def _typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


def _stamp(ts, stamp_ns: int):
    Time = ts.types["builtin_interfaces/msg/Time"]
    return Time(sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000))


def _header(ts, stamp_ns: int, frame_id: str):
    return ts.types["std_msgs/msg/Header"](stamp=_stamp(ts, stamp_ns), frame_id=frame_id)


def pointcloud2(ts, stamp_ns: int, frame_id: str, points: np.ndarray):
    """PointCloud2 from a structured array (fields, offsets and types from its dtype; little endian, dense)."""
    PointField = ts.types["sensor_msgs/msg/PointField"]
    dt = points.dtype
    fields = [PointField(name=n, offset=int(dt.fields[n][1]), datatype=_POINTFIELD_TYPES[dt.fields[n][0]], count=1)
              for n in dt.names]
    data = np.frombuffer(np.ascontiguousarray(points).tobytes(), np.uint8)
    return ts.types["sensor_msgs/msg/PointCloud2"](
        header=_header(ts, stamp_ns, frame_id), height=1, width=len(points), fields=fields, is_bigendian=False,
        point_step=dt.itemsize, row_step=dt.itemsize * len(points), data=data, is_dense=True)


def lidar_structured(points: np.ndarray) -> np.ndarray:
    """(N, 5) float32 x y z intensity ring -> structured LIDAR_DTYPE."""
    out = np.zeros(len(points), LIDAR_DTYPE)
    for k, n in enumerate(LIDAR_DTYPE.names):
        out[n] = points[:, k]
    return out


def _transform(ts, stamp_ns: int, parent: str, child: str, T: np.ndarray):
    from scipy.spatial.transform import Rotation

    q = Rotation.from_matrix(T[:3, :3]).as_quat()  # x y z w
    g = ts.types
    return g["geometry_msgs/msg/TransformStamped"](
        header=_header(ts, stamp_ns, parent), child_frame_id=child,
        transform=g["geometry_msgs/msg/Transform"](
            translation=g["geometry_msgs/msg/Vector3"](x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
            rotation=g["geometry_msgs/msg/Quaternion"](x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))))


def write_bag(drive: Drive, path: str | Path, storage: str = "mcap", workers: int = 2, jpeg_quality: int = 90) -> Path:
    """Write ``drive`` as a rosbag2 folder at ``path`` (must not exist).

    Topics: /CAM_*/image_rect_compressed (CompressedImage, JPEG), /CAM_*/camera_info (CameraInfo, one per image),
    /LIDAR_TOP and /RADAR_* (PointCloud2; radar fields as nuScenes: x y z dyn_prop id rcs vx vy vx_comp vy_comp ...),
    /tf_static (base_link -> every sensor, first stamp, transient local). header.frame_id = the channel name;
    stamps = sim time from EPOCH_NS.
    """
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
    from rosbags.rosbag2 import StoragePlugin, Writer

    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {STORAGES}, got {storage!r}")
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"bag path {path} already exists")
    ts = _typestore()
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    zero = QosTime(sec=0, nsec=0)
    latched = Qos(history=QosHistory.KEEP_LAST, depth=1, reliability=QosReliability.RELIABLE,
                  durability=QosDurability.TRANSIENT_LOCAL, deadline=zero, lifespan=zero,
                  liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=zero,
                  avoid_ros_namespace_conventions=False)
    rig = drive.rig
    CompressedImage = ts.types["sensor_msgs/msg/CompressedImage"]
    CameraInfo = ts.types["sensor_msgs/msg/CameraInfo"]
    RegionOfInterest = ts.types["sensor_msgs/msg/RegionOfInterest"]
    with Writer(path, version=9, storage_plugin=plugin) as w:
        conns = {}
        tf_conn = w.add_connection("/tf_static", "tf2_msgs/msg/TFMessage", typestore=ts, offered_qos_profiles=[latched])
        for s in rig.sensors.values():
            if s.modality == "camera":
                conns[s.name] = w.add_connection(s.topic, "sensor_msgs/msg/CompressedImage", typestore=ts)
                info_topic = s.camera_info_topic or f"/{s.name}/camera_info"
                conns[s.name + "/info"] = w.add_connection(info_topic, "sensor_msgs/msg/CameraInfo", typestore=ts)
            else:
                conns[s.name] = w.add_connection(s.topic, "sensor_msgs/msg/PointCloud2", typestore=ts)
        first = drive.schedule()[0][0] if drive.schedule() else 0
        tfs = [_transform(ts, first, rig.base_frame, s.frame_id, s.T_base_sensor) for s in rig.sensors.values()]
        msg = ts.types["tf2_msgs/msg/TFMessage"](transforms=tfs)
        w.write(tf_conn, first, ts.serialize_cdr(msg, "tf2_msgs/msg/TFMessage"))
        for m in drive.messages(workers=workers, jpeg_quality=jpeg_quality):
            s = rig.sensors[m.sensor]
            if m.modality == "camera":
                img = CompressedImage(header=_header(ts, m.stamp_ns, s.frame_id), format="jpeg",
                                      data=np.frombuffer(m.jpeg, np.uint8))
                w.write(conns[s.name], m.stamp_ns, ts.serialize_cdr(img, CompressedImage.__msgtype__))
                K, width, height = drive.camera_intrinsics(s.name)
                P = np.zeros((3, 4))
                P[:, :3] = K
                info = CameraInfo(header=_header(ts, m.stamp_ns, s.frame_id), height=int(height), width=int(width),
                                  distortion_model="plumb_bob", d=np.zeros(5), k=np.asarray(K, float).ravel(),
                                  r=np.eye(3).ravel(), p=P.ravel(), binning_x=0, binning_y=0,
                                  roi=RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
                w.write(conns[s.name + "/info"], m.stamp_ns, ts.serialize_cdr(info, CameraInfo.__msgtype__))
            else:
                pts = lidar_structured(m.data) if m.modality == "lidar" else m.data
                pc = pointcloud2(ts, m.stamp_ns, s.frame_id, pts)
                w.write(conns[s.name], m.stamp_ns, ts.serialize_cdr(pc, "sensor_msgs/msg/PointCloud2"))
    return path
