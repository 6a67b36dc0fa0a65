"""Seeded, vectorised fault injection on numpy sensor data, with 1..5 severity ladders (docs/faults.md).

Three layers:

- one pure function per fault, ``f(data, severity, rng, **params) -> data`` (never mutates its input);
  cameras take (H, W, 3) uint8 RGB, LiDAR an (N, >=4) float array [x y z intensity (ring)] or a
  structured array with x y z intensity (ring), radar a structured array with x y rcs vx_comp
  vy_comp (vx vy dyn_prop optional);
- :func:`parse_fault_spec` validates a YAML/dict episode list
  ``[{fault, sensor, severity, start_s, end_s, params?}]``;
- :class:`FaultInjector` applies a parsed spec to a message stream (data, stamp) -> (data | None,
  stamp), including the stream faults (dropped frames, frozen, time offset) and ramped drift.

Ladders follow the MultiCorrupt / nuScenes-C (Dong et al.) / Robo3D taxonomies as tabulated in
docs/faults.md; the values and their provenance are in each function's docstring.
Azimuths are atan2(y, x) in degrees in the frame given by ``T_base_sensor`` (REP 103 base
frame: 0 = forward, +90 = left); without it, in the sensor frame.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SEVERITIES = (1, 2, 3, 4, 5)

#: A fault spec as ``fusion-monitor inject --faults`` / ``simulate --faults`` read it (YAML).
FAULT_SPEC_EXAMPLE = """\
faults:
  - {fault: lidar_sector_blockage, sensor: LIDAR_TOP, severity: 2, start_s: 5.0, end_s: 15.0, params: {center_deg: 45}}
  - {fault: camera_occlusion, sensor: CAM_FRONT, severity: 3, start_s: 10.0, end_s: 20.0}
  - {fault: dropped_frames, sensor: radar, severity: 4, start_s: 0.0, end_s: 30.0}
  - {fault: lidar_extrinsic_drift, sensor: LIDAR_TOP, severity: 4, start_s: 20.0, end_s: 120.0, ramp_s: 60.0}
"""


class FaultSpecError(ValueError):
    """A fault spec entry is invalid; ``index`` is the entry's position, the message names the bad value."""

    def __init__(self, index: int | None, reason: str):
        super().__init__(f"fault spec entry {index}: {reason}" if index is not None else f"fault spec: {reason}")
        self.index = index
        self.reason = reason


def _level(severity: int, ladder: tuple) -> Any:
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or int(severity) not in SEVERITIES:
        raise ValueError(f"severity {severity!r} must be an integer 1..5")
    return ladder[int(severity) - 1]


# ------------------------------------------------------------------------------------------------
# camera (uint8 RGB in, uint8 RGB out)
# ------------------------------------------------------------------------------------------------
def _img(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"image must be uint8 (H, W, 3) RGB, got {a.dtype} {a.shape}")
    return a


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def camera_blackout(image, severity: int, rng: np.random.Generator, p: float | None = None) -> np.ndarray:
    """C1 frame lost: with probability p the delivered image is all zeros.

    p = 0.1 [P] / 0.2 [MC1] / 0.4 [MC2] / 0.6 [MC3] / 0.83 [RoboBEV s/6]; ``p=1`` blanks every frame.
    """
    a = _img(image)
    p = _level(severity, (0.1, 0.2, 0.4, 0.6, 0.83)) if p is None else float(p)
    return np.zeros_like(a) if rng.random() < p else a.copy()


def camera_brightness(image, severity: int, rng: np.random.Generator) -> np.ndarray:
    """C2 over-exposure: HSV value V' = clip(V + c) with hue and saturation kept; c = 0.1/0.2/0.3/0.5/0.7 [INC/MC]."""
    a = _img(image)
    c = _level(severity, (0.1, 0.2, 0.3, 0.5, 0.7))
    x = a.astype(np.float32) / 255.0
    v = x.max(axis=2, keepdims=True)
    v2 = np.clip(v + c, 0.0, 1.0)
    out = np.where(v > 1e-6, x * (v2 / np.maximum(v, 1e-6)), v2)
    return _to_u8(out)


def camera_darkness(image, severity: int, rng: np.random.Generator) -> np.ndarray:
    """C3 low light: gamma-2 compression to [0, c], Poisson shot noise (lambda), Gaussian read noise (sigma).

    (c, lambda, sigma) = (0.60, 250, 0.008) [MC1] / (0.50, 250, 0.012) [RB] / (0.40, 120, 0.018) [MC2] /
    (0.30, 50, 0.026) [MC3] / (0.20, 30, 0.038) [RB].
    """
    a = _img(image)
    c, lam, sig = _level(severity, ((0.60, 250, 0.008), (0.50, 250, 0.012), (0.40, 120, 0.018), (0.30, 50, 0.026),
                                    (0.20, 30, 0.038)))
    x = a.astype(np.float32) / 255.0
    lo, hi = float(x.min()), float(x.max())
    x1 = c * ((x - lo) / max(hi - lo, 1e-6)) ** 2
    x2 = rng.poisson(lam * x1).astype(np.float32) / lam
    x3 = x2 + rng.normal(0.0, sig, size=x.shape).astype(np.float32)
    return _to_u8(x3)


def camera_contrast(image, severity: int, rng: np.random.Generator) -> np.ndarray:
    """C4 contrast loss: x' = (x - mu) c + mu per channel; c = 0.4/0.3/0.2/0.1/0.05 [INC1-5]."""
    a = _img(image)
    c = _level(severity, (0.4, 0.3, 0.2, 0.1, 0.05))
    x = a.astype(np.float32) / 255.0
    mu = x.mean(axis=(0, 1), keepdims=True)
    return _to_u8((x - mu) * c + mu)


def _lowfreq(shape: tuple[int, int], rng: np.random.Generator, cells: int = 8) -> np.ndarray:
    """Smooth random field in [0, 1] (bilinear upsampling of a coarse grid)."""
    h, w = shape
    g = rng.random((cells + 1, cells + 1)).astype(np.float32)
    yi = np.linspace(0, cells, h, dtype=np.float32)
    xi = np.linspace(0, cells, w, dtype=np.float32)
    y0 = np.minimum(yi.astype(int), cells - 1)
    x0 = np.minimum(xi.astype(int), cells - 1)
    fy = (yi - y0)[:, None]
    fx = (xi - x0)[None, :]
    return ((g[y0][:, x0] * (1 - fx) + g[y0][:, x0 + 1] * fx) * (1 - fy)
            + (g[y0 + 1][:, x0] * (1 - fx) + g[y0 + 1][:, x0 + 1] * fx) * fy)


def camera_fog(image, severity: int, rng: np.random.Generator) -> np.ndarray:
    """C5 fog/haze (cheap surrogate [P]): Koschmieder blend I t + A (1 - t) toward airlight A = 0.75.

    Transmission falls with image height (upper rows are farther), modulated by a smooth random
    field; top/bottom transmission = (0.80, 0.98) / (0.55, 0.95) / (0.35, 0.90) / (0.20, 0.80) /
    (0.08, 0.65), bracketing the [X] MultiCorrupt values of docs/faults.md (0.5/0.25/0.06 at the top).
    """
    a = _img(image)
    t_top, t_bot = _level(severity, ((0.80, 0.98), (0.55, 0.95), (0.35, 0.90), (0.20, 0.80), (0.08, 0.65)))
    h, w = a.shape[:2]
    rows = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    log_t = np.log(t_top) * (1 - rows) + np.log(t_bot) * rows
    t = np.exp(log_t * (0.8 + 0.4 * _lowfreq((h, w), rng)))[..., None]
    x = a.astype(np.float32) / 255.0
    return _to_u8(x * t + 0.75 * (1 - t))


def _box_blur_axis(x: np.ndarray, k: int, axis: int) -> np.ndarray:
    """Moving average of odd length ~k along ``axis`` with edge padding (cumulative sums, O(N))."""
    k = max(1, int(k) | 1)
    if k == 1:
        return x
    r = k // 2
    pad = [(0, 0)] * x.ndim
    pad[axis] = (r + 1, r)
    c = np.cumsum(np.pad(x, pad, mode="edge"), axis=axis, dtype=np.float32)
    n = x.shape[axis]
    hi = np.take(c, np.arange(k, k + n), axis=axis)
    lo = np.take(c, np.arange(0, n), axis=axis)
    return (hi - lo) / k


def camera_motion_blur(image, severity: int, rng: np.random.Generator, axis: str = "horizontal") -> np.ndarray:
    """C8 motion blur [D], resolution-aware: a linear blur of length k = c W / 2 with c = 0.02..0.10.

    At W = 1600: k = 16 / 32 / 48 / 64 / 80 px. ``axis`` horizontal (side cameras, yaw) or vertical.
    """
    a = _img(image)
    c = _level(severity, (0.02, 0.04, 0.06, 0.08, 0.10))
    k = int(round(c * a.shape[1] / 2))
    x = a.astype(np.float32) / 255.0
    return _to_u8(_box_blur_axis(x, k, 1 if axis == "horizontal" else 0))


def camera_noise(image, severity: int, rng: np.random.Generator) -> np.ndarray:
    """C10 Gaussian sensor noise: x + N(0, sigma^2), sigma = 0.08/0.12/0.18/0.26/0.38 [INC1-5]."""
    a = _img(image)
    s = _level(severity, (0.08, 0.12, 0.18, 0.26, 0.38))
    x = a.astype(np.float32) / 255.0
    return _to_u8(x + rng.normal(0.0, s, size=x.shape).astype(np.float32))


def occlusion_mask(shape: tuple[int, int], area: float, rng: np.random.Generator,
                   center_xy: tuple[float, float] | None = None) -> np.ndarray:
    """Boolean (H, W) mask of random ellipses covering about ``area`` of the image (grown until reached).

    ``center_xy`` (fractions of W, H) places the first blob; further blobs are near it.
    """
    h, w = shape
    if not 0 < area < 1:
        raise ValueError(f"occlusion area {area!r} must be in (0, 1)")
    cx, cy = center_xy if center_xy is not None else (rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8))
    ys, xs = np.ogrid[0:h, 0:w]
    mask = np.zeros((h, w), bool)
    radius = np.sqrt(area * h * w / np.pi)
    for _ in range(50):
        ex, ey = cx * w + rng.normal(0, radius * 0.3), cy * h + rng.normal(0, radius * 0.3)
        ax_, ay_ = radius * rng.uniform(0.7, 1.3), radius * rng.uniform(0.7, 1.3)
        mask |= ((xs - ex) / ax_) ** 2 + ((ys - ey) / ay_) ** 2 <= 1.0
        if mask.mean() >= area:
            break
        radius *= 1.1
    return mask


def camera_occlusion(image, severity: int, rng: np.random.Generator,
                     center_xy: tuple[float, float] | None = None, opaque: bool = False) -> np.ndarray:
    """C12 partial lens occlusion [P] (dirt, droplet blob): area a = 5/10/20/35/60 % of the image.

    Inside the blob the content becomes 0.2 I + 0.8 heavy-blur(I) (soft edge not modelled); with
    ``opaque`` it becomes a dark, nearly flat smear (mud). ``center_xy`` = blob centre as fractions
    of (W, H); random when None.
    """
    a = _img(image)
    area = _level(severity, (0.05, 0.10, 0.20, 0.35, 0.60))
    m = occlusion_mask(a.shape[:2], area, rng, center_xy)
    x = a.astype(np.float32) / 255.0
    if opaque:
        fill = 0.03 + 0.01 * rng.random(x.shape, dtype=np.float32)
    else:
        k = max(3, a.shape[1] // 20)
        blurred = _box_blur_axis(_box_blur_axis(_box_blur_axis(_box_blur_axis(x, k, 0), k, 1), k, 0), k, 1)
        fill = 0.2 * x + 0.8 * blurred
    return _to_u8(np.where(m[..., None], fill, x))


# ------------------------------------------------------------------------------------------------
# LiDAR ((N, >=4) float [x y z intensity ring ...] or structured with x y z intensity ring)
# ------------------------------------------------------------------------------------------------
def _xyz(points: np.ndarray) -> np.ndarray:
    if points.dtype.names:
        return np.stack([points["x"], points["y"], points["z"]], axis=1).astype(np.float64)
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"points must be (N, >=3) or structured with x y z, got {points.dtype} {points.shape}")
    return points[:, :3].astype(np.float64)


def _set_xyz(points: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    out = points.copy()
    if out.dtype.names:
        for i, f in enumerate("xyz"):
            out[f] = xyz[:, i]
    else:
        out[:, :3] = xyz
    return out


def _col(points: np.ndarray, name: str, index: int) -> np.ndarray | None:
    if points.dtype.names:
        return points[name] if name in points.dtype.names else None
    return points[:, index] if points.ndim == 2 and points.shape[1] > index else None


def _set_col(points: np.ndarray, name: str, index: int, values: np.ndarray) -> None:
    if points.dtype.names:
        points[name] = values
    else:
        points[:, index] = values


def _azimuth_deg(xyz: np.ndarray, T_base_sensor: np.ndarray | None) -> np.ndarray:
    if T_base_sensor is not None:
        xyz = xyz @ np.asarray(T_base_sensor, dtype=np.float64)[:3, :3].T
    return np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0]))


def lidar_point_dropout(points, severity: int, rng: np.random.Generator) -> np.ndarray:
    """L1 random point dropout: keep round((1 - p) N) rows; p = 0.12 [D2] / 0.30 [D5] / 0.5 [P] / 0.7 [MC1] / 0.9 [MC3]."""
    p = _level(severity, (0.12, 0.30, 0.5, 0.7, 0.9))
    n = len(points)
    keep = np.sort(rng.choice(n, size=int(round((1 - p) * n)), replace=False))
    return points[keep].copy()


def lidar_beam_reduction(points, severity: int, rng: np.random.Generator, n_rings: int = 32) -> np.ndarray:
    """L2 ring/beam loss: drop 1 random [P] / 4 random [P] / 16 (keep odd, MC1) / 24 (keep 8, MC2) / 28 (keep 4, MC3).

    Random rings are drawn **without** replacement (docs/faults.md s.7 item 7). Needs a ring column.
    """
    ring = _col(points, "ring", 4)
    if ring is None:
        raise ValueError("lidar_beam_reduction needs a ring column (index 4 or field 'ring')")
    s = _level(severity, SEVERITIES)
    if s == 1 or s == 2:
        drop = rng.choice(n_rings, size=1 if s == 1 else 4, replace=False)
        keep_rings = np.setdiff1d(np.arange(n_rings), drop)
    else:
        step = {3: 2, 4: 4, 5: 8}[s]
        keep_rings = np.arange(1, n_rings, step)
    return points[np.isin(np.rint(ring).astype(int), keep_rings)].copy()


def lidar_sector_blockage(points, severity: int, rng: np.random.Generator, center_deg: float | None = None,
                          T_base_sensor: np.ndarray | None = None) -> np.ndarray:
    """L3 field-of-view / sector loss: delete every point in an azimuth sector of width w.

    w = 30 [P] / 90 [OCC] / 150 [D1] / 210 [D3] / 270 deg [D5]; centred at ``center_deg``
    (random when None), azimuth atan2(y, x) in the frame of ``T_base_sensor`` (see module doc).
    """
    w = _level(severity, (30.0, 90.0, 150.0, 210.0, 270.0))
    c = rng.uniform(-180.0, 180.0) if center_deg is None else float(center_deg)
    az = _azimuth_deg(_xyz(points), T_base_sensor)
    d = (az - c + 180.0) % 360.0 - 180.0
    return points[np.abs(d) > w / 2].copy()


def lidar_fog(points, severity: int, rng: np.random.Generator) -> np.ndarray:
    """L8 fog surrogate [X]: hard-target attenuation I' = round(I e^(-2 alpha r)); every point beyond R* becomes a
    fog return at about 4.7 m on its own ray with low intensity (ring kept).

    (alpha, R*) = (0.005, 138 m) [D1] / (0.02, 41.7) [MC1] / (0.03, 34.6) [MC2] / (0.06, 15.9) [MC3] / (0.06, 10.8) [R3D].
    """
    alpha, r_star = _level(severity, ((0.005, 138.0), (0.02, 41.7), (0.03, 34.6), (0.06, 15.9), (0.06, 10.8)))
    xyz = _xyz(points)
    r = np.linalg.norm(xyz, axis=1)
    out = points.copy()
    inten = _col(out, "intensity", 3)
    if inten is not None:
        _set_col(out, "intensity", 3, np.rint(inten * np.exp(-2 * alpha * r)))
    fogged = r > r_star
    n = int(fogged.sum())
    if n:
        d = 4.7 * r[fogged] / rng.uniform(r[fogged] - 1.0, r[fogged] + 1.0)
        xyz2 = xyz.copy()
        xyz2[fogged] = xyz[fogged] / r[fogged, None] * d[:, None]
        out = _set_xyz(out, xyz2)
        if inten is not None:
            i2 = np.asarray(_col(out, "intensity", 3)).copy()
            i2[fogged] = rng.integers(0, 4, n)
            _set_col(out, "intensity", 3, i2)
    return out


def lidar_snow(points, severity: int, rng: np.random.Generator) -> np.ndarray:
    """L9 snow surrogate [X/P]: a fraction q_s of rays become clutter at U(0.5, 3) m along the same ray with low
    intensity; then the lowest-intensity p_w of the rest is dropped.

    q_s = 0.5 / 1 / 1.5 / 2 / 3 %; p_w = 5 / 10 / 20 / 30 / 40 % [P, uncalibrated against the anchor].
    """
    q, pw = _level(severity, ((0.005, 0.05), (0.01, 0.10), (0.015, 0.20), (0.02, 0.30), (0.03, 0.40)))
    xyz = _xyz(points)
    r = np.maximum(np.linalg.norm(xyz, axis=1), 1e-6)
    flake = rng.random(len(points)) < q
    xyz2 = xyz.copy()
    xyz2[flake] = xyz[flake] / r[flake, None] * rng.uniform(0.5, 3.0, int(flake.sum()))[:, None]
    out = _set_xyz(points, xyz2)
    inten = _col(out, "intensity", 3)
    if inten is not None:
        i2 = np.asarray(inten).copy()
        i2[flake] = rng.integers(0, 3, int(flake.sum()))
        _set_col(out, "intensity", 3, i2)
        rest = ~flake
        thr = np.quantile(i2[rest], pw) if rest.any() else 0.0
        low = rest & (i2 <= thr)
        drop_idx = np.nonzero(low)[0]
        n_drop = min(len(drop_idx), int(round(pw * rest.sum())))
        drop = rng.choice(drop_idx, size=n_drop, replace=False) if n_drop else np.array([], int)
        keep = np.ones(len(out), bool)
        keep[drop] = False
        out = out[keep]
    return out


def lidar_crosstalk(points, severity: int, rng: np.random.Generator) -> np.ndarray:
    """L6 crosstalk: a fraction q of points get xyz += N(0, 3^2) m (ring and intensity kept).

    q = 0.4 / 0.8 / 1.2 % [D1-3] / 2.0 % [D5] / 3 % [R3D].
    """
    q = _level(severity, (0.004, 0.008, 0.012, 0.020, 0.030))
    xyz = _xyz(points)
    hit = rng.random(len(points)) < q
    xyz[hit] += rng.normal(0.0, 3.0, (int(hit.sum()), 3))
    return _set_xyz(points, xyz)


def _axis_angle(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    k = axis / np.linalg.norm(axis)
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle_rad) * K + (1 - np.cos(angle_rad)) * K @ K


def extrinsic_offset(severity: int, rng: np.random.Generator, fraction: float = 1.0,
                     ladder: tuple = ((0.2, 0.02), (0.5, 0.05), (1.0, 0.10), (2.0, 0.20), (3.0, 0.50))) -> np.ndarray:
    """S1/S2 rigid calibration error Delta T (4x4): rotation theta about a random unit axis, translation d along a
    random unit vector; (theta deg, d m) = (0.2, 0.02) / (0.5, 0.05) / (1, 0.1) / (2, 0.2) / (3, 0.5) [P].
    ``fraction`` in [0, 1] scales both (gradual drift S2)."""
    theta, d = _level(severity, ladder)
    ax = rng.normal(size=3)
    v = rng.normal(size=3)
    T = np.eye(4)
    T[:3, :3] = _axis_angle(ax, np.radians(theta) * fraction)
    T[:3, 3] = d * fraction * v / np.linalg.norm(v)
    return T


def lidar_extrinsic_drift(points, severity: int, rng: np.random.Generator, delta_T: np.ndarray | None = None,
                          fraction: float = 1.0) -> np.ndarray:
    """S1/S4 LiDAR extrinsic error: points mapped by Delta T^-1 (the LiDAR moved against its calibration).

    ``delta_T`` from :func:`extrinsic_offset` (drawn here when None); keep it fixed over an
    episode, as :class:`FaultInjector` does.
    """
    T = extrinsic_offset(severity, rng, fraction) if delta_T is None else np.asarray(delta_T, float)
    Ti = np.linalg.inv(T)
    return _set_xyz(points, _xyz(points) @ Ti[:3, :3].T + Ti[:3, 3])


# ------------------------------------------------------------------------------------------------
# radar (structured array: x y z rcs vx_comp vy_comp, optional vx vy dyn_prop id)
# ------------------------------------------------------------------------------------------------
def _radar(points: np.ndarray) -> np.ndarray:
    a = np.asarray(points)
    need = ("x", "y", "rcs", "vx_comp", "vy_comp")
    if not a.dtype.names or any(f not in a.dtype.names for f in need):
        raise ValueError(f"radar points must be a structured array with fields {need}, got {a.dtype}")
    return a


def _los(a: np.ndarray) -> np.ndarray:
    xy = np.stack([a["x"], a["y"]], axis=1).astype(np.float64)
    return xy / np.maximum(np.linalg.norm(xy, axis=1, keepdims=True), 1e-6)


def radar_dropout(points, severity: int, rng: np.random.Generator, p: float | None = None) -> np.ndarray:
    """R1 whole-unit dropout with the message still delivered: an empty array.

    Per-frame probability p = 0.2 at L1 (intermittent) [P], 1.0 (persistent) at L2..L5 [OCC/P];
    the ladder's "more radars" is expressed by naming more sensors in the spec.
    """
    a = _radar(points)
    p = _level(severity, (0.2, 1.0, 1.0, 1.0, 1.0)) if p is None else float(p)
    return a[:0].copy() if rng.random() < p else a.copy()


def radar_ghosts(points, severity: int, rng: np.random.Generator) -> np.ndarray:
    """R7 random ghost targets: n ~ U{0..n_max} per scan, n_max = 2 [P] / 4 [SC] / 8 / 16 / 32 [P].

    Range U(0.2, min(max_x + 10, 250)) m; azimuth within +-60 deg (r <= 20 m), +-40 deg (<= 100 m),
    else +-4 deg; velocity of a random real target projected on the ghost's line of sight; rcs
    from the low end of the scan's values (floor -5 dBsm); ids after the largest.
    """
    a = _radar(points)
    n_max = _level(severity, (2, 4, 8, 16, 32))
    n = int(rng.integers(0, n_max + 1))
    if n == 0 or len(a) == 0:
        return a.copy()
    g = np.zeros(n, dtype=a.dtype)
    r_max = min(float(np.max(a["x"])) + 10.0, 250.0)
    r = rng.uniform(0.2, max(r_max, 1.0), n)
    lim = np.where(r <= 20, 60.0, np.where(r <= 100, 40.0, 4.0))
    phi = np.radians(rng.uniform(-1, 1, n) * lim)
    g["x"], g["y"] = r * np.cos(phi), r * np.sin(phi)
    donor = a[rng.integers(0, len(a), n)]
    u = np.stack([np.cos(phi), np.sin(phi)], axis=1)
    for vx, vy in (("vx", "vy"), ("vx_comp", "vy_comp")):
        if vx in a.dtype.names:
            vr = donor[vx] * u[:, 0] + donor[vy] * u[:, 1]
            g[vx], g[vy] = vr * u[:, 0], vr * u[:, 1]
    rcs_sorted = np.unique(a["rcs"])
    pick = np.minimum((np.abs(rng.normal(0, 1 / 3, n)) * len(rcs_sorted)).astype(int), len(rcs_sorted) - 1)
    g["rcs"] = np.maximum(rcs_sorted[pick], -5.0)
    for f in ("dyn_prop",):
        if f in a.dtype.names:
            g[f] = np.clip(donor[f], 0, 6)
    if "id" in a.dtype.names:
        g["id"] = np.arange(n) + (int(a["id"].max()) + 1 if len(a) else 0)
    return np.concatenate([a, g])


def radar_clutter(points, severity: int, rng: np.random.Generator, ego_speed_mps: float = 0.0) -> np.ndarray:
    """R9 clutter burst (spray, rain) [P]: n_c = 5 / 10 / 25 / 50 / 100 extra static-consistent targets per scan,
    r ~ U(1, 30) m, |phi| <= 60 deg, compensated velocity ~ N(0, 0.1^2) m/s, dyn_prop 1, rcs ~ U(-10, 0) dBsm.
    """
    a = _radar(points)
    n = _level(severity, (5, 10, 25, 50, 100))
    g = np.zeros(n, dtype=a.dtype)
    r = rng.uniform(1.0, 30.0, n)
    phi = np.radians(rng.uniform(-60, 60, n))
    u = np.stack([np.cos(phi), np.sin(phi)], axis=1)
    g["x"], g["y"] = r * u[:, 0], r * u[:, 1]
    vr = rng.normal(0.0, 0.1, n)
    g["vx_comp"], g["vy_comp"] = vr * u[:, 0], vr * u[:, 1]
    if "vx" in a.dtype.names:
        raw = vr - ego_speed_mps * u[:, 0]
        g["vx"], g["vy"] = raw * u[:, 0], raw * u[:, 1]
    g["rcs"] = rng.uniform(-10.0, 0.0, n)
    if "dyn_prop" in a.dtype.names:
        g["dyn_prop"] = 1
    if "id" in a.dtype.names:
        g["id"] = np.arange(n) + (int(a["id"].max()) + 1 if len(a) else 0)
    return np.concatenate([a, g])


def radar_velocity_bias(points, severity: int, rng: np.random.Generator) -> np.ndarray:
    """R11(a) Doppler bias: b u added to (vx, vy) and (vx_comp, vy_comp); b = 0.1 / 0.25 / 0.5 / 1 / 2 m/s [P]."""
    a = _radar(points).copy()
    b = _level(severity, (0.1, 0.25, 0.5, 1.0, 2.0))
    u = _los(a)
    for vx, vy in (("vx", "vy"), ("vx_comp", "vy_comp")):
        if vx in a.dtype.names:
            a[vx] = a[vx] + b * u[:, 0]
            a[vy] = a[vy] + b * u[:, 1]
    return a


def radar_extrinsic_drift(points, severity: int, rng: np.random.Generator, sign: float | None = None,
                          fraction: float = 1.0) -> np.ndarray:
    """R13 mounting yaw error: positions and velocity vectors rotated by -delta_psi about z.

    delta_psi = 0.5 / 1 / 2 / 3 / 5 deg [P]; random sign when ``sign`` is None; ``fraction`` ramps it.
    """
    a = _radar(points).copy()
    d = np.radians(_level(severity, (0.5, 1.0, 2.0, 3.0, 5.0))) * fraction
    d *= (1.0 if rng.random() < 0.5 else -1.0) if sign is None else float(np.sign(sign) or 1.0)
    c, s = np.cos(-d), np.sin(-d)
    for fx, fy in (("x", "y"), ("vx", "vy"), ("vx_comp", "vy_comp")):
        if fx in a.dtype.names:
            x, y = a[fx].astype(np.float64), a[fy].astype(np.float64)
            a[fx], a[fy] = c * x - s * y, s * x + c * y
    return a


# ------------------------------------------------------------------------------------------------
# registry, spec parsing, stream injector
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FaultDef:
    """One fault type: which modalities it applies to and how (``data`` function, or a ``stream`` fault)."""

    name: str
    modalities: tuple[str, ...]
    kind: str  # "data" | "stream"
    func: Callable | None = None
    doc: str = ""


_DATA = {
    "camera_blackout": ("camera", camera_blackout),
    "camera_brightness": ("camera", camera_brightness),
    "camera_darkness": ("camera", camera_darkness),
    "camera_contrast": ("camera", camera_contrast),
    "camera_fog": ("camera", camera_fog),
    "camera_motion_blur": ("camera", camera_motion_blur),
    "camera_occlusion": ("camera", camera_occlusion),
    "camera_noise": ("camera", camera_noise),
    "lidar_point_dropout": ("lidar", lidar_point_dropout),
    "lidar_beam_reduction": ("lidar", lidar_beam_reduction),
    "lidar_sector_blockage": ("lidar", lidar_sector_blockage),
    "lidar_fog": ("lidar", lidar_fog),
    "lidar_snow": ("lidar", lidar_snow),
    "lidar_crosstalk": ("lidar", lidar_crosstalk),
    "lidar_extrinsic_drift": ("lidar", lidar_extrinsic_drift),
    "radar_dropout": ("radar", radar_dropout),
    "radar_ghosts": ("radar", radar_ghosts),
    "radar_clutter": ("radar", radar_clutter),
    "radar_velocity_bias": ("radar", radar_velocity_bias),
    "radar_extrinsic_drift": ("radar", radar_extrinsic_drift),
}
_ALL = ("camera", "lidar", "radar")

#: Every fault by name.
FAULTS: dict[str, FaultDef] = {
    **{n: FaultDef(n, (m,), "data", f, (f.__doc__ or "").strip().splitlines()[0]) for n, (m, f) in _DATA.items()},
    "dropped_frames": FaultDef("dropped_frames", _ALL, "stream", None,
                               "T1: message absent with probability p = 0.05 / 0.1 / 0.2 / 0.4 / 0.6 [P]"),
    "frozen": FaultDef("frozen", _ALL, "stream", None,
                       "T2: the same data re-sent with fresh stamps for K = 1 / 2 / 5 / 10 / 20 frames, then refreshed"),
    "time_offset": FaultDef("time_offset", _ALL, "stream", None,
                            "T3: data delayed by Delta = 25 / 50 / 100 / 250 / 500 ms [P] (mode 'data': old data under "
                            "the current stamp; mode 'stamp': header stamps shifted by -Delta)"),
}
#: Alternative names from the issue text.
FAULT_ALIASES = {"camera_frozen": "frozen", "camera_dropped_frames": "dropped_frames", "lidar_dropped_scans": "dropped_frames",
                 "dropped_scans": "dropped_frames", "camera_time_offset": "time_offset", "lidar_frozen": "frozen"}

DROP_P = (0.05, 0.1, 0.2, 0.4, 0.6)
FROZEN_K = (1, 2, 5, 10, 20)
OFFSET_MS = (25.0, 50.0, 100.0, 250.0, 500.0)


@dataclass(frozen=True)
class FaultEpisode:
    """One validated fault episode: ``fault`` on ``sensors`` at ``severity`` for start_s <= t < end_s.

    ``t`` is seconds since the episode origin the injector is given (the first message by default).
    ``ramp_s`` > 0 ramps drift faults linearly from 0 to full over that time (S2).
    """

    fault: str
    target: str
    sensors: tuple[str, ...]
    severity: int
    start_s: float
    end_s: float
    params: dict = field(default_factory=dict)
    ramp_s: float = 0.0

    def active(self, t_s: float) -> bool:
        return self.start_s <= t_s < self.end_s

    def record(self) -> dict:
        """Ground-truth record (docs/faults.md s.0 rule 4)."""
        return {"fault": self.fault, "sensor": self.target, "sensors": list(self.sensors), "severity": self.severity,
                "start_s": self.start_s, "end_s": self.end_s, "params": dict(self.params), "ramp_s": self.ramp_s}


def parse_fault_spec(spec: Iterable[Mapping] | Mapping | str, sensors: Mapping[str, str] | None = None
                     ) -> list[FaultEpisode]:
    """Validate a fault spec: a list of ``{fault, sensor, severity, start_s, end_s, params?, ramp_s?}``.

    Parameters
    ----------
    spec : list of mappings, a mapping with key ``faults``, or YAML text of either.
    sensors : mapping sensor name -> modality (e.g. ``{n: s.modality for n, s in rig.sensors.items()}``).
        ``sensor`` may be a sensor name or a modality (all its sensors). Without it, ``sensor``
        must be a modality or is taken as a sensor of the fault's modality.

    Raises
    ------
    FaultSpecError
        Unknown fault or sensor, fault not applicable to that sensor's modality, severity not
        1..5, window not 0 <= start_s < end_s, unknown keys, or unknown fault params.
    """
    if isinstance(spec, str):
        import yaml

        try:
            spec = yaml.safe_load(spec)
        except yaml.YAMLError as e:
            raise FaultSpecError(None, f"not valid YAML: {e}") from None
    if isinstance(spec, Mapping):
        if set(spec) != {"faults"}:
            raise FaultSpecError(None, f"a mapping spec needs exactly the key 'faults', got {sorted(spec)}")
        spec = spec["faults"]
    if spec is None:
        return []
    if isinstance(spec, (str, bytes)) or not isinstance(spec, Iterable):
        raise FaultSpecError(None, f"expected a list of fault entries, got {type(spec).__name__}")
    out = []
    allowed = {"fault", "sensor", "severity", "start_s", "end_s", "params", "ramp_s"}
    import inspect

    for i, e in enumerate(spec):
        if not isinstance(e, Mapping):
            raise FaultSpecError(i, f"entry is {type(e).__name__}, expected a mapping")
        extra = set(e) - allowed
        if extra:
            raise FaultSpecError(i, f"unknown keys {sorted(extra)} (allowed: {sorted(allowed)})")
        for k in ("fault", "sensor", "severity", "start_s", "end_s"):
            if k not in e:
                raise FaultSpecError(i, f"missing key '{k}'")
        name = FAULT_ALIASES.get(str(e["fault"]), str(e["fault"]))
        if name not in FAULTS:
            raise FaultSpecError(i, f"unknown fault {e['fault']!r} (known: {', '.join(sorted(FAULTS))})")
        fd = FAULTS[name]
        sev = e["severity"]
        if isinstance(sev, bool) or not isinstance(sev, int) or sev not in SEVERITIES:
            raise FaultSpecError(i, f"severity {sev!r} must be an integer 1..5")
        try:
            t0, t1 = float(e["start_s"]), float(e["end_s"])
        except (TypeError, ValueError):
            raise FaultSpecError(i, f"start_s {e['start_s']!r} / end_s {e['end_s']!r} must be numbers") from None
        if not (np.isfinite(t0) and 0 <= t0 < t1):
            raise FaultSpecError(i, f"window start_s={t0} end_s={t1} must satisfy 0 <= start_s < end_s")
        target = str(e["sensor"])
        if target in _ALL:
            if target not in fd.modalities:
                raise FaultSpecError(i, f"fault {name!r} applies to {fd.modalities}, not {target!r}")
            chosen = tuple(n for n, m in (sensors or {}).items() if m == target) if sensors else (target,)
            if sensors is not None and not chosen:
                raise FaultSpecError(i, f"the rig has no {target} sensor")
        else:
            if sensors is not None:
                if target not in sensors:
                    raise FaultSpecError(i, f"unknown sensor {target!r} (rig has: {', '.join(sensors)})")
                if sensors[target] not in fd.modalities:
                    raise FaultSpecError(i, f"fault {name!r} applies to {fd.modalities}, but {target} is a "
                                         f"{sensors[target]}")
            chosen = (target,)
        params = dict(e.get("params") or {})
        if fd.func is not None:
            accepted = set(inspect.signature(fd.func).parameters) - {"image", "points", "severity", "rng"}
        else:
            accepted = {"p", "frames", "offset_ms", "mode"}
        bad = set(params) - accepted
        if bad:
            raise FaultSpecError(i, f"fault {name!r} has no params {sorted(bad)} (accepted: {sorted(accepted)})")
        ramp = float(e.get("ramp_s", 0.0) or 0.0)
        if ramp < 0:
            raise FaultSpecError(i, f"ramp_s {ramp} must be >= 0")
        out.append(FaultEpisode(name, target, chosen, int(sev), t0, t1, params, ramp))
    return out


@dataclass
class _StreamState:
    held: Any = None
    held_left: int = 0
    history: deque = field(default_factory=deque)


class FaultInjector:
    """Applies validated fault episodes to a message stream, deterministically.

    Parameters
    ----------
    episodes : list[FaultEpisode]
        From :func:`parse_fault_spec`.
    seed : int
        Base seed; each (sensor, episode, frame) draws from its own generator derived from it
        (docs/faults.md s.0 rule 1), so results do not depend on message interleaving.
    t0_ns : int or None
        Episode origin; None = the first message's stamp.
    T_base_sensor : mapping sensor -> 4x4, optional
        Passed to sector blockage so its centre is in the base frame.
    """

    def __init__(self, episodes: list[FaultEpisode], seed: int = 0, t0_ns: int | None = None,
                 T_base_sensor: Mapping[str, np.ndarray] | None = None):
        self.episodes = list(episodes)
        self.seed = int(seed)
        self.t0_ns = t0_ns
        self.T_base_sensor = dict(T_base_sensor or {})
        self._state: dict[str, _StreamState] = {}
        self._frame: dict[str, int] = {}
        self._drift: dict[tuple[int, str], np.ndarray] = {}

    def _rng(self, sensor: str, k: int, frame: int) -> np.random.Generator:
        h = int.from_bytes(sensor.encode()[:16].ljust(16, b"\0"), "little") % (2**63)
        return np.random.default_rng([self.seed, h, k, frame & 0xFFFFFFFF])  # frame -1: per-episode draws

    def _history_ns(self, sensor: str, modality: str) -> int:
        offs = [float(e.params.get("offset_ms", OFFSET_MS[e.severity - 1])) for e in self.episodes
                if e.fault == "time_offset" and e.params.get("mode", "data") == "data"
                and (sensor in e.sensors or e.target == modality)]
        return int((max(offs) + 200.0) * 1e6) if offs else 0

    def active(self, sensor: str, stamp_ns: int) -> list[FaultEpisode]:
        """Episodes active on ``sensor`` at ``stamp_ns`` (ground truth for scoring)."""
        if self.t0_ns is None:
            return []
        t = (int(stamp_ns) - self.t0_ns) / 1e9
        return [e for e in self.episodes if (sensor in e.sensors or e.target == sensor) and e.active(t)]

    def apply(self, sensor: str, modality: str, data: np.ndarray, stamp_ns: int) -> tuple[np.ndarray | None, int]:
        """One message through every active episode: returns (data or None when dropped, stamp_ns)."""
        stamp_ns = int(stamp_ns)
        if self.t0_ns is None:
            self.t0_ns = stamp_ns
        t = (stamp_ns - self.t0_ns) / 1e9
        frame = self._frame.get(sensor, 0)
        self._frame[sensor] = frame + 1
        st = self._state.setdefault(sensor, _StreamState())
        horizon_ns = self._history_ns(sensor, modality)
        if horizon_ns:  # only streams with a time-offset episode keep old data, and only as far back as needed
            st.history.append((stamp_ns, data))
            while st.history and st.history[0][0] < stamp_ns - horizon_ns:
                st.history.popleft()
        out, out_stamp = data, stamp_ns
        for k, e in enumerate(self.episodes):
            if not ((sensor in e.sensors or e.target == modality) and e.active(t)):
                continue
            rng = self._rng(sensor, k, frame)
            if e.fault == "dropped_frames":
                p = float(e.params.get("p", DROP_P[e.severity - 1]))
                if rng.random() < p:
                    return None, out_stamp
            elif e.fault == "frozen":
                frames = int(e.params.get("frames", FROZEN_K[e.severity - 1]))
                if st.held is None or st.held_left <= 0:
                    st.held, st.held_left = out, frames + 1
                st.held_left -= 1
                out = st.held
            elif e.fault == "time_offset":
                off_ns = int(float(e.params.get("offset_ms", OFFSET_MS[e.severity - 1])) * 1e6)
                if e.params.get("mode", "data") == "stamp":
                    out_stamp = out_stamp - off_ns
                else:
                    target = stamp_ns - off_ns
                    older = [d for s, d in st.history if s <= target]
                    out = older[-1] if older else (st.history[0][1] if st.history else out)
            else:
                fd = FAULTS[e.fault]
                params = dict(e.params)
                frac = min(1.0, (t - e.start_s) / e.ramp_s) if e.ramp_s > 0 else 1.0
                if e.fault == "lidar_extrinsic_drift":
                    key = (k, sensor)
                    if key not in self._drift:
                        self._drift[key] = extrinsic_offset(e.severity, self._rng(sensor, k, -1))
                    params.setdefault("delta_T", _scale_transform(self._drift[key], frac))
                elif e.fault == "radar_extrinsic_drift":
                    params.setdefault("sign", 1.0 if self._rng(sensor, k, -1).random() < 0.5 else -1.0)
                    params.setdefault("fraction", frac)
                elif e.fault == "lidar_sector_blockage":
                    params.setdefault("center_deg", float(self._rng(sensor, k, -1).uniform(-180, 180)))
                    if sensor in self.T_base_sensor:
                        params.setdefault("T_base_sensor", self.T_base_sensor[sensor])
                elif e.fault == "camera_occlusion":
                    r0 = self._rng(sensor, k, -1)
                    params.setdefault("center_xy", (float(r0.uniform(0.2, 0.8)), float(r0.uniform(0.2, 0.8))))
                out = fd.func(out, e.severity, rng, **params)
        if not any((sensor in e.sensors or e.target == modality) and e.fault == "frozen" and e.active(t)
                   for e in self.episodes):
            st.held, st.held_left = None, 0
        return out, out_stamp


def _scale_transform(T: np.ndarray, fraction: float) -> np.ndarray:
    """The rigid transform T scaled to ``fraction`` of its rotation angle and translation."""
    if fraction >= 1.0:
        return T
    R = T[:3, :3]
    angle = np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1))
    out = np.eye(4)
    if angle > 1e-12:
        axis = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
        out[:3, :3] = _axis_angle(axis, angle * fraction)
    out[:3, 3] = T[:3, 3] * fraction
    return out
