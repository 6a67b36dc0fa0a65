"""Readers for dataset files (nuScenes .pcd.bin / radar .pcd, View-of-Delft and KITTI .bin, KITTI calib).

They return the same numpy types as the ROS conversions (structured point arrays,
PointCloud, RadarScan, CameraIntrinsics), so tests and tools treat dataset files and live
messages alike. Bad files raise :class:`MessageError` naming the file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fusion_monitor.sensors.errors import MessageError
from fusion_monitor.sensors.types import (
    NUSCENES_LIDAR_DTYPE,
    VOD_LIDAR_DTYPE,
    VOD_RADAR_DTYPE,
    CameraIntrinsics,
    PointCloud,
    RadarScan,
)

_PCD_TYPES = {("F", 4): "f4", ("F", 8): "f8", ("I", 1): "i1", ("I", 2): "i2", ("I", 4): "i4", ("I", 8): "i8",
              ("U", 1): "u1", ("U", 2): "u2", ("U", 4): "u4", ("U", 8): "u8"}
_MAX_HEADER_BYTES = 4096


def stamp_ns_from_filename(path: str | Path) -> int | None:
    """nuScenes file names end in a microsecond timestamp (``..__LIDAR_TOP__1532402927647951.pcd.bin``)."""
    m = re.search(r"__(\d{16})\.", Path(path).name)
    return int(m.group(1)) * 1000 if m else None


def read_bin(path: str | Path, dtype: np.dtype) -> np.ndarray:
    """A packed binary point file (no header) as a structured array of ``dtype``.

    Raises
    ------
    MessageError
        The file size is not a multiple of the record size (wrong layout or truncated file).
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise MessageError(p.name, f"cannot read {p}: {e.strerror}") from None
    if len(raw) % dtype.itemsize:
        raise MessageError(p.name, f"{len(raw)} bytes is not a multiple of the {dtype.itemsize}-byte point record")
    return np.frombuffer(raw, dtype=dtype)


def read_nuscenes_lidar_bin(path: str | Path, frame_id: str = "LIDAR_TOP", stamp_ns: int | None = None) -> PointCloud:
    """nuScenes LIDAR_TOP ``.pcd.bin`` (float32 x y z intensity ring) -> PointCloud (stamp from the name)."""
    pts = read_bin(path, NUSCENES_LIDAR_DTYPE)
    stamp = stamp_ns if stamp_ns is not None else (stamp_ns_from_filename(path) or 0)
    return PointCloud(points=pts, stamp_ns=stamp, frame_id=frame_id, is_dense=bool(np.isfinite(pts["x"]).all()))


def read_vod_lidar_bin(path: str | Path, frame_id: str = "velodyne", stamp_ns: int = 0) -> PointCloud:
    """View-of-Delft / KITTI Velodyne ``.bin`` (float32 x y z reflectance) -> PointCloud."""
    pts = read_bin(path, VOD_LIDAR_DTYPE)
    return PointCloud(points=pts, stamp_ns=stamp_ns, frame_id=frame_id)


#: KITTI Velodyne files have the VoD LiDAR layout.
read_kitti_lidar_bin = read_vod_lidar_bin


def read_vod_radar_bin(path: str | Path, frame_id: str = "radar", stamp_ns: int = 0) -> RadarScan:
    """View-of-Delft radar ``.bin`` (float32 x y z rcs v_r v_r_compensated time) -> RadarScan."""
    pts = read_bin(path, VOD_RADAR_DTYPE)
    return RadarScan(points=pts, stamp_ns=stamp_ns, frame_id=frame_id)


@dataclass(frozen=True)
class PcdHeader:
    """Parsed PCD v0.7 header."""

    fields: tuple[str, ...]
    dtype: np.dtype
    width: int
    height: int
    points: int
    data: str
    header_bytes: int


def parse_pcd_header(raw: bytes, name: str = "pcd") -> PcdHeader:
    """Parse a PCD header (ends with the DATA line); returns the packed point dtype.

    Raises
    ------
    MessageError
        Missing or inconsistent header entries, an unknown TYPE/SIZE, or a duplicate field.
    """
    end = raw.find(b"\nDATA ", 0, _MAX_HEADER_BYTES)
    if end < 0 and raw.startswith(b"DATA "):
        end = -1
    if end < 0 and not raw.startswith(b"DATA "):
        raise MessageError(name, "no DATA line in the first 4096 bytes (not a PCD file)")
    line_end = raw.find(b"\n", end + 1)
    if line_end < 0:
        raise MessageError(name, "PCD header ends without a newline after DATA")
    try:
        text = raw[: line_end + 1].decode("ascii")
    except UnicodeDecodeError:
        raise MessageError(name, "PCD header is not ASCII") from None
    head: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, *vals = line.split()
        head[key.upper()] = vals
    for key in ("FIELDS", "SIZE", "TYPE", "WIDTH", "HEIGHT", "DATA"):
        if key not in head:
            raise MessageError(name, f"PCD header has no {key} line")
    fields = head["FIELDS"]
    counts = head.get("COUNT", ["1"] * len(fields))
    if not (len(fields) == len(head["SIZE"]) == len(head["TYPE"]) == len(counts)):
        raise MessageError(name, f"PCD FIELDS/SIZE/TYPE/COUNT lengths differ: {len(fields)}, {len(head['SIZE'])}, "
                                 f"{len(head['TYPE'])}, {len(counts)}")
    if len(set(fields)) != len(fields):
        raise MessageError(name, f"PCD FIELDS has duplicates: {fields}")
    try:
        sizes = [int(s) for s in head["SIZE"]]
        cnts = [int(c) for c in counts]
        width, height = int(head["WIDTH"][0]), int(head["HEIGHT"][0])
        n_points = int(head.get("POINTS", [width * height])[0])
    except (ValueError, IndexError):
        raise MessageError(name, "PCD SIZE/COUNT/WIDTH/HEIGHT/POINTS are not integers") from None
    formats = []
    for f, t, s, c in zip(fields, head["TYPE"], sizes, cnts):
        code = _PCD_TYPES.get((t.upper(), s))
        if code is None:
            raise MessageError(name, f"PCD field '{f}' has unknown TYPE {t} SIZE {s}")
        if c < 1:
            raise MessageError(name, f"PCD field '{f}' has COUNT {c}")
        formats.append(np.dtype("<" + code) if c == 1 else np.dtype(("<" + code, (c,))))
    if n_points != width * height:
        raise MessageError(name, f"PCD POINTS {n_points} != WIDTH {width} * HEIGHT {height}")
    offsets = np.cumsum([0] + [f.itemsize for f in formats[:-1]]).tolist()
    dtype = np.dtype({"names": fields, "formats": formats, "offsets": offsets,
                      "itemsize": sum(f.itemsize for f in formats)})
    return PcdHeader(tuple(fields), dtype, width, height, n_points, head["DATA"][0].lower(), line_end + 1)


def read_pcd(path: str | Path) -> np.ndarray:
    """Points of a PCD v0.7 file (``DATA binary`` or ``ascii``) as a packed structured array.

    Bytes after the last point are ignored: the nuScenes radar files carry trailing bytes
    (the official devkit ignores them too). ``binary_compressed`` is reported, not guessed.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise MessageError(p.name, f"cannot read {p}: {e.strerror}") from None
    h = parse_pcd_header(raw, p.name)
    body = raw[h.header_bytes:]
    if h.data == "binary":
        need = h.points * h.dtype.itemsize
        if len(body) < need:
            raise MessageError(p.name, f"PCD body has {len(body)} bytes, {h.points} points need {need}")
        return np.frombuffer(body, dtype=h.dtype, count=h.points)
    if h.data == "ascii":
        rows = body.decode("ascii", errors="replace").split("\n")
        rows = [r for r in rows if r.strip()][: h.points]
        if len(rows) < h.points:
            raise MessageError(p.name, f"PCD ascii body has {len(rows)} rows, header says {h.points}")
        out = np.zeros(h.points, dtype=h.dtype)
        flat_names = [(n, i) for n in h.fields for i in range(max(1, int(np.prod(h.dtype[n].shape or (1,)))))]
        try:
            table = np.array([r.split() for r in rows], dtype=np.float64)
        except ValueError:
            raise MessageError(p.name, "PCD ascii rows have differing or non-numeric columns") from None
        if table.shape[1] != len(flat_names):
            raise MessageError(p.name, f"PCD ascii rows have {table.shape[1]} columns, fields need {len(flat_names)}")
        col = 0
        for n in h.fields:
            k = int(np.prod(h.dtype[n].shape or (1,)))
            out[n] = table[:, col] if k == 1 else table[:, col:col + k]
            col += k
        return out
    raise MessageError(p.name, f"PCD DATA {h.data!r} is not supported (binary or ascii)")


def read_nuscenes_radar_pcd(path: str | Path, frame_id: str | None = None, stamp_ns: int | None = None) -> RadarScan:
    """nuScenes ARS408 radar ``.pcd`` -> RadarScan (frame from the file name's channel, stamp from its time)."""
    p = Path(path)
    pts = read_pcd(p)
    if frame_id is None:
        m = re.search(r"__(RADAR_[A-Z_]+)__", p.name)
        frame_id = m.group(1) if m else "radar"
    stamp = stamp_ns if stamp_ns is not None else (stamp_ns_from_filename(p) or 0)
    return RadarScan(points=pts, stamp_ns=stamp, frame_id=frame_id)


@dataclass(frozen=True)
class KittiCalib:
    """KITTI-format calibration of one frame (View-of-Delft uses the same files).

    Attributes
    ----------
    P : dict[str, np.ndarray]
        ``P0``..``P3`` (3, 4) projection matrices of the rectified cameras.
    R0_rect : np.ndarray
        (4, 4) rectifying rotation (homogeneous).
    T_cam_velo : np.ndarray
        (4, 4) ``Tr_velo_to_cam``: sensor (LiDAR or radar) -> reference camera.
    T_velo_imu : np.ndarray | None
        (4, 4) ``Tr_imu_to_velo`` when present.
    """

    P: dict[str, np.ndarray]
    R0_rect: np.ndarray
    T_cam_velo: np.ndarray
    T_velo_imu: np.ndarray | None = None

    def intrinsics(self, camera: str = "P2", width: int = 0, height: int = 0) -> CameraIntrinsics:
        """Pinhole intrinsics of one rectified camera (K = P[:, :3])."""
        P = self.P[camera]
        return CameraIntrinsics(K=P[:, :3].copy(), width=width, height=height, P=P.copy(), frame_id=camera)

    def T_rect_sensor(self) -> np.ndarray:
        """(4, 4) sensor -> rectified camera frame (R0_rect @ Tr_velo_to_cam)."""
        return self.R0_rect @ self.T_cam_velo


def _homog(m: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[: m.shape[0], : m.shape[1]] = m
    return T


def read_kitti_calib(path: str | Path) -> KittiCalib:
    """Parse a KITTI/VoD ``calib/*.txt`` (``key: numbers`` lines; empty values allowed).

    Raises
    ------
    MessageError
        A missing P2 or Tr_velo_to_cam, or a matrix with the wrong number of values.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise MessageError(p.name, f"cannot read {p}: {e}") from None
    vals: dict[str, np.ndarray] = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        key, rest = line.split(":", 1)
        try:
            nums = np.array([float(x) for x in rest.split()], dtype=np.float64)
        except ValueError:
            raise MessageError(p.name, f"calib entry {key.strip()!r} has non-numeric values") from None
        if nums.size:
            vals[key.strip()] = nums
    shapes = {"P0": 12, "P1": 12, "P2": 12, "P3": 12, "R0_rect": 9, "Tr_velo_to_cam": 12, "Tr_imu_to_velo": 12}
    for key, n in shapes.items():
        if key in vals and vals[key].size != n:
            raise MessageError(p.name, f"calib {key} has {vals[key].size} values, expected {n}")
    for key in ("P2", "Tr_velo_to_cam"):
        if key not in vals:
            raise MessageError(p.name, f"calib has no {key}")
    if not all(np.all(np.isfinite(v)) for v in vals.values()):
        raise MessageError(p.name, "calib has non-finite values")
    P = {k: vals[k].reshape(3, 4) for k in ("P0", "P1", "P2", "P3") if k in vals}
    R0 = _homog(vals["R0_rect"].reshape(3, 3)) if "R0_rect" in vals else np.eye(4)
    T = _homog(vals["Tr_velo_to_cam"].reshape(3, 4))
    Ti = _homog(vals["Tr_imu_to_velo"].reshape(3, 4)) if "Tr_imu_to_velo" in vals else None
    return KittiCalib(P=P, R0_rect=R0, T_cam_velo=T, T_velo_imu=Ti)


def read_nuscenes_calibrated_sensors(tables_dir: str | Path) -> list[dict]:
    """nuScenes ``calibrated_sensor.json`` joined with ``sensor.json``: one dict per entry.

    Each dict has ``channel``, ``modality``, ``token``, ``translation`` (m), ``rotation``
    ([w, x, y, z]) and ``camera_intrinsic`` (3x3 or empty) — the rig profile's own keys.
    """
    d = Path(tables_dir)
    try:
        cal = json.loads((d / "calibrated_sensor.json").read_text())
        sensors = {s["token"]: s for s in json.loads((d / "sensor.json").read_text())}
    except (OSError, ValueError, KeyError) as e:
        raise MessageError(d.name, f"cannot read nuScenes tables in {d}: {e}") from None
    out = []
    for c in cal:
        s = sensors.get(c.get("sensor_token"))
        if s is None:
            raise MessageError(d.name, f"calibrated_sensor {c.get('token')} names unknown sensor {c.get('sensor_token')}")
        out.append({"channel": s["channel"], "modality": s["modality"], "token": c["token"],
                    "translation": c["translation"], "rotation": c["rotation"],
                    "camera_intrinsic": c.get("camera_intrinsic") or []})
    return out
