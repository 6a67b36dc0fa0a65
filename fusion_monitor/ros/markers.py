"""RViz markers from a FrameResult: boxes coloured by dominant modality, share labels, alert texts.

Layers (one namespace each): ``detections`` (CUBE per detection, id = track id),
``detections/labels`` (TEXT_VIEW_FACING, same id), ``alerts`` (DELETEALL for the namespace, then
one text per WARN/ERROR status). Ids that vanished since the previous frame are DELETEd
explicitly; ``lifetime`` is only a fallback for a node that dies mid-drive.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from builtin_interfaces.msg import Duration, Time
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from fusion_monitor.frame import Detection, FrameResult

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


def stamp_msg(stamp_ns: int) -> Time:
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    return Time(sec=sec, nanosec=nsec, check_fields=False)


def duration_msg(seconds: float) -> Duration:
    ns = max(0, int(round(seconds * 1e9)))
    sec, nsec = divmod(ns, 1_000_000_000)
    return Duration(sec=sec, nanosec=nsec, check_fields=False)


def label_text(det: Detection) -> str:
    """'car 0.82 | cam 45% lidar 40% radar 10% bias 5%': modalities by share, bias last."""
    mods = sorted(((k, v) for k, v in det.shares.items() if k != "bias"), key=lambda kv: -kv[1])
    parts = [f"{SHORT_NAMES.get(k, k)} {round(100 * v):d}%" for k, v in mods]
    if "bias" in det.shares:
        parts.append(f"bias {round(100 * det.shares['bias']):d}%")
    head = f"{det.label} {det.score:.2f}"
    return f"{head} | {' '.join(parts)}" if parts else head


def _color(rgb: tuple[float, float, float], a: float) -> ColorRGBA:
    return ColorRGBA(r=float(rgb[0]), g=float(rgb[1]), b=float(rgb[2]), a=float(a), check_fields=False)


def _base(ns: str, id_: int, stamp_ns: int, frame_id: str, action: int = Marker.ADD) -> Marker:
    # Every field below is set from values converted here (float/int/str): the generated setters' per-field
    # type assertions are skipped even when ROS_PYTHON_CHECK_FIELDS=1 turns them on for everything else.
    m = Marker(check_fields=False)
    m.header.stamp = stamp_msg(stamp_ns)
    m.header.frame_id = frame_id
    m.ns, m.id, m.action = ns, int(id_), action
    return m


def box_marker(det: Detection, stamp_ns: int, frame_id: str, lifetime_s: float) -> Marker:
    """CUBE at the detection's centre, yaw about z, size (length, width, height), coloured by dominant."""
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
    """DELETEALL for the alerts namespace, then one text per WARN/ERROR status, stacked above the origin."""
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
        """DELETEALL of every layer (on deactivate / time jump)."""
        arr = MarkerArray()
        for ns in (NS_BOXES, NS_LABELS, NS_ALERTS):
            arr.markers.append(_base(ns, 0, stamp_ns, frame_id, Marker.DELETEALL))
        self._ids = set()
        return arr
