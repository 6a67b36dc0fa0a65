"""Per-frame output messages: build and build + serialise, the previous implementation next to the current one.

One FrameResult shaped like a replayed nuScenes-rig frame (40 detections with shares, four 128x128 BEV
maps, 60 statuses of which some WARN/ERROR, 7 stage timings) goes through

  * ``old``: the implementation before the fast paths (kept below, verbatim, as :class:`RefFrameOutputs`;
    rclpy generated constructors and setters, ``rclpy.serialization.serialize_message``);
  * ``new``: :class:`fusion_monitor.ros.frame_outputs.FrameOutputs` and
    :func:`fusion_monitor.ros.record.serialize` (what ``McapRecorder.write`` uses);

and, for the live node (which publishes the message objects, i.e. rclpy serialises them), ``new build +
rclpy serialise``. Cases run round-robin, repeated, on the same frames (8 different ones, so vanished
track ids produce DELETE markers), so every case sees the same machine load; ms per frame (median wall
and median CPU time of the process) and old / new ratios. Also per message kind.

    ./run.sh exec python benchmarks/outputs.py [--repeat 30] [--json]

The reference is also what tests/ros/test_output_messages.py compares the current messages with.
"""

from __future__ import annotations

import argparse
import array
import gc
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from nav_msgs.msg import OccupancyGrid
from rclpy.serialization import serialize_message
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import ColorRGBA, Float32MultiArray, Float64, MultiArrayDimension
from visualization_msgs.msg import Marker, MarkerArray

from fusion_monitor.frame import STREAMS, BevGrid, Detection, FrameResult
from fusion_monitor.ros import topics

# =====================================================================================================
# Reference: the output builders as they were before the fast paths (markers.py, outputs.py,
# diagnostics.py, frame_outputs.py; serialisation = rclpy.serialization.serialize_message).
# =====================================================================================================
NS_BOXES = "detections"
NS_LABELS = "detections/labels"
NS_ALERTS = "alerts"
MODALITY_COLORS: dict[str, tuple[float, float, float]] = {
    "camera": (0.20, 0.55, 1.00),
    "radar": (1.00, 0.55, 0.10),
    "lidar": (0.15, 0.85, 0.30),
    "bias": (0.60, 0.60, 0.60),
}
SHORT_NAMES = {"camera": "cam", "radar": "radar", "lidar": "lidar", "bias": "bias"}
LEVEL_COLORS = {1: (1.0, 0.85, 0.0), 2: (1.0, 0.15, 0.15), 3: (0.7, 0.7, 0.7)}
LEVEL_NAMES = {0: "OK", 1: "WARN", 2: "ERROR", 3: "STALE"}


def stamp_msg(stamp_ns: int) -> Time:
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    return Time(sec=sec, nanosec=nsec, check_fields=False)


def duration_msg(seconds: float) -> Duration:
    ns = max(0, int(round(seconds * 1e9)))
    sec, nsec = divmod(ns, 1_000_000_000)
    return Duration(sec=sec, nanosec=nsec, check_fields=False)


def label_text(det: Detection) -> str:
    mods = sorted(((k, v) for k, v in det.shares.items() if k != "bias"), key=lambda kv: -kv[1])
    parts = [f"{SHORT_NAMES.get(k, k)} {round(100 * v):d}%" for k, v in mods]
    if "bias" in det.shares:
        parts.append(f"bias {round(100 * det.shares['bias']):d}%")
    head = f"{det.label} {det.score:.2f}"
    return f"{head} | {' '.join(parts)}" if parts else head


def _color(rgb: tuple[float, float, float], a: float) -> ColorRGBA:
    return ColorRGBA(r=float(rgb[0]), g=float(rgb[1]), b=float(rgb[2]), a=float(a), check_fields=False)


def _base(ns: str, id_: int, stamp_ns: int, frame_id: str, action: int = Marker.ADD) -> Marker:
    m = Marker(check_fields=False)
    m.header.stamp = stamp_msg(stamp_ns)
    m.header.frame_id = frame_id
    m.ns, m.id, m.action = ns, int(id_), action
    return m


def box_marker(det: Detection, stamp_ns: int, frame_id: str, lifetime_s: float) -> Marker:
    m = _base(NS_BOXES, det.track_id, stamp_ns, frame_id)
    m.type = Marker.CUBE
    m.pose.position.x, m.pose.position.y, m.pose.position.z = (float(v) for v in det.center_m)
    m.pose.orientation.z = math.sin(det.yaw_rad / 2.0)
    m.pose.orientation.w = math.cos(det.yaw_rad / 2.0)
    m.scale.x, m.scale.y, m.scale.z = (max(float(v), 0.05) for v in det.size_m)
    m.color = _color(MODALITY_COLORS.get(det.dominant, MODALITY_COLORS["bias"]), 0.5)
    m.lifetime = duration_msg(lifetime_s)
    return m


def text_marker(det: Detection, stamp_ns: int, frame_id: str, lifetime_s: float) -> Marker:
    m = _base(NS_LABELS, det.track_id, stamp_ns, frame_id)
    m.type = Marker.TEXT_VIEW_FACING
    m.pose.position.x, m.pose.position.y = float(det.center_m[0]), float(det.center_m[1])
    m.pose.position.z = float(det.center_m[2]) + float(det.size_m[2]) / 2.0 + 0.6
    m.pose.orientation.w = 1.0
    m.scale.z = 0.6
    m.color = _color((1.0, 1.0, 1.0), 1.0)
    m.text = label_text(det)
    m.lifetime = duration_msg(lifetime_s)
    return m


def alert_markers(statuses: Iterable, stamp_ns: int, frame_id: str) -> list[Marker]:
    clear = _base(NS_ALERTS, 0, stamp_ns, frame_id, Marker.DELETEALL)
    out = [clear]
    bad = [s for s in statuses if int(s.level) in (1, 2)]
    bad.sort(key=lambda s: (-int(s.level), s.name))
    for i, s in enumerate(bad):
        m = _base(NS_ALERTS, i, stamp_ns, frame_id)
        m.type = Marker.TEXT_VIEW_FACING
        m.pose.position.z = 4.0 + 0.8 * i
        m.pose.orientation.w = 1.0
        m.scale.z = 0.7
        m.color = _color(LEVEL_COLORS[int(s.level)], 1.0)
        name = s.name.split(": ", 1)[-1]
        m.text = f"{LEVEL_NAMES[int(s.level)]} {name}: {s.message}"
        out.append(m)
    return out


class RefMarkerBuilder:
    def __init__(self) -> None:
        self._ids: set[int] = set()
        self._frame_id = ""

    def build(self, result: FrameResult, *, min_score: float = 0.0, lifetime_s: float = 1.0,
              statuses: Iterable | None = None) -> MarkerArray:
        arr = MarkerArray()
        dets = [d for d in result.detections if d.score >= min_score]
        ids = {int(d.track_id) for d in dets}
        for gone in sorted(self._ids - ids):
            for ns in (NS_BOXES, NS_LABELS):
                arr.markers.append(_base(ns, gone, result.stamp_ns, self._frame_id or result.frame_id, Marker.DELETE))
        for d in dets:
            arr.markers.append(box_marker(d, result.stamp_ns, result.frame_id, lifetime_s))
            arr.markers.append(text_marker(d, result.stamp_ns, result.frame_id, lifetime_s))
        if statuses is not None:
            arr.markers.extend(alert_markers(statuses, result.stamp_ns, result.frame_id))
        self._ids, self._frame_id = ids, result.frame_id
        return arr

    def clear(self, stamp_ns: int, frame_id: str) -> MarkerArray:
        arr = MarkerArray()
        for ns in (NS_BOXES, NS_LABELS, NS_ALERTS):
            arr.markers.append(_base(ns, 0, stamp_ns, frame_id, Marker.DELETEALL))
        self._ids = set()
        return arr


SHARE_COLUMNS = ("track_id", *STREAMS)
NUSCENES_CLASSES = (
    "car", "truck", "construction_vehicle", "bus", "trailer",
    "barrier", "motorcycle", "bicycle", "pedestrian", "traffic_cone",
)
_DET_FLOATS = ("x", "y", "z", "length", "width", "height", "yaw", "vx", "vy", "score")
_DET_DTYPE = np.dtype(
    [(n, "<f4") for n in _DET_FLOATS] + [("track_id", "<u4"), ("label_id", "<i4")]
    + [(f"share_{s}", "<f4") for s in STREAMS]
)
_PF = {"<f4": PointField.FLOAT32, "<u4": PointField.UINT32, "<i4": PointField.INT32}


def detections_array(result: FrameResult, class_names=NUSCENES_CLASSES) -> np.ndarray:
    arr = np.zeros(len(result.detections), dtype=_DET_DTYPE)
    index = {c: i for i, c in enumerate(class_names)}
    for i, d in enumerate(result.detections):
        arr[i]["x"], arr[i]["y"], arr[i]["z"] = d.center_m
        arr[i]["length"], arr[i]["width"], arr[i]["height"] = d.size_m
        arr[i]["yaw"] = d.yaw_rad
        arr[i]["vx"], arr[i]["vy"] = d.velocity_mps
        arr[i]["score"] = d.score
        arr[i]["track_id"] = d.track_id
        arr[i]["label_id"] = index.get(d.label, -1)
        for s in STREAMS:
            arr[i][f"share_{s}"] = d.shares.get(s, np.nan)
    return arr


def detections_cloud(result: FrameResult, class_names=NUSCENES_CLASSES) -> PointCloud2:
    arr = detections_array(result, class_names)
    msg = PointCloud2()
    msg.header.stamp = stamp_msg(result.stamp_ns)
    msg.header.frame_id = result.frame_id
    msg.height, msg.width = 1, len(arr)
    msg.fields = [
        PointField(name=n, offset=int(_DET_DTYPE.fields[n][1]), datatype=_PF[_DET_DTYPE.fields[n][0].str], count=1)
        for n in _DET_DTYPE.names
    ]
    msg.is_bigendian = False
    msg.point_step = _DET_DTYPE.itemsize
    msg.row_step = _DET_DTYPE.itemsize * len(arr)
    msg.data = arr.tobytes()
    msg.is_dense = True
    return msg


def shares_array(result: FrameResult) -> Float32MultiArray:
    n, k = len(result.detections), len(SHARE_COLUMNS)
    data = np.zeros((n, k), dtype=np.float32)
    for i, d in enumerate(result.detections):
        data[i, 0] = d.track_id
        for j, s in enumerate(STREAMS, start=1):
            data[i, j] = d.shares.get(s, np.nan)
    msg = Float32MultiArray()
    msg.layout.dim = [
        MultiArrayDimension(label="detections", size=n, stride=n * k),
        MultiArrayDimension(label=",".join(SHARE_COLUMNS), size=k, stride=k),
    ]
    msg.layout.data_offset = 0
    msg.data = data.ravel()  # (rejected by the setter under ROS_PYTHON_CHECK_FIELDS=1)
    return msg


def bev_scale(bev_maps: dict[str, np.ndarray]) -> float:
    peak = max((float(np.nanmax(m)) for m in bev_maps.values() if m.size), default=0.0)
    return peak if np.isfinite(peak) and peak > 0 else 1.0


def bev_occupancy_grid(bev_map: np.ndarray, grid: BevGrid, stamp_ns: int, frame_id: str,
                       scale: float | None = None) -> OccupancyGrid:
    m = np.asarray(bev_map, dtype=np.float32)
    if m.shape != (grid.rows, grid.cols):
        raise ValueError(f"BEV map shape {m.shape} does not match the grid ({grid.rows}, {grid.cols})")
    scale = bev_scale({"m": m}) if scale is None else float(scale)
    with np.errstate(invalid="ignore"):
        vals = np.clip(m / scale, 0.0, 1.0) * 100.0
    cells = np.where(np.isfinite(vals), np.rint(vals), -1).astype(np.int8)
    msg = OccupancyGrid()
    msg.header.stamp = stamp_msg(stamp_ns)
    msg.header.frame_id = frame_id
    msg.info.map_load_time = msg.header.stamp
    msg.info.resolution = float(grid.cell_m)
    msg.info.width, msg.info.height = int(grid.rows), int(grid.cols)
    msg.info.origin.position.x, msg.info.origin.position.y = float(grid.x_min_m), float(grid.y_min_m)
    msg.info.origin.orientation.w = 1.0
    msg.data = array.array("b", np.ascontiguousarray(cells.T).tobytes())
    return msg


def bev_grids(result: FrameResult) -> dict[str, OccupancyGrid]:
    if result.bev_grid is None or not result.bev_maps:
        return {}
    scale = bev_scale(result.bev_maps)
    return {s: bev_occupancy_grid(m, result.bev_grid, result.stamp_ns, result.frame_id, scale)
            for s, m in result.bev_maps.items()}


def scalar(value: float) -> Float64:
    return Float64(data=float(value))


def diagnostic_status(status) -> DiagnosticStatus:
    level = int(status.level)
    if level not in (0, 1, 2, 3):
        raise ValueError(f"status {status.name!r}: level {level} is not 0..3")
    msg = DiagnosticStatus(check_fields=False)
    msg.level = bytes([level])
    msg.name = str(status.name)
    msg.message = str(status.message)
    msg.hardware_id = str(status.hardware_id)
    msg.values = [KeyValue(key=str(k), value=str(v), check_fields=False) for k, v in dict(status.values or {}).items()]
    return msg


def diagnostic_array(statuses: Iterable, stamp_ns: int) -> DiagnosticArray:
    arr = DiagnosticArray()
    arr.header.stamp = stamp_msg(stamp_ns)
    arr.status = [diagnostic_status(s) for s in statuses]
    return arr


class RefFrameOutputs:
    """frame_outputs.FrameOutputs before the fast paths."""

    def __init__(self, node_name: str = "fusion_monitor", namespace: str = "/", class_names=None,
                 min_score: float = 0.0, marker_lifetime_s: float = 1.0, bev_maps: bool = True):
        self.node_name, self.namespace = node_name, namespace
        self.class_names = class_names
        self.min_score, self.lifetime_s, self.bev_maps = min_score, marker_lifetime_s, bev_maps
        self.markers = RefMarkerBuilder()

    def topic(self, name: str) -> str:
        return topics.resolve(name, self.node_name, self.namespace)

    def messages(self, result: FrameResult, latency_ms: float | None = None) -> list[tuple[str, object]]:
        out: list[tuple[str, object]] = [
            (self.topic(topics.MARKERS), self.markers.build(result, min_score=self.min_score,
                                                            lifetime_s=self.lifetime_s, statuses=result.statuses)),
            (self.topic(topics.DETECTIONS), detections_cloud(result, self.class_names)
             if self.class_names else detections_cloud(result)),
            (self.topic(topics.SHARES), shares_array(result)),
            (topics.DIAGNOSTICS, diagnostic_array(result.statuses, result.stamp_ns)),
            (self.topic(topics.PROCESSING_TIME), scalar(result.timings_ms.get("total", 0.0))),
        ]
        for stage, ms in result.timings_ms.items():
            if stage != "total":
                out.append((self.topic(f"{topics.PROCESSING_TIME}/{stage}"), scalar(ms)))
        if latency_ms is not None:
            out.append((self.topic(topics.PIPELINE_LATENCY), scalar(latency_ms)))
        if self.bev_maps:
            for stream, grid in bev_grids(result).items():
                out.append((self.topic(topics.ATTRIBUTION.get(stream, f"~/attribution/{stream}")), grid))
        return out


# =====================================================================================================
# A realistic frame
# =====================================================================================================
LABELS = ("car", "truck", "pedestrian", "bus", "barrier", "traffic_cone", "bicycle", "car", "motorcycle", "trailer")
SENSORS = ("CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT",
           "LIDAR_TOP", "RADAR_FRONT", "RADAR_FRONT_LEFT", "RADAR_FRONT_RIGHT", "RADAR_BACK_LEFT", "RADAR_BACK_RIGHT")
CHECKS = ("staleness", "rate", "blockage", "attribution", "drift")


def make_result(seed: int = 0, n_det: int = 40, grid_n: int = 128, stamp_ns: int = 1_700_000_000_123_456_789):
    """A FrameResult like a replayed nuScenes-rig frame: ``n_det`` detections (signed shares; track ids out of
    ``n_det + 4`` candidates, 4 of them left out depending on ``seed``, so consecutive seeds DELETE a few
    ids), four ``grid_n``^2 BEV maps (one NaN cell), 60 health statuses (12 sensors x 5 checks, some WARN /
    ERROR / STALE), 7 stage timings."""
    from fusion_monitor.health.status import Level, SensorStatus

    rng = np.random.default_rng(seed)
    dets = []
    gone = {(seed * 7 + 11 * k) % (n_det + 4) for k in range(4)}
    ids = [i for i in range(n_det + 4) if i not in gone][:n_det]
    for i in ids:
        sh = rng.normal(size=4)
        sh = sh / np.abs(sh).sum()
        dets.append(Detection(
            100 + i, LABELS[i % len(LABELS)], float(rng.uniform(0.1, 1.0)),
            tuple(float(v) for v in rng.uniform(-50, 50, 3)), tuple(float(v) for v in rng.uniform(0.02, 10, 3)),
            float(rng.uniform(-math.pi, math.pi)), tuple(float(v) for v in rng.normal(size=2)),
            dict(zip(STREAMS, (float(v) for v in sh)))))
    grid = BevGrid(-51.2, -51.2, 0.8, grid_n, grid_n)
    maps = {s: rng.normal(size=(grid_n, grid_n)).astype(np.float32) for s in STREAMS}
    maps["radar"][3, 5] = np.nan
    statuses = []
    for j, sensor in enumerate(SENSORS):
        for k, check in enumerate(CHECKS):
            lv = (j * 5 + k + seed) % 9
            statuses.append(SensorStatus(
                f"fusion_monitor: {sensor}/{check}", sensor, Level(lv if lv < 4 else 0),
                f"{sensor}: {check} {0.1 * k:.2f} over the last 50 frames (azimuth {30 * k}..{30 * k + 30} deg)",
                {"value": f"0.{j}{k}", "bound": "0.5", "source_stamp_ns": str(stamp_ns - 10_000_000 * j),
                 "window": "50"}, sensor, check))
    timings = {"ingest": 1.5, "align": 0.2, "preprocess": 8.0, "inference": 40.0, "decode": 2.0, "health": 1.0,
               "total": 52.7}
    return FrameResult(stamp_ns + seed * 100_000_000, "LIDAR_TOP", dets, maps, grid, [],
                       {s: 10.0 for s in SENSORS}, timings, statuses)


# =====================================================================================================
# Timing
# =====================================================================================================
def bench_interleaved(cases: dict, repeat: int, warmup: int = 2) -> dict[str, dict]:
    """Median wall / CPU ms per call of each ``fn()``, the cases run round-robin ``repeat`` times."""
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    wall: dict[str, list[float]] = {n: [] for n in cases}
    cpu: dict[str, list[float]] = {n: [] for n in cases}
    for _ in range(repeat):
        for name, fn in cases.items():
            gc.collect()  # no case pays for the garbage of the one before it
            c0, t0 = time.process_time_ns(), time.perf_counter_ns()
            fn()
            wall[name].append((time.perf_counter_ns() - t0) / 1e6)
            cpu[name].append((time.process_time_ns() - c0) / 1e6)
    return {n: {"median_ms": statistics.median(wall[n]), "cpu_median_ms": statistics.median(cpu[n]),
                "min_ms": min(wall[n]), "p90_ms": sorted(wall[n])[int(0.9 * (len(wall[n]) - 1))]} for n in cases}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=30, help="round-robin repetitions (each over all frames)")
    ap.add_argument("--frames", type=int, default=8, help="distinct frames, built in turn")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from fusion_monitor.ros import diagnostics as new_diag
    from fusion_monitor.ros import outputs as new_out
    from fusion_monitor.ros.frame_outputs import FrameOutputs
    from fusion_monitor.ros.markers import FAST_PATH, MarkerBuilder
    from fusion_monitor.ros.record import McapRecorder, serialize

    frames = [make_result(seed) for seed in range(args.frames)]
    nf = len(frames)
    old_fo = RefFrameOutputs(class_names=NUSCENES_CLASSES)
    new_fo = FrameOutputs(class_names=NUSCENES_CLASSES)
    old_ser_fo = RefFrameOutputs(class_names=NUSCENES_CLASSES)
    new_ser_fo = FrameOutputs(class_names=NUSCENES_CLASSES)
    node_fo = FrameOutputs(class_names=NUSCENES_CLASSES)
    tmp = Path(tempfile.mkdtemp(prefix="bench_outputs_"))
    old_rec, new_rec = McapRecorder(tmp / "old.mcap"), McapRecorder(tmp / "new.mcap")
    old_rec_fo, new_rec_fo = RefFrameOutputs(class_names=NUSCENES_CLASSES), FrameOutputs(class_names=NUSCENES_CLASSES)

    def per_frame(fn):
        def run():
            for r in frames:
                fn(r)
        return run

    def old_record(r):
        for topic, m in old_rec_fo.messages(r, 5.0):  # the recorder as it was: rclpy serialize_message
            old_rec.write_raw(topic, f"{type(m).__module__.split('.')[0]}/msg/{type(m).__name__}",
                              serialize_message(m), r.stamp_ns)

    def new_record(r):
        for topic, m in new_rec_fo.messages(r, 5.0):
            new_rec.write(topic, m, r.stamp_ns)

    cases = {
        "old build": per_frame(lambda r: old_fo.messages(r, 5.0)),
        "new build": per_frame(lambda r: new_fo.messages(r, 5.0)),
        "old build+serialise": per_frame(lambda r: [serialize_message(m) for _, m in old_ser_fo.messages(r, 5.0)]),
        "new build+serialise": per_frame(lambda r: [serialize(m) for _, m in new_ser_fo.messages(r, 5.0)]),
        "new build+rclpy serialise": per_frame(lambda r: [serialize_message(m) for _, m in node_fo.messages(r, 5.0)]),
        "old McapRecorder.write": per_frame(old_record),
        "new McapRecorder.write": per_frame(new_record),
    }
    # per message kind (build, and build + serialise)
    r0 = frames[0]
    old_mb, new_mb = RefMarkerBuilder(), MarkerBuilder()
    kinds = {
        "markers": (lambda r: old_mb.build(r, statuses=r.statuses), lambda r: new_mb.build(r, statuses=r.statuses)),
        "detections": (detections_cloud, new_out.detections_cloud),
        "shares": (shares_array, new_out.shares_array),
        "diagnostics": (lambda r: diagnostic_array(r.statuses, r.stamp_ns),
                        lambda r: new_diag.diagnostic_array(r.statuses, r.stamp_ns)),
        "bev maps x4": (lambda r: list(bev_grids(r).values()), lambda r: list(new_out.bev_grids(r).values())),
    }
    part_cases = {}
    for kind, (old_fn, new_fn) in kinds.items():
        part_cases[f"{kind}: old build"] = per_frame(old_fn)
        part_cases[f"{kind}: new build"] = per_frame(new_fn)

        def ser(fn, enc):
            def one(r):
                out = fn(r)
                for m in out if isinstance(out, list) else [out]:
                    enc(m)
            return one
        part_cases[f"{kind}: old build+serialise"] = per_frame(ser(old_fn, serialize_message))
        part_cases[f"{kind}: new build+serialise"] = per_frame(ser(new_fn, serialize))

    res = bench_interleaved(cases, args.repeat)
    parts = bench_interleaved(part_cases, args.repeat)
    old_rec.close()
    new_rec.close()
    for p in tmp.iterdir():
        p.unlink()
    tmp.rmdir()

    def ms(name, table=res, key="median_ms"):
        return table[name][key] / nf

    n_markers = len(new_fo.messages(r0, 5.0)[0][1].markers)
    summary = {
        "frame": {"detections": len(r0.detections), "statuses": len(r0.statuses), "markers": n_markers,
                  "bev_maps": f"{len(r0.bev_maps)} x {r0.bev_grid.rows}x{r0.bev_grid.cols}",
                  "messages": len(new_fo.messages(r0, 5.0))},
        "fast_path": FAST_PATH, "repeat": args.repeat, "frames": nf,
        "per_frame_ms": {n: {"median": ms(n), "cpu_median": ms(n, key="cpu_median_ms"), "min": ms(n, key="min_ms")}
                         for n in res},
        "parts_per_frame_ms": {n: ms(n, parts) for n in parts},
    }
    rows = [("build", "old build", "new build"), ("build + serialise", "old build+serialise", "new build+serialise"),
            ("build + rclpy serialise (live node today)", "old build+serialise", "new build+rclpy serialise"),
            ("McapRecorder.write incl. build (replay)", "old McapRecorder.write", "new McapRecorder.write")]
    summary["ratios"] = {label: ms(o) / ms(n) for label, o, n in rows}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    f = summary["frame"]
    print(f"frame: {f['detections']} detections, {f['statuses']} statuses, {f['markers']} markers, "
          f"{f['bev_maps']} BEV maps, {f['messages']} messages; fast path: {FAST_PATH}; "
          f"{nf} frames x {args.repeat} interleaved repetitions")
    print(f"{'ms per frame: median wall / median cpu / min':44s} {'old':>22s} {'new':>22s} {'old/new':>8s}"
          f" {'(mins)':>7s}")
    for label, o, n in rows:
        print(f"{label:44s} {ms(o):6.2f} /{ms(o, key='cpu_median_ms'):6.2f} /{ms(o, key='min_ms'):6.2f} "
              f"{ms(n):6.2f} /{ms(n, key='cpu_median_ms'):6.2f} /{ms(n, key='min_ms'):6.2f} {ms(o) / ms(n):7.1f}x"
              f" {ms(o, key='min_ms') / ms(n, key='min_ms'):6.1f}x")
    print(f"\n{'per message kind, ms per frame (median wall)':44s} {'old':>7s} {'new':>7s} {'old/new':>8s}")
    for kind in kinds:
        for what in ("build", "build+serialise"):
            o, n = ms(f"{kind}: old {what}", parts), ms(f"{kind}: new {what}", parts)
            print(f"{kind + ': ' + what:44s} {o:7.3f} {n:7.3f} {o / n:7.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
