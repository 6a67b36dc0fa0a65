"""Cross-modal radar check: do a radar's targets still land on what the LiDAR sees, as the radar is mounted?

A radar whose mount turned by a few degrees (a knock, a loose bracket) keeps delivering plausible scans:
counts, velocities and clutter look nominal, and a fusion detector quietly discounts it. Against the LiDAR
the error is plain: at 30 m a 3 deg yaw moves a target 1.6 m sideways, off the pole, wall or car the LiDAR
returns from. The check rotates each scan about the radar's own origin by candidate yaw offsets and counts the
targets that fall on LiDAR-occupied map cells (non-ground returns, a little dilated), summed over a window
of scans. The best-supported offset is the radar's yaw error as seen by the LiDAR; it alerts when that offset
is large and explains clearly more targets than the mounting does. The match must also be a real one: most
targets on LiDAR structure at the best offset, and far more than at a typical offset. Targets unrelated to
the LiDAR's scene (another recording, a LiDAR blocked in their direction) match about equally at every offset
and leave the check unjudged.

Every radar is judged against the same LiDAR, so a LiDAR turned on its mount (a yaw-only turn leaves its ground
plane where it was, so its own checks cannot see it) makes all radars look turned the other way.
:class:`LidarYawConsensus` takes the radars' votes: when several agree, the LiDAR is blamed
("<node>: LIDAR_TOP/alignment") and their alarms are withdrawn.

Sensor clocks differ (radar 13 Hz, LiDAR 20 Hz): the ego moves up to about a metre between a scan and the sweep
it is compared with, mostly along its heading. Each offset is therefore scored at the best of a few
along-track shifts, which absorbs that motion without an odometry input. Targets nearer than
``alignment_min_range_m`` say little about yaw and are not used.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from fusion_monitor.health.config import RadarCheckConfig
from fusion_monitor.health.status import CheckResult, Level


@dataclass(frozen=True)
class Occupancy:
    """LiDAR-occupied BEV cells in the base frame: ``grid[i, j]`` covers x in [x0 + i c, x0 + (i+1) c), same for y."""

    grid: np.ndarray  # (n, n) bool, dilated by one cell
    x0: float
    cell_m: float
    stamp_ns: int
    doubt: str = ""  # why the LiDAR itself is not a reference now (its own checks say it moved); "" = trusted

    def lookup(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Boolean per point: its cell is occupied (False outside the grid)."""
        n = self.grid.shape[0]
        i = np.floor((x - self.x0) / self.cell_m).astype(np.int64)
        j = np.floor((y - self.x0) / self.cell_m).astype(np.int64)
        ok = (i >= 0) & (i < n) & (j >= 0) & (j < n)
        out = np.zeros(x.shape, bool)
        out[ok] = self.grid[i[ok], j[ok]]
        return out


def lidar_occupancy(xyz_base: np.ndarray, stamp_ns: int, config: RadarCheckConfig) -> Occupancy:
    """Occupied cells of one sweep ((3, N) base frame): returns between the ground and a truck's roof.

    Radars see objects, not the road: only returns with ``alignment_z_min_m < z < alignment_z_max_m`` count.
    Each occupied cell also marks its 8 neighbours (a target on an object's edge, range noise).
    """
    c = config
    half = float(c.alignment_max_range_m) + 10.0
    cell = float(c.alignment_cell_m)
    n = int(np.ceil(2 * half / cell))
    x, y, z = (np.asarray(v, np.float64) for v in xyz_base[:3])
    keep = (z > c.alignment_z_min_m) & (z < c.alignment_z_max_m)
    i = np.floor((x[keep] + half) / cell).astype(np.int64)
    j = np.floor((y[keep] + half) / cell).astype(np.int64)
    ok = (i >= 0) & (i < n) & (j >= 0) & (j < n)
    g = np.zeros((n + 2, n + 2), bool)
    g[i[ok] + 1, j[ok] + 1] = True
    d = np.zeros((n, n), bool)
    for a in range(3):
        for b in range(3):
            d |= g[a:a + n, b:b + n]
    return Occupancy(d, -half, cell, int(stamp_ns))


class RadarAlignment:
    """Yaw of one radar against the LiDAR, over a window of scans.

    Parameters
    ----------
    sensor : str
    T_base_sensor : (4, 4) the radar's mounting (rig extrinsics)
    config : RadarCheckConfig
    """

    def __init__(self, sensor: str, T_base_sensor, config: RadarCheckConfig | None = None):
        self.sensor = sensor
        self.config = c = config or RadarCheckConfig()
        T = np.asarray(T_base_sensor, np.float64)
        self._R, self._t = T[:2, :2], T[:2, 3]
        lim = float(c.alignment_search_deg)
        step = float(c.alignment_step_deg)
        self.offsets_deg = np.round(np.arange(-lim, lim + 1e-9, step) / step) * step
        a = np.radians(self.offsets_deg)[:, None]
        self._cos, self._sin = np.cos(a), np.sin(a)
        self._zero = int(np.argmin(np.abs(self.offsets_deg)))
        m = float(c.alignment_shift_m)
        self._shifts = np.arange(-m, m + 1e-9, 0.25) if m > 0 else np.zeros(1)
        self.reset()

    def reset(self) -> None:
        """Forget the window (after a time jump)."""
        self._window: deque[tuple[np.ndarray, int]] = deque(maxlen=self.config.alignment_window)

    def matches(self, x: np.ndarray, y: np.ndarray, occ: Occupancy) -> np.ndarray:
        """(offsets,) targets on occupied cells per yaw offset (radar frame points ``x``, ``y``), best shift."""
        xr = self._cos * x - self._sin * y  # (offsets, n): rotated about the radar's origin
        yr = self._sin * x + self._cos * y
        bx = self._R[0, 0] * xr + self._R[0, 1] * yr + self._t[0]
        by = self._R[1, 0] * xr + self._R[1, 1] * yr + self._t[1]
        # along-track shifts (the ego's heading in the base frame is +x), all at once: (shifts, offsets, n)
        hit = occ.lookup(bx[None] + self._shifts[:, None, None], np.broadcast_to(by, (len(self._shifts),) + by.shape))
        return hit.sum(axis=2).max(axis=0)

    def update(self, f: dict[str, np.ndarray], occ: Occupancy | None, stamp_ns: int) -> CheckResult:
        """Judge one scan (``radar_fields`` columns) against the latest LiDAR occupancy (None: no recent sweep)."""
        c = self.config
        if occ is None or abs(int(stamp_ns) - occ.stamp_ns) > c.alignment_max_lidar_age_ms * 1e6:
            return CheckResult(Level.OK, "alignment not judged (no LiDAR sweep within "
                               f"{c.alignment_max_lidar_age_ms:g} ms)", {"value": "nan", "bound": "LiDAR sweep"})
        if occ.doubt:  # a moved LiDAR makes every radar look turned: blame neither
            return CheckResult(Level.OK, f"alignment not judged ({occ.doubt})", {"value": "nan", "bound": "LiDAR"})
        r = np.hypot(f["x"], f["y"])
        sel = (r >= c.alignment_min_range_m) & (r <= c.alignment_max_range_m)
        x, y = f["x"][sel], f["y"][sel]
        self._window.append((self.matches(x, y, occ) if x.size else np.zeros(len(self.offsets_deg), np.int64),
                             int(x.size)))
        hits = np.sum([h for h, _ in self._window], axis=0)
        n = sum(k for _, k in self._window)
        top = np.flatnonzero(hits == hits.max())
        k = int(top[np.argmin(np.abs(top - self._zero))])  # ties: the offset nearest the mounting
        off, at_k, at_0 = float(self.offsets_deg[k]), int(hits[k]), int(hits[self._zero])
        v = {"value": f"{off:+.1f}", "bound": f"|x| < {c.alignment_warn_deg:g} deg", "targets": str(n),
             "matched_as_mounted": str(at_0), "matched_at_offset": str(at_k)}
        sharpness = at_k / max(float(np.median(hits)), 1.0)
        v.update(sharpness=f"{sharpness:.2f}", support=f"{at_k / max(n, 1):.2f}")
        if (n < c.alignment_min_targets or at_k < c.alignment_min_matches or at_k < c.alignment_min_support * n
                or sharpness < c.alignment_min_sharpness):
            # too few targets, or targets that match the LiDAR about as well at any yaw (another scene, a wall):
            # nothing to say about the mount
            return CheckResult(Level.OK, f"alignment not judged ({at_k} of {n} targets in {len(self._window)} scans "
                               f"match the LiDAR at best, {sharpness:.1f}x the typical offset)", {**v, "value": "nan"})
        gain = at_k / max(at_0, 1)
        v["gain"] = f"{gain:.2f}"
        if abs(off) >= c.alignment_warn_deg and gain >= c.alignment_min_gain:
            level = Level.ERROR if abs(off) >= c.alignment_error_deg else Level.WARN
            if level == Level.ERROR:
                v["bound"] = f"|x| < {c.alignment_error_deg:g} deg"
            return CheckResult(level, f"targets line up with the LiDAR {off:+.1f} deg off the mounting yaw ({at_k} of "
                               f"{n} targets match there, {at_0} as mounted; extrinsic calibration moved?)", v)
        return CheckResult(Level.OK, f"aligned with the LiDAR ({at_0} of {n} targets match as mounted, best offset "
                           f"{off:+.1f} deg)", v)


class LidarYawConsensus:
    """Who moved, the LiDAR or a radar? Each radar's alignment is judged against the LiDAR, so a LiDAR turned on
    its mount makes every radar look turned by the opposite angle. When ``alignment_consensus_radars`` radars
    (judged within ``alignment_consensus_age_ms``) line up with the LiDAR the same way, beyond
    ``alignment_warn_deg`` and within ``alignment_consensus_tol_deg`` of each other, the LiDAR is blamed and
    those radars' alignment alarms are withdrawn. One radar alone (or two) off is that radar.
    """

    def __init__(self, config: RadarCheckConfig | None = None):
        self.config = config or RadarCheckConfig()
        self._offsets: dict[str, tuple[int, float]] = {}  # radar -> (stamp, best yaw offset deg; nan: not judged)

    def _agreeing(self, stamp_ns: int) -> tuple[float, list[str]] | None:
        c = self.config
        recent = {r: off for r, (t, off) in self._offsets.items()
                  if abs(int(stamp_ns) - t) <= c.alignment_consensus_age_ms * 1e6 and np.isfinite(off)
                  and abs(off) >= c.alignment_warn_deg}
        if len(recent) < c.alignment_consensus_radars:
            return None
        mid = float(np.median(list(recent.values())))
        agree = sorted(r for r, off in recent.items() if abs(off - mid) <= c.alignment_consensus_tol_deg)
        return (mid, agree) if len(agree) >= c.alignment_consensus_radars else None

    def radar(self, sensor: str, stamp_ns: int, result: CheckResult) -> CheckResult:
        """Record one radar's alignment result; returns it, or OK when the radars agree that the LiDAR moved."""
        try:
            off = float(result.values.get("value", "nan"))
        except ValueError:
            off = float("nan")
        self._offsets[sensor] = (int(stamp_ns), off)
        got = self._agreeing(stamp_ns)
        if got is None or result.level == Level.OK or sensor not in got[1]:
            return result
        yaw, agree = got
        return CheckResult(Level.OK, f"alignment: the LiDAR moved, not this radar ({len(agree)} radars line up with "
                           f"it {yaw:+.1f} deg off)", {**result.values, "blamed": "lidar"})

    def lidar(self, sensor: str, stamp_ns: int) -> CheckResult:
        """The LiDAR's alignment against the radars at sweep ``stamp_ns``."""
        c = self.config
        got = self._agreeing(stamp_ns)
        if got is None:
            return CheckResult(Level.OK, "no radar consensus against the LiDAR",
                               {"value": "nan", "bound": f"< {c.alignment_consensus_radars} radars agreeing"})
        yaw, agree = got
        level = Level.ERROR if abs(yaw) >= c.alignment_error_deg else Level.WARN
        return CheckResult(level, f"{sensor}: turned about {-yaw:+.1f} deg in yaw against its mounting: {len(agree)} "
                           f"radars ({', '.join(agree)}) line up with it {yaw:+.1f} deg off (extrinsic calibration "
                           "moved?)", {"value": f"{-yaw:+.1f}", "bound": f"|x| < {c.alignment_warn_deg:g} deg",
                                        "radars": ";".join(agree)})
