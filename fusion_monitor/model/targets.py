"""CenterPoint-style training targets and loss on the 0.8 m output grid (row = +x, column = +y)."""

from __future__ import annotations

import numpy as np
import torch

from fusion_monitor.sensors.preprocess import InputSpec

MAX_OBJECTS = 160
MIN_OVERLAP = 0.1
MIN_RADIUS = 2
REG_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.2)
REG_LOSS_WEIGHT = 0.25


def gaussian_radius(length_cells: float, width_cells: float, min_overlap: float = MIN_OVERLAP) -> float:
    """CornerNet radius (kept with CenterPoint's divide-by-2 quirk in the third root)."""
    h, w, mo = length_cells, width_cells, min_overlap
    b1 = h + w
    c1 = w * h * (1 - mo) / (1 + mo)
    r1 = (b1 + np.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2 = 2 * (h + w)
    c2 = (1 - mo) * w * h
    r2 = (b2 + np.sqrt(b2 ** 2 - 16 * c2)) / 2
    a3 = 4 * mo
    b3 = -2 * mo * (h + w)
    c3 = (mo - 1) * w * h
    r3 = (b3 + np.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return float(min(r1, r2, r3))


def _draw_gaussian(hm: np.ndarray, row: int, col: int, radius: int) -> None:
    sigma = (2 * radius + 1) / 6.0
    ys, xs = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    g = np.exp(-(xs * xs + ys * ys) / (2 * sigma * sigma))
    G0, G1 = hm.shape
    r0, r1 = max(0, row - radius), min(G0, row + radius + 1)
    c0, c1 = max(0, col - radius), min(G1, col + radius + 1)
    patch = g[r0 - row + radius:r1 - row + radius, c0 - col + radius:c1 - col + radius]
    np.maximum(hm[r0:r1, c0:c1], patch, out=hm[r0:r1, c0:c1])


def build_targets(cls: np.ndarray, boxes: np.ndarray, vel: np.ndarray, spec: InputSpec, num_classes: int
                  ) -> dict[str, np.ndarray]:
    """Targets for one frame.

    Parameters
    ----------
    cls : (N,) class ids; boxes : (N, 7) [x y z l w h yaw] base_link; vel : (N, 2) m/s.

    Returns
    -------
    dict with heatmap (K, G, G) float32, index (M,) int64 flat cell row*G+col, regression (M, 10) float32,
    mask (M,) float32 (1 for real objects), M = MAX_OBJECTS.
    """
    G = spec.grid
    hm = np.zeros((num_classes, G, G), np.float32)
    ind = np.zeros(MAX_OBJECTS, np.int64)
    reg = np.zeros((MAX_OBJECTS, 10), np.float32)
    mask = np.zeros(MAX_OBJECTS, np.float32)
    k = 0
    for c, b, v in zip(cls, boxes, vel):
        fx = (b[0] + spec.range_m) / spec.cell_m
        fy = (b[1] + spec.range_m) / spec.cell_m
        r, col = int(np.floor(fx)), int(np.floor(fy))
        if not (0 <= r < G and 0 <= col < G) or k >= MAX_OBJECTS:
            continue
        rad = max(MIN_RADIUS, int(gaussian_radius(b[3] / spec.cell_m, b[4] / spec.cell_m)))
        _draw_gaussian(hm[int(c)], r, col, rad)
        yaw = np.angle(np.exp(1j * b[6]))
        ind[k] = r * G + col
        reg[k] = [fx - r, fy - col, b[2], np.log(b[3]), np.log(b[4]), np.log(b[5]), np.sin(yaw), np.cos(yaw),
                  v[0], v[1]]
        mask[k] = 1
        k += 1
    return {"heatmap": hm, "index": ind, "regression": reg, "mask": mask}


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CornerNet/CenterPoint Gaussian focal loss, normalised by the number of peaks."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    neg = 1 - pos
    pos_loss = -(torch.log(p) * (1 - p) ** 2 * pos).sum()
    neg_loss = -(torch.log(1 - p) * p ** 2 * (1 - target) ** 4 * neg).sum()
    n = pos.sum()
    return (pos_loss + neg_loss) / n.clamp(min=1)


def regression_loss(reg_map: torch.Tensor, index: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
                    ) -> torch.Tensor:
    """Weighted L1 at object cells, normalised by the number of objects."""
    B, C = reg_map.shape[:2]
    pred = reg_map.reshape(B, C, -1).gather(2, index[:, None, :].expand(B, C, index.shape[1])).permute(0, 2, 1)
    w = torch.tensor(REG_WEIGHTS, dtype=pred.dtype)
    l1 = (pred - target).abs() * w * mask[..., None]
    return l1.sum() / mask.sum().clamp(min=1)


def detection_loss(out: dict[str, torch.Tensor], tgt: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
    """Total = focal + 0.25 * weighted L1; also returns the parts as floats."""
    hm = focal_loss(out["heatmap"], tgt["heatmap"])
    rg = regression_loss(out["regression"], tgt["index"], tgt["regression"], tgt["mask"])
    return hm + REG_LOSS_WEIGHT * rg, {"heatmap": float(hm.detach()), "regression": float(rg.detach())}
