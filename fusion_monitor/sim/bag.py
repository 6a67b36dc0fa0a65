"""Writing synthetic drives as rosbag2 (MCAP or sqlite3) with the nuScenes topic names (pure Python: rosbags)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fusion_monitor.sensors.jpeg import encode_jpeg
from fusion_monitor.sim.drive import EPOCH_NS, Drive

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


#: /clock rate (Hz, sim time) written into bags: use_sim_time consumers see time advance between sensor messages.
CLOCK_HZ = 100.0


def _qos(durability: str, reliability: str):
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    zero = QosTime(sec=0, nsec=0)
    return Qos(history=QosHistory.KEEP_LAST, depth=1, reliability=getattr(QosReliability, reliability),
               durability=getattr(QosDurability, durability), deadline=zero, lifespan=zero,
               liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=zero,
               avoid_ros_namespace_conventions=False)


class _Clock:
    """rosgraph_msgs/Clock ticks every ``period_ns`` of sim time from ``first_ns`` to ``last_ns``, written in
    log-time order ahead of the messages they precede (``until``)."""

    def __init__(self, writer, ts, first_ns: int, last_ns: int, hz: float | None):
        self.writer, self.ts = writer, ts
        self.next_ns, self.last_ns = first_ns, last_ns
        self.period_ns = int(round(1e9 / hz)) if hz else 0
        if self.period_ns <= 0 and hz is not None:
            raise ValueError(f"clock_hz must be > 0, got {hz}")
        self.conn = writer.add_connection("/clock", "rosgraph_msgs/msg/Clock", typestore=ts,
                                          offered_qos_profiles=[_qos("VOLATILE", "BEST_EFFORT")]) if hz else None

    def until(self, stamp_ns: int) -> None:
        """Write every tick at or before ``stamp_ns``."""
        if self.conn is None:
            return
        Clock = self.ts.types["rosgraph_msgs/msg/Clock"]
        while self.next_ns <= min(stamp_ns, self.last_ns):
            msg = Clock(clock=_stamp(self.ts, self.next_ns))
            self.writer.write(self.conn, self.next_ns, self.ts.serialize_cdr(msg, Clock.__msgtype__))
            self.next_ns += self.period_ns


def faulted_sensors(faults, rig) -> set[str]:
    """Names of the rig sensors any episode of the injector ``faults`` can touch."""
    if faults is None:
        return set()
    return {n for n, s in rig.sensors.items()
            if any(n in e.sensors or e.target in (n, s.modality) for e in faults.episodes)}


def fault_injector(drive: Drive, spec, seed: int | None = None):
    """A :class:`~fusion_monitor.sensors.faults.FaultInjector` for ``drive`` from a fault spec in the syntax of
    `fusion-monitor inject` (windows in seconds from the drive start; seeded by the drive's seed by default).

    Raises FaultSpecError (before anything is rendered) for unknown faults or sensors, faults not applicable to
    a sensor, bad severities or params, and windows starting at or after the end of the drive.
    """
    from fusion_monitor.sensors.faults import FaultInjector, FaultSpecError, parse_fault_spec

    rig = drive.rig
    episodes = parse_fault_spec(spec, {n: s.modality for n, s in rig.sensors.items()})
    for i, e in enumerate(episodes):
        if e.start_s >= drive.duration_s:
            raise FaultSpecError(i, f"window starts at {e.start_s:g} s, after the end of the drive "
                                    f"({drive.duration_s:g} s)")
    schedule = drive.schedule()
    return FaultInjector(episodes, seed=drive.seed if seed is None else seed,
                         t0_ns=schedule[0][0] if schedule else EPOCH_NS,
                         T_base_sensor={n: s.T_base_sensor for n, s in rig.sensors.items()})


class _FaultStage:
    """Messages of faulted sensors through a :class:`~fusion_monitor.sensors.faults.FaultInjector` (every message
    of such a sensor, so per-sensor frame counters match `fusion-monitor inject`); counts what happened."""

    def __init__(self, injector, rig):
        self.injector = injector
        self.sensors = faulted_sensors(injector, rig)
        self.counts = {"faulted": 0, "dropped": 0, "copied": 0}

    def apply(self, sensor: str, modality: str, data, stamp_ns: int) -> tuple[object, int, str]:
        """(new data, header stamp, what happened: "clean" | "copied" | "faulted" | "dropped")."""
        if sensor not in self.sensors:
            return data, stamp_ns, "clean"
        new, new_stamp = self.injector.apply(sensor, modality, data, stamp_ns)
        what = "dropped" if new is None else "faulted" if (new is not data or new_stamp != stamp_ns) else "copied"
        self.counts[what] += 1
        return new, new_stamp, what


def write_bag(drive: Drive, path: str | Path, storage: str = "mcap", workers: int = 2, jpeg_quality: int = 90,
              clock_hz: float | None = CLOCK_HZ, faults=None, stats: dict | None = None) -> Path:
    """Write ``drive`` as a rosbag2 folder at ``path`` (must not exist).

    Topics: /CAM_*/image_rect_compressed (CompressedImage, JPEG), /CAM_*/camera_info (CameraInfo, one per image),
    /LIDAR_TOP and /RADAR_* (PointCloud2; radar fields as nuScenes: x y z dyn_prop id rcs vx vy vx_comp vy_comp ...),
    /tf_static (base_link -> every sensor, first stamp, transient local), /clock (rosgraph_msgs/Clock at
    ``clock_hz`` in sim time from the first to the last stamp; None: no /clock). header.frame_id = the channel
    name; stamps = sim time from EPOCH_NS.

    ``faults``: a :class:`~fusion_monitor.sensors.faults.FaultInjector` applied to the sensor data before it is
    encoded (as `fusion-monitor inject` would to a recorded bag: dropped messages are left out, their CameraInfo
    kept; shifted stamps go into the header, log times stay). ``stats``, when given, receives the message counts
    {"faulted", "dropped", "copied"} of the faulted sensors.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {STORAGES}, got {storage!r}")
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"bag path {path} already exists")
    ts = _typestore()
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    rig = drive.rig
    stage = _FaultStage(faults, rig) if faults is not None else None
    keep = stage.sensors if stage else set()
    schedule = drive.schedule()
    first, last = (schedule[0][0], schedule[-1][0]) if schedule else (0, 0)
    if isinstance(drive, Drive):  # cameras without faults only need their JPEG
        messages = drive.messages(workers=workers, jpeg_quality=jpeg_quality, keep_images=keep)
    else:
        messages = drive.messages(workers=workers, jpeg_quality=jpeg_quality)
    with Writer(path, version=9, storage_plugin=plugin) as w:
        conns = _add_connections(w, ts, rig)
        clock = _Clock(w, ts, first, last, clock_hz)
        clock.until(first)
        tfs = [_transform(ts, first, rig.base_frame, s.frame_id, s.T_base_sensor) for s in rig.sensors.values()]
        msg = ts.types["tf2_msgs/msg/TFMessage"](transforms=tfs)
        w.write(conns["/tf_static"], first, ts.serialize_cdr(msg, "tf2_msgs/msg/TFMessage"))
        for m in messages:
            clock.until(m.stamp_ns)
            _write_message(w, ts, conns, drive, m, stage, jpeg_quality)
        clock.until(last)
    if stats is not None and stage is not None:
        stats.update(stage.counts)
    return path


def _add_connections(w, ts, rig) -> dict:
    """Connections by sensor name (cameras: name and name + "/info") and "/tf_static"."""
    conns = {"/tf_static": w.add_connection("/tf_static", "tf2_msgs/msg/TFMessage", typestore=ts,
                                            offered_qos_profiles=[_qos("TRANSIENT_LOCAL", "RELIABLE")])}
    sensor = [_qos("VOLATILE", "BEST_EFFORT")]  # what sensor drivers offer (sensor-data QoS), as ros2 bag records it
    for s in rig.sensors.values():
        if s.modality == "camera":
            conns[s.name] = w.add_connection(s.topic, "sensor_msgs/msg/CompressedImage", typestore=ts,
                                             offered_qos_profiles=sensor)
            info_topic = s.camera_info_topic or f"/{s.name}/camera_info"
            conns[s.name + "/info"] = w.add_connection(info_topic, "sensor_msgs/msg/CameraInfo", typestore=ts,
                                                       offered_qos_profiles=sensor)
        else:
            conns[s.name] = w.add_connection(s.topic, "sensor_msgs/msg/PointCloud2", typestore=ts,
                                             offered_qos_profiles=sensor)
    return conns


def _write_message(w, ts, conns: dict, drive, m, stage: _FaultStage | None, jpeg_quality: int) -> None:
    """One sensor message (through the fault stage when given); a camera image also gets its CameraInfo."""
    s = drive.rig.sensors[m.sensor]
    data = lidar_structured(m.data) if m.modality == "lidar" else m.data
    stamp, what = m.stamp_ns, "clean"
    if stage is not None:
        data, stamp, what = stage.apply(m.sensor, m.modality, data, m.stamp_ns)
    if m.modality == "camera":
        if what != "dropped":
            jpeg = encode_jpeg(data, jpeg_quality) if what == "faulted" or m.jpeg is None else m.jpeg
            img = ts.types["sensor_msgs/msg/CompressedImage"](header=_header(ts, stamp, s.frame_id), format="jpeg",
                                                              data=np.frombuffer(jpeg, np.uint8))
            w.write(conns[s.name], m.stamp_ns, ts.serialize_cdr(img, "sensor_msgs/msg/CompressedImage"))
        info = _camera_info(ts, drive, s, m.stamp_ns)
        w.write(conns[s.name + "/info"], m.stamp_ns, ts.serialize_cdr(info, "sensor_msgs/msg/CameraInfo"))
    elif what != "dropped":
        pc = pointcloud2(ts, stamp, s.frame_id, data)
        w.write(conns[s.name], m.stamp_ns, ts.serialize_cdr(pc, "sensor_msgs/msg/PointCloud2"))


def _camera_info(ts, drive, s, stamp_ns: int):
    K, width, height = drive.camera_intrinsics(s.name)
    P = np.zeros((3, 4))
    P[:, :3] = K
    return ts.types["sensor_msgs/msg/CameraInfo"](
        header=_header(ts, stamp_ns, s.frame_id), height=int(height), width=int(width), distortion_model="plumb_bob",
        d=np.zeros(5), k=np.asarray(K, float).ravel(), r=np.eye(3).ravel(), p=P.ravel(), binning_x=0, binning_y=0,
        roi=ts.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
