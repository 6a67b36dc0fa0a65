"""Preprocessing into the reference detector's inputs: images -> normalised tensors, points -> BEV rasters.

Shared by the ROS node, replay, training and evaluation. Pure numpy, no loops over points.

BEV convention (base_link: x forward, y left, z up): row index i covers x in
[-R + i*cell, -R + (i+1)*cell), column j covers y in [-R + j*cell, ...), R = range_m.

Missing modality: its input tensor is all zeros and its ``present`` flag is 0; the model also zeroes that
modality's pre-fusion BEV feature (see fusion_monitor.model.network). An empty point cloud is valid input
(the sensor is present and saw nothing): its raster is zero and its flag stays 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from fusion_monitor.sensors.rig import CalibrationError

MODALITY_ORDER = ("camera", "lidar", "radar")
CAMERA_ORDER = ("CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")
LIDAR_CHANNELS = 10
RADAR_CHANNELS = 6


@dataclass(frozen=True)
class InputSpec:
    """Everything that defines the model's inputs (recorded in the model metadata).

    image_hw : model image size (H, W) in pixels.
    camera_names : camera slot order.
    range_m, cell_m : BEV half extent and cell size (metres); grid = 2*range_m/cell_m cells.
    lidar_z_min_m, lidar_z_max_m, lidar_z_bins : height slices of the LiDAR raster (base_link z).
    image_mean, image_std : normalisation of RGB in [0, 1].
    """

    image_hw: tuple[int, int] = (96, 176)
    camera_names: tuple[str, ...] = CAMERA_ORDER
    range_m: float = 51.2
    cell_m: float = 0.8
    lidar_z_min_m: float = -2.0
    lidar_z_max_m: float = 4.0
    lidar_z_bins: int = 8
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: tuple[float, float, float] = (0.25, 0.25, 0.25)
    radar_max_time_lag_s: float = 0.5
    extra: dict = field(default_factory=dict)

    @property
    def grid(self) -> int:
        return int(round(2 * self.range_m / self.cell_m))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["image_hw"] = list(self.image_hw)
        d["camera_names"] = list(self.camera_names)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> InputSpec:
        d = dict(d)
        d["image_hw"] = tuple(d["image_hw"])
        d["camera_names"] = tuple(d["camera_names"])
        d["image_mean"] = tuple(d["image_mean"])
        d["image_std"] = tuple(d["image_std"])
        return cls(**d)


DEFAULT_SPEC = InputSpec()


@dataclass
class Preprocessed:
    """Model inputs plus what the preprocessing did.

    inputs : {"camera": (1, 6, 3, H, W), "lidar": (1, 10, G, G), "radar": (1, 6, G, G), "present": (1, 3)}
        float32, modality order of ``present`` = MODALITY_ORDER.
    intrinsics : camera name -> 3x3 K of the resized image (for the lift tables).
    dropped_points : {"lidar": n, "radar": n} rows ignored because not finite.
    """

    inputs: dict[str, np.ndarray]
    intrinsics: dict[str, np.ndarray]
    dropped_points: dict[str, int]


def scale_intrinsics(K: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """K of an image resized by (sx, sy); pixel centres at integer coordinates (u' = sx (u + 0.5) - 0.5)."""
    K = np.asarray(K, dtype=np.float64)
    K2 = K.copy()
    K2[0, 0] = K[0, 0] * sx
    K2[0, 1] = K[0, 1] * sx
    K2[0, 2] = sx * (K[0, 2] + 0.5) - 0.5
    K2[1, 1] = K[1, 1] * sy
    K2[1, 2] = sy * (K[1, 2] + 0.5) - 0.5
    return K2


def resize_image(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Resize (H, W, 3) uint8 to ``hw`` (bilinear, antialiased when shrinking)."""
    if img.shape[:2] == tuple(hw):
        return img
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((hw[1], hw[0]), Image.BILINEAR))


def normalise_images(imgs_uint8: np.ndarray, spec: InputSpec) -> np.ndarray:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float32 normalised with the spec's mean/std."""
    x = imgs_uint8.astype(np.float32) * (1.0 / 255.0)
    x = (x - np.asarray(spec.image_mean, np.float32)) / np.asarray(spec.image_std, np.float32)
    return np.moveaxis(x, -1, -3)


def _normalise_into(out: np.ndarray, img_uint8: np.ndarray, spec: InputSpec) -> None:
    """:func:`normalise_images` of one (H, W, 3) image written into ``out`` (3, H, W), channel by channel
    (no (H, W, 3) float temporaries; the same float32 operations, so the same values)."""
    mean, std = np.asarray(spec.image_mean, np.float32), np.asarray(spec.image_std, np.float32)
    for k in range(3):
        o = out[k]
        np.multiply(img_uint8[..., k], np.float32(1.0 / 255.0), out=o)
        o -= mean[k]
        o /= std[k]


def _finite_rows(points: np.ndarray) -> np.ndarray:
    fin = np.isfinite(points)
    return np.ones(len(points), bool) if fin.all() else fin.all(axis=1)


def _check_T(T, what: str) -> np.ndarray:
    if T is None:
        raise CalibrationError(what, "missing 4x4 transform to base_link")
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise CalibrationError(what, f"transform to base_link must be a finite 4x4 matrix, got shape {T.shape}")
    return T


def _cells(x: np.ndarray, y: np.ndarray, spec: InputSpec, keep: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """Flat cell index for points inside the grid (and in ``keep``), and the mask of those points."""
    G = spec.grid
    r = np.floor((x + spec.range_m) / spec.cell_m).astype(np.int64)
    c = np.floor((y + spec.range_m) / spec.cell_m).astype(np.int64)
    ok = (r >= 0) & (r < G) & (c >= 0) & (c < G)
    if keep is not None:
        ok &= keep
    return r[ok] * G + c[ok], ok


def lidar_raster(points: np.ndarray, T_base_lidar: np.ndarray, spec: InputSpec = DEFAULT_SPEC) -> tuple[np.ndarray, int]:
    """LiDAR BEV raster (10, G, G) float32 and the number of non-finite rows dropped.

    Channels: 0..7 log(1 + count) per height slice (z in [z_min, z_max), base_link), 8 mean intensity / 100,
    9 mean height / 4 (of the points inside the slices).

    Parameters
    ----------
    points : (N, >=4) x, y, z (m, LiDAR frame), intensity (0..255), extra columns ignored. N = 0 is valid.
    T_base_lidar : 4x4 LiDAR -> base_link.
    """
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] < 4:
        raise ValueError(f"LiDAR points must be (N, >=4) [x y z intensity ...], got shape {pts.shape}")
    T = _check_T(T_base_lidar, "LIDAR")
    G = spec.grid
    out = np.zeros((LIDAR_CHANNELS, G, G), np.float32)
    pts = pts[:, :4].astype(np.float32, copy=False)
    fin = _finite_rows(pts)
    dropped = int(len(pts) - fin.sum())
    if dropped:
        pts = pts[fin]
    if len(pts) == 0:
        return out, dropped
    xyz = pts[:, :3] @ T[:3, :3].T.astype(np.float32) + T[:3, 3].astype(np.float32)
    z = xyz[:, 2]
    dz = (spec.lidar_z_max_m - spec.lidar_z_min_m) / spec.lidar_z_bins
    zb = np.floor((z - spec.lidar_z_min_m) / dz).astype(np.int64)
    # one mask (height slices and grid) over all points, one gather
    cell, ok = _cells(xyz[:, 0], xyz[:, 1], spec, (zb >= 0) & (zb < spec.lidar_z_bins))
    counts = np.bincount(zb[ok] * G * G + cell, minlength=spec.lidar_z_bins * G * G)
    out[: spec.lidar_z_bins] = np.log1p(counts).reshape(spec.lidar_z_bins, G, G)
    n = np.bincount(cell, minlength=G * G).astype(np.float32)
    s_int = np.bincount(cell, weights=pts[ok, 3], minlength=G * G)
    s_z = np.bincount(cell, weights=z[ok], minlength=G * G)
    nz = np.maximum(n, 1)
    out[8] = (s_int / nz / 100.0).reshape(G, G)
    out[9] = (s_z / nz / 4.0).reshape(G, G)
    return out, dropped


RADAR_REQUIRED = ("x", "y", "z", "rcs", "vx_comp", "vy_comp")


def _radar_columns(points) -> np.ndarray:
    """(N, 7) float: x y z rcs vx_comp vy_comp time_lag from a structured array or an (N, 6|7) array."""
    a = np.asarray(points)
    if a.dtype.names:
        missing = [f for f in RADAR_REQUIRED if f not in a.dtype.names]
        if missing:
            raise ValueError(f"radar points lack fields {missing} (have {list(a.dtype.names)})")
        cols = [a[f].astype(np.float64) for f in RADAR_REQUIRED]
        lag = a["time_lag"].astype(np.float64) if "time_lag" in a.dtype.names else np.zeros(len(a))
        return np.stack(cols + [lag], axis=1) if len(a) else np.zeros((0, 7))
    if a.ndim != 2 or a.shape[1] not in (6, 7):
        raise ValueError(f"radar points must be structured or (N, 6|7) [x y z rcs vx_comp vy_comp (lag)], got {a.shape}")
    a = a.astype(np.float64)
    return a if a.shape[1] == 7 else np.c_[a, np.zeros(len(a))]


def radar_raster(radars: Mapping[str, tuple[np.ndarray, np.ndarray]], spec: InputSpec = DEFAULT_SPEC
                 ) -> tuple[np.ndarray, int]:
    """Radar BEV raster (6, G, G) float32 from every radar's points, and the non-finite rows dropped.

    Channels: 0 occupancy, 1 log(1 + count), 2 mean RCS / 20, 3-4 mean ego-motion-compensated velocity (vx, vy in
    base_link axes) / 10, 5 mean time lag / radar_max_time_lag_s.

    Parameters
    ----------
    radars : radar name -> (points, T_base_radar). Points are a structured array with fields x y z rcs vx_comp
        vy_comp (optional time_lag, s) in the radar frame, or an (N, 6|7) array with those columns.
    """
    G = spec.grid
    out = np.zeros((RADAR_CHANNELS, G, G), np.float32)
    blocks, dropped = [], 0
    for name, (points, T) in radars.items():
        T = _check_T(T, name)
        a = _radar_columns(points)
        fin = _finite_rows(a)
        if not fin.all():
            dropped += int(len(a) - fin.sum())
            a = a[fin]
        if len(a) == 0:
            continue
        R = T[:3, :3]
        xyz = a[:, :3] @ R.T + T[:3, 3]
        v = np.c_[a[:, 4:6], np.zeros(len(a))] @ R.T
        blocks.append(np.c_[xyz[:, :2], a[:, 3], v[:, :2], a[:, 6]])
    if not blocks:
        return out, dropped
    b = np.concatenate(blocks)
    cell, ok = _cells(b[:, 0], b[:, 1], spec)
    b = b[ok]
    n = np.bincount(cell, minlength=G * G).astype(np.float64)
    nz = np.maximum(n, 1)
    out[0] = (n > 0).reshape(G, G)
    out[1] = np.log1p(n).reshape(G, G)
    scale = (20.0, 10.0, 10.0, spec.radar_max_time_lag_s)
    for k, col in enumerate((2, 3, 4, 5)):
        out[k + 2] = (np.bincount(cell, weights=b[:, col], minlength=G * G) / nz / scale[k]).reshape(G, G)
    return out, dropped


def prepare_image(img: np.ndarray, spec: InputSpec = DEFAULT_SPEC) -> np.ndarray:
    """One camera image as the model's (3, H, W) float32 input slot (resized and normalised): what
    :func:`preprocess_images` computes, done ahead (the node does it in its decode threads, off the frame's path)."""
    H, W = spec.image_hw
    out = np.empty((3, H, W), np.float32)
    _normalise_into(out, resize_image(np.asarray(img), (H, W)), spec)
    return out


def preprocess_images(images: Mapping[str, np.ndarray], intrinsics: Mapping[str, np.ndarray] | None,
                      spec: InputSpec = DEFAULT_SPEC, prepared: Mapping[str, np.ndarray] | None = None
                      ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Resize and normalise camera images into (6, 3, H, W) float32 in slot order; missing cameras are zeros.

    Parameters
    ----------
    images : camera name -> (h, w, 3) uint8 RGB at any size.
    intrinsics : camera name -> 3x3 K of the image as given (optional); returned scaled to the model size.
    prepared : camera name -> :func:`prepare_image` of that same image (optional): copied instead of recomputed.
    """
    H, W = spec.image_hw
    out = np.zeros((len(spec.camera_names), 3, H, W), np.float32)
    Ks = {}
    for name, img in images.items():
        if name not in spec.camera_names:
            raise ValueError(f"unknown camera {name!r}; expected one of {spec.camera_names}")
        img = np.asarray(img)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8 or img.shape[0] < 8 or img.shape[1] < 8:
            raise ValueError(f"camera {name}: image must be (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
        h, w = img.shape[:2]
        ready = prepared.get(name) if prepared else None
        if ready is not None and ready.shape == (3, H, W):
            out[spec.camera_names.index(name)] = ready
        else:
            _normalise_into(out[spec.camera_names.index(name)], resize_image(img, (H, W)), spec)
        if intrinsics is not None:
            if name not in intrinsics or intrinsics[name] is None:
                raise CalibrationError(name, "missing camera intrinsics")
            K = np.asarray(intrinsics[name], dtype=np.float64)
            if K.shape != (3, 3) or not np.all(np.isfinite(K)):
                raise CalibrationError(name, f"intrinsics must be a finite 3x3 matrix, got {K.shape}")
            if not (0 < K[0, 2] < w and 0 < K[1, 2] < h):
                raise CalibrationError(name, f"principal point ({K[0, 2]:.1f}, {K[1, 2]:.1f}) lies outside the "
                                             f"{w}x{h} image: intrinsics are for another image size")
            Ks[name] = scale_intrinsics(K, W / w, H / h)
    return out, Ks


def _present_flags(present, images, lidar_points, radars) -> np.ndarray:
    if present is None:
        return np.array([bool(images), lidar_points is not None, bool(radars)], np.float32)
    if isinstance(present, Mapping):
        unknown = set(present) - set(MODALITY_ORDER)
        if unknown:
            raise ValueError(f"present has unknown modalities {sorted(unknown)}; use {MODALITY_ORDER}")
        return np.array([bool(present.get(m, False)) for m in MODALITY_ORDER], np.float32)
    p = np.asarray(present, dtype=np.float32).ravel()
    if p.shape != (3,):
        raise ValueError(f"present must be 3 flags in order {MODALITY_ORDER}, got {present!r}")
    return p


def preprocess_frame(
    images: Mapping[str, np.ndarray] | None = None,
    intrinsics: Mapping[str, np.ndarray] | None = None,
    lidar_points: np.ndarray | None = None,
    T_base_lidar: np.ndarray | None = None,
    radars: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    present: Mapping[str, bool] | Sequence[bool] | None = None,
    spec: InputSpec = DEFAULT_SPEC,
    prepared: Mapping[str, np.ndarray] | None = None,
) -> Preprocessed:
    """One frame of sensor data -> the model's input dict (batch of 1).

    Parameters
    ----------
    images : camera name -> (h, w, 3) uint8 RGB, any size (resized to spec.image_hw); cameras not given are zero.
    intrinsics : camera name -> 3x3 K at the given image size (optional; scaled K returned for checks/lifting).
    lidar_points : (N, >=4) float32 x y z intensity in the LiDAR frame (N = 0 valid; non-finite rows dropped).
    T_base_lidar : 4x4 LiDAR -> base_link (required with lidar_points).
    radars : radar name -> (points, 4x4 radar -> base_link); see :func:`radar_raster`.
    present : which modalities are present ({"camera": bool, ...} or 3 flags in MODALITY_ORDER). Default: a
        modality is present when its data was passed. An absent modality's input is zeroed.
    spec : the model's InputSpec.
    prepared : camera name -> :func:`prepare_image` of its image, computed ahead (optional).
    """
    images = images or {}
    radars = radars or {}
    flags = _present_flags(present, images, lidar_points, radars)
    G = spec.grid
    cam, Ks = preprocess_images(images, intrinsics, spec, prepared) if images else (
        np.zeros((len(spec.camera_names), 3, *spec.image_hw), np.float32), {})
    dropped = {"lidar": 0, "radar": 0}
    if lidar_points is not None:
        lid, dropped["lidar"] = lidar_raster(lidar_points, T_base_lidar, spec)
    else:
        lid = np.zeros((LIDAR_CHANNELS, G, G), np.float32)
    rad, dropped["radar"] = radar_raster(radars, spec) if radars else (np.zeros((RADAR_CHANNELS, G, G), np.float32), 0)
    if not flags[0]:
        cam[:] = 0
    if not flags[1]:
        lid[:] = 0
    if not flags[2]:
        rad[:] = 0
    inputs = {"camera": cam[None], "lidar": lid[None], "radar": rad[None], "present": flags[None]}
    return Preprocessed(inputs, Ks, dropped)
