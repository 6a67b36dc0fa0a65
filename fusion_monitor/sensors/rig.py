"""Rig profiles: which sensors a vehicle has, their topics, frames, rates and calibration."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

MODALITIES = ("camera", "radar", "lidar")
DEFAULT_RIG = Path(__file__).resolve().parents[1] / "data" / "rigs" / "nuscenes.yaml"


class CalibrationError(ValueError):
    """Calibration is missing or inconsistent for one sensor (the sensor is named)."""

    def __init__(self, sensor: str, reason: str):
        super().__init__(f"{sensor}: {reason}")
        self.sensor = sensor
        self.reason = reason


def quat_wxyz_to_matrix(q) -> np.ndarray:
    """Rotation matrix (3, 3) from a unit quaternion [w, x, y, z] (normalised here)."""
    w, x, y, z = (float(v) for v in q)
    n = np.sqrt(w * w + x * x + y * y + z * z)
    if not np.isfinite(n) or n < 1e-9:
        raise ValueError(f"quaternion {list(q)} is not a rotation")
    w, x, y, z = w / n, x / n, y / n, z / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def make_transform(translation, rotation_wxyz) -> np.ndarray:
    """4x4 homogeneous transform from a translation (m) and a [w, x, y, z] quaternion."""
    t = np.asarray(translation, dtype=np.float64)
    if t.shape != (3,) or not np.all(np.isfinite(t)):
        raise ValueError(f"translation {translation!r} is not 3 finite numbers")
    T = np.eye(4)
    T[:3, :3] = quat_wxyz_to_matrix(rotation_wxyz)
    T[:3, 3] = t
    return T


@dataclass(frozen=True)
class SensorSpec:
    """One sensor of a rig.

    ``T_base_sensor`` maps points from the sensor frame into the rig's base frame (4x4).
    ``K`` is the 3x3 pinhole intrinsic matrix for cameras, None otherwise.
    """

    name: str
    modality: str
    topic: str
    frame_id: str
    rate_hz: float
    T_base_sensor: np.ndarray
    K: np.ndarray | None = None
    width: int | None = None
    height: int | None = None
    camera_info_topic: str | None = None


@dataclass(frozen=True)
class Rig:
    """A vehicle's sensor set; sensors keep the profile's order."""

    name: str
    base_frame: str
    sensors: dict[str, SensorSpec] = field(default_factory=dict)

    def of(self, modality: str) -> list[SensorSpec]:
        """Sensors of one modality, in profile order."""
        return [s for s in self.sensors.values() if s.modality == modality]

    def by_topic(self, topic: str) -> SensorSpec | None:
        """The sensor publishing on ``topic`` (its data or CameraInfo topic), or None."""
        for s in self.sensors.values():
            if topic in (s.topic, s.camera_info_topic):
                return s
        return None

    def by_frame(self, frame_id: str) -> SensorSpec | None:
        """The sensor whose header.frame_id is ``frame_id`` (a leading '/' ignored), or None."""
        fid = frame_id.lstrip("/")
        for s in self.sensors.values():
            if s.frame_id == fid:
                return s
        return None


def _sensor_from_dict(name: str, d: dict) -> SensorSpec:
    if not isinstance(d, dict):
        raise CalibrationError(name, "entry is not a mapping")
    modality = d.get("modality")
    if modality not in MODALITIES:
        raise CalibrationError(name, f"modality {modality!r} is not one of {MODALITIES}")
    for key in ("translation", "rotation"):
        if key not in d:
            raise CalibrationError(name, f"missing {key}")
    try:
        T = make_transform(d["translation"], d["rotation"])
    except (ValueError, TypeError) as e:
        raise CalibrationError(name, str(e)) from None
    K = None
    if modality == "camera":
        if "camera_intrinsic" not in d:
            raise CalibrationError(name, "camera without camera_intrinsic")
        K = np.asarray(d["camera_intrinsic"], dtype=np.float64)
        if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise CalibrationError(name, f"camera_intrinsic is not a valid 3x3 matrix: {d['camera_intrinsic']!r}")
        for key in ("width", "height"):
            if not isinstance(d.get(key), int) or d[key] <= 0:
                raise CalibrationError(name, f"camera needs a positive integer {key}")
    rate = float(d.get("rate_hz", 10.0))
    if not (rate > 0):
        raise CalibrationError(name, f"rate_hz {rate} must be > 0")
    return SensorSpec(
        name=name,
        modality=modality,
        topic=str(d.get("topic", f"/{name}")),
        frame_id=str(d.get("frame_id", name)),
        rate_hz=rate,
        T_base_sensor=T,
        K=K,
        width=d.get("width"),
        height=d.get("height"),
        camera_info_topic=d.get("camera_info_topic"),
    )


def rig_from_dict(d: dict) -> Rig:
    """Build a Rig from a parsed profile mapping (see data/rigs/nuscenes.yaml)."""
    if not isinstance(d, dict) or not isinstance(d.get("sensors"), dict) or not d["sensors"]:
        raise ValueError("rig profile needs a non-empty 'sensors' mapping")
    sensors = {str(n): _sensor_from_dict(str(n), s) for n, s in d["sensors"].items()}
    return Rig(name=str(d.get("rig", "unnamed")), base_frame=str(d.get("base_frame", "base_link")), sensors=sensors)


def load_rig(path: str | Path | None = None) -> Rig:
    """Load a rig profile YAML; the default is the shipped nuScenes rig."""
    p = Path(path) if path is not None else DEFAULT_RIG
    try:
        text = p.read_text()
    except OSError as e:
        raise FileNotFoundError(f"rig profile {p}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"rig profile {p}: not valid YAML: {e}") from None
    try:
        return rig_from_dict(data)
    except ValueError as e:
        raise type(e)(f"rig profile {p}: {e}") from None
