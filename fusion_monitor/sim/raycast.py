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


#: Boxes tested against at most this many rays go through the batched (ray, box) pair path of :func:`cast`
#: (per-box numpy call overhead would dominate), larger ones box by box (no per-pair copies of box parameters).
_PAIR_BATCH_RAYS = 1500


def _inverse(d: np.ndarray) -> np.ndarray:
    """1 / d with components below 1e-9 in magnitude (zero or negative tiny) replaced by 1e-9 (float32)."""
    return 1.0 / np.where(np.abs(d) < 1e-9, np.float32(1e-9), d)


class _Rays:
    """Ray directions as rows (3, R) and their inverses, the form the slab tests read them in."""

    def __init__(self, dirs: np.ndarray):
        self.d = np.ascontiguousarray(dirs.T)
        self.inv = _inverse(self.d)
        self.index = np.arange(dirs.shape[0])

    def inverse_in_box(self, sub, c, s, rotated) -> list[np.ndarray]:
        """Inverse directions of rays ``sub`` in the frames of boxes with yaw cos/sin ``c``, ``s`` (scalars, or
        arrays per ray with the mask ``rotated``; boxes not rotated use the world inverses as they are)."""
        inv = [self.inv[0, sub], self.inv[1, sub], self.inv[2, sub]]
        if np.ndim(rotated) == 0:
            if rotated:
                d0, d1 = self.d[0, sub], self.d[1, sub]
                inv[0], inv[1] = _inverse(c * d0 + s * d1), _inverse(-s * d0 + c * d1)
            return inv
        if rotated.any():
            r = np.flatnonzero(rotated)
            sr = sub[r]
            d0, d1, cr, snr = self.d[0, sr], self.d[1, sr], c[r], s[r]
            inv[0][r], inv[1][r] = _inverse(cr * d0 + snr * d1), _inverse(-snr * d0 + cr * d1)
        return inv


def _slab(inv: list[np.ndarray], lo, hi) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Slab test from inverse directions in the box frame ``inv`` (three (n,) arrays) and the box min / max
    corners minus the origin ``lo``, ``hi`` ((3,) for one box, or (n, 3)): (tnear, hit mask, near t per axis).
    The same float32 arithmetic as one (n, 3) array; max / min over the axes do not depend on order."""
    lo, hi = np.asarray(lo), np.asarray(hi)
    tn, tf = [], []
    for a in range(3):
        t1, t2 = lo[..., a] * inv[a], hi[..., a] * inv[a]
        tn.append(np.minimum(t1, t2))
        tf.append(np.maximum(t1, t2))
    tnear = np.maximum(np.maximum(tn[0], tn[1]), tn[2])
    tfar = np.minimum(np.minimum(tf[0], tf[1]), tf[2])
    return tnear, (tnear <= tfar) & (tnear > 1e-3), tn


def _face_axis(tn: list[np.ndarray], hit: np.ndarray) -> np.ndarray:
    """Axis of the largest near t per hit (the first on ties, as argmax)."""
    t0, t1, t2 = tn[0][hit], tn[1][hit], tn[2][hit]
    return np.where(t0 >= np.maximum(t1, t2), 0, np.where(t1 >= t2, 1, 2))


def _slab_update(rays: _Rays, sub, c: np.float32, s: np.float32, lo: np.ndarray, hi: np.ndarray, k: int,
                 best_t: np.ndarray, best_i: np.ndarray, best_ax: np.ndarray, near: float = 0.0) -> None:
    """Rays ``sub`` against box ``k``, at least ``near`` (m) away: a hit replaces the best distance / index /
    face axis in place when nearer, or as near with a lower box index (boxes may come in any order). Rays
    already hit no farther than ``near`` are skipped."""
    sub = rays.index[sub]
    if near > 0:
        sub = sub[best_t[sub] > near]
        if not len(sub):
            return
    tnear, hit, tn = _slab(rays.inverse_in_box(sub, c, s, not (c == 1 and s == 0)), lo, hi)
    cur = best_t[sub]
    hit &= (tnear < cur) | ((tnear == cur) & (k < best_i[sub]))
    if not hit.any():
        return
    idx = sub[hit]
    best_t[idx] = tnear[hit]
    best_i[idx] = k
    best_ax[idx] = _face_axis(tn, hit)


def _near_bound(o: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(B,) a lower bound (m) of the distance from ``o`` to each box, safe against the float32 slab arithmetic
    (0 when ``o`` is inside)."""
    c, s = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    dx, dy = o[0] - boxes[:, 0], o[1] - boxes[:, 1]
    local = np.abs(np.stack([c * dx + s * dy, -s * dx + c * dy, o[2] - boxes[:, 2]], 1))
    out = np.linalg.norm(np.maximum(local - boxes[:, 3:6] / 2, 0.0), axis=1)
    return np.maximum(out * (1 - 1e-4) - 1e-3, 0.0)


def _slab_pairs(rays: _Rays, subsets: list, boxes: np.ndarray, c: np.ndarray, s: np.ndarray, lo: np.ndarray,
                hi: np.ndarray, best_t: np.ndarray, best_i: np.ndarray, best_ax: np.ndarray,
                near: np.ndarray | None = None) -> None:
    """Boxes ``boxes`` (increasing indices) against their ray ``subsets`` as one batch of (ray, box) pairs; per ray
    the nearest pair (lowest box index on ties) replaces the best so far when nearer, or as near with a lower
    box index (the ground, index GROUND, keeps ties). ``near``: per box, a lower bound of its distance."""
    parts = [rays.index[sub] for sub in subsets]
    ray_idx = np.concatenate(parts)
    box_idx = np.repeat(boxes, [len(p) for p in parts])
    if near is not None:  # rays already hit in front of the box cannot hit it first
        live = best_t[ray_idx] > near[box_idx]
        ray_idx, box_idx = ray_idx[live], box_idx[live]
    cb, sb = c[box_idx], s[box_idx]
    tnear, hit, tn = _slab(rays.inverse_in_box(ray_idx, cb, sb, (cb != 1) | (sb != 0)), lo[box_idx], hi[box_idx])
    hit &= tnear <= best_t[ray_idx]
    if not hit.any():
        return
    rh, th, bh = ray_idx[hit], tnear[hit], box_idx[hit]
    axh = _face_axis(tn, hit)
    order = np.lexsort((th, rh))  # stable: equal (ray, t) keep the pair order, i.e. the lower box first
    rh, th, bh, axh = rh[order], th[order], bh[order], axh[order]
    first = np.r_[True, rh[1:] != rh[:-1]]
    rh, th, bh, axh = rh[first], th[first], bh[first], axh[first]
    cur_t, cur_i = best_t[rh], best_i[rh]
    win = (th < cur_t) | ((th == cur_t) & (bh < cur_i))
    rh = rh[win]
    best_t[rh] = th[win]
    best_i[rh] = bh[win]
    best_ax[rh] = axh[win]


def _box_frame(o: np.ndarray, d: np.ndarray, t: np.ndarray, boxes: np.ndarray, b: np.ndarray, ax: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Box-frame hit points (n, 3) and world face normals (n, 3), float32, of rays ``d`` hitting boxes ``b`` at
    ``t`` on face axis ``ax`` (column by column: the same values as whole-array arithmetic, fewer copies)."""
    n = len(b)
    cols = np.ascontiguousarray(boxes.T)
    c, s = np.cos(cols[6])[b], np.sin(cols[6])[b]
    step = d * t[:, None]
    dx, dy = (o[0] + step[:, 0]) - cols[0][b], (o[1] + step[:, 1]) - cols[1][b]
    local = np.empty((n, 3), np.float32)
    local[:, 0] = c * dx + s * dy
    local[:, 1] = -s * dx + c * dy
    local[:, 2] = (o[2] + step[:, 2]) - cols[2][b]
    sign = np.sign(np.take_along_axis(local, ax[:, None], 1)[:, 0]).astype(np.float64)  # outward along the axis
    nl = [np.where(ax == a, sign, 0.0) for a in range(3)]
    normal = np.empty((n, 3), np.float32)
    normal[:, 0] = c * nl[0] - s * nl[1]
    normal[:, 1] = s * nl[0] + c * nl[1]
    normal[:, 2] = nl[2]
    return local, normal


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
    # Boxes with many candidate rays one by one, nearest first; boxes with few candidate rays all at once as
    # (ray, box) pairs. A hit wins when nearer, or as near with a lower box index (the ground keeps ties): the
    # result of sorting every (ray, box) pair by distance. The slab arithmetic is the same float32 either way.
    nb = len(boxes)
    if nb:
        bx = boxes.astype(np.float32)
        c, s = np.cos(bx[:, 6]), np.sin(bx[:, 6])
        ox, oy, oz = np.float32(o[0]) - bx[:, 0], np.float32(o[1]) - bx[:, 1], np.float32(o[2]) - bx[:, 2]
        ol = np.stack([c * ox + s * oy, -s * ox + c * oy, oz], 1)  # (B, 3) origin in each box frame
        half = bx[:, 3:6] * 0.5
        lo, hi = -half - ol, half - ol
        subsets = [slice(None)] * nb if ray_subsets is None else [
            sub if isinstance(sub, slice) else np.asarray(sub, np.int64) for sub in ray_subsets]
        sizes = [len(range(R)[sub]) if isinstance(sub, slice) else len(sub) for sub in subsets]
        few = [k for k in range(nb) if sizes[k] <= _PAIR_BATCH_RAYS and sizes[k]]
        rays = _Rays(dirs)
        near = _near_bound(o, np.asarray(boxes, np.float64))
        for k in sorted((k for k in range(nb) if sizes[k] > _PAIR_BATCH_RAYS), key=lambda k: near[k]):
            # nearest first: rays they hit are skipped for the boxes behind them
            _slab_update(rays, subsets[k], c[k], s[k], lo[k], hi[k], k, best_t, best_i, best_ax, near[k])
        if few:
            _slab_pairs(rays, [subsets[k] for k in few], np.array(few), c, s, lo, hi, best_t, best_i, best_ax,
                        near)
    far = best_t > max_range_m
    best_i[far] = NO_HIT
    best_t[far] = np.inf
    # Local coordinates and normals.
    local = np.zeros((R, 3), np.float32)
    normal = np.zeros((R, 3), np.float32)
    normal[:, 2] = 1.0
    bi = np.flatnonzero(best_i >= 0)
    if len(bi):
        local[bi], normal[bi] = _box_frame(o, dirs[bi], best_t[bi], boxes, best_i[bi], best_ax[bi])
    gi = np.flatnonzero(best_i == GROUND)
    if len(gi):
        local[gi] = o + dirs[gi] * best_t[gi, None]
    return Hits(t=best_t, index=best_i, local=local, axis=best_ax, normal=normal)
