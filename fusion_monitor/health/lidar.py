"""LiDAR sweep checks: point count, blockage by azimuth/elevation, missing beams, near clutter, visibility, intensity,
ground plane, frozen sweeps.

Azimuths are reported in the base frame orientation (REP 103: 0 deg = forward, +90 deg = left),
measured around the sensor origin; the ground band is the beams below
``ground_elevation_deg``, the sky band the rest.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from fusion_monitor.health.config import LidarCheckConfig, ego_box
from fusion_monitor.health.frozen import RepeatCounter
from fusion_monitor.health.status import CheckResult, Level, fmt

#: Checks a :class:`LidarChecker` reports, in order.
LIDAR_CHECKS = ("point_count", "blockage", "beams", "near_clutter", "outliers", "visibility", "intensity", "ground",
                "frozen")


def lidar_columns(points: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(xyz (3, N) float32 rows x, y, z; intensity (N,) float32 or None; ring (N,) int or None) from an
    (N, >=3) array or a structured array with x y z (intensity, ring); non-finite rows removed."""
    a = np.asarray(points)
    if a.dtype.names:
        if not all(f in a.dtype.names for f in "xyz"):
            raise ValueError(f"LiDAR points need fields x y z, got {a.dtype.names}")
        a = a.reshape(-1)
        xyz = np.stack([a["x"], a["y"], a["z"]]).astype(np.float32, copy=False)
        inten = a["intensity"].astype(np.float32, copy=False) if "intensity" in a.dtype.names else None
        ring = a["ring"] if "ring" in a.dtype.names else None
    else:
        if a.ndim != 2 or a.shape[1] < 3:
            raise ValueError(f"LiDAR points must be (N, >=3) [x y z intensity ring] or structured, got {a.shape}")
        xyz = a[:, :3].T.astype(np.float32)
        inten = a[:, 3].astype(np.float32) if a.shape[1] > 3 else None
        ring = a[:, 4] if a.shape[1] > 4 else None
    ok = np.isfinite(xyz[0] + xyz[1] + xyz[2])
    if ring is not None:
        ring = np.asarray(ring)
        if ring.dtype.kind == "f":
            ok &= np.isfinite(ring)
            ring = np.where(ok, ring, 0).astype(np.int64)
        else:
            ring = ring.astype(np.int64)
        ok &= (ring >= 0) & (ring < 1024)
    if ok.all():
        return xyz, inten, ring
    return xyz[:, ok], (inten[ok] if inten is not None else None), (ring[ok] if ring is not None else None)


def circular_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True in a circular boolean array as (start index, length), longest first."""
    n = len(mask)
    if mask.all():
        return [(0, n)]
    if not mask.any():
        return []
    start = int(np.argmin(mask))  # a False bin: rotate so no run wraps
    m = np.roll(mask, -start)
    runs, i = [], 0
    while i < n:
        if m[i]:
            j = i
            while j < n and m[j]:
                j += 1
            runs.append(((i + start) % n, j - i))
            i = j
        else:
            i += 1
    return sorted(runs, key=lambda r: -r[1])


def isolated_count(x: np.ndarray, y: np.ndarray, z: np.ndarray, voxel_m: float, max_per_voxel: int) -> int:
    """Number of points whose ``voxel_m`` voxel holds at most ``max_per_voxel`` points (isolated echoes).

    Airborne clutter (snow, spray, crosstalk) gives single returns scattered in space; a solid surface
    (a vehicle in the next lane) gives tens of returns per 0.25 m voxel at a few metres.
    """
    if x.size == 0:
        return 0
    k = np.floor(np.stack([x, y, z]) / np.float32(voxel_m)).astype(np.int64) + (1 << 20)
    keys = (k[0] << 42) | (k[1] << 21) | k[2]
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return int(np.count_nonzero(counts[inverse] <= max_per_voxel))


def _lowest_per_cell(key: np.ndarray, z: np.ndarray, n_cells: int) -> tuple[np.ndarray, np.ndarray]:
    """(occupied cell keys ascending, lowest z of each as float64) of points with cell ``key`` in [0, n_cells)."""
    if n_cells <= (1 << 20):  # a dense grid and an unbuffered minimum: no sort (the usual 42 x 42 cells)
        low = np.full(n_cells, np.inf, np.result_type(z, np.float32))
        np.minimum.at(low, key, z)
        cells = np.flatnonzero(low < np.inf)
        return cells, low[cells].astype(np.float64)
    order = np.argsort(key)
    k = key[order]
    starts = np.flatnonzero(np.concatenate(([True], k[1:] != k[:-1])))
    return k[starts], np.minimum.reduceat(z[order], starts).astype(np.float64)


def ground_plane(bx: np.ndarray, by: np.ndarray, bz: np.ndarray, r_min: float, r_max: float, cell_m: float,
                 min_cells: int = 30) -> tuple[np.ndarray, int] | None:
    """Ground plane z = a x + b y + c (base frame) around the vehicle: the lowest return of every ``cell_m`` cell
    between ``r_min`` and ``r_max`` m, fitted by least squares with residual trimming (objects, kerbs and walls
    leave). Returns ((a, b, c), cells kept), or None with fewer than ``min_cells`` cells."""
    h2 = bx * bx + by * by
    sel = (h2 > np.float32(r_min * r_min)) & (h2 < np.float32(r_max * r_max))
    if np.count_nonzero(sel) < min_cells:
        return None
    n = int(np.ceil(2 * r_max / cell_m)) + 2
    inv = np.float32(1.0 / cell_m)
    key = (np.floor((bx[sel] + np.float32(r_max)) * inv).astype(np.intp) * n
           + np.floor((by[sel] + np.float32(r_max)) * inv).astype(np.intp))
    cells, gz = _lowest_per_cell(key, bz[sel], n * n)
    if len(cells) < min_cells:
        return None
    gx = (cells // n + 0.5) * cell_m - r_max  # cell centres
    gy = (cells % n + 0.5) * cell_m - r_max
    A = np.stack([gx, gy, np.ones_like(gx)], 1)
    # start from the lower half of the cells: a row of parked cars alongside fills many cells with body returns
    # and tilted an all-cell first fit by 2-4 deg (then the trimming kept the cars); a plane, tilted or not, is
    # still found exactly from the cells of its lower half, and the trimming brings the other half back
    keep = gz <= np.median(gz)
    coef = np.zeros(3)
    for _ in range(3):
        if np.count_nonzero(keep) < min_cells:
            return None
        coef = np.linalg.lstsq(A[keep], gz[keep], rcond=None)[0]
        res = np.abs(gz - A @ coef)
        keep = res < max(0.15, 2.5 * float(np.median(res[keep])))
    return coef, int(np.count_nonzero(keep))


def _plane_change(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """(height change at the base origin in m, angle between the plane normals in deg)."""
    n0 = np.array([-ref[0], -ref[1], 1.0])
    n1 = np.array([-cur[0], -cur[1], 1.0])
    cosang = float(n0 @ n1 / (np.linalg.norm(n0) * np.linalg.norm(n1)))
    return float(cur[2] - ref[2]), float(np.degrees(np.arccos(min(1.0, cosang))))


def _wrap(deg: float) -> float:
    return (deg + 180.0) % 360.0 - 180.0


#: Azimuth sectors (10 deg) over which fog-shell returns must spread (``fog_shell_min_sectors``).
FOG_SECTORS = 36


class LidarChecker:
    """Stateful checks of one LiDAR (running count median, per-bin sky and per-ring references).

    Parameters
    ----------
    sensor : str
    config : LidarCheckConfig
    T_base_sensor : (4, 4) array, optional
        Sensor -> base transform (rig profile); identity when None (then azimuths are in the sensor frame).
    """

    def __init__(self, sensor: str, config: LidarCheckConfig | None = None, T_base_sensor: np.ndarray | None = None):
        self.sensor = sensor
        self.config = config or LidarCheckConfig()
        self.T = np.eye(4) if T_base_sensor is None else np.asarray(T_base_sensor, dtype=np.float64)
        if self.T.shape != (4, 4):
            raise ValueError(f"{sensor}: T_base_sensor has shape {self.T.shape}, expected (4, 4)")
        self._box = ego_box(self.config.ego_box_m)
        self.reset()

    def reset(self) -> None:
        """Forget the running references (after a time jump)."""
        self._counts: deque[int] = deque(maxlen=self.config.count_history)
        self._ref: np.ndarray | None = None  # (2, bins) per-bin count reference: ground, sky
        self._ring_ref: np.ndarray | None = None
        self._plane_ref: np.ndarray | None = None  # (a, b, c) of the ground plane seen so far
        self._plane_seen = 0
        self._frozen = RepeatCounter("sweeps", self.config.frozen_warn, self.config.frozen_error)

    def update(self, points: np.ndarray) -> dict[str, CheckResult]:
        """Run every LiDAR check on one sweep (points in the sensor frame); returns check -> result."""
        xyz, inten, ring = lidar_columns(points)
        x, y, z = xyz
        r = np.sqrt(x * x + y * y + z * z)
        valid = r > 0.05
        R = self.T[:3, :3].astype(np.float32)
        t = self.T[:3, 3].astype(np.float32)
        rx = R[0, 0] * x + R[0, 1] * y + R[0, 2] * z  # sensor -> base orientation (columns, no (N, 3) matmul)
        ry = R[1, 0] * x + R[1, 1] * y + R[1, 2] * z
        rz = R[2, 0] * x + R[2, 1] * y + R[2, 2] * z
        bx, by, bz = rx + t[0], ry + t[1], rz + t[2]
        b = self._box
        in_box = (bx > b[0]) & (bx < b[1]) & (by > b[2]) & (by < b[3]) & (bz > b[4]) & (bz < b[5])
        scene = valid & ~in_box
        # the returns outside the ego body, each column selected once; their azimuth computed once
        rx_s, ry_s, bz_s = rx[scene], ry[scene], bz[scene]
        inten_s = inten[scene] if inten is not None else None
        az_s = np.arctan2(ry_s, rx_s)
        n_valid = int(valid.sum())
        return {
            "point_count": self._count(n_valid),
            "blockage": self._blockage(rx_s, ry_s, rz[scene], az_s),
            "beams": self._beams(ring[valid] if ring is not None else None),
            "near_clutter": self._near(r, scene, bx, by, bz),
            "outliers": self._outliers(bx[valid], by[valid], bz[valid]),
            "visibility": self._visibility(r[scene], inten_s, bz_s, az_s),
            "intensity": self._intensity(inten_s),
            "ground": self._ground(bx[scene], by[scene], bz_s),
            "frozen": self._frozen.update(points, n_valid),
        }

    def _count(self, n: int) -> CheckResult:
        c = self.config
        med = float(np.median(self._counts)) if self._counts else float("nan")
        ratio = n / med if med > 0 else float("nan")
        v = {"value": str(n), "bound": f">= {c.min_points}", "running_median": fmt(med), "ratio": fmt(ratio)}
        if n < c.min_points:
            return CheckResult(Level.ERROR, f"only {n} points (minimum {c.min_points})", v)
        if np.isfinite(ratio) and ratio < c.count_drop_error:
            return CheckResult(Level.ERROR, f"{n} points, {ratio:.0%} of the running median {med:.0f}",
                               {**v, "bound": f">= {c.count_drop_error:g} x median"})
        if np.isfinite(ratio) and ratio < c.count_drop_warn:
            return CheckResult(Level.WARN, f"{n} points, {ratio:.0%} of the running median {med:.0f}",
                               {**v, "bound": f">= {c.count_drop_warn:g} x median"})
        self._counts.append(n)
        return CheckResult(Level.OK, f"{n} points", v)

    def _blockage(self, rx: np.ndarray, ry: np.ndarray, rz: np.ndarray, az_rad: np.ndarray) -> CheckResult:
        """``az_rad``: arctan2(ry, rx) of the same returns."""
        c = self.config
        nb = c.azimuth_bins
        width = 360.0 / nb
        az = np.degrees(az_rad)
        idx = np.minimum(((az + 180.0) / width).astype(np.int64), nb - 1)
        ground = rz < np.float32(np.tan(np.radians(c.ground_elevation_deg))) * np.sqrt(rx * rx + ry * ry)
        g_cnt = np.bincount(idx[ground], minlength=nb).astype(np.float64)
        s_cnt = np.bincount(idx[~ground], minlength=nb).astype(np.float64)
        if self._ref is None:  # first sweep: the ground band's own median is the reference
            self._ref = np.stack([np.full(nb, float(np.median(g_cnt))), s_cnt])
        cnt = np.stack([g_cnt, s_cnt])
        judged = self._ref >= c.blockage_min_reference
        ratio = cnt / np.maximum(self._ref, 1e-9)
        # each band against its own overall ratio: a uniform loss (dropout, or the sky emptying on an open
        # road) is not a blocked sector; only a local loss is
        glob_b = np.array([cnt[b][judged[b]].sum() / max(self._ref[b][judged[b]].sum(), 1e-9) if judged[b].any()
                           else 1.0 for b in range(2)])
        glob = float(cnt[judged].sum() / max(self._ref[judged].sum(), 1e-9)) if judged.any() else 1.0
        bad = judged & (ratio < c.blockage_ratio * glob_b[:, None])
        a = c.reference_alpha
        self._ref = np.where(bad, self._ref, (1 - a) * self._ref + a * cnt)
        g_blocked, s_blocked = bad[0], bad[1]
        g_ref = float(np.median(self._ref[0]))
        if not c.sky_only_alerts:
            sky_only = s_blocked & ~g_blocked
            v_sky = circular_runs(sky_only)
            s_blocked = s_blocked & g_blocked
        else:
            v_sky = []
        blocked = g_blocked | s_blocked
        total_deg = float(blocked.sum() * width)
        v = {"value": fmt(total_deg), "bound": f"< {c.blockage_warn_deg:g} deg", "ground_reference": fmt(g_ref),
             "bins_judged": str(int(judged.sum())), "global_ratio": fmt(glob)}
        if v_sky:
            v["upper_beams_empty_deg"] = ";".join(
                f"{_wrap(-180.0 + a * width):.0f}..{_wrap(-180.0 + (a + n) * width):.0f}" for a, n in v_sky[:3])
        if total_deg < c.blockage_warn_deg:
            return CheckResult(Level.OK, "no blocked sector" if total_deg == 0 else
                               f"{total_deg:.0f} deg sparse (below bound)", v)
        runs = circular_runs(blocked)
        parts = []
        for start, length in runs[:3]:
            sel = [(start + k) % nb for k in range(length)]
            lo = -180.0 + start * width
            hi = lo + length * width
            bands = ("ground and sky" if g_blocked[sel].any() and s_blocked[sel].any()
                     else "ground" if g_blocked[sel].any() else "sky")
            parts.append((_wrap(lo), _wrap(hi), _wrap((lo + hi) / 2), bands))
        lo, hi, mid, bands = parts[0]
        v.update(azimuth_deg=f"{lo:.0f}..{hi:.0f}", azimuth_center_deg=fmt(mid), elevation=bands,
                 sectors=";".join(f"{p[0]:.0f}..{p[1]:.0f} {p[3]}" for p in parts))
        level = Level.ERROR if total_deg >= c.blockage_error_deg else Level.WARN
        if not g_blocked.any():
            level = Level.WARN  # upper beams only: could be an empty sky, so never more than WARN
        bound = c.blockage_error_deg if level == Level.ERROR else c.blockage_warn_deg
        return CheckResult(level, f"blocked sector azimuth {lo:.0f}..{hi:.0f} deg ({bands}); {total_deg:.0f} deg "
                           "blocked in total", {**v, "bound": f"< {bound:g} deg"})

    def _beams(self, ring: np.ndarray | None) -> CheckResult:
        if ring is None or ring.size == 0:
            return CheckResult(Level.OK, "no ring field: beams not judged", {"value": "nan", "bound": "n/a"})
        c = self.config
        cnt = np.bincount(ring, minlength=32).astype(np.float64)
        if self._ring_ref is None or self._ring_ref.shape != cnt.shape:
            self._ring_ref = cnt.copy()
        ref = self._ring_ref
        judged = ref >= 50
        glob = float(cnt[judged].sum() / max(ref[judged].sum(), 1e-9)) if judged.any() else 1.0
        missing = judged & (cnt < c.blockage_ratio * glob * ref)
        self._ring_ref = np.where(missing, ref, (1 - c.reference_alpha) * ref + c.reference_alpha * cnt)
        n = int(missing.sum())
        v = {"value": str(n), "bound": "0 rings missing", "rings_judged": str(int(judged.sum()))}
        if n == 0:
            return CheckResult(Level.OK, "all beams return", v)
        rings = np.nonzero(missing)[0]
        v["rings"] = ",".join(str(int(x)) for x in rings)
        level = Level.ERROR if n >= max(1, int(judged.sum()) // 4) else Level.WARN
        return CheckResult(level, f"{n} beam(s) without returns: rings {v['rings']}", v)

    def _near(self, r: np.ndarray, scene: np.ndarray, bx: np.ndarray, by: np.ndarray, bz: np.ndarray) -> CheckResult:
        c = self.config
        n = max(int(scene.sum()), 1)
        near = scene & (r < c.near_range_m)
        n_near = int(near.sum())
        n_iso = isolated_count(bx[near], by[near], bz[near], c.near_voxel_m, c.near_isolated_max)
        f = n_iso / n
        v = {"value": fmt(f), "bound": f"<= {c.near_warn:g}", "near_range_m": fmt(c.near_range_m),
             "near_returns": str(n_near), "isolated_near_returns": str(n_iso)}
        if f > c.near_error:
            return CheckResult(Level.ERROR, f"near-range clutter: {f:.1%} of returns are isolated echoes within "
                               f"{c.near_range_m:g} m (snow, spray, crosstalk)", {**v, "bound": f"<= {c.near_error:g}"})
        if f > c.near_warn:
            return CheckResult(Level.WARN, f"near-range clutter: {f:.1%} of returns are isolated echoes within "
                               f"{c.near_range_m:g} m", v)
        return CheckResult(Level.OK, f"isolated near-range returns {f:.2%}", v)

    def _outliers(self, bx: np.ndarray, by: np.ndarray, bz: np.ndarray) -> CheckResult:
        c = self.config
        near = bx * bx + by * by < c.below_ground_radius_m ** 2
        n = max(int(near.sum()), 1)
        f = float(np.count_nonzero(near & (bz < c.below_ground_m))) / n
        v = {"value": fmt(f), "bound": f"<= {c.outlier_warn:g}", "below_ground_m": fmt(c.below_ground_m)}
        if f > c.outlier_error:
            return CheckResult(Level.ERROR, f"{f:.2%} of returns below the ground (crosstalk or solar noise)",
                               {**v, "bound": f"<= {c.outlier_error:g}"})
        if f > c.outlier_warn:
            return CheckResult(Level.WARN, f"{f:.2%} of returns below the ground (crosstalk or solar noise)", v)
        return CheckResult(Level.OK, f"below-ground returns {f:.2%}", v)

    def _visibility(self, r: np.ndarray, inten: np.ndarray | None, bz: np.ndarray, az: np.ndarray) -> CheckResult:
        c = self.config
        if r.size == 0:
            return CheckResult(Level.ERROR, "no returns outside the ego body", {"value": "0", "bound": "> 0 points"})
        p95 = float(np.percentile(r, 95))
        shell, sectors = float("nan"), 0
        if inten is not None:
            fog = ((r > c.fog_shell_min_m) & (r < c.fog_shell_max_m) & (inten <= c.fog_shell_intensity)
                   & (bz > c.fog_shell_min_height_m))
            shell = float(np.count_nonzero(fog)) / r.size
            # fog surrounds the car; a dark car driving alongside fills a few sectors only
            sec = np.minimum(((az + np.pi) * (FOG_SECTORS / (2 * np.pi))).astype(np.int64), FOG_SECTORS - 1)
            per = np.bincount(sec[fog], minlength=FOG_SECTORS) / np.maximum(np.bincount(sec, minlength=FOG_SECTORS), 1)
            sectors = int(np.count_nonzero(per > c.fog_shell_warn))
        v = {"value": fmt(p95), "bound": f">= {c.visibility_warn_m:g} m", "range_p95_m": fmt(p95),
             "fog_shell_fraction": fmt(shell), "fog_shell_sectors": str(sectors)}
        where = (f"fog returns {shell:.0%} within {c.fog_shell_min_m:g}-{c.fog_shell_max_m:g} m in {sectors} of "
                 f"{FOG_SECTORS} azimuth sectors, 95th-percentile range {p95:.0f} m")
        spread = sectors >= c.fog_shell_min_sectors
        if p95 < c.visibility_error_m or (shell > c.fog_shell_error and spread):
            return CheckResult(Level.ERROR, f"visibility lost ({where})",
                               {**v, "bound": f">= {c.visibility_error_m:g} m, fog shell <= {c.fog_shell_error:g}"})
        if p95 < c.visibility_warn_m or (shell > c.fog_shell_warn and spread):
            return CheckResult(Level.WARN, f"visibility reduced ({where})",
                               {**v, "bound": f">= {c.visibility_warn_m:g} m, fog shell <= {c.fog_shell_warn:g}"})
        return CheckResult(Level.OK, f"95th-percentile range {p95:.0f} m", v)

    def _intensity(self, inten: np.ndarray | None) -> CheckResult:
        c = self.config
        if inten is None or inten.size == 0:
            return CheckResult(Level.OK, "no intensity field: not judged", {"value": "nan", "bound": "n/a"})
        m = float(inten.mean())
        zero = float(np.count_nonzero(inten <= 0)) / inten.size
        v = {"value": fmt(m), "bound": f">= {c.intensity_warn:g}", "zero_fraction": fmt(zero)}
        if m < c.intensity_error:
            return CheckResult(Level.ERROR, f"intensity collapsed (mean {m:.1f})", {**v, "bound": f">= {c.intensity_error:g}"})
        if m < c.intensity_warn:
            return CheckResult(Level.WARN, f"intensity low (mean {m:.1f})", v)
        return CheckResult(Level.OK, f"mean intensity {m:.1f}", v)

    def _ground(self, bx: np.ndarray, by: np.ndarray, bz: np.ndarray) -> CheckResult:
        """The ground plane around the vehicle against the one this LiDAR showed before: a step in its height or
        tilt is the LiDAR's mount or calibration moving (extrinsic drift), which no count statistic sees. Judged
        against the sensor's own history, not against z = 0, so sloped roads and a rig whose ground is not exactly
        at z = 0 are nominal; slow changes (road grade) are followed by the reference."""
        c = self.config
        v = {"value": "nan", "bound": f"height step <= {c.ground_height_warn_m:g} m, tilt step <= "
                                      f"{c.ground_tilt_warn_deg:g} deg"}
        fit = ground_plane(bx, by, bz, c.ground_min_range_m, c.ground_max_range_m, c.ground_cell_m)
        if fit is None:
            return CheckResult(Level.OK, "too little ground in view: not judged", v)
        plane, cells = fit
        v.update(height_m=fmt(plane[2], 3), slope_deg=fmt(float(np.degrees(np.arctan(np.hypot(*plane[:2])))), 2),
                 cells=str(cells))
        if self._plane_ref is None or self._plane_seen < c.ground_warmup:
            n = self._plane_seen
            self._plane_ref = plane if self._plane_ref is None else (self._plane_ref * n + plane) / (n + 1)
            self._plane_seen += 1
            return CheckResult(Level.OK, f"ground plane reference forming ({self._plane_seen}/{c.ground_warmup})", v)
        dh, dang = _plane_change(self._plane_ref, plane)
        v.update(value=fmt(max(abs(dh) / c.ground_height_warn_m, dang / c.ground_tilt_warn_deg), 3),
                 height_step_m=fmt(dh, 3), tilt_step_deg=fmt(dang, 2))
        where = (f"ground plane moved {dh:+.2f} m in height and {dang:.1f} deg in tilt against this LiDAR's reference "
                 "(mount or extrinsic calibration moved?)")
        if abs(dh) > c.ground_height_error_m or dang > c.ground_tilt_error_deg:
            return CheckResult(Level.ERROR, where, {**v, "bound": f"height step <= {c.ground_height_error_m:g} m, tilt "
                                                                 f"step <= {c.ground_tilt_error_deg:g} deg"})
        if abs(dh) > c.ground_height_warn_m or dang > c.ground_tilt_warn_deg:
            return CheckResult(Level.WARN, where, v)
        a = c.ground_reference_alpha
        self._plane_ref = (1 - a) * self._plane_ref + a * plane
        return CheckResult(Level.OK, f"ground plane steady ({dh:+.2f} m, {dang:.1f} deg)", v)
