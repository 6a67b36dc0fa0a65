"""Collision avoidance for the simulated traffic: road users and the ego brake behind whatever is ahead of them.

Every vehicle, cyclist and the ego drives at its constant free speed along its heading, unless an object
(or the ego) ahead of it in its lateral band is closer than a minimum gap: it then advances only up to that
gap, queueing behind parked cars, slower cyclists and crossing pedestrians, and moves on when the way is free.
Parked cars in the ego's lane are left out of the scene.
The result is a *lag*: how far (m) each one has fallen behind its free motion, tabulated on a time grid and
interpolated in between. Deterministic (no randomness); zero lag leaves a trajectory bit for bit unchanged.
"""

from __future__ import annotations

import numpy as np

#: Time step (s) of the integration and of the lag tables.
TRAFFIC_DT_S = 0.1
#: Bumper-to-bumper distance (m) a follower keeps to what is ahead of it.
MIN_GAP_M = 2.0
#: Extra lateral clearance (m): boxes closer than this side by side are in each other's way.
LATERAL_MARGIN_M = 0.2
#: Ego footprint in base_link: length, width (m) and centre ahead of the base (nuScenes Renault Zoe, rear axle).
EGO_LENGTH_M, EGO_WIDTH_M, EGO_CENTRE_X_M = 4.6, 1.9, 1.3
#: Classes that follow (car, truck, cyclist); pedestrians keep walking.
FOLLOWER_CLASSES = (0, 1, 3)


def _extents(size: np.ndarray, yaw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Half extents along world x and y of boxes with (length, width) ``size`` and heading ``yaw``."""
    c, s = np.abs(np.cos(yaw)), np.abs(np.sin(yaw))
    return 0.5 * (size[:, 0] * c + size[:, 1] * s), 0.5 * (size[:, 0] * s + size[:, 1] * c)


def _candidate_pairs(x0, y_lo, y_hi, ex, ey, speed, followers, duration_s) -> tuple[np.ndarray, np.ndarray]:
    """(follower, other) pairs that can ever be in each other's way during the drive (lateral bands that
    overlap at some time, along-road distance closable within the drive)."""
    f, j = np.nonzero(followers[:, None] & ~np.eye(len(x0), dtype=bool))
    lateral = (y_lo[j] - ey[j] < y_hi[f] + ey[f] + LATERAL_MARGIN_M) & (
        y_lo[f] - ey[f] < y_hi[j] + ey[j] + LATERAL_MARGIN_M)
    reach = np.abs(x0[j] - x0[f]) < (speed[f] + speed[j]) * duration_s + ex[f] + ex[j] + MIN_GAP_M + 1.0
    keep = lateral & reach
    return f[keep], j[keep]


def traffic_lags(obj_cls, obj_size, obj_p0, obj_v, obj_yaw, ego_p0, ego_v: float, ego_yaw: float,
                 duration_s: float, dt: float = TRAFFIC_DT_S, ego_direction=None) -> tuple[np.ndarray, np.ndarray]:
    """Lag tables (K+1, N) of the objects and (K+1,) of the ego on the grid t_k = k * dt covering the drive.

    Objects that follow move along x (crossing pedestrians, moving along y, do not follow but are obstacles);
    the ego moves along ``ego_direction`` (default: its heading). Pairs already overlapping are ignored (they
    were placed so).
    """
    n = len(obj_cls)
    steps = int(np.ceil(duration_s / dt)) + 1
    heading = np.array([np.cos(ego_yaw), np.sin(ego_yaw)] if ego_direction is None else ego_direction, float)
    ex, ey = _extents(obj_size, obj_yaw)
    ex = np.r_[ex, _extents(np.array([[EGO_LENGTH_M, EGO_WIDTH_M]]), np.array([ego_yaw]))[0]]
    ey = np.r_[ey, _extents(np.array([[EGO_LENGTH_M, EGO_WIDTH_M]]), np.array([ego_yaw]))[1]]
    vx = np.r_[obj_v[:, 0], ego_v * heading[0]]
    vy = np.r_[obj_v[:, 1], ego_v * heading[1]]
    speed = np.hypot(vx, vy)
    # Unit direction of travel of the followers (objects along x, the ego along its heading).
    ux = np.r_[np.sign(obj_v[:, 0]), heading[0]]
    uy = np.r_[np.zeros(n), heading[1]]
    follows = np.r_[np.isin(obj_cls, FOLLOWER_CLASSES) & (obj_v[:, 1] == 0), True] & (speed > 0)
    ego_c0 = ego_p0 + EGO_CENTRE_X_M * heading
    x0 = np.r_[obj_p0[:, 0], ego_c0[0]]
    y0 = np.r_[obj_p0[:, 1], ego_c0[1]]
    y_end = y0 + vy * duration_s
    f, j = _candidate_pairs(x0, np.minimum(y0, y_end), np.maximum(y0, y_end), ex, ey, speed, follows, duration_s)
    lag = np.zeros(n + 1)
    table = np.zeros((steps, n + 1))
    ignore = np.zeros(len(f), bool)
    for k in range(steps - 1):
        t = k * dt
        x = x0 + vx * t - ux * lag
        y = y0 + vy * t - uy * lag
        ahead = ux[f] * (x[j] - x[f]) + uy[f] * (y[j] - y[f])
        gap = ahead - ex[f] - ex[j]
        beside = np.abs(y[j] - y[f]) < ey[f] + ey[j] + LATERAL_MARGIN_M
        if k == 0:  # placed overlapping: they pass through each other
            ignore = beside & (gap < 0) & (ahead > -(ex[f] + ex[j]))
        blocking = beside & (ahead > 0) & ~ignore
        room = np.full(n + 1, np.inf)
        np.minimum.at(room, f[blocking], gap[blocking] - MIN_GAP_M)
        step = speed * dt
        lag = lag + step - np.clip(room, 0.0, step)
        table[k + 1] = lag
    return table[:, :n], table[:, n]


def parked_in_ego_lane(obj_cls, obj_size, obj_p0, obj_v, obj_yaw, ego_p0) -> np.ndarray:
    """(N,) parked cars in the ego's lane band at its start (the ego would wait behind them for the whole drive)."""
    _, ey = _extents(obj_size, obj_yaw)
    parked = (obj_cls == 0) & ~np.any(obj_v, axis=1)
    return parked & (np.abs(obj_p0[:, 1] - ego_p0[1]) < ey + EGO_WIDTH_M / 2 + LATERAL_MARGIN_M)


def interpolate(table: np.ndarray, dt: float, t_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Lag and its rate (m/s) at ``t_s`` from a table on the grid k * dt (held constant outside it)."""
    k = t_s / dt
    last = len(table) - 1
    if k <= 0:
        return table[0], np.zeros_like(table[0])
    if k >= last:
        return table[last], np.zeros_like(table[last])
    i = int(k)
    frac = k - i
    rate = (table[i + 1] - table[i]) / dt
    return table[i] + frac * (table[i + 1] - table[i]), rate
