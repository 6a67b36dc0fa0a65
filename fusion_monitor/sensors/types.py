"""Numpy sensor types: camera frames, point clouds, radar scans, intrinsics; field sets of known sensors.

Conventions: stamps are integer nanoseconds (``stamp_ns``), lengths metres, angles radians,
transforms 4x4 homogeneous ``T_a_b`` mapping points from frame b into frame a.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# --- field sets of real sensors (numpy structured dtypes, little-endian, as written by the drivers) ---

#: nuScenes LIDAR_TOP .pcd.bin: x y z [m], intensity [0..255], ring [0..31], float32 x5, 20 bytes.
NUSCENES_LIDAR_DTYPE = np.dtype(
    [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4"), ("ring", "<f4")]
)

#: nuScenes ARS408 radar .pcd (PCD v0.7 binary): 18 packed fields, 43 bytes per point.
NUSCENES_RADAR_DTYPE = np.dtype(
    {
        "names": [
            "x", "y", "z", "dyn_prop", "id", "rcs", "vx", "vy", "vx_comp", "vy_comp",
            "is_quality_valid", "ambig_state", "x_rms", "y_rms", "invalid_state", "pdh0", "vx_rms", "vy_rms",
        ],
        "formats": [
            "<f4", "<f4", "<f4", "i1", "<i2", "<f4", "<f4", "<f4", "<f4", "<f4",
            "i1", "i1", "i1", "i1", "i1", "i1", "i1", "i1",
        ],
        "offsets": [0, 4, 8, 12, 13, 15, 19, 23, 27, 31, 35, 36, 37, 38, 39, 40, 41, 42],
        "itemsize": 43,
    }
)

#: View-of-Delft HDL-64 LiDAR .bin: x y z [m], reflectance, float32 x4, 16 bytes (KITTI layout).
VOD_LIDAR_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("reflectance", "<f4")])

#: View-of-Delft ZF FRGen21 radar .bin: x y z [m], RCS [dBsm], v_r, v_r_compensated [m/s], time [s].
VOD_RADAR_DTYPE = np.dtype(
    [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rcs", "<f4"), ("v_r", "<f4"), ("v_r_compensated", "<f4"),
     ("time", "<f4")]
)

#: KITTI Velodyne .bin: same layout as VoD LiDAR.
KITTI_LIDAR_DTYPE = VOD_LIDAR_DTYPE

FIELD_SETS: dict[str, np.dtype] = {
    "nuscenes_lidar": NUSCENES_LIDAR_DTYPE,
    "nuscenes_radar": NUSCENES_RADAR_DTYPE,
    "vod_lidar": VOD_LIDAR_DTYPE,
    "vod_radar": VOD_RADAR_DTYPE,
    "kitti_lidar": KITTI_LIDAR_DTYPE,
}


def match_field_set(dtype: np.dtype) -> str | None:
    """Name of the largest known field set (:data:`FIELD_SETS`) whose field names ``dtype`` has.

    Offsets, padding, byte order and numeric types may differ (drivers vary); extra fields are
    allowed. None when no known set is complete (e.g. a cloud with only x, y, z).
    """
    names = set(dtype.names or ())
    best, best_n = None, 0
    for set_name, ref in FIELD_SETS.items():
        if set(ref.names) <= names and len(ref.names) > best_n:
            best, best_n = set_name, len(ref.names)
    return best


def xyz_m(points: np.ndarray) -> np.ndarray:
    """Point positions as a float64 array (N, 3) in metres from a structured array with x, y, z.

    Parameters
    ----------
    points : np.ndarray
        Structured array of any shape (flattened here) with fields ``x``, ``y``, ``z``.

    Returns
    -------
    np.ndarray
        (N, 3) float64, a copy in native byte order.
    """
    names = points.dtype.names or ()
    missing = [n for n in ("x", "y", "z") if n not in names]
    if missing:
        raise ValueError(f"point array has no field(s) {missing}; fields are {list(names)}")
    flat = points.reshape(-1)
    out = np.empty((flat.shape[0], 3), dtype=np.float64)
    out[:, 0] = flat["x"]
    out[:, 1] = flat["y"]
    out[:, 2] = flat["z"]
    return out


def columns(points: np.ndarray, names: tuple[str, ...], dtype: np.dtype | str = np.float32,
            fill: float = 0.0) -> np.ndarray:
    """Selected fields of a structured point array as a dense (N, len(names)) array.

    Parameters
    ----------
    points : np.ndarray
        Structured array of any shape (flattened row-major), any byte order.
    names : tuple of str
        Fields in output column order; a field the array lacks is filled with ``fill``
        (e.g. ``ring`` on a cloud without it). Sub-array fields are not accepted.
    dtype : numpy dtype
        Output type (default float32).

    Returns
    -------
    np.ndarray
        (N, len(names)) native-order array (a copy).
    """
    flat = points.reshape(-1)
    fields = points.dtype.fields or {}
    out = np.full((flat.shape[0], len(names)), fill, dtype=dtype)
    for j, name in enumerate(names):
        f = fields.get(name)
        if f is None:
            continue
        if f[0].subdtype is not None:
            raise ValueError(f"field '{name}' is an array of {f[0].subdtype[1]} values, not a scalar column")
        out[:, j] = flat[name]
    return out


def finite_mask(points: np.ndarray) -> np.ndarray:
    """Boolean mask (same shape as ``points``) of points whose x, y and z are all finite."""
    return np.isfinite(points["x"]) & np.isfinite(points["y"]) & np.isfinite(points["z"])


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of one camera.

    Attributes
    ----------
    K : np.ndarray
        (3, 3) float64 intrinsic matrix in pixels.
    width, height : int
        Image size in pixels that ``K`` refers to.
    distortion_model : str
        ``"plumb_bob"``, ``"rational_polynomial"``, ``"equidistant"`` or ``""`` (rectified).
    D : np.ndarray
        (n,) float64 distortion coefficients (empty when rectified).
    P : np.ndarray | None
        (3, 4) projection matrix of the rectified image, when known.
    frame_id : str
        Optical frame the intrinsics belong to.
    """

    K: np.ndarray
    width: int
    height: int
    distortion_model: str = ""
    D: np.ndarray = field(default_factory=lambda: np.zeros(0))
    P: np.ndarray | None = None
    frame_id: str = ""

    def scaled(self, width: int, height: int) -> CameraIntrinsics:
        """Intrinsics for the same camera resized to ``width`` x ``height`` pixels."""
        sx, sy = width / self.width, height / self.height
        S = np.diag([sx, sy, 1.0])
        K = S @ self.K
        # pixel-centre convention: u' + 0.5 = s (u + 0.5)
        K[0, 2] += 0.5 * sx - 0.5
        K[1, 2] += 0.5 * sy - 0.5
        P = None
        if self.P is not None:
            P = S @ self.P
            P[0, 2] += 0.5 * sx - 0.5
            P[1, 2] += 0.5 * sy - 0.5
        return CameraIntrinsics(K, int(width), int(height), self.distortion_model, self.D, P, self.frame_id)


@dataclass(frozen=True)
class CameraFrame:
    """One camera image.

    Attributes
    ----------
    image : np.ndarray
        (H, W, 3) uint8 RGB, or (H, W) uint8/uint16 for mono encodings. May be a read-only
        view of the message buffer.
    stamp_ns : int
        Header stamp in nanoseconds.
    frame_id : str
        Camera frame (nuScenes: the channel name, e.g. ``CAM_FRONT``).
    scale : float
        Decoded size / sensor size (1.0 at full resolution; 0.5 after JPEG DCT scaling by 2).
    """

    image: np.ndarray
    stamp_ns: int
    frame_id: str
    scale: float = 1.0

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True)
class PointCloud:
    """A LiDAR point cloud.

    Attributes
    ----------
    points : np.ndarray
        Structured array, shape (N,) or (H, W) for organised clouds, with at least float
        fields ``x``, ``y``, ``z`` in metres in ``frame_id``. May be a read-only view of the
        message buffer; may contain NaN points when ``is_dense`` is False.
    stamp_ns : int
        Header stamp in nanoseconds.
    frame_id : str
        Sensor frame.
    is_dense : bool
        True when every point is finite.
    """

    points: np.ndarray
    stamp_ns: int
    frame_id: str
    is_dense: bool = True

    def __len__(self) -> int:
        return int(self.points.size)

    def xyz_m(self) -> np.ndarray:
        """(N, 3) float64 positions in metres (organised clouds flattened row-major)."""
        return xyz_m(self.points)


@dataclass(frozen=True)
class RadarScan(PointCloud):
    """A radar scan (detections, not raw cube): same layout rules as PointCloud.

    Attributes
    ----------
    points : np.ndarray
        Structured (N,) array with ``x``, ``y``, ``z`` [m] and sensor-specific fields
        (nuScenes: ``rcs``, ``vx_comp``, ``vy_comp`` ...; VoD: ``rcs``, ``v_r_compensated`` ...).
    stamp_ns : int
        Header stamp in nanoseconds.
    frame_id : str
        Sensor frame.
    """


def transform_points(T_a_b: np.ndarray, xyz_b: np.ndarray) -> np.ndarray:
    """Map (N, 3) points from frame b into frame a with a 4x4 transform ``T_a_b``; returns (N, 3)."""
    T = np.asarray(T_a_b, dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"transform has shape {T.shape}, expected (4, 4)")
    p = np.asarray(xyz_b, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"points have shape {p.shape}, expected (N, 3)")
    return p @ T[:3, :3].T + T[:3, 3]


def project_points(K: np.ndarray, xyz_cam: np.ndarray, min_depth_m: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Pinhole projection of camera-frame points (z forward) to pixels.

    Parameters
    ----------
    K : np.ndarray
        (3, 3) intrinsics.
    xyz_cam : np.ndarray
        (N, 3) points in the camera optical frame, metres.
    min_depth_m : float
        Points closer than this (or behind) are invalid.

    Returns
    -------
    uv_px : np.ndarray
        (N, 2) float64 pixel coordinates (NaN where invalid).
    valid : np.ndarray
        (N,) bool, depth > min_depth_m.
    """
    p = np.asarray(xyz_cam, dtype=np.float64)
    z = p[:, 2]
    valid = z > min_depth_m
    uvw = p @ np.asarray(K, dtype=np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = uvw[:, :2] / uvw[:, 2:3]
    uv[~valid] = np.nan
    return uv, valid
