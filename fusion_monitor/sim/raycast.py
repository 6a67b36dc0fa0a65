"""Vectorised ray casting against oriented boxes and the ground plane (z = 0)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fusion_monitor.sim.world import World

NO_HIT = -1
GROUND = -2


@dataclass(frozen=True)
class SceneBoxes:
    """Every box of the scene at one instant, in the world frame.

    boxes (B, 7) [cx, cy, cz, l, w, h, yaw]; material (B,) class id or MAT_*; colour (B, 2, 3);
    reflect (B,) LiDAR reflectivity; obj_index (B,) row into the world's objects, -1 for static.
    """

    boxes: np.ndarray
    material: np.ndarray
    colour: np.ndarray
    reflect: np.ndarray
    obj_index: np.ndarray

    def subset(self, keep: np.ndarray) -> SceneBoxes:
        return SceneBoxes(self.boxes[keep], self.material[keep], self.colour[keep], self.reflect[keep],
                          self.obj_index[keep])


def scene_at(world: World, t_s: float) -> SceneBoxes:
    """All boxes (static + moving) at time ``t_s``."""
    ob = world.object_boxes(t_s)
    ns = len(world.static_boxes)
    static_col = np.repeat(world.static_colour[:, None, :], 2, axis=1)
    static_ref = np.where(world.static_material == 10, 0.35, 0.5).astype(np.float32)
    return SceneBoxes(
        boxes=np.concatenate([world.static_boxes, ob]),
        material=np.concatenate([world.static_material, world.obj_cls]),
        colour=np.concatenate([static_col, world.obj_colour]),
        reflect=np.concatenate([static_ref, world.obj_reflect]),
        obj_index=np.concatenate([np.full(ns, -1), np.arange(len(ob))]),
    )


def box_corners(boxes: np.ndarray) -> np.ndarray:
    """(B, 8, 3) corners of boxes (B, 7)."""
    sx = np.array([1, 1, 1, 1, -1, -1, -1, -1]) * 0.5
    sy = np.array([1, 1, -1, -1, 1, 1, -1, -1]) * 0.5
    sz = np.array([1, -1, 1, -1, 1, -1, 1, -1]) * 0.5
    lx = boxes[:, None, 3] * sx
    ly = boxes[:, None, 4] * sy
    lz = boxes[:, None, 5] * sz
    c, s = np.cos(boxes[:, 6:7]), np.sin(boxes[:, 6:7])
    x = boxes[:, None, 0] + c * lx - s * ly
    y = boxes[:, None, 1] + s * lx + c * ly
    z = boxes[:, None, 2] + lz
    return np.stack([x, y, z], axis=-1)


@dataclass
class Hits:
    """Result of a cast for R rays: distance t (inf = none), hit box (index, GROUND or NO_HIT), local
    hit point in the box frame (R, 3), face axis (0/1/2) and world normal (R, 3)."""

    t: np.ndarray
    index: np.ndarray
    local: np.ndarray
    axis: np.ndarray
    normal: np.ndarray


def cast(origin: np.ndarray, dirs: np.ndarray, boxes: np.ndarray, ray_subsets=None, max_range_m: float = 1e4) -> Hits:
    """Cast rays from one origin against boxes and the ground plane.

    Parameters
    ----------
    origin : (3,) ray origin in metres (world).
    dirs : (R, 3) unit ray directions (world).
    boxes : (B, 7) world boxes.
    ray_subsets : list of length B of index arrays (or slices) into the rays, or None for all rays.
        Only these rays are tested against the box (angular culling done by the caller).
    max_range_m : hits further than this are dropped.
    """
    dirs = np.asarray(dirs, np.float32)
    R = len(dirs)
    o = np.asarray(origin, np.float64)
    best_t = np.full(R, np.inf, np.float32)
    best_i = np.full(R, NO_HIT, np.int64)
    best_ax = np.zeros(R, np.int64)
    # Ground plane.
    dz = dirs[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        tg = np.where(dz < -1e-6, -o[2] / dz, np.inf).astype(np.float32)
    g = tg < max_range_m
    best_t[g] = tg[g]
    best_i[g] = GROUND
    best_ax[g] = 2
    # All (ray, box) candidate pairs at once.
    nb = len(boxes)
    if nb:
        if ray_subsets is None:
            ray_idx = np.tile(np.arange(R), nb)
            box_idx = np.repeat(np.arange(nb), R)
        else:
            parts = [np.arange(R)[sub] if isinstance(sub, slice) else np.asarray(sub, np.int64) for sub in ray_subsets]
            ray_idx = np.concatenate(parts) if parts else np.zeros(0, np.int64)
            box_idx = np.repeat(np.arange(nb), [len(p) for p in parts])
    else:
        ray_idx = box_idx = np.zeros(0, np.int64)
    if len(ray_idx):
        bx = boxes.astype(np.float32)
        c, s = np.cos(bx[:, 6]), np.sin(bx[:, 6])
        ox, oy, oz = np.float32(o[0]) - bx[:, 0], np.float32(o[1]) - bx[:, 1], np.float32(o[2]) - bx[:, 2]
        ol = np.stack([c * ox + s * oy, -s * ox + c * oy, oz], 1)[box_idx]  # (P, 3)
        cp, sp = c[box_idx], s[box_idx]
        d = dirs[ray_idx]
        dl = np.stack([cp * d[:, 0] + sp * d[:, 1], -sp * d[:, 0] + cp * d[:, 1], d[:, 2]], 1)
        half = bx[box_idx, 3:6] * 0.5
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / np.where(np.abs(dl) < 1e-9, np.float32(1e-9), dl)
            t1 = (-half - ol) * inv
            t2 = (half - ol) * inv
        tn = np.minimum(t1, t2)
        tnear = tn.max(1)
        tfar = np.maximum(t1, t2).min(1)
        hit = (tnear <= tfar) & (tnear > 1e-3) & (tnear < best_t[ray_idx])
        if hit.any():
            rh, th, bh = ray_idx[hit], tnear[hit], box_idx[hit]
            axh = tn[hit].argmax(1)
            order = np.lexsort((th, rh))
            rh, th, bh, axh = rh[order], th[order], bh[order], axh[order]
            first = np.r_[True, rh[1:] != rh[:-1]]
            rh, th, bh, axh = rh[first], th[first], bh[first], axh[first]
            best_t[rh] = th
            best_i[rh] = bh
            best_ax[rh] = axh
    hit_any = best_i != NO_HIT
    far = best_t > max_range_m
    best_i[far] = NO_HIT
    best_t[far] = np.inf
    hit_any &= ~far
    # Local coordinates and normals.
    local = np.zeros((R, 3), np.float32)
    normal = np.zeros((R, 3), np.float32)
    normal[:, 2] = 1.0
    bi = np.flatnonzero(best_i >= 0)
    if len(bi):
        bx = boxes[best_i[bi]]
        p = o + dirs[bi] * best_t[bi, None]
        c, s = np.cos(bx[:, 6]), np.sin(bx[:, 6])
        dx, dy = p[:, 0] - bx[:, 0], p[:, 1] - bx[:, 1]
        local[bi, 0] = c * dx + s * dy
        local[bi, 1] = -s * dx + c * dy
        local[bi, 2] = p[:, 2] - bx[:, 2]
        ax = best_ax[bi]
        half = bx[:, 3:6] / 2
        sign = np.sign(local[bi, ax] / np.maximum(half[np.arange(len(bi)), ax], 1e-6))
        nl = np.zeros((len(bi), 3))
        nl[np.arange(len(bi)), ax] = sign
        normal[bi, 0] = c * nl[:, 0] - s * nl[:, 1]
        normal[bi, 1] = s * nl[:, 0] + c * nl[:, 1]
        normal[bi, 2] = nl[:, 2]
    gi = best_i == GROUND
    if gi.any():
        p = o + dirs[gi] * best_t[gi, None]
        local[gi] = p
    return Hits(t=best_t, index=best_i, local=local, axis=best_ax, normal=normal)
