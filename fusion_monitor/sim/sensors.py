"""Sensor models of the simulator: pinhole cameras, a 32-beam spinning LiDAR, ARS408-like radars.

All renderers take the scene at one instant and the sensor pose, and return what the sensor
reports in its own frame.
"""

from __future__ import annotations

import numpy as np

from fusion_monitor.sim.raycast import GROUND, NO_HIT, SceneBoxes, box_corners, cast
from fusion_monitor.sim.world import MAT_BUILDING, MAT_POLE, ROAD_HALF_WIDTH_M, SIDEWALK_OUTER_M, World

# HDL-32E: 32 beams from -30.67 to +10.67 deg, 1084 azimuth steps per turn (nuScenes ~34.7k rays).
LIDAR_ELEVATIONS_DEG = np.linspace(-30.67, 10.67, 32)
LIDAR_AZIMUTH_STEPS = 1084
LIDAR_MAX_RANGE_M = 80.0

RADAR_FIELDS = [
    ("x", np.float32), ("y", np.float32), ("z", np.float32), ("dyn_prop", np.int8), ("id", np.int16),
    ("rcs", np.float32), ("vx", np.float32), ("vy", np.float32), ("vx_comp", np.float32),
    ("vy_comp", np.float32), ("is_quality_valid", np.int8), ("ambig_state", np.int8), ("x_rms", np.int8),
    ("y_rms", np.int8), ("invalid_state", np.int8), ("pdh0", np.int8), ("vx_rms", np.int8), ("vy_rms", np.int8),
]
RADAR_DTYPE = np.dtype(RADAR_FIELDS)
RADAR_FOV_DEG = 60.0
RADAR_MAX_RANGE_M = 100.0

_SKY_TOP = np.array([0.35, 0.55, 0.85], np.float32)
_SKY_HORIZON = np.array([0.75, 0.82, 0.9], np.float32)


def _hash01(a: np.ndarray, b: np.ndarray, seed: int) -> np.ndarray:
    """Deterministic pseudo-random values in [0, 1) from integer grid coordinates."""
    h = (a.astype(np.int64) * 73856093) ^ (b.astype(np.int64) * 19349663) ^ (seed * 83492791)
    h = (h ^ (h >> 13)) * 1274126177
    return ((h ^ (h >> 16)) & 0xFFFF).astype(np.float32) / 65536.0


# ----------------------------------------------------------------------------------------- camera
_RAY_CACHE: dict = {}


def camera_rays(K: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H*W, 3) unit ray directions in the camera frame (z forward), pixel centres at integer coordinates."""
    key = (width, height, tuple(np.round(np.asarray(K, float).ravel(), 9)))
    if key in _RAY_CACHE:
        return _RAY_CACHE[key]
    if len(_RAY_CACHE) > 64:
        _RAY_CACHE.clear()
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    Kinv = np.linalg.inv(K)
    pix = np.stack([u.ravel(), v.ravel(), np.ones(u.size)], 0)
    d = (Kinv @ pix).T
    d = (d / np.linalg.norm(d, axis=1, keepdims=True)).astype(np.float32)
    _RAY_CACHE[key] = d
    return d


# Corner pairs of the 12 box edges (box_corners order: corner i has bit 4 / 2 / 1 set for -x / -y / -z).
_EDGES = np.array([(i, i | b) for b in (1, 2, 4) for i in range(8) if not i & b])
#: Near plane (m) boxes are clipped at before projecting; below the depth of any hit the cast reports
#: (t > 1e-3 m along a ray of a camera with less than 160 deg field of view).
_NEAR_M = 1e-4


def _clipped_pixel_bounds(cc: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, ...]:
    """Pixel bounds (u_min, u_max, v_min, v_max) of the part of each box in front of the camera.

    ``cc`` (B, 8, 3) box corners in the camera frame (z forward). The box is clipped at the plane
    z = _NEAR_M: its projection lies within the projected corners in front of that plane and the
    points where its edges cross it, so these bounds contain every pixel whose ray can hit it.
    """
    p0, p1 = cc[:, _EDGES[:, 0]], cc[:, _EDGES[:, 1]]
    z0, z1 = p0[..., 2], p1[..., 2]
    crosses = (z0 - _NEAR_M) * (z1 - _NEAR_M) < 0
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(crosses, (_NEAR_M - z0) / (z1 - z0), 0.0)
    pts = np.concatenate([cc, p0 + f[..., None] * (p1 - p0)], 1)
    ok = np.concatenate([cc[..., 2] >= _NEAR_M, crosses], 1)
    z = np.maximum(pts[..., 2], _NEAR_M)
    u = K[0, 0] * pts[..., 0] / z + K[0, 2]
    v = K[1, 1] * pts[..., 1] / z + K[1, 2]
    return (np.where(ok, u, np.inf).min(1), np.where(ok, u, -np.inf).max(1),
            np.where(ok, v, np.inf).min(1), np.where(ok, v, -np.inf).max(1))


def render_camera(world: World, scene: SceneBoxes, T_world_cam: np.ndarray, K: np.ndarray, width: int, height: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Render one RGB image (height, width, 3) uint8 for a camera at ``T_world_cam`` with intrinsics K."""
    dirs_cam = camera_rays(K, width, height)
    R = T_world_cam[:3, :3]
    origin = T_world_cam[:3, 3]
    dirs = dirs_cam @ R.T.astype(np.float32)
    # Cull: keep boxes with a corner in front of the camera, and restrict rays to the box's pixel bbox.
    corners = box_corners(scene.boxes)  # (B, 8, 3)
    cc = (corners - origin) @ R  # camera frame
    depth = cc[..., 2]
    dist = np.linalg.norm(scene.boxes[:, :2] - origin[:2], axis=1)
    keep = (depth.max(1) > 0.1) & (dist < 250.0)
    idx = np.flatnonzero(keep)
    zc = np.maximum(depth[idx], 1e-3)
    u = K[0, 0] * cc[idx, :, 0] / zc + K[0, 2]
    v = K[1, 1] * cc[idx, :, 1] / zc + K[1, 2]
    umin, umax, vmin, vmax = u.min(1), u.max(1), v.min(1), v.max(1)
    straddle = np.flatnonzero(depth[idx].min(1) <= 0.1)
    if len(straddle):  # boxes reaching behind the camera: bound the part in front of it, one pixel wider
        bounds = _clipped_pixel_bounds(cc[idx[straddle]], K)
        umin[straddle], umax[straddle] = bounds[0] - 1, bounds[1] + 1
        vmin[straddle], vmax[straddle] = bounds[2] - 1, bounds[3] + 1
    u0 = np.floor(np.maximum(umin, 0)).astype(int)
    u1 = np.ceil(np.minimum(umax, width - 1)).astype(int)
    v0 = np.floor(np.maximum(vmin, 0)).astype(int)
    v1 = np.ceil(np.minimum(vmax, height - 1)).astype(int)
    visible = (u0 <= u1) & (v0 <= v1)
    pix_index = np.arange(width * height).reshape(height, width)
    subsets, boxes = [], []
    for k in np.flatnonzero(visible):
        boxes.append(idx[k])
        subsets.append(pix_index[v0[k]:v1[k] + 1, u0[k]:u1[k] + 1].ravel())
    sub_scene = scene.subset(np.array(boxes, dtype=np.int64))
    hits = cast(origin, dirs, sub_scene.boxes, subsets, max_range_m=400.0)
    rgb = shade(world, sub_scene, hits, dirs)
    rgb *= world.brightness
    rgb += rng.normal(0, 0.012, rgb.shape).astype(np.float32)
    np.clip(rgb, 0, 1, out=rgb)
    rgb *= 255
    rgb += 0.5
    return rgb.astype(np.uint8).reshape(height, width, 3)


_DARK = np.array([0.06, 0.06, 0.07], np.float32)
_GLASS = np.array([0.12, 0.16, 0.22], np.float32)


def _paint_objects(col: np.ndarray, scene: SceneBoxes, b: np.ndarray, loc: np.ndarray, ax: np.ndarray,
                  mat: np.ndarray) -> None:
    """Details of the road users' surfaces, in place on ``col`` (per hit: box index ``b`` into ``scene``, box-frame
    point, face axis, material); each class only touches (and looks up) its own hits."""
    for m in (0, 1, 2, 3):
        k = np.flatnonzero(mat == m)
        if not len(k):
            continue
        lk, sk, a = loc[k], scene.boxes[b[k], 3:6], ax[k]
        h = (lk[:, 2] + sk[:, 2] / 2) / sk[:, 2]  # 0 at the bottom, 1 at the top
        x = (lk[:, 0] + sk[:, 0] / 2) / sk[:, 0]  # 0 at the rear, 1 at the front
        if m == 0:  # cars: dark underbody and wheels, windows band, red tail lights, pale headlights
            col[k[h < 0.25]] = _DARK
            col[k[(h > 0.62) & (a != 2)]] = _GLASS
            band = (a == 0) & (h > 0.42) & (h < 0.55)
            side = np.abs(lk[:, 1]) / np.maximum(sk[:, 1] / 2, 1e-3) > 0.6
            col[k[band & (x < 0.5) & side]] = np.array([0.85, 0.05, 0.05], np.float32)
            col[k[band & (x > 0.5) & side]] = np.array([0.95, 0.95, 0.8], np.float32)
        elif m == 1:  # trucks: cab at the front in the primary colour, cargo box in the secondary one
            cargo = x < 0.72
            col[k[cargo]] = scene.colour[b[k[cargo]], 1]
            col[k[h < 0.2]] = _DARK
            col[k[~cargo & (h > 0.6) & (a != 2)]] = _GLASS
        elif m == 2:  # pedestrians: trousers, shirt, head
            legs = k[h < 0.48]
            col[legs] = scene.colour[b[legs], 1] * 0.5
            col[k[h > 0.86]] = np.array([0.55, 0.4, 0.3], np.float32)
        else:  # cyclists: bicycle (dark frame, see-through wheels as grey), rider above, helmet
            col[k[h < 0.42]] = np.array([0.2, 0.2, 0.22], np.float32)
            col[k[(h < 0.4) & ((x < 0.3) | (x > 0.7)) & (a != 0)]] = np.array([0.05, 0.05, 0.05], np.float32)
            col[k[h > 0.88]] = np.array([0.9, 0.9, 0.1], np.float32)


def shade(world: World, scene: SceneBoxes, hits, dirs: np.ndarray) -> np.ndarray:
    """(R, 3) float colours in [0, 1] for cast results."""
    n = len(dirs)
    rgb = np.empty((n, 3), np.float32)
    # Sky.
    sky = hits.index == NO_HIT
    el = np.clip(dirs[sky, 2], 0, 1)[:, None]
    rgb[sky] = _SKY_HORIZON + (_SKY_TOP - _SKY_HORIZON) * np.sqrt(el)
    # Ground: road, lane markings, kerb, sidewalk, verge.
    gi = np.flatnonzero(hits.index == GROUND)
    if len(gi):
        x, y = hits.local[gi, 0], hits.local[gi, 1]
        ay = np.abs(y)
        speckle = _hash01(np.floor(x * 3), np.floor(y * 3), world.seed) * 0.06
        col = np.empty((len(gi), 3), np.float32)
        road = ay < ROAD_HALF_WIDTH_M
        col[road] = np.array([0.27, 0.27, 0.29], np.float32)
        side = (ay >= ROAD_HALF_WIDTH_M) & (ay < SIDEWALK_OUTER_M)
        col[side] = np.array([0.58, 0.56, 0.53], np.float32)
        verge = ay >= SIDEWALK_OUTER_M
        col[verge] = np.array([0.3, 0.42, 0.22], np.float32)
        dashed = (np.abs(ay - 3.5) < 0.08) & (np.mod(x, 9.0) < 3.0)
        centre = np.abs(ay - 0.15) < 0.08
        edge = np.abs(ay - (ROAD_HALF_WIDTH_M - 0.3)) < 0.08
        col[dashed | edge] = np.array([0.85, 0.85, 0.85], np.float32)
        col[centre] = np.array([0.85, 0.7, 0.15], np.float32)
        kerb = np.abs(ay - ROAD_HALF_WIDTH_M) < 0.15
        col[kerb] = np.array([0.7, 0.7, 0.7], np.float32)
        col += speckle[:, None]
        rgb[gi] = col * (0.55 + 0.45 * max(float(world.sun[2]), 0.0))
    # Boxes.
    bi = np.flatnonzero(hits.index >= 0)
    if len(bi):
        b = hits.index[bi]
        mat = scene.material[b]
        col = scene.colour[b, 0]
        loc = hits.local[bi]
        ax = hits.axis[bi]
        _paint_objects(col, scene, b, loc, ax, mat)
        # Buildings: window grid.
        bld = mat == MAT_BUILDING
        if bld.any():
            along = np.where(ax == 0, loc[:, 1], loc[:, 0])
            zabs = loc[:, 2] + scene.boxes[b, 5] / 2
            win = bld & (ax != 2) & (np.mod(along, 3.0) < 1.6) & (np.mod(zabs, 3.2) > 1.2) & (zabs > 1.0)
            col[win] = _GLASS * 1.3
        col[mat == MAT_POLE] = np.array([0.4, 0.4, 0.42], np.float32)
        nrm = hits.normal[bi]
        lam = np.clip(nrm @ world.sun, 0, 1)
        col = col * (0.45 + 0.55 * lam[:, None])
        rgb[bi] = col
    # Haze with distance.
    fog = (1.0 - np.exp(-hits.t / 350.0))[:, None]  # 1 for the sky (t = inf), which keeps its colour
    return np.where(np.isfinite(hits.t)[:, None], rgb * (1 - fog) + _SKY_HORIZON * fog, rgb)


# ------------------------------------------------------------------------------------------ LiDAR
def lidar_rays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ray directions (A*32, 3) in the LiDAR frame, their ring index (A*32,) and azimuth column (A*32,),
    ordered by azimuth column."""
    az = np.linspace(0, 2 * np.pi, LIDAR_AZIMUTH_STEPS, endpoint=False)
    el = np.deg2rad(LIDAR_ELEVATIONS_DEG)
    A, E = np.meshgrid(az, el, indexing="ij")
    d = np.stack([np.cos(E) * np.cos(A), np.cos(E) * np.sin(A), np.sin(E)], -1).reshape(-1, 3)
    ring = np.tile(np.arange(32), LIDAR_AZIMUTH_STEPS)
    col = np.repeat(np.arange(LIDAR_AZIMUTH_STEPS), 32)
    return d.astype(np.float32), ring, col


_LIDAR_RAYS = lidar_rays()


def _over_footprint(boxes: np.ndarray, origin: np.ndarray, margin_m: float) -> np.ndarray:
    """(B,) whether ``origin`` (xy) lies within ``margin_m`` of each box's footprint."""
    c, s = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    dx, dy = origin[0] - boxes[:, 0], origin[1] - boxes[:, 1]
    return ((np.abs(c * dx + s * dy) <= boxes[:, 3] / 2 + margin_m)
            & (np.abs(-s * dx + c * dy) <= boxes[:, 4] / 2 + margin_m))


def render_lidar(world: World, scene: SceneBoxes, T_world_lidar: np.ndarray, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """One sweep: points (N, 5) float32 [x, y, z, intensity, ring] in the LiDAR frame, and the world object
    index of every point (-1 for ground and static structure)."""
    d_l, ring, col = _LIDAR_RAYS
    R = T_world_lidar[:3, :3]
    origin = T_world_lidar[:3, 3]
    dirs = d_l @ R.T.astype(np.float32)
    # Angular culling: per box, the azimuth columns (in the LiDAR's own rotation) it spans.
    rel = scene.boxes[:, :2] - origin[:2]
    dist = np.linalg.norm(rel, axis=1)
    near = dist - 0.5 * np.hypot(scene.boxes[:, 3], scene.boxes[:, 4]) < LIDAR_MAX_RANGE_M
    idx = np.flatnonzero(near)
    corners = box_corners(scene.boxes[idx])
    cl = (corners - origin) @ R  # LiDAR frame
    ang = np.arctan2(cl[..., 1], cl[..., 0])
    base = np.arctan2(cl[..., 1].mean(1), cl[..., 0].mean(1))
    dang = np.angle(np.exp(1j * (ang - base[:, None])))
    # Origin over the footprint (or the span near half a turn): test every ray. Otherwise the footprint is a
    # convex polygon beside the origin, and the azimuths of its corners bound those of all its points.
    inside = _over_footprint(scene.boxes[idx], origin, 0.1) | (np.abs(dang).max(1) > 2.5)
    step = 2 * np.pi / LIDAR_AZIMUTH_STEPS
    subsets = []
    n_rays = len(dirs)
    for k in range(len(idx)):
        if inside[k]:
            subsets.append(slice(None))
            continue
        a0 = base[k] + dang[k].min() - step
        a1 = base[k] + dang[k].max() + step
        c0, c1 = int(np.floor(a0 / step)), int(np.ceil(a1 / step))
        cols = np.mod(np.arange(c0, c1 + 1), LIDAR_AZIMUTH_STEPS)
        subsets.append((cols[:, None] * 32 + np.arange(32)).ravel() % n_rays)
    sub = scene.subset(idx)
    hits = cast(origin, dirs, sub.boxes, subsets, max_range_m=LIDAR_MAX_RANGE_M)
    t = hits.t
    valid = np.isfinite(t) & (t > 1.0)
    # Reflectivity per hit.
    refl = np.full(len(t), 0.1, np.float32)
    gi = hits.index == GROUND
    if gi.any():
        x, y = hits.local[gi, 0], hits.local[gi, 1]
        ay = np.abs(y)
        r = np.where(ay < ROAD_HALF_WIDTH_M, 0.08, np.where(ay < SIDEWALK_OUTER_M, 0.2, 0.12)).astype(np.float32)
        paint = ((np.abs(ay - 3.5) < 0.08) & (np.mod(x, 9.0) < 3.0)) | (np.abs(ay - 0.15) < 0.08) | (
            np.abs(ay - (ROAD_HALF_WIDTH_M - 0.3)) < 0.08)
        r[paint] = 0.6
        refl[gi] = r
    bi = hits.index >= 0
    refl[bi] = sub.reflect[hits.index[bi]]
    # Incidence and range dependent return probability: dark and far surfaces drop out first.
    cosi = np.abs(np.sum(hits.normal * -dirs, axis=1))
    strength = refl * (0.3 + 0.7 * cosi) / (1.0 + (np.where(valid, t, 0) / (45.0 * world.lidar_quality)) ** 2)
    p_ret = np.clip(strength * 30.0, 0, 0.98)  # scale: median sweep ~32k points (nuScenes-like 32-beam rig)
    valid &= rng.random(len(t)) < p_ret
    t_noisy = t + rng.normal(0, 0.02, len(t)).astype(np.float32)
    pts = d_l[valid] * t_noisy[valid, None]
    inten = np.clip(refl[valid] * cosi[valid] * 100 + rng.normal(0, 1.5, valid.sum()), 0, 255)
    out = np.empty((int(valid.sum()), 5), np.float32)
    out[:, :3] = pts
    out[:, 3] = inten
    out[:, 4] = ring[valid]
    index = hits.index[valid]
    obj = np.where(index >= 0, sub.obj_index[np.maximum(index, 0)], -1)
    return out, obj


# ------------------------------------------------------------------------------------------ radar
_RCS_MEAN = {0: 8.0, 1: 18.0, 2: -6.0, 3: 0.0, MAT_BUILDING: 12.0, MAT_POLE: 3.0}
_DET_PROB = {0: 0.9, 1: 0.95, 2: 0.35, 3: 0.5}
_N_POINTS = {0: (1, 3), 1: (2, 5), 2: (1, 1), 3: (1, 2)}


def render_radar(world: World, scene: SceneBoxes, T_world_radar: np.ndarray, ego_vel_xy: np.ndarray,
                 rng: np.random.Generator, first_id: int = 0, obj_vel: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """One ARS408-like sweep: structured array of RADAR_DTYPE in the radar frame (z = 0, 2D radar), plus the
    world object index per point (-1 for static returns and ghosts).

    Moving objects give a few points on their radar-facing surface with radial Doppler velocity (raw: relative
    to the ego; ``*_comp``: ego motion removed), static structure gives stationary clutter, and multipath ghosts
    appear at random places with random velocities. ``obj_vel``: the objects' world velocities at this instant
    (default ``world.obj_v``).
    """
    R = T_world_radar[:3, :3]
    origin = T_world_radar[:3, 3]
    rel = scene.boxes[:, :2] - origin[:2]
    lr = np.c_[rel, np.zeros(len(rel))] @ R  # radar frame
    rng_m = np.hypot(lr[:, 0], lr[:, 1])
    az = np.degrees(np.arctan2(lr[:, 1], lr[:, 0]))
    in_fov = (np.abs(az) < RADAR_FOV_DEG) & (rng_m < RADAR_MAX_RANGE_M) & (rng_m > 1.0)
    pts_xy, rcs, vabs, obj, dyn = [], [], [], [], []
    obj_vel = world.obj_v if obj_vel is None else obj_vel
    for b in np.flatnonzero(in_fov & (scene.obj_index >= 0)):
        c = int(scene.material[b])
        p = _DET_PROB[c] * (1.0 - 0.5 * rng_m[b] / RADAR_MAX_RANGE_M)
        if rng.random() > p:
            continue
        n = int(rng.integers(_N_POINTS[c][0], _N_POINTS[c][1] + 1))
        bx = scene.boxes[b]
        cy, sy = np.cos(bx[6]), np.sin(bx[6])
        # Closest point of the footprint to the radar, spread along the visible faces.
        o_local = np.array([cy * (origin[0] - bx[0]) + sy * (origin[1] - bx[1]),
                            -sy * (origin[0] - bx[0]) + cy * (origin[1] - bx[1])])
        half = bx[3:5] / 2
        closest = np.clip(o_local, -half, half)
        loc = np.clip(closest + rng.uniform(-1, 1, (n, 2)) * half * 0.5, -half, half)
        wx = bx[0] + cy * loc[:, 0] - sy * loc[:, 1]
        wy = bx[1] + sy * loc[:, 0] + cy * loc[:, 1]
        pts_xy.append(np.stack([wx, wy], 1))
        rcs.append(rng.normal(_RCS_MEAN[c], 3.0, n))
        vabs.append(np.repeat(obj_vel[scene.obj_index[b]][None], n, 0))
        obj.append(np.full(n, scene.obj_index[b]))
        moving = np.hypot(*obj_vel[scene.obj_index[b]]) > 0.3
        dyn.append(np.full(n, 0 if moving else 1))
    # Static clutter from buildings and poles.
    stat = np.flatnonzero(in_fov & (scene.obj_index < 0))
    if len(stat):
        n_clutter = int(rng.integers(3, 12))
        pick = stat[rng.integers(0, len(stat), n_clutter)]
        bx = scene.boxes[pick]
        cx, cy = bx[:, 0], bx[:, 1]
        to_radar = origin[:2] - bx[:, :2]
        face = np.sign(to_radar[:, 1]) * bx[:, 4] / 2
        wx = cx + rng.uniform(-0.5, 0.5, n_clutter) * bx[:, 3]
        wy = cy + face
        pts_xy.append(np.stack([wx, wy], 1))
        rcs.append(np.array([rng.normal(_RCS_MEAN[int(m)], 4.0) for m in scene.material[pick]]))
        vabs.append(np.zeros((n_clutter, 2)))
        obj.append(np.full(n_clutter, -1))
        dyn.append(np.full(n_clutter, 1))
    # Ghosts (multipath, clutter): random position and velocity.
    n_ghost = int(rng.poisson(2.0))
    if n_ghost:
        r = rng.uniform(3, RADAR_MAX_RANGE_M * 0.8, n_ghost)
        a = np.radians(rng.uniform(-RADAR_FOV_DEG, RADAR_FOV_DEG, n_ghost))
        local = np.stack([r * np.cos(a), r * np.sin(a), np.zeros(n_ghost)], 1)
        w = local @ R.T + origin
        pts_xy.append(w[:, :2])
        rcs.append(rng.normal(-5, 4, n_ghost))
        vabs.append(rng.normal(0, 4, (n_ghost, 2)))
        obj.append(np.full(n_ghost, -1))
        dyn.append(np.full(n_ghost, 4))
    if not pts_xy:
        return np.zeros(0, RADAR_DTYPE), np.zeros(0, np.int64)
    P = np.concatenate(pts_xy)
    V = np.concatenate(vabs)
    n = len(P)
    local = np.c_[P - origin[:2], np.zeros(n)] @ R
    rr = np.maximum(np.hypot(local[:, 0], local[:, 1]), 1e-3)
    # Measurement noise: range 0.1 m, azimuth 0.3 deg.
    rr_n = rr + rng.normal(0, 0.1, n)
    aa = np.arctan2(local[:, 1], local[:, 0]) + np.radians(rng.normal(0, 0.3, n))
    ux, uy = np.cos(aa), np.sin(aa)
    v_abs_l = np.c_[V, np.zeros(n)] @ R
    ego_l = np.r_[ego_vel_xy, 0.0] @ R
    vr_comp = v_abs_l[:, 0] * ux + v_abs_l[:, 1] * uy + rng.normal(0, 0.1, n)
    vr_raw = vr_comp - (ego_l[0] * ux + ego_l[1] * uy)
    out = np.zeros(n, RADAR_DTYPE)
    out["x"] = rr_n * ux
    out["y"] = rr_n * uy
    out["z"] = 0.0
    out["dyn_prop"] = np.concatenate(dyn)
    out["id"] = (first_id + np.arange(n)) % 32000
    out["rcs"] = np.concatenate(rcs)
    out["vx"] = vr_raw * ux
    out["vy"] = vr_raw * uy
    out["vx_comp"] = vr_comp * ux
    out["vy_comp"] = vr_comp * uy
    out["is_quality_valid"] = 1
    out["ambig_state"] = 3
    out["x_rms"] = np.clip(rr / 10, 0, 31).astype(np.int8)
    out["y_rms"] = np.clip(rr / 8, 0, 31).astype(np.int8)
    out["invalid_state"] = np.where(out["dyn_prop"] == 4, rng.integers(1, 17, n), 0)
    out["pdh0"] = np.where(out["dyn_prop"] == 4, 3, 1)
    out["vx_rms"] = 3
    out["vy_rms"] = 3
    return out, np.concatenate(obj)
