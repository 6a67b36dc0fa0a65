"""RViz markers from a FrameResult: boxes coloured by dominant modality, share labels, alert texts.

Layers (one namespace each): ``detections`` (CUBE per detection, id = track id),
``detections/labels`` (TEXT_VIEW_FACING, same id), ``alerts`` (DELETEALL for the namespace, then
one text per WARN/ERROR status). Ids that vanished since the previous frame are DELETEd
explicitly; ``lifetime`` is only a fallback for a node that dies mid-drive.

Construction cost: a generated rclpy ``Marker()`` builds ~12 default sub-messages through their
property setters (~20 us, more with ``ROS_PYTHON_CHECK_FIELDS=1``), and a frame has ~100 markers. The
builders below create the same objects with ``object.__new__`` and fill every ``__slots__`` entry
directly (the generated ``__init__`` does nothing else): values are converted here (float / int / str),
every message gets its own sub-messages as with the constructors, and ``_check_fields`` takes the value
the constructor would have given it. The fast path is only taken when the installed message classes
have exactly the slots it fills (:data:`FAST_PATH`); any other ROS distribution (e.g. Humble's Marker
without texture / mesh_file) goes through the generated constructors, with the same result.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable
from os import getenv

from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from sensor_msgs.msg import CompressedImage
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from fusion_monitor.frame import Detection, FrameResult

try:  # Marker's texture / mesh_file (Iron and later)
    from visualization_msgs.msg import MeshFile
except ImportError:  # pragma: no cover - older distributions
    MeshFile = None

NS_BOXES = "detections"
NS_LABELS = "detections/labels"
NS_ALERTS = "alerts"

# RGBA per dominant stream
MODALITY_COLORS: dict[str, tuple[float, float, float]] = {
    "camera": (0.20, 0.55, 1.00),
    "radar": (1.00, 0.55, 0.10),
    "lidar": (0.15, 0.85, 0.30),
    "bias": (0.60, 0.60, 0.60),
}
SHORT_NAMES = {"camera": "cam", "radar": "radar", "lidar": "lidar", "bias": "bias"}
LEVEL_COLORS = {1: (1.0, 0.85, 0.0), 2: (1.0, 0.15, 0.15), 3: (0.7, 0.7, 0.7)}
LEVEL_NAMES = {0: "OK", 1: "WARN", 2: "ERROR", 3: "STALE"}

_ADD, _DELETE, _DELETEALL = Marker.ADD, Marker.DELETE, Marker.DELETEALL
_CUBE, _TEXT = Marker.CUBE, Marker.TEXT_VIEW_FACING

# ---- message construction (fast path + constructor fallback) -----------------------------------------
# What a generated __init__ sets _check_fields to when not told (it reads the same variable at import).
CHECK_FIELDS = getenv("ROS_PYTHON_CHECK_FIELDS", default="") == "1"
_new = object.__new__


def slots_are(cls, *fields: str) -> bool:
    """True if ``cls`` (a generated message class) has exactly these fields, in this order."""
    return cls is not None and list(getattr(cls, "__slots__", ())) == [f"_{f}" for f in fields] + ["_check_fields"]


FAST_PATH = all((
    slots_are(Time, "sec", "nanosec"), slots_are(Duration, "sec", "nanosec"),
    slots_are(Header, "stamp", "frame_id"), slots_are(Point, "x", "y", "z"), slots_are(Vector3, "x", "y", "z"),
    slots_are(Quaternion, "x", "y", "z", "w"), slots_are(Pose, "position", "orientation"),
    slots_are(ColorRGBA, "r", "g", "b", "a"), slots_are(CompressedImage, "header", "format", "data"),
    slots_are(MeshFile, "filename", "data"),
    slots_are(Marker, "header", "ns", "id", "type", "action", "pose", "scale", "color", "lifetime", "frame_locked",
              "points", "colors", "texture_resource", "texture", "uv_coordinates", "text", "mesh_resource",
              "mesh_file", "mesh_use_embedded_materials"),
    slots_are(MarkerArray, "markers"),
))


def new_message(cls, check_fields: bool, **fields):
    """``cls`` (a generated message class) with ``fields`` put into its slots as they are: no setter checks and
    no default sub-messages built to be thrown away. The caller gives every field, converted to the type the
    field holds (what the setters would have stored), and only after ``slots_are(cls, <the same fields>)``."""
    m = _new(cls)
    m._check_fields = check_fields
    for name, value in fields.items():
        setattr(m, "_" + name, value)
    return m


def _time_fast(sec: int, nanosec: int, cls=Time) -> Time:
    t = _new(cls)
    t._check_fields = False
    t._sec = sec
    t._nanosec = nanosec
    return t


def _header_fast(sec: int, nanosec: int, frame_id: str) -> Header:
    """Header() (default checks) whose stamp is a Time(check_fields=False), as the builders always made it."""
    h = _new(Header)
    h._check_fields = CHECK_FIELDS
    h._stamp = _time_fast(sec, nanosec)
    h._frame_id = frame_id
    return h


def _marker_fast(sec: int, nanosec: int, frame_id: str, ns: str, id_: int, type_: int, action: int,
                 position: tuple[float, float, float] = (0.0, 0.0, 0.0),
                 orientation: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0),
                 scale: tuple[float, float, float] = (0.0, 0.0, 0.0),
                 color: tuple[float, float, float, float] | None = None,
                 lifetime: tuple[int, int] | None = None, text: str = "") -> Marker:
    """A Marker equal (field by field, sub-message check flags included) to :func:`_marker_ctor`'s."""
    m = _new(Marker)
    m._check_fields = False
    m._header = _header_fast(sec, nanosec, frame_id)
    m._ns = ns
    m._id = id_
    m._type = type_
    m._action = action
    pose = _new(Pose)
    pose._check_fields = CHECK_FIELDS
    p = _new(Point)
    p._check_fields = CHECK_FIELDS
    p._x, p._y, p._z = position
    q = _new(Quaternion)
    q._check_fields = CHECK_FIELDS
    q._x, q._y, q._z, q._w = orientation
    pose._position = p
    pose._orientation = q
    m._pose = pose
    v = _new(Vector3)
    v._check_fields = CHECK_FIELDS
    v._x, v._y, v._z = scale
    m._scale = v
    c = _new(ColorRGBA)
    if color is None:
        c._check_fields = CHECK_FIELDS
        c._r = c._g = c._b = c._a = 0.0
    else:
        c._check_fields = False
        c._r, c._g, c._b, c._a = color
    m._color = c
    d = _new(Duration)
    if lifetime is None:
        d._check_fields = CHECK_FIELDS
        d._sec = d._nanosec = 0
    else:
        d._check_fields = False
        d._sec, d._nanosec = lifetime
    m._lifetime = d
    m._frame_locked = False
    m._points = []
    m._colors = []
    m._texture_resource = ""
    tex = _new(CompressedImage)
    tex._check_fields = CHECK_FIELDS
    th = _new(Header)
    th._check_fields = CHECK_FIELDS
    tt = _new(Time)
    tt._check_fields = CHECK_FIELDS
    tt._sec = tt._nanosec = 0
    th._stamp = tt
    th._frame_id = ""
    tex._header = th
    tex._format = ""
    tex._data = array("B")
    m._texture = tex
    m._uv_coordinates = []
    m._text = text
    m._mesh_resource = ""
    mf = _new(MeshFile)
    mf._check_fields = CHECK_FIELDS
    mf._filename = ""
    mf._data = array("B")
    m._mesh_file = mf
    m._mesh_use_embedded_materials = False
    return m


def _marker_ctor(sec: int, nanosec: int, frame_id: str, ns: str, id_: int, type_: int, action: int,
                 position: tuple[float, float, float] = (0.0, 0.0, 0.0),
                 orientation: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0),
                 scale: tuple[float, float, float] = (0.0, 0.0, 0.0),
                 color: tuple[float, float, float, float] | None = None,
                 lifetime: tuple[int, int] | None = None, text: str = "") -> Marker:
    """The same Marker through the generated constructors (any ROS distribution)."""
    # Every value is converted by the callers: the Marker's own setters skip their per-field type assertions
    # even when ROS_PYTHON_CHECK_FIELDS=1 turns them on for everything else.
    m = Marker(check_fields=False)
    m.header.stamp = Time(sec=sec, nanosec=nanosec, check_fields=False)
    m.header.frame_id = frame_id
    m.ns, m.id, m.type, m.action = ns, id_, type_, action
    m.pose.position.x, m.pose.position.y, m.pose.position.z = position
    o = m.pose.orientation
    o.x, o.y, o.z, o.w = orientation
    m.scale.x, m.scale.y, m.scale.z = scale
    if color is not None:
        m.color = ColorRGBA(r=color[0], g=color[1], b=color[2], a=color[3], check_fields=False)
    if lifetime is not None:
        m.lifetime = Duration(sec=lifetime[0], nanosec=lifetime[1], check_fields=False)
    m.text = text
    return m


_marker = _marker_fast if FAST_PATH else _marker_ctor


def _split_ns(stamp_ns: int) -> tuple[int, int]:
    return divmod(int(stamp_ns), 1_000_000_000)


def _duration_parts(seconds: float) -> tuple[int, int]:
    ns = max(0, int(round(seconds * 1e9)))
    return divmod(ns, 1_000_000_000)


def stamp_msg(stamp_ns: int) -> Time:
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    if FAST_PATH:
        return _time_fast(sec, nsec)
    return Time(sec=sec, nanosec=nsec, check_fields=False)


def duration_msg(seconds: float) -> Duration:
    sec, nsec = _duration_parts(seconds)
    if FAST_PATH:
        return _time_fast(sec, nsec, Duration)
    return Duration(sec=sec, nanosec=nsec, check_fields=False)


def header_msg(stamp_ns: int, frame_id: str) -> Header:
    """Header() with stamp ``stamp_msg(stamp_ns)`` and ``frame_id``."""
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    if FAST_PATH:
        return _header_fast(sec, nsec, frame_id)
    h = Header()
    h.stamp = Time(sec=sec, nanosec=nsec, check_fields=False)
    h.frame_id = frame_id
    return h


def marker_array(markers: list[Marker]) -> MarkerArray:
    """MarkerArray(markers=markers) without the constructor's per-element checks (the list is taken as is)."""
    if not FAST_PATH:
        return MarkerArray(markers=markers)
    arr = _new(MarkerArray)
    arr._check_fields = CHECK_FIELDS
    arr._markers = markers
    return arr


# ---- the layers ----------------------------------------------------------------------------------------
def label_text(det: Detection) -> str:
    """'car 0.82 | cam 45% lidar 40% radar 10% bias 5%': modalities by share, bias last."""
    mods = sorted(((k, v) for k, v in det.shares.items() if k != "bias"), key=lambda kv: -kv[1])
    parts = [f"{SHORT_NAMES.get(k, k)} {round(100 * v):d}%" for k, v in mods]
    if "bias" in det.shares:
        parts.append(f"bias {round(100 * det.shares['bias']):d}%")
    head = f"{det.label} {det.score:.2f}"
    return f"{head} | {' '.join(parts)}" if parts else head


def _rgba(rgb: tuple[float, float, float], a: float) -> tuple[float, float, float, float]:
    return float(rgb[0]), float(rgb[1]), float(rgb[2]), float(a)


_BOX_COLORS = {k: _rgba(v, 0.5) for k, v in MODALITY_COLORS.items()}
_WHITE = (1.0, 1.0, 1.0, 1.0)


def _base(ns: str, id_: int, stamp_ns: int, frame_id: str, action: int = _ADD) -> Marker:
    """A bare marker of ``ns``/``id_`` (DELETE / DELETEALL markers are exactly this)."""
    sec, nsec = _split_ns(stamp_ns)
    return _marker(sec, nsec, frame_id, ns, int(id_), 0, action)


def _box(det: Detection, sec: int, nsec: int, frame_id: str, life: tuple[int, int]) -> Marker:
    cx, cy, cz = det.center_m
    half = det.yaw_rad / 2.0
    sx, sy, sz = det.size_m
    sx, sy, sz = float(sx), float(sy), float(sz)
    # max(v, 0.05), NaN kept as max() keeps it
    return _marker(sec, nsec, frame_id, NS_BOXES, int(det.track_id), _CUBE, _ADD,
                   (float(cx), float(cy), float(cz)), (0.0, 0.0, math.sin(half), math.cos(half)),
                   (0.05 if 0.05 > sx else sx, 0.05 if 0.05 > sy else sy, 0.05 if 0.05 > sz else sz),
                   _BOX_COLORS.get(det.dominant, _BOX_COLORS["bias"]), life)


def _label(det: Detection, sec: int, nsec: int, frame_id: str, life: tuple[int, int]) -> Marker:
    c = det.center_m
    return _marker(sec, nsec, frame_id, NS_LABELS, int(det.track_id), _TEXT, _ADD,
                   (float(c[0]), float(c[1]), float(c[2]) + float(det.size_m[2]) / 2.0 + 0.6),
                   (0.0, 0.0, 0.0, 1.0), (0.0, 0.0, 0.6), _WHITE, life, label_text(det))


def box_marker(det: Detection, stamp_ns: int, frame_id: str, lifetime_s: float) -> Marker:
    """CUBE at the detection's centre, yaw about z, size (length, width, height), coloured by dominant."""
    sec, nsec = _split_ns(stamp_ns)
    return _box(det, sec, nsec, frame_id, _duration_parts(lifetime_s))


def text_marker(det: Detection, stamp_ns: int, frame_id: str, lifetime_s: float) -> Marker:
    sec, nsec = _split_ns(stamp_ns)
    return _label(det, sec, nsec, frame_id, _duration_parts(lifetime_s))


def alert_markers(statuses: Iterable, stamp_ns: int, frame_id: str) -> list[Marker]:
    """DELETEALL for the alerts namespace, then one text per WARN/ERROR status, stacked above the origin."""
    sec, nsec = _split_ns(stamp_ns)
    out = [_marker(sec, nsec, frame_id, NS_ALERTS, 0, 0, _DELETEALL)]
    bad = [s for s in statuses if int(s.level) in (1, 2)]
    bad.sort(key=lambda s: (-int(s.level), s.name))
    for i, s in enumerate(bad):
        level = int(s.level)
        name = s.name.split(": ", 1)[-1]
        out.append(_marker(sec, nsec, frame_id, NS_ALERTS, i, _TEXT, _ADD, (0.0, 0.0, 4.0 + 0.8 * i),
                           (0.0, 0.0, 0.0, 1.0), (0.0, 0.0, 0.7), _rgba(LEVEL_COLORS[level], 1.0), None,
                           f"{LEVEL_NAMES[level]} {name}: {s.message}"))
    return out


class MarkerBuilder:
    """Keeps the ids published last frame so vanished detections are DELETEd (stable ids)."""

    def __init__(self) -> None:
        self._ids: set[int] = set()
        self._frame_id = ""

    def build(
        self,
        result: FrameResult,
        *,
        min_score: float = 0.0,
        lifetime_s: float = 1.0,
        statuses: Iterable | None = None,
    ) -> MarkerArray:
        """MarkerArray for one frame: DELETEs for vanished ids, boxes + labels, alert texts."""
        markers: list[Marker] = []
        dets = [d for d in result.detections if d.score >= min_score]
        ids = {int(d.track_id) for d in dets}
        sec, nsec = _split_ns(result.stamp_ns)
        frame_id = result.frame_id
        gone_frame = self._frame_id or frame_id
        for gone in sorted(self._ids - ids):
            for ns in (NS_BOXES, NS_LABELS):
                markers.append(_marker(sec, nsec, gone_frame, ns, gone, 0, _DELETE))
        life = _duration_parts(lifetime_s)
        for d in dets:
            markers.append(_box(d, sec, nsec, frame_id, life))
            markers.append(_label(d, sec, nsec, frame_id, life))
        if statuses is not None:
            markers.extend(alert_markers(statuses, result.stamp_ns, frame_id))
        self._ids, self._frame_id = ids, frame_id
        return marker_array(markers)

    def clear(self, stamp_ns: int, frame_id: str) -> MarkerArray:
        """DELETEALL of every layer (on deactivate / time jump)."""
        markers = [_base(ns, 0, stamp_ns, frame_id, _DELETEALL) for ns in (NS_BOXES, NS_LABELS, NS_ALERTS)]
        self._ids = set()
        return marker_array(markers)
