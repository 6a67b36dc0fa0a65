"""Parameter-free camera -> BEV lifting tables (Simple-BEV bilinear sampling as a constant gather).

Every voxel centre of the lift grid is projected into every camera; up to ``max_cameras`` cameras that see
it contribute 4 bilinear taps each into the stride-``stride`` feature map. The result is a flat gather
index into the concatenated camera feature rows (N_cam * Hf * Wf rows + one trailing zero row for invalid
taps) and matching weights already divided by the number of cameras seeing the voxel (masked mean).

Pixel convention: pixel centres at integer coordinates; feature coordinate f = (u + 0.5) / stride - 0.5,
which equals ``grid_sample(..., align_corners=False)`` on the feature map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fusion_monitor.sensors.preprocess import InputSpec

LIFT_LEVELS_Z_M = (0.3, 1.0, 1.7, 2.6)
LIFT_GRID = 64
TAPS_PER_CAMERA = 4


@dataclass(frozen=True)
class CameraCalib:
    """One camera slot: K at the model's image size (3x3) and the 4x4 camera -> base_link transform."""

    K: np.ndarray
    T_base_cam: np.ndarray


def lift_tables(cameras: list[CameraCalib | None], spec: InputSpec, stride: int = 8, grid: int = LIFT_GRID,
                levels_z_m=LIFT_LEVELS_Z_M, max_cameras: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Gather index (V * T,) int64 and weights (V, T) float32, V = levels * grid * grid voxels ordered
    (level, row = x, col = y), T = max_cameras * 4 taps. A ``None`` camera slot contributes nothing.
    """
    H, W = spec.image_hw
    if H % stride or W % stride:
        raise ValueError(f"image size {spec.image_hw} is not a multiple of the feature stride {stride}")
    Hf, Wf = H // stride, W // stride
    n_cam = len(cameras)
    zero_row = n_cam * Hf * Wf
    cell = 2 * spec.range_m / grid
    c = -spec.range_m + (np.arange(grid) + 0.5) * cell
    L = len(levels_z_m)
    X, Y = np.meshgrid(c, c, indexing="ij")
    pts = np.stack([np.broadcast_to(X, (L, grid, grid)), np.broadcast_to(Y, (L, grid, grid)),
                    np.broadcast_to(np.asarray(levels_z_m, float)[:, None, None], (L, grid, grid))], -1).reshape(-1, 3)
    V = len(pts)
    T = max_cameras * TAPS_PER_CAMERA
    index = np.full((V, T), zero_row, np.int64)
    weight = np.zeros((V, T), np.float64)
    used = np.zeros(V, np.int64)
    for k, cam in enumerate(cameras):
        if cam is None:
            continue
        K = np.asarray(cam.K, float)
        T_cam_base = np.linalg.inv(np.asarray(cam.T_base_cam, float))
        pc = pts @ T_cam_base[:3, :3].T + T_cam_base[:3, 3]
        z = pc[:, 2]
        front = z > 0.1
        zs = np.where(front, z, 1.0)
        u = K[0, 0] * pc[:, 0] / zs + K[0, 1] * pc[:, 1] / zs + K[0, 2]
        v = K[1, 1] * pc[:, 1] / zs + K[1, 2]
        inside = front & (u >= -0.5) & (u <= W - 0.5) & (v >= -0.5) & (v <= H - 0.5)
        take = inside & (used < max_cameras)
        fu = (u + 0.5) / stride - 0.5
        fv = (v + 0.5) / stride - 0.5
        u0, v0 = np.floor(fu).astype(np.int64), np.floor(fv).astype(np.int64)
        au, av = fu - u0, fv - v0
        vi = np.flatnonzero(take)
        slot = used[vi]
        for t, (du, dv, w) in enumerate(((0, 0, (1 - au) * (1 - av)), (1, 0, au * (1 - av)),
                                         (0, 1, (1 - au) * av), (1, 1, au * av))):
            uu, vv = u0[vi] + du, v0[vi] + dv
            ok = (uu >= 0) & (uu < Wf) & (vv >= 0) & (vv < Hf)
            col = slot * TAPS_PER_CAMERA + t
            index[vi, col] = np.where(ok, k * Hf * Wf + vv * Wf + uu, zero_row)
            weight[vi, col] = np.where(ok, w[vi], 0.0)
        used[vi] += 1
    weight /= np.maximum(used, 1)[:, None]
    return index.reshape(-1), weight.astype(np.float32)
