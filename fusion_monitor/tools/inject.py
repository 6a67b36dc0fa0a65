"""`fusion-monitor inject BAG --faults SPEC --out BAG`: sensor faults injected into any recorded rosbag2.

Camera, LiDAR and radar messages are decoded, passed through the fault injector
(fusion_monitor.sensors.faults: MultiCorrupt / nuScenes-C / Robo3D taxonomies, severities 1..5,
time windows in seconds from the bag start) and re-encoded (JPEG for compressed images, the same
field layout for clouds); dropped messages are left out; every other topic is copied byte for
byte. The episodes are written next to the output bag as ground truth (<out>.faults.json).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import yaml
from rosbags.rosbag2.metadata import parse_qos

from fusion_monitor.bagio import BagError, deserialize, open_bag, typestore
from fusion_monitor.sensors.faults import FaultInjector, FaultSpecError, parse_fault_spec
from fusion_monitor.sensors.jpeg import encode_jpeg
from fusion_monitor.sensors.rig import Rig, load_rig

SENSOR_TYPES = ("sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/Image", "sensor_msgs/msg/PointCloud2")


def load_fault_spec(spec: str) -> list | dict:
    """A fault spec from a YAML/JSON file or inline YAML text."""
    try:
        is_file = "\n" not in spec and Path(spec).is_file()
    except (OSError, ValueError):  # inline text too long (or odd) for a path
        is_file = False
    text = Path(spec).read_text() if is_file else spec
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise FaultSpecError(None, f"not valid YAML: {e}") from None


def _topic_sensors(rig: Rig, topics: dict[str, str]) -> dict[str, tuple[str, str]]:
    out = {}
    for s in rig.sensors.values():
        for t, typ in topics.items():
            if typ in SENSOR_TYPES and (t == s.topic or (s.modality == "camera" and t.startswith(f"/{s.name}/")
                                                         and typ != "sensor_msgs/msg/CameraInfo")):
                out[t] = (s.name, s.modality)
    return out


def _encode_camera(msg, rgb: np.ndarray, stamp_ns: int):
    ts = typestore()
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    header = ts.types["std_msgs/msg/Header"](stamp=ts.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec),
                                             frame_id=msg.header.frame_id)
    if hasattr(msg, "format"):
        return ts.types["sensor_msgs/msg/CompressedImage"](header=header, format="jpeg",
                                                           data=np.frombuffer(encode_jpeg(rgb), np.uint8)), \
            "sensor_msgs/msg/CompressedImage"
    h, w = rgb.shape[:2]
    return ts.types["sensor_msgs/msg/Image"](header=header, height=h, width=w, encoding="rgb8", is_bigendian=0,
                                             step=w * 3, data=np.ascontiguousarray(rgb).reshape(-1)), \
        "sensor_msgs/msg/Image"


def inject_bag(bag: str | Path, out: str | Path, spec, *, rig: Rig | None = None, seed: int = 0,
               storage: str | None = None) -> dict:
    """Write a copy of ``bag`` with the faults of ``spec`` injected; returns the ground-truth record.

    Raises FaultSpecError (before writing anything) for unknown faults/sensors or windows outside the bag.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    from fusion_monitor.ros.ingest import camera_rgb
    from fusion_monitor.ros.pointcloud import array_to_pointcloud2, pointcloud2_to_array, rosbags_factory, stamp_ns_of

    rig = rig or load_rig()
    src = open_bag(bag)
    episodes = parse_fault_spec(spec, {n: s.modality for n, s in rig.sensors.items()})
    msgs_iter = src.messages()
    first = next(msgs_iter, None)
    if first is None:
        raise BagError(bag, "bag holds no messages")
    duration_s = _bag_duration_s(src)
    for i, e in enumerate(episodes):
        if duration_s and e.start_s >= duration_s:
            raise FaultSpecError(i, f"window starts at {e.start_s} s, after the end of the bag ({duration_s:.1f} s)")
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; choose another --out")
    topics = _topic_sensors(rig, src.topics)
    injector = FaultInjector(episodes, seed=seed, t0_ns=first.log_time_ns,
                             T_base_sensor={n: s.T_base_sensor for n, s in rig.sensors.items()})
    factory = rosbags_factory(typestore())
    ts = typestore()
    plugin = StoragePlugin.MCAP if (storage or _storage_of(src)) == "mcap" else StoragePlugin.SQLITE3
    counts = {"copied": 0, "faulted": 0, "dropped": 0}
    with Writer(out, version=9, storage_plugin=plugin) as writer:
        conns: dict[tuple[str, str], object] = {}

        def conn(topic, typ):
            key = (topic, typ)
            if key not in conns:
                # the source's offered QoS as recorded (a player offers the same; an unknown form: none)
                try:
                    offered = parse_qos(src.qos.get(topic, ""))
                except Exception:  # noqa: BLE001 - unreadable QoS text is not worth failing the injection
                    offered = []
                conns[key] = writer.add_connection(topic, typ, typestore=ts, offered_qos_profiles=offered)
            return conns[key]

        def handle(raw):
            target = topics.get(raw.topic)
            if target is None or not injector.episodes:
                writer.write(conn(raw.topic, raw.msgtype), raw.log_time_ns, raw.data)
                counts["copied"] += 1
                return
            sensor, modality = target
            msg = deserialize(raw)
            stamp_ns = stamp_ns_of(msg, sensor)
            if not injector.active(sensor, stamp_ns) and not any(
                    e.fault in ("frozen", "time_offset") for e in injector.episodes):
                writer.write(conn(raw.topic, raw.msgtype), raw.log_time_ns, raw.data)
                counts["copied"] += 1
                injector.apply(sensor, modality, None, stamp_ns)  # keeps per-sensor frame counters aligned
                return
            if modality == "camera":
                data, _ = camera_rgb(msg, sensor)
            else:
                data = pointcloud2_to_array(msg, sensor).reshape(-1).copy()
            new, new_stamp = injector.apply(sensor, modality, data, stamp_ns)
            if new is None:
                counts["dropped"] += 1
                return
            if new is data and new_stamp == stamp_ns:
                writer.write(conn(raw.topic, raw.msgtype), raw.log_time_ns, raw.data)
                counts["copied"] += 1
                return
            if modality == "camera":
                out_msg, typ = _encode_camera(msg, new, new_stamp)
            else:
                out_msg = array_to_pointcloud2(np.ascontiguousarray(new), msg.header.frame_id, new_stamp,
                                               factory=factory)
                typ = "sensor_msgs/msg/PointCloud2"
            writer.write(conn(raw.topic, typ), raw.log_time_ns, ts.serialize_cdr(out_msg, typ))
            counts["faulted"] += 1

        handle(first)
        for raw in msgs_iter:
            handle(raw)
    record = {"source": str(bag), "out": str(out), "seed": seed, "t0_ns": first.log_time_ns,
              "episodes": [e.record() for e in episodes], "messages": counts, "source_problems": src.problems}
    Path(str(out) + ".faults.json").write_text(json.dumps(record, indent=1))
    return record


def _storage_of(src) -> str:
    return "mcap" if any(f.suffix == ".mcap" for f in src.files) else "sqlite3"


def _bag_duration_s(src) -> float:
    from fusion_monitor.tools.replay import _duration_s

    return _duration_s(src)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", metavar="BAG", help="input rosbag2 (folder or .mcap/.db3)")
    parser.add_argument("--faults", required=True, metavar="SPEC",
                        help="YAML file or inline YAML: list of {fault, sensor, severity 1..5, start_s, end_s}")
    parser.add_argument("--out", required=True, metavar="BAG", help="output rosbag2 folder (must not exist)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), help="output storage (default: as the input)")
    parser.add_argument("--rig", metavar="YAML", help="rig profile (default: the shipped nuScenes rig)")


def run(args: argparse.Namespace) -> int:
    try:
        rec = inject_bag(args.bag, args.out, load_fault_spec(args.faults), rig=load_rig(args.rig), seed=args.seed,
                         storage=args.storage)
    except (FaultSpecError, BagError, FileExistsError, FileNotFoundError, ValueError) as e:
        print(f"fusion-monitor inject: {e}", file=sys.stderr)
        return 2
    m = rec["messages"]
    print(f"wrote {rec['out']}: {m['faulted']} messages faulted, {m['dropped']} dropped, {m['copied']} copied; "
          f"ground truth: {rec['out']}.faults.json")
    return 0
