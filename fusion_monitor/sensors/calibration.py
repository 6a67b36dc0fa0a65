"""Calibration sources (rig profile, /tf_static, CameraInfo) and their per-sensor consistency report.

The rig profile (YAML, nuScenes calibrated_sensor style) is always there; /tf_static and
CameraInfo, where available, override it, and every disagreement is reported per sensor,
never guessed away. Transforms are 4x4 ``T_parent_child`` (maps child-frame points into the
parent frame); stamps are integer nanoseconds.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from fusion_monitor.sensors.errors import MessageError
from fusion_monitor.sensors.rig import CalibrationError, Rig, make_transform
from fusion_monitor.sensors.types import CameraIntrinsics


@dataclass(frozen=True)
class StampedTransform:
    """One tf edge: ``T_parent_child`` (4x4) at ``stamp_ns``."""

    parent_frame: str
    child_frame: str
    stamp_ns: int
    T_parent_child: np.ndarray


def tf_message_to_transforms(msg: Any) -> list[StampedTransform]:
    """tf2_msgs/TFMessage (rclpy or rosbags; duck-typed) -> list of :class:`StampedTransform`.

    Raises
    ------
    MessageError
        ``sensor`` = the child frame of the bad entry: empty frame ids, a non-finite
        translation, or a zero / non-finite quaternion.
    """
    try:
        entries = list(msg.transforms)
    except (AttributeError, TypeError):
        raise MessageError("/tf_static", "message has no 'transforms' list") from None
    out = []
    for ts in entries:
        try:
            parent = ts.header.frame_id
            child = ts.child_frame_id
            stamp = ts.header.stamp
            tr, rot = ts.transform.translation, ts.transform.rotation
            t = (tr.x, tr.y, tr.z)
            q_wxyz = (rot.w, rot.x, rot.y, rot.z)
            stamp_ns = int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
        except (AttributeError, TypeError, ValueError) as e:
            raise MessageError("/tf_static", f"malformed TransformStamped: {e}") from None
        sensor = child if isinstance(child, str) and child else "/tf_static"
        if not isinstance(parent, str) or not parent or not isinstance(child, str) or not child:
            raise MessageError(sensor, f"transform with empty frame ids ({parent!r} -> {child!r})")
        if parent == child:
            raise MessageError(sensor, f"transform from '{parent}' to itself")
        try:
            T = make_transform(t, q_wxyz)
        except ValueError as e:
            raise MessageError(sensor, f"transform {parent} -> {child}: {e}") from None
        out.append(StampedTransform(parent.lstrip("/"), child.lstrip("/"), stamp_ns, T))
    return out


class TransformTree:
    """Static transforms between frames, looked up along any chain (edges are invertible)."""

    def __init__(self, transforms: list[StampedTransform] | None = None):
        self._edges: dict[str, dict[str, np.ndarray]] = {}
        self._parent_of: dict[str, str] = {}
        for t in transforms or []:
            self.add(t)

    def add(self, t: StampedTransform) -> None:
        """Add or replace an edge; a child re-parented under a different frame keeps the newest parent."""
        old = self._parent_of.get(t.child_frame)
        if old is not None and old != t.parent_frame:
            self._edges[old].pop(t.child_frame, None)
            self._edges[t.child_frame].pop(old, None)
        self._parent_of[t.child_frame] = t.parent_frame
        self._edges.setdefault(t.parent_frame, {})[t.child_frame] = t.T_parent_child
        self._edges.setdefault(t.child_frame, {})[t.parent_frame] = invert(t.T_parent_child)

    @property
    def frames(self) -> set[str]:
        return set(self._edges)

    def lookup(self, target: str, source: str) -> np.ndarray:
        """``T_target_source`` (4x4), composed along the path between the frames.

        Raises
        ------
        CalibrationError
            ``sensor`` = source frame, when either frame is unknown or they are not connected.
        """
        if target == source:
            return np.eye(4)
        for f in (target, source):
            if f not in self._edges:
                raise CalibrationError(source, f"frame '{f}' is not in the tf tree")
        prev: dict[str, str | None] = {source: None}
        queue = deque([source])
        while queue:
            f = queue.popleft()
            if f == target:
                break
            for g in self._edges[f]:
                if g not in prev:
                    prev[g] = f
                    queue.append(g)
        if target not in prev:
            raise CalibrationError(source, f"no tf chain from '{source}' to '{target}'")
        T = np.eye(4)
        f = target
        while prev[f] is not None:
            g = prev[f]
            T = T @ self._edges[f][g]  # T_f_g; accumulate T_target_g
            f = g
        return T


def invert(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform."""
    R, t = T[:3, :3], T[:3, 3]
    out = np.eye(4)
    out[:3, :3] = R.T
    out[:3, 3] = -R.T @ t
    return out


def rotation_angle_deg(R_a: np.ndarray, R_b: np.ndarray) -> float:
    """Angle (degrees) of the rotation taking R_b to R_a."""
    c = (np.trace(R_a.T @ R_b) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


@dataclass(frozen=True)
class SensorCalibrationCheck:
    """Outcome for one sensor and one calibration source.

    Attributes
    ----------
    sensor : str
    check : str
        ``"extrinsics"`` or ``"intrinsics"``.
    status : str
        ``"ok"``, ``"missing"`` (source has nothing for it), ``"mismatch"`` (disagrees with the
        rig profile beyond tolerance) or ``"invalid"``.
    source : str
        ``"tf_static"`` or ``"camera_info"``.
    reason : str
        One line naming the values.
    values : dict
        Measured numbers (``translation_error_m``, ``rotation_error_deg``, ``fx_error_px`` ...)
        and their bounds, for diagnostics key/values.
    """

    sensor: str
    check: str
    status: str
    source: str
    reason: str = ""
    values: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def check_extrinsics(
    rig: Rig,
    tree: TransformTree,
    *,
    tol_translation_m: float = 0.02,
    tol_rotation_deg: float = 0.5,
) -> dict[str, SensorCalibrationCheck]:
    """Compare each sensor's rig-profile extrinsics with the tf tree (``rig.base_frame`` -> frame_id).

    Returns
    -------
    dict
        sensor name -> :class:`SensorCalibrationCheck` (``missing`` when tf has no chain).
    """
    out = {}
    for name, spec in rig.sensors.items():
        try:
            T = tree.lookup(rig.base_frame, spec.frame_id)
        except CalibrationError as e:
            out[name] = SensorCalibrationCheck(name, "extrinsics", "missing", "tf_static", e.reason)
            continue
        dt = float(np.linalg.norm(T[:3, 3] - spec.T_base_sensor[:3, 3]))
        dr = rotation_angle_deg(T[:3, :3], spec.T_base_sensor[:3, :3])
        values = {"translation_error_m": dt, "translation_tolerance_m": tol_translation_m,
                  "rotation_error_deg": dr, "rotation_tolerance_deg": tol_rotation_deg}
        bad = []
        if dt > tol_translation_m:
            bad.append(f"translation differs by {dt:.3f} m (> {tol_translation_m} m)")
        if dr > tol_rotation_deg:
            bad.append(f"rotation differs by {dr:.2f} deg (> {tol_rotation_deg} deg)")
        status = "mismatch" if bad else "ok"
        reason = f"{name}: /tf_static vs rig profile: " + "; ".join(bad) if bad else ""
        out[name] = SensorCalibrationCheck(name, "extrinsics", status, "tf_static", reason, values)
    return out


def check_intrinsics(
    rig: Rig,
    infos: dict[str, CameraIntrinsics],
    *,
    tol_px: float = 1.0,
) -> dict[str, SensorCalibrationCheck]:
    """Compare each camera's profile K / size with its CameraInfo (keyed by sensor name).

    A CameraInfo at a different resolution is compared after scaling the profile to it
    (an image pipeline that resizes is fine; a different aspect ratio is reported).
    """
    out = {}
    for spec in rig.of("camera"):
        name = spec.name
        info = infos.get(name)
        if info is None:
            out[name] = SensorCalibrationCheck(name, "intrinsics", "missing", "camera_info",
                                               f"{name}: no CameraInfo received")
            continue
        bad = []
        prof = CameraIntrinsics(K=spec.K, width=spec.width, height=spec.height)
        if (info.width, info.height) != (spec.width, spec.height):
            if abs(info.width * spec.height - info.height * spec.width) > max(spec.width, spec.height):
                bad.append(f"size {info.width}x{info.height} has another aspect than profile "
                           f"{spec.width}x{spec.height}")
            prof = prof.scaled(info.width, info.height)
        err = np.abs(info.K - prof.K)
        values = {"fx_error_px": float(err[0, 0]), "fy_error_px": float(err[1, 1]),
                  "cx_error_px": float(err[0, 2]), "cy_error_px": float(err[1, 2]), "tolerance_px": tol_px}
        worst = max(values["fx_error_px"], values["fy_error_px"], values["cx_error_px"], values["cy_error_px"])
        if worst > tol_px:
            bad.append(f"K differs by up to {worst:.2f} px (> {tol_px} px): CameraInfo "
                       f"fx={info.K[0, 0]:.2f} cx={info.K[0, 2]:.2f} cy={info.K[1, 2]:.2f}, profile "
                       f"fx={prof.K[0, 0]:.2f} cx={prof.K[0, 2]:.2f} cy={prof.K[1, 2]:.2f}")
        status = "mismatch" if bad else "ok"
        reason = f"{name}: CameraInfo vs rig profile: " + "; ".join(bad) if bad else ""
        out[name] = SensorCalibrationCheck(name, "intrinsics", status, "camera_info", reason, values)
    return out


def apply_overrides(
    rig: Rig,
    tree: TransformTree | None = None,
    infos: dict[str, CameraIntrinsics] | None = None,
) -> Rig:
    """A new Rig whose extrinsics / intrinsics come from tf and CameraInfo where those have them.

    Sensors the sources do not cover keep the profile values (the checks report them missing).
    """
    sensors = {}
    for name, spec in rig.sensors.items():
        new = spec
        if tree is not None:
            try:
                new = replace(new, T_base_sensor=tree.lookup(rig.base_frame, spec.frame_id))
            except CalibrationError:
                pass
        info = (infos or {}).get(name)
        if info is not None and spec.modality == "camera":
            new = replace(new, K=np.array(info.K, dtype=np.float64), width=info.width, height=info.height)
        sensors[name] = new
    return Rig(name=rig.name, base_frame=rig.base_frame, sensors=sensors)


def rig_transforms(rig: Rig) -> list[StampedTransform]:
    """The rig profile as tf edges base_frame -> sensor frame (stamp 0), e.g. to publish /tf_static."""
    return [StampedTransform(rig.base_frame, s.frame_id, 0, s.T_base_sensor.copy()) for s in rig.sensors.values()]


# ---------------------------------------------------------------- bags (rosbags; no ROS needed)

def _typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(getattr(Stores, "ROS2_KILTED", None) or Stores.LATEST)


def read_bag_calibration(
    bag: str | Path,
    rig: Rig,
    *,
    tf_topic: str = "/tf_static",
) -> tuple[TransformTree, dict[str, CameraIntrinsics], dict[str, str]]:
    """Read /tf_static and every camera's CameraInfo (first valid one) from a rosbag2 (sqlite3/MCAP).

    Parameters
    ----------
    bag : path
        rosbag2 folder (or a single .mcap file).
    rig : Rig
        Which CameraInfo topics belong to which sensor (``camera_info_topic``).

    Returns
    -------
    tree : TransformTree
        Every /tf_static transform in the bag (later ones replace earlier ones).
    infos : dict
        sensor name -> CameraIntrinsics.
    errors : dict
        sensor name -> reason, for malformed /tf_static entries or CameraInfo messages.
    """
    from rosbags.highlevel import AnyReader

    from fusion_monitor.ros.conversions import camera_info_to_intrinsics  # duck-typed, no rclpy

    info_topics = {s.camera_info_topic: s.name for s in rig.of("camera") if s.camera_info_topic}
    tree = TransformTree()
    infos: dict[str, CameraIntrinsics] = {}
    errors: dict[str, str] = {}
    with AnyReader([Path(bag)], default_typestore=_typestore()) as reader:
        tf_conns = [c for c in reader.connections if c.topic == tf_topic]
        for conn, _t, raw in reader.messages(connections=tf_conns) if tf_conns else ():
            try:
                for t in tf_message_to_transforms(reader.deserialize(raw, conn.msgtype)):
                    tree.add(t)
            except MessageError as e:
                errors[e.sensor] = e.reason
        info_conns = [c for c in reader.connections if c.topic in info_topics]
        for conn, _t, raw in reader.messages(connections=info_conns) if info_conns else ():
            name = info_topics[conn.topic]
            if name in infos:
                if len(infos) == len(info_topics):
                    break  # every camera has its first valid CameraInfo: no need to read the rest
                continue
            try:
                infos[name] = camera_info_to_intrinsics(reader.deserialize(raw, conn.msgtype), name)
            except MessageError as e:
                errors[name] = e.reason
    return tree, infos, errors
