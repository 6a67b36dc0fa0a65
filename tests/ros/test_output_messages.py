"""The per-frame output messages after the fast paths: field for field what the previous builders made.

Three checks:
- golden: a small frame (+ a second one that drops a detection and changes frame) against values written
  out here, on the built messages and after a serialise / deserialise round trip (rclpy's and ours);
- reference: realistic frames (benchmarks/outputs.py's, 40 detections, 60 statuses, 128x128 maps) against
  the previous implementation kept verbatim in benchmarks/outputs.py: equal messages, equal
  ``_check_fields`` on every sub-message, equal CDR content;
- the CDR fast path of fusion_monitor.ros.record.serialize on unusual markers and values (every field
  set, out-of-range numbers, wrong types: these must go through rclpy), and ROS_PYTHON_CHECK_FIELDS=1.
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from array import array
from pathlib import Path

import numpy as np
import pytest

from fusion_monitor.frame import BevGrid, Detection, FrameResult
from fusion_monitor.ros.diagnostics import NodeStatus

REPO = Path(__file__).resolve().parents[2]


def _reference():
    spec = importlib.util.spec_from_file_location("_bench_outputs_reference", REPO / "benchmarks/outputs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def ref():
    return _reference()


def _frames():
    dets = [
        Detection(7, "car", 0.82, (10.0, 2.0, 0.8), (4.5, 1.9, 1.6), math.pi / 2, (3.0, 0.5),
                  {"camera": 0.45, "lidar": 0.40, "radar": 0.10, "bias": 0.05}),
        # unknown class, a size under the 0.05 m floor, every modality against it, no bias share
        Detection(9, "mystery", 0.41, (5.0, -1.0, 0.9), (0.01, 0.7, 1.8), 0.0, (0.0, 0.0),
                  {"camera": -0.1, "lidar": -0.2, "radar": -0.6}),
    ]
    grid = BevGrid(x_min_m=-1.0, y_min_m=-2.0, cell_m=0.5, rows=3, cols=2)
    maps = {"lidar": np.array([[0, 1], [2, np.nan], [-1, 4]], np.float32),
            "camera": np.full((3, 2), 0.5, np.float32)}
    statuses = [
        NodeStatus("fusion_monitor: CAM_FRONT/staleness", "CAM_FRONT", 2, "no image for 0.6 s", {"age_ms": "600.0"}),
        NodeStatus("fusion_monitor: RADAR_FRONT/rate", "RADAR_FRONT", 1, "rate 6.1 Hz", {}),
        NodeStatus("fusion_monitor: LIDAR_TOP/staleness", "LIDAR_TOP", 0, "ok", {"a": "1", "b": "2"}),
    ]
    first = FrameResult(1_700_000_000_123_000_000, "LIDAR_TOP", dets, maps, grid, [], {},
                        {"inference": 3.0, "total": 4.0}, statuses)
    second = FrameResult(1_700_000_000_223_000_000, "base_link", dets[1:], {}, None, [], {}, {"total": 1.0}, [])
    return first, second


# ---- golden values --------------------------------------------------------------------------------
S1, NS1 = 1_700_000_000, 123_000_000
S2, NS2 = 1_700_000_000, 223_000_000
NO_ROT = (0.0, 0.0, 0.0, 1.0)
ZERO3 = (0.0, 0.0, 0.0)
# (frame_id, sec, nanosec, ns, id, type, action, position, orientation, scale, rgba, lifetime, text)
GOLDEN_MARKERS_1 = [
    ("LIDAR_TOP", S1, NS1, "detections", 7, 1, 0, (10.0, 2.0, 0.8), (0.0, 0.0, math.sin(math.pi / 4),
     math.cos(math.pi / 4)), (4.5, 1.9, 1.6), (0.2, 0.55, 1.0, 0.5), (1, 0), ""),
    ("LIDAR_TOP", S1, NS1, "detections/labels", 7, 9, 0, (10.0, 2.0, 0.8 + 0.8 + 0.6), NO_ROT, (0.0, 0.0, 0.6),
     (1.0, 1.0, 1.0, 1.0), (1, 0), "car 0.82 | cam 45% lidar 40% radar 10% bias 5%"),
    ("LIDAR_TOP", S1, NS1, "detections", 9, 1, 0, (5.0, -1.0, 0.9), NO_ROT, (0.05, 0.7, 1.8),
     (0.6, 0.6, 0.6, 0.5), (1, 0), ""),
    ("LIDAR_TOP", S1, NS1, "detections/labels", 9, 9, 0, (5.0, -1.0, 0.9 + 0.9 + 0.6), NO_ROT, (0.0, 0.0, 0.6),
     (1.0, 1.0, 1.0, 1.0), (1, 0), "mystery 0.41 | cam -10% lidar -20% radar -60%"),
    ("LIDAR_TOP", S1, NS1, "alerts", 0, 0, 3, ZERO3, NO_ROT, ZERO3, (0.0, 0.0, 0.0, 0.0), (0, 0), ""),
    ("LIDAR_TOP", S1, NS1, "alerts", 0, 9, 0, (0.0, 0.0, 4.0), NO_ROT, (0.0, 0.0, 0.7), (1.0, 0.15, 0.15, 1.0),
     (0, 0), "ERROR CAM_FRONT/staleness: no image for 0.6 s"),
    ("LIDAR_TOP", S1, NS1, "alerts", 1, 9, 0, (0.0, 0.0, 4.8), NO_ROT, (0.0, 0.0, 0.7), (1.0, 0.85, 0.0, 1.0),
     (0, 0), "WARN RADAR_FRONT/rate: rate 6.1 Hz"),
]
GOLDEN_MARKERS_2 = [  # id 7 vanished: DELETE in the previous frame's frame_id; no alert: only the DELETEALL
    ("LIDAR_TOP", S2, NS2, "detections", 7, 0, 2, ZERO3, NO_ROT, ZERO3, (0.0, 0.0, 0.0, 0.0), (0, 0), ""),
    ("LIDAR_TOP", S2, NS2, "detections/labels", 7, 0, 2, ZERO3, NO_ROT, ZERO3, (0.0, 0.0, 0.0, 0.0), (0, 0), ""),
    ("base_link", S2, NS2, "detections", 9, 1, 0, (5.0, -1.0, 0.9), NO_ROT, (0.05, 0.7, 1.8),
     (0.6, 0.6, 0.6, 0.5), (2, 500_000_000), ""),
    ("base_link", S2, NS2, "detections/labels", 9, 9, 0, (5.0, -1.0, 2.4), NO_ROT, (0.0, 0.0, 0.6),
     (1.0, 1.0, 1.0, 1.0), (2, 500_000_000), "mystery 0.41 | cam -10% lidar -20% radar -60%"),
    ("base_link", S2, NS2, "alerts", 0, 0, 3, ZERO3, NO_ROT, ZERO3, (0.0, 0.0, 0.0, 0.0), (0, 0), ""),
]
# (name, offset, datatype) of ~/detections, then the two rows (float32 columns, track_id, label_id)
GOLDEN_FIELDS = [("x", 0, 7), ("y", 4, 7), ("z", 8, 7), ("length", 12, 7), ("width", 16, 7), ("height", 20, 7),
                 ("yaw", 24, 7), ("vx", 28, 7), ("vy", 32, 7), ("score", 36, 7), ("track_id", 40, 6),
                 ("label_id", 44, 5), ("share_camera", 48, 7), ("share_radar", 52, 7), ("share_lidar", 56, 7),
                 ("share_bias", 60, 7)]
GOLDEN_ROWS = [
    (10.0, 2.0, 0.8, 4.5, 1.9, 1.6, math.pi / 2, 3.0, 0.5, 0.82, 7, 0, 0.45, 0.10, 0.40, 0.05),
    (5.0, -1.0, 0.9, 0.01, 0.7, 1.8, 0.0, 0.0, 0.0, 0.41, 9, -1, -0.1, -0.6, -0.2, math.nan),
]
GOLDEN_SHARES = [7.0, 0.45, 0.10, 0.40, 0.05, 9.0, -0.1, -0.6, -0.2, math.nan]
GOLDEN_DIAG = [(2, "fusion_monitor: CAM_FRONT/staleness", "no image for 0.6 s", "CAM_FRONT", [("age_ms", "600.0")]),
               (1, "fusion_monitor: RADAR_FRONT/rate", "rate 6.1 Hz", "RADAR_FRONT", []),
               (0, "fusion_monitor: LIDAR_TOP/staleness", "ok", "LIDAR_TOP", [("a", "1"), ("b", "2")])]
# OccupancyGrid data, row-major in y (width = 3 x cells): scale 4.0 = the largest value of the frame
GOLDEN_GRIDS = {"lidar": [0, 50, 0, 25, -1, 100], "camera": [12, 12, 12, 12, 12, 12]}


def _f32(values):
    return np.asarray(values, dtype=np.float32)


def _same_f32(a, b) -> bool:
    return np.array_equal(_f32(a), _f32(b), equal_nan=True)


def _check_default_tail(m):
    assert m.frame_locked is False and list(m.points) == [] and list(m.colors) == [] and m.texture_resource == ""
    assert (m.texture.header.stamp.sec, m.texture.header.stamp.nanosec, m.texture.header.frame_id) == (0, 0, "")
    assert m.texture.format == "" and len(m.texture.data) == 0 and list(m.uv_coordinates) == []
    assert m.mesh_resource == "" and m.mesh_file.filename == "" and len(m.mesh_file.data) == 0
    assert m.mesh_use_embedded_materials is False


def _check_markers(arr, golden, exact: bool):
    assert len(arr.markers) == len(golden)
    for m, g in zip(arr.markers, golden):
        frame_id, sec, nsec, ns, id_, type_, action, pos, ori, scale, rgba, life, text = g
        assert (m.header.frame_id, m.header.stamp.sec, m.header.stamp.nanosec) == (frame_id, sec, nsec)
        assert (m.ns, m.id, m.type, m.action, m.text) == (ns, id_, type_, action, text)
        p, o, s = m.pose.position, m.pose.orientation, m.scale
        assert (p.x, p.y, p.z) == pytest.approx(pos, abs=1e-12)
        assert (o.x, o.y, o.z, o.w) == pytest.approx(ori, abs=1e-12)
        assert (s.x, s.y, s.z) == pytest.approx(scale, abs=1e-12)
        c = (m.color.r, m.color.g, m.color.b, m.color.a)
        assert c == rgba if exact else _same_f32(c, rgba)  # float32 on the wire
        assert (m.lifetime.sec, m.lifetime.nanosec) == life
        _check_default_tail(m)


def _check_frame_1(msgs, exact: bool):
    topics = [t for t, _ in msgs]
    assert topics == ["/fusion_monitor/markers", "/fusion_monitor/detections", "/fusion_monitor/detections/shares",
                      "/diagnostics", "/fusion_monitor/debug/processing_time_ms",
                      "/fusion_monitor/debug/processing_time_ms/inference", "/fusion_monitor/debug/pipeline_latency_ms",
                      "/fusion_monitor/attribution/lidar", "/fusion_monitor/attribution/camera"]
    m = dict(msgs)
    _check_markers(m["/fusion_monitor/markers"], GOLDEN_MARKERS_1, exact)

    cloud = m["/fusion_monitor/detections"]
    assert (cloud.header.frame_id, cloud.header.stamp.sec, cloud.header.stamp.nanosec) == ("LIDAR_TOP", S1, NS1)
    assert (cloud.height, cloud.width, cloud.is_bigendian, cloud.point_step, cloud.row_step, cloud.is_dense) == \
        (1, 2, False, 64, 128, True)
    assert [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields] == [(*f, 1) for f in GOLDEN_FIELDS]
    raw = bytes(cloud.data)
    assert len(raw) == 128
    for i, row in enumerate(GOLDEN_ROWS):
        floats = np.frombuffer(raw, "<f4", count=10, offset=64 * i)
        shares = np.frombuffer(raw, "<f4", count=4, offset=64 * i + 48)
        ints = np.frombuffer(raw, "<u4", count=1, offset=64 * i + 40)[0], \
            np.frombuffer(raw, "<i4", count=1, offset=64 * i + 44)[0]
        assert _same_f32(floats, row[:10]) and ints == row[10:12] and _same_f32(shares, row[12:])

    sh = m["/fusion_monitor/detections/shares"]
    assert [(d.label, d.size, d.stride) for d in sh.layout.dim] == \
        [("detections", 2, 10), ("track_id,camera,radar,lidar,bias", 5, 5)]
    assert sh.layout.data_offset == 0 and type(sh.data) is array and sh.data.typecode == "f"
    assert _same_f32(sh.data, GOLDEN_SHARES)

    diag = m["/diagnostics"]
    assert (diag.header.frame_id, diag.header.stamp.sec, diag.header.stamp.nanosec) == ("", S1, NS1)
    assert [(s.level, s.name, s.message, s.hardware_id, [(kv.key, kv.value) for kv in s.values])
            for s in diag.status] == [(bytes([lv]), *rest) for lv, *rest in GOLDEN_DIAG]

    assert [m[t].data for t in topics[4:7]] == [4.0, 3.0, 12.5]
    for stream, data in GOLDEN_GRIDS.items():
        g = m[f"/fusion_monitor/attribution/{stream}"]
        assert (g.header.frame_id, g.header.stamp.sec, g.header.stamp.nanosec) == ("LIDAR_TOP", S1, NS1)
        assert (g.info.map_load_time.sec, g.info.map_load_time.nanosec) == (S1, NS1)
        assert (g.info.resolution, g.info.width, g.info.height) == (0.5, 3, 2)
        o = g.info.origin
        assert (o.position.x, o.position.y, o.position.z) == (-1.0, -2.0, 0.0)
        assert (o.orientation.x, o.orientation.y, o.orientation.z, o.orientation.w) == NO_ROT
        assert type(g.data) is array and g.data.typecode == "b" and list(g.data) == data


def _check_frame_2(msgs, exact: bool):
    m = dict(msgs)
    assert list(m) == ["/fusion_monitor/markers", "/fusion_monitor/detections", "/fusion_monitor/detections/shares",
                       "/diagnostics", "/fusion_monitor/debug/processing_time_ms"]  # no BEV grid, no latency
    _check_markers(m["/fusion_monitor/markers"], GOLDEN_MARKERS_2, exact)
    assert m["/fusion_monitor/detections"].header.frame_id == "base_link"
    assert m["/fusion_monitor/detections"].width == 1 and len(m["/fusion_monitor/detections"].data) == 64
    assert _same_f32(m["/fusion_monitor/detections/shares"].data, GOLDEN_SHARES[5:])
    assert list(m["/diagnostics"].status) == [] and m["/fusion_monitor/debug/processing_time_ms"].data == 1.0


def _round_trip(msgs, serializer):
    from rclpy.serialization import deserialize_message

    return [(t, deserialize_message(serializer(msg), type(msg))) for t, msg in msgs]


@pytest.mark.parametrize("via", ["objects", "rclpy", "fast"])
def test_output_messages_golden(via):
    from rclpy.serialization import serialize_message

    from fusion_monitor.ros.frame_outputs import FrameOutputs
    from fusion_monitor.ros.record import serialize

    first, second = _frames()
    fo = FrameOutputs(marker_lifetime_s=2.5)  # the second frame's markers say so; the first's are checked below
    msgs1 = FrameOutputs().messages(first, latency_ms=12.5)
    fo.messages(first)
    msgs2 = fo.messages(second)
    if via != "objects":
        ser = serialize_message if via == "rclpy" else serialize
        msgs1, msgs2 = _round_trip(msgs1, ser), _round_trip(msgs2, ser)
    _check_frame_1(msgs1, exact=via == "objects")
    _check_frame_2(msgs2, exact=via == "objects")


# ---- against the previous implementation ------------------------------------------------------------
def _check_flags(msg) -> list:
    """(path, _check_fields) of a message and of every sub-message, depth first."""
    out = [("", msg._check_fields)]
    for name in msg.get_fields_and_field_types():
        v = getattr(msg, name)
        items = v if isinstance(v, list) else [v]
        for i, item in enumerate(items):
            if hasattr(item, "_check_fields") and hasattr(item, "get_fields_and_field_types"):
                out += [(f"{name}[{i}]{p}", f) for p, f in _check_flags(item)]
    return out


def _same(a, b) -> bool:
    """Messages equal field by field, NaN equal to NaN (repr shows every field, floats exactly)."""
    return type(a) is type(b) and repr(a) == repr(b)


def _same_content(old, new):
    """Equal messages, sub-message check flags and wire content (rclpy's CDR and ours decode the same)."""
    from rclpy.serialization import deserialize_message, serialize_message

    from fusion_monitor.ros.record import _FAST_SERIALIZERS, serialize

    assert type(new) is type(old)
    assert _same(new, old)
    assert _check_flags(new) == _check_flags(old)
    a, b, c = serialize_message(old), serialize_message(new), serialize(new)
    assert len(a) == len(b) == len(c)
    decoded = deserialize_message(a, type(old))
    assert _same(deserialize_message(b, type(old)), decoded) and _same(deserialize_message(c, type(old)), decoded)
    if type(new) in _FAST_SERIALIZERS:  # ours differs from rclpy's only in alignment padding, zeros here
        assert all(c[i] == 0 for i in range(len(c)) if c[i] != a[i])


def _odd_frame(seed: int) -> FrameResult:
    """Values of the types a pipeline may hand over: numpy scalars, numpy centres, NaN/None-free odd shares."""
    r = FrameResult(1_700_000_001_000_000_000 + seed, "LIDAR_TOP", [
        Detection(np.int64(3), "bus", np.float32(0.5), np.array([1.5, -2.0, 0.25]), (np.float64(12.0), 2.5, 0.0),
                  np.float32(-3.0), (np.float32(0.1), 0.0), {"lidar": np.float32(0.7), "bias": 0.3}),
        Detection(4, "car", 0.9, (0.0, 0.0, 0.0), (math.nan, 1.0, 1.0), 1.0, (0.0, 0.0), {}),
        Detection(5, "car", 0.3, (1e6, -1e-9, 3.0), (1.0, 1.0, 1.0), 7.0, (0.0, 0.0),
                  {"camera": 0.5, "radar": 0.5, "lidar": 0.5, "bias": -0.5, "thermal": 0.1}),
    ], {"camera": np.array([[np.inf, -np.inf], [np.nan, 1e-30]], np.float32)}, BevGrid(0.0, 0.0, 1.0, 2, 2), [], {},
        {"total": 2.0}, [NodeStatus("fusion_monitor: ünïcödé/check", "x", 1, "µ 5 °C ✓", {"k": 1.5, 2: None})])
    return r


def test_output_messages_match_the_previous_implementation(ref):
    from fusion_monitor.ros.frame_outputs import FrameOutputs
    from fusion_monitor.ros.markers import CHECK_FIELDS

    if CHECK_FIELDS:
        pytest.skip("the previous shares_array fails under ROS_PYTHON_CHECK_FIELDS=1 (numpy data); see "
                    "test_outputs_with_ros_python_check_fields")

    frames = [ref.make_result(seed) for seed in range(4)] + [_odd_frame(0), *_frames(), _odd_frame(1)]
    for kwargs in ({"class_names": ref.NUSCENES_CLASSES}, {"min_score": 0.5, "marker_lifetime_s": 0.25},
                   {"bev_maps": False, "node_name": "mon", "namespace": "/car1"}):
        old_fo, new_fo = ref.RefFrameOutputs(**kwargs), FrameOutputs(**kwargs)
        n_delete = 0
        for r in frames:
            old, new = old_fo.messages(r, latency_ms=3.5), new_fo.messages(r, latency_ms=3.5)
            assert [t for t, _ in new] == [t for t, _ in old]
            for (_, o), (_, n) in zip(old, new):
                _same_content(o, n)
            n_delete += sum(m.action == 2 for m in new[0][1].markers)
        assert n_delete > 0  # the frames exercised DELETE


def test_marker_functions_match_the_previous_implementation(ref):
    from fusion_monitor.ros import markers as M

    r = ref.make_result(3)
    for d in r.detections[:5]:
        _same_content(ref.box_marker(d, r.stamp_ns, "f", 0.3), M.box_marker(d, r.stamp_ns, "f", 0.3))
        _same_content(ref.text_marker(d, r.stamp_ns, "f", 0.3), M.text_marker(d, r.stamp_ns, "f", 0.3))
        assert M.label_text(d) == ref.label_text(d)
    old_alerts, new_alerts = ref.alert_markers(r.statuses, 5, "base_link"), M.alert_markers(r.statuses, 5, "base_link")
    assert len(new_alerts) == len(old_alerts) > 1
    for o, n in zip(old_alerts, new_alerts):
        _same_content(o, n)
    old_b, new_b = ref.RefMarkerBuilder(), M.MarkerBuilder()
    old_b.build(r)
    new_b.build(r)
    _same_content(old_b.clear(7, "map"), new_b.clear(7, "map"))
    _same_content(old_b.build(r), new_b.build(r))  # after clear: no DELETEs
    for o, n in ((ref.stamp_msg(-1), M.stamp_msg(-1)), (ref.duration_msg(2.0000000004), M.duration_msg(2.0000000004)),
                 (ref.duration_msg(-1.0), M.duration_msg(-1.0))):
        _same_content(o, n)


def test_constructor_path_builds_the_same_messages(ref, monkeypatch):
    """Where the installed message classes are not the ones the fast path knows, the constructors are used."""
    from fusion_monitor.ros import diagnostics as D
    from fusion_monitor.ros import markers as M
    from fusion_monitor.ros import outputs as O
    from fusion_monitor.ros.frame_outputs import FrameOutputs

    frames = [ref.make_result(1), _odd_frame(2), *_frames()]
    fast_fo, slow_fo = FrameOutputs(), FrameOutputs()
    fast = [fast_fo.messages(r, latency_ms=2.0) for r in frames]
    monkeypatch.setattr(M, "_marker", M._marker_ctor)
    for mod, name in ((M, "FAST_PATH"), (O, "_FAST"), (D, "_FAST")):
        monkeypatch.setattr(mod, name, False)
    slow = [slow_fo.messages(r, latency_ms=2.0) for r in frames]
    for f_msgs, s_msgs in zip(fast, slow):
        assert [t for t, _ in f_msgs] == [t for t, _ in s_msgs]
        for (_, f), (_, s) in zip(f_msgs, s_msgs):
            _same_content(s, f)
    _same_content(ref.stamp_msg(5), M.stamp_msg(5))
    _same_content(ref.duration_msg(0.5), M.duration_msg(0.5))
    assert not M.slots_are(type(fast[0][0][1].markers[0]), "header", "ns")


# ---- the CDR fast path on its own -----------------------------------------------------------------
def _full_marker(text="ünïcödé ✓", frame_locked=True):
    from builtin_interfaces.msg import Duration, Time
    from geometry_msgs.msg import Point
    from std_msgs.msg import ColorRGBA
    from visualization_msgs.msg import Marker, UVCoordinate

    m = Marker()
    m.header.stamp = Time(sec=-5, nanosec=999_999_999)
    m.header.frame_id = "map_ü"
    m.ns, m.id, m.type, m.action = "n" * 7, -2_147_483_648, 11, 0
    m.pose.position.x, m.pose.orientation.w = -1e300, 0.5
    m.scale.z = float("nan")
    m.color = ColorRGBA(r=3.4e38, g=-0.0, b=float("inf"), a=1e-45)
    m.lifetime = Duration(sec=2**31 - 1, nanosec=2**32 - 1)
    m.frame_locked = frame_locked
    m.points = [Point(x=float(i), y=-1.0, z=2.5) for i in range(3)]
    m.colors = [ColorRGBA(r=0.1, a=1.0)] * 2
    m.texture_resource = "embedded://tex"
    m.texture.header.stamp.sec = 3
    m.texture.header.frame_id = "cam"
    m.texture.format = "png"
    m.texture.data = bytes(range(7))
    m.uv_coordinates = [UVCoordinate(u=0.25, v=0.75)]
    m.text = text
    m.mesh_resource = "package://x/y.dae"
    m.mesh_file.filename = "y.dae"
    m.mesh_file.data = array("B", b"\x00\x01\x02")
    m.mesh_use_embedded_materials = True
    return m


def _same_wire(msg):
    from rclpy.serialization import deserialize_message, serialize_message

    from fusion_monitor.ros.record import _FAST_SERIALIZERS, serialize

    a, c = serialize_message(msg), serialize(msg)
    assert len(c) == len(a) and c[:4] == a[:4]
    assert _same(deserialize_message(c, type(msg)), deserialize_message(a, type(msg)))
    if type(msg) in _FAST_SERIALIZERS:
        assert all(c[i] == 0 for i in range(len(c)) if c[i] != a[i])
    return c


def test_fast_cdr_matches_rclpy_on_every_marker_field():
    from visualization_msgs.msg import Marker, MarkerArray

    from fusion_monitor.ros import record

    shapes = [_full_marker(), _full_marker(text="", frame_locked=False), Marker(), _full_marker(text="abc")]
    for n in range(len(shapes) + 1):  # every alignment of a marker after the previous ones
        arr = MarkerArray(markers=shapes[:n] + shapes[: n % 3])
        _same_wire(arr)
        assert record._marker_array(arr) == record.serialize(arr)  # the fast path itself, no fallback
    m = Marker()
    m.texture._data = [1, 2, 3]  # a Python list (the setter would have made an array): left to rclpy
    with pytest.raises(TypeError):
        record._marker_array(MarkerArray(markers=[m]))
    _same_wire(MarkerArray(markers=[m]))


@pytest.mark.parametrize("field, value", [
    ("id", 2**31), ("id", 1.5), ("color.r", 1e39), ("frame_locked", 1), ("text", b"bytes"), ("ns", None),
    ("lifetime.nanosec", -1), ("points", None), ("header.stamp.sec", 2**40),
])
def test_fast_cdr_leaves_unusual_values_to_rclpy(field, value):
    """Whatever the fast path would not encode exactly as rclpy does goes through rclpy (same bytes or same error)."""
    from rclpy.serialization import deserialize_message, serialize_message
    from visualization_msgs.msg import Marker, MarkerArray

    from fusion_monitor.ros.record import serialize

    m = Marker(check_fields=False)
    *path, last = field.split(".")
    obj = m
    for p in path:
        obj = getattr(obj, p)
    obj._check_fields = False
    setattr(obj, last, value)
    arr = MarkerArray(markers=[Marker(), m])
    try:
        expected = serialize_message(arr)
    except Exception as e:  # noqa: BLE001 - rclpy refuses: so must we, with its error
        with pytest.raises(type(e)):
            serialize(arr)
        return
    got = serialize(arr)
    assert len(got) == len(expected)
    assert _same(deserialize_message(got, MarkerArray), deserialize_message(expected, MarkerArray))


def test_fast_cdr_diagnostics_and_fallback_types():
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from std_msgs.msg import Float64

    from fusion_monitor.ros import record

    arr = DiagnosticArray()
    arr.header.frame_id = "x"
    for i in range(5):
        arr.status.append(DiagnosticStatus(level=bytes([i % 4]), name="n" * i, message="ü" * i, hardware_id="",
                                           values=[KeyValue(key="k" * j, value="v") for j in range(i)]))
    _same_wire(arr)
    assert record._diagnostic_array(arr) == record.serialize(arr)
    _same_wire(DiagnosticArray())
    bad = DiagnosticArray(status=[DiagnosticStatus()])
    bad.status[0]._level = 2  # not a byte: rclpy's conversion decides
    with pytest.raises(Exception):  # noqa: B017 - whatever rclpy raises
        record._diagnostic_array(bad)
    assert record.serialize(Float64(data=2.0)) == b"\x00\x01\x00\x00" + np.float64(2.0).tobytes()


def test_recorder_round_trip(tmp_path, ref):
    """Messages written by McapRecorder read back (mcap + rclpy) equal to what rclpy itself serialised."""
    from mcap.reader import make_reader
    from rclpy.serialization import deserialize_message, serialize_message

    from fusion_monitor.ros.frame_outputs import FrameOutputs
    from fusion_monitor.ros.record import McapRecorder

    fo = FrameOutputs(class_names=ref.NUSCENES_CLASSES)
    written = []
    with McapRecorder(tmp_path / "out.mcap") as rec:
        for seed in range(2):
            r = ref.make_result(seed)
            for topic, msg in fo.messages(r, latency_ms=1.0):
                rec.write(topic, msg, r.stamp_ns)
                written.append((topic, type(msg), deserialize_message(serialize_message(msg), type(msg))))
    with open(tmp_path / "out.mcap", "rb") as f:
        read = [(ch.topic, msg.data) for _, ch, msg in make_reader(f).iter_messages(log_time_order=False)]
    assert [t for t, _ in read] == [t for t, _, _ in written]
    for (_, data), (_, cls, expected) in zip(read, written):
        assert _same(deserialize_message(data, cls), expected)


def test_outputs_with_ros_python_check_fields(tmp_path):
    """ROS_PYTHON_CHECK_FIELDS=1 (the generated setters assert every value): everything builds and serialises,
    and every sub-message carries the check flag the constructors give it."""
    script = tmp_path / "check.py"
    script.write_text(f"""
import importlib.util, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
spec = importlib.util.spec_from_file_location("ref", {str(REPO / "benchmarks/outputs.py")!r})
ref = importlib.util.module_from_spec(spec); spec.loader.exec_module(ref)
import test_output_messages as T
from visualization_msgs.msg import MarkerArray
from fusion_monitor.ros.frame_outputs import FrameOutputs
from fusion_monitor.ros.markers import CHECK_FIELDS, FAST_PATH, MarkerBuilder, alert_markers
assert CHECK_FIELDS and FAST_PATH
old_fo, new_fo = ref.RefFrameOutputs(), FrameOutputs()
for r in [ref.make_result(s) for s in range(3)] + [T._odd_frame(0), *T._frames()]:
    old_mb = old_fo.markers.build(r, statuses=r.statuses)
    new = new_fo.messages(r, latency_ms=1.0)
    T._same_content(old_mb, new[0][1])
    for topic, msg in new:
        T._same_wire(msg)
    T._same_content(MarkerArray(markers=ref.alert_markers(r.statuses, 1, "f")),
                    MarkerArray(markers=alert_markers(r.statuses, 1, "f")))
T.test_output_messages_golden("objects"); T.test_output_messages_golden("fast")
print("ok")
""")
    env = {**os.environ, "ROS_PYTHON_CHECK_FIELDS": "1"}
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]
