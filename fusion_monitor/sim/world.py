"""Procedural street scenes: static structure, traffic with linear motion, ego trajectory (world frame).

World frame: x along the road, y to the left, z up, ground at z = 0. The road is straight, 14 m wide
(four 3.5 m lanes, right-hand traffic), with 4 m sidewalks and buildings behind them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from fusion_monitor.sim.traffic import TRAFFIC_DT_S, interpolate, parked_in_ego_lane, traffic_lags

#: Detection classes the simulator produces (index = class id).
CLASSES = ("car", "truck", "pedestrian", "cyclist")

# Non-object materials (ids continue after the classes).
MAT_BUILDING = 10
MAT_POLE = 11

ROAD_HALF_WIDTH_M = 7.0
SIDEWALK_OUTER_M = 11.0

# (length, width, height) ranges in metres per class.
_SIZE_RANGES = {
    0: ((3.9, 4.9), (1.7, 2.0), (1.4, 1.75)),
    1: ((6.0, 10.0), (2.3, 2.6), (2.8, 3.8)),
    2: ((0.5, 0.8), (0.5, 0.7), (1.55, 1.9)),
    3: ((1.6, 1.9), (0.6, 0.8), (1.6, 1.85)),
}

_CAR_COLOURS = np.array(
    [[0.55, 0.05, 0.05], [0.08, 0.15, 0.45], [0.7, 0.7, 0.72], [0.05, 0.05, 0.06], [0.9, 0.9, 0.88],
     [0.25, 0.3, 0.28], [0.6, 0.45, 0.1], [0.15, 0.35, 0.2]],
    dtype=np.float32,
)
_CLOTHES = np.array(
    [[0.8, 0.1, 0.1], [0.1, 0.2, 0.7], [0.9, 0.8, 0.2], [0.1, 0.1, 0.1], [0.9, 0.9, 0.9], [0.2, 0.6, 0.3],
     [0.9, 0.5, 0.1]],
    dtype=np.float32,
)


@dataclass(frozen=True)
class World:
    """A scene: static boxes, moving objects and the ego trajectory.

    Boxes are rows ``[cx, cy, cz, l, w, h, yaw]`` in metres/radians, ``cz`` the box centre.

    Attributes
    ----------
    static_boxes : (S, 7) float64
    static_material : (S,) int — MAT_BUILDING or MAT_POLE
    static_colour : (S, 3) float32 — base colour in [0, 1]
    obj_cls : (N,) int — class id into CLASSES
    obj_size : (N, 3) float64 — l, w, h in metres
    obj_p0 : (N, 2) float64 — xy at t = 0
    obj_v : (N, 2) float64 — constant world velocity in m/s
    obj_yaw : (N,) float64 — heading in rad
    obj_colour : (N, 2, 3) float32 — primary and secondary colour
    obj_reflect : (N,) float32 — LiDAR reflectivity in [0, 1]
    ego_p0, ego_v, ego_yaw : ego start xy (m), speed (m/s), heading (rad)
    sun : (3,) float32 — unit vector towards the sun
    brightness : float — global illumination factor
    lidar_quality : float — 1 = clear air; lower drops more far returns
    obj_lag, ego_lag : (K+1, N) and (K+1,) metres each object / the ego has fallen behind its free motion at
        t = k * traffic_dt (collision avoidance, fusion_monitor.sim.traffic); None: free motion
    ego_keeps_lane : the ego drives along the road axis (x) whatever its small heading offset ``ego_yaw``;
        otherwise along its heading (and drifts across the road on long drives)
    """

    static_boxes: np.ndarray
    static_material: np.ndarray
    static_colour: np.ndarray
    obj_cls: np.ndarray
    obj_size: np.ndarray
    obj_p0: np.ndarray
    obj_v: np.ndarray
    obj_yaw: np.ndarray
    obj_colour: np.ndarray
    obj_reflect: np.ndarray
    ego_p0: np.ndarray
    ego_v: float
    ego_yaw: float
    sun: np.ndarray
    brightness: float
    lidar_quality: float
    seed: int
    obj_lag: np.ndarray | None = None
    ego_lag: np.ndarray | None = None
    traffic_dt: float = TRAFFIC_DT_S
    ego_keeps_lane: bool = False

    def _ego_direction(self) -> np.ndarray:
        """Unit vector the ego moves along (world xy)."""
        if self.ego_keeps_lane:
            return np.array([1.0, 0.0])
        return np.array([np.cos(self.ego_yaw), np.sin(self.ego_yaw)])

    def ego_pose(self, t_s: float) -> np.ndarray:
        """4x4 transform base_link -> world at time ``t_s`` (seconds since the drive start)."""
        c, s = np.cos(self.ego_yaw), np.sin(self.ego_yaw)
        T = np.eye(4)
        T[:2, :2] = [[c, -s], [s, c]]
        if self.ego_lag is None:
            T[:2, 3] = self.ego_p0 + self.ego_v * t_s * self._ego_direction()
        else:
            lag = interpolate(self.ego_lag, self.traffic_dt, t_s)[0]
            T[:2, 3] = self.ego_p0 + (self.ego_v * t_s - lag) * self._ego_direction()
        return T

    def ego_velocity(self, t_s: float | None = None) -> np.ndarray:
        """Ego world velocity (2,) in m/s (at ``t_s`` when the ego brakes for traffic)."""
        speed = self.ego_v
        if self.ego_lag is not None and t_s is not None:
            speed = speed - float(interpolate(self.ego_lag, self.traffic_dt, t_s)[1])
        return speed * self._ego_direction()

    def object_boxes(self, t_s: float) -> np.ndarray:
        """(N, 7) world boxes of the moving objects at time ``t_s``."""
        n = len(self.obj_cls)
        boxes = np.empty((n, 7))
        boxes[:, :2] = self.obj_p0 + self.obj_v * t_s
        if self.obj_lag is not None:  # followers move along x; zero lag leaves the free position as it is
            boxes[:, 0] -= np.sign(self.obj_v[:, 0]) * interpolate(self.obj_lag, self.traffic_dt, t_s)[0]
        boxes[:, 2] = self.obj_size[:, 2] / 2
        boxes[:, 3:6] = self.obj_size
        boxes[:, 6] = self.obj_yaw
        return boxes

    def object_velocity(self, t_s: float) -> np.ndarray:
        """(N, 2) world velocities of the moving objects at time ``t_s`` (m/s)."""
        if self.obj_lag is None:
            return self.obj_v
        v = self.obj_v.copy()
        v[:, 0] -= np.sign(v[:, 0]) * interpolate(self.obj_lag, self.traffic_dt, t_s)[1]
        return v


def _uniform(rng: np.random.Generator, lo_hi, n: int) -> np.ndarray:
    return rng.uniform(lo_hi[0], lo_hi[1], n)


def _sizes(rng: np.random.Generator, cls: int, n: int) -> np.ndarray:
    r = _SIZE_RANGES[cls]
    return np.stack([_uniform(rng, r[0], n), _uniform(rng, r[1], n), _uniform(rng, r[2], n)], axis=1)


def _spawn_line(rng, x_lo, x_hi, gap_lo, gap_hi):
    xs, x = [], x_lo + rng.uniform(0, gap_hi)
    while x < x_hi:
        xs.append(x)
        x += rng.uniform(gap_lo, gap_hi)
    return np.array(xs)


def make_world(seed: int, duration_s: float = 20.0, density: float | None = None, avoid_collisions: bool = True
               ) -> World:
    """Generate a deterministic street scene.

    Parameters
    ----------
    seed : int
        Everything (layout, traffic, colours, lighting) follows from it.
    duration_s : float
        How long the ego drives; the scene is made long enough for it.
    density : float, optional
        Traffic density multiplier (default: drawn from the seed in [0.5, 1.5]).
    avoid_collisions : bool
        Vehicles, cyclists and the ego brake for what is ahead of them instead of driving through it
        (fusion_monitor.sim.traffic); the ego keeps its lane; parked cars in the ego's lane are left out. The
        rest of the scene is the one drawn from the seed either way. On by default (``SIM_REVISION`` 2); off
        gives the first revision's traffic, which drives through the ego car.
    """
    if duration_s <= 0 or not np.isfinite(duration_s):
        raise ValueError(f"duration_s must be a positive number, got {duration_s!r}")
    rng = np.random.default_rng(seed)
    dens = float(rng.uniform(0.5, 1.5) if density is None else density)
    ego_v = float(rng.choice([0.0, rng.uniform(2, 8), rng.uniform(8, 14)], p=[0.1, 0.3, 0.6]))
    ego_lane_y = float(rng.choice([-1.75, -5.25], p=[0.7, 0.3]))
    ego_yaw = float(rng.normal(0, 0.03))
    span = ego_v * duration_s
    margin = 140.0 + 15.0 * duration_s
    x_lo, x_hi = -margin, span + margin

    cls, size, p0, vel, yaw = [], [], [], [], []

    def add(c, xs, ys, vx, vy, yaws):
        n = len(xs)
        if n == 0:
            return
        cls.append(np.full(n, c))
        size.append(_sizes(rng, c, n))
        p0.append(np.stack([xs, ys], 1))
        vel.append(np.stack([np.broadcast_to(vx, n), np.broadcast_to(vy, n)], 1).astype(float))
        yaw.append(np.broadcast_to(yaws, n).astype(float))

    # Vehicles in four lanes: lanes at y<0 drive +x, lanes at y>0 drive -x.
    for lane_y, direction in ((-5.25, 1), (-1.75, 1), (1.75, -1), (5.25, -1)):
        speed = ego_v if lane_y == ego_lane_y else float(rng.uniform(0, 14) if rng.random() < 0.85 else 0.0)
        gap = (10.0 / dens, 40.0 / dens)
        xs = _spawn_line(rng, x_lo, x_hi, max(gap[0], 11.0), max(gap[1], 14.0))
        if lane_y == ego_lane_y:  # keep the ego's own slot free
            xs = xs[np.abs(xs - 0.0) > 14.0]
        is_truck = rng.random(len(xs)) < 0.18
        jitter = rng.normal(0, 0.25, len(xs))
        yaw_dir = 0.0 if direction > 0 else np.pi
        yaw_j = rng.normal(0, 0.03, len(xs))
        for c, m in ((0, ~is_truck), (1, is_truck)):
            add(c, xs[m], lane_y + jitter[m], direction * speed, 0.0, yaw_dir + yaw_j[m])
    # Parked cars at the road edges (random heading along the road).
    for side in (-1, 1):
        xs = _spawn_line(rng, x_lo, x_hi, 7.0, 60.0 / dens)
        keep = rng.random(len(xs)) < 0.6
        xs = xs[keep]
        yaws = np.where(rng.random(len(xs)) < 0.5, 0.0, np.pi) + rng.normal(0, 0.08, len(xs))
        add(0, xs, side * (ROAD_HALF_WIDTH_M - 1.1) + rng.normal(0, 0.1, len(xs)), 0.0, 0.0, yaws)
    # Cyclists near the road edge, in the driving direction.
    for side, direction in ((-1, 1), (1, -1)):
        xs = _spawn_line(rng, x_lo, x_hi, 25.0, 150.0 / dens)
        sp = rng.uniform(2.5, 7.0, len(xs))
        ys = side * rng.uniform(3.8, 4.6, len(xs))
        add(3, xs, ys, direction * sp, 0.0, (0.0 if direction > 0 else np.pi) + rng.normal(0, 0.05, len(xs)))
    # Pedestrians on the sidewalks, walking either way, some standing.
    for side in (-1, 1):
        xs = _spawn_line(rng, x_lo, x_hi, 2.0, 30.0 / dens)
        n = len(xs)
        sp = rng.uniform(0.8, 1.8, n) * (rng.random(n) > 0.2) * np.where(rng.random(n) < 0.5, 1, -1)
        ys = side * rng.uniform(ROAD_HALF_WIDTH_M + 0.6, SIDEWALK_OUTER_M - 0.6, n)
        yaws = np.where(sp >= 0, 0.0, np.pi) + rng.normal(0, 0.1, n)
        add(2, xs, ys, sp, 0.0, yaws)
    # A few pedestrians crossing the road near the ego's path.
    n_cross = int(rng.poisson(1.5 * dens))
    if n_cross:
        xs = rng.uniform(-40, span + 60, n_cross)
        side = np.where(rng.random(n_cross) < 0.5, 1, -1)
        sp = rng.uniform(0.9, 1.6, n_cross)
        ys = side * rng.uniform(7.5, 10.0, n_cross) + side * (-1) * sp * rng.uniform(0, duration_s, n_cross) * 0.3
        add(2, xs, ys, 0.0, -side * sp, np.where(side > 0, -np.pi / 2, np.pi / 2))

    obj_cls = np.concatenate(cls).astype(np.int64)
    obj_size = np.concatenate(size)
    obj_p0 = np.concatenate(p0)
    obj_v = np.concatenate(vel)
    obj_yaw = np.concatenate(yaw)
    n = len(obj_cls)
    prim = _CAR_COLOURS[rng.integers(0, len(_CAR_COLOURS), n)]
    sec = _CLOTHES[rng.integers(0, len(_CLOTHES), n)]
    is_person = (obj_cls == 2) | (obj_cls == 3)
    prim = np.where(is_person[:, None], _CLOTHES[rng.integers(0, len(_CLOTHES), n)], prim)
    truck = obj_cls == 1
    cargo = np.array([0.85, 0.85, 0.82], np.float32) * rng.uniform(0.7, 1.05, (n, 1)).astype(np.float32)
    sec = np.where(truck[:, None], cargo, sec)
    colour = np.stack([prim, sec], 1).astype(np.float32)
    # Dark paint reflects little laser light: the LiDAR loses dark cars first.
    lum = prim.mean(1)
    reflect = np.clip(0.08 + 0.9 * lum + rng.normal(0, 0.05, n), 0.04, 1.0).astype(np.float32)
    reflect = np.where(is_person, rng.uniform(0.2, 0.5, n), reflect).astype(np.float32)

    # Static structure: buildings behind the sidewalks, poles on the kerb.
    sb, sm, sc = [], [], []
    for side in (-1, 1):
        x = x_lo
        while x < x_hi:
            length = rng.uniform(8, 30)
            depth = rng.uniform(8, 15)
            setback = rng.uniform(12, 17)
            height = rng.uniform(5, 20)
            sb.append([x + length / 2, side * (setback + depth / 2), height / 2, length, depth, height, 0.0])
            sm.append(MAT_BUILDING)
            sc.append(rng.uniform(0.35, 0.85, 3) * np.array([1.0, 0.95, 0.85]))
            x += length + rng.uniform(0, 8)
        for xp in _spawn_line(rng, x_lo, x_hi, 15.0, 35.0):
            sb.append([xp, side * (ROAD_HALF_WIDTH_M + 0.4), 3.0, 0.25, 0.25, 6.0, 0.0])
            sm.append(MAT_POLE)
            sc.append(np.array([0.45, 0.45, 0.47]))
    az = rng.uniform(0, 2 * np.pi)
    el = rng.uniform(0.3, 1.2)
    sun = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], np.float32)
    world = World(
        static_boxes=np.array(sb, float),
        static_material=np.array(sm, np.int64),
        static_colour=np.array(sc, np.float32),
        obj_cls=obj_cls,
        obj_size=obj_size,
        obj_p0=obj_p0,
        obj_v=obj_v,
        obj_yaw=obj_yaw,
        obj_colour=colour,
        obj_reflect=reflect,
        ego_p0=np.array([0.0, ego_lane_y]),
        ego_v=ego_v,
        ego_yaw=ego_yaw,
        sun=sun,
        brightness=float(rng.uniform(0.55, 1.15)),
        lidar_quality=float(rng.uniform(0.6, 1.0)),
        seed=int(seed),
    )
    if not avoid_collisions:
        return world
    blocked = parked_in_ego_lane(world.obj_cls, world.obj_size, world.obj_p0, world.obj_v, world.obj_yaw,
                                 world.ego_p0)
    if blocked.any():  # after every draw, so the rest of the scene stays as drawn
        keep = ~blocked
        world = replace(world, obj_cls=obj_cls[keep], obj_size=obj_size[keep], obj_p0=obj_p0[keep],
                        obj_v=obj_v[keep], obj_yaw=obj_yaw[keep], obj_colour=colour[keep], obj_reflect=reflect[keep])
    obj_lag, ego_lag = traffic_lags(world.obj_cls, world.obj_size, world.obj_p0, world.obj_v, world.obj_yaw,
                                    world.ego_p0, world.ego_v, world.ego_yaw, duration_s, ego_direction=(1.0, 0.0))
    return replace(world, obj_lag=obj_lag, ego_lag=ego_lag, ego_keeps_lane=True)
