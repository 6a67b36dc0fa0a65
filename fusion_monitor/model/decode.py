"""Decoding the detector's logits into boxes: sigmoid, 3x3 peak mask, top-K, score threshold, circle NMS."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fusion_monitor.sensors.preprocess import DEFAULT_SPEC, InputSpec
from fusion_monitor.sim.world import CLASSES

#: Circle-NMS radius per class in metres (CenterPoint's squared thresholds, as radii).
NMS_RADIUS_M = {"car": 2.0, "truck": 3.46, "pedestrian": 0.42, "cyclist": 0.92}
DETECTION_FIELDS = ("x", "y", "z", "l", "w", "h", "yaw", "vx", "vy")


@dataclass(frozen=True)
class Detections:
    """Boxes in base_link. boxes (N, 9) [x y z l w h yaw vx vy] (m, rad, m/s; z = box centre), scores (N,),
    labels (N,) class ids into ``classes``; ``cells`` (N,) flat output-grid cell of each peak."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    cells: np.ndarray
    classes: tuple[str, ...] = CLASSES

    def __len__(self) -> int:
        return len(self.scores)

    def as_dicts(self) -> list[dict]:
        """One dict per detection: class, score and the named box fields."""
        return [
            {"class": self.classes[int(c)], "score": float(s), **{k: float(v) for k, v in zip(DETECTION_FIELDS, b)}}
            for b, s, c in zip(self.boxes, self.scores, self.labels)
        ]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _peaks(scores: np.ndarray) -> np.ndarray:
    """Mask of cells equal to their 3x3 neighbourhood maximum, per class. scores (K, G, G)."""
    p = np.pad(scores, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    G0, G1 = scores.shape[1:]
    m = scores.copy()
    for dr in (0, 1, 2):
        for dc in (0, 1, 2):
            np.maximum(m, p[:, dr:dr + G0, dc:dc + G1], out=m)
    return scores >= m


def circle_nms(xy: np.ndarray, scores: np.ndarray, radius_m: float) -> np.ndarray:
    """Greedy by score: keep a box unless a kept box's centre is within ``radius_m``. Returns kept indices."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    suppressed = np.zeros(len(order), bool)
    d2 = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
    for i in order:
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= d2[i] < radius_m * radius_m
    return np.array(keep, dtype=np.int64)


def decode(heatmap: np.ndarray, regression: np.ndarray, spec: InputSpec = DEFAULT_SPEC, score_threshold: float = 0.1,
           top_k: int = 200, max_boxes: int = 500, classes: tuple[str, ...] = CLASSES) -> Detections:
    """Decode one frame.

    Parameters
    ----------
    heatmap : (K, G, G) logits (a leading batch axis of 1 is accepted).
    regression : (10, G, G) [dx dy z log_l log_w log_h sin cos vx vy].
    """
    heatmap = np.asarray(heatmap, np.float32)
    regression = np.asarray(regression, np.float32)
    if heatmap.ndim == 4:
        if heatmap.shape[0] != 1:
            raise ValueError(f"decode takes one frame; got a batch of {heatmap.shape[0]}")
        heatmap, regression = heatmap[0], regression[0]
    K, G, G1 = heatmap.shape
    if regression.shape != (10, G, G1):
        raise ValueError(f"regression shape {regression.shape} does not match heatmap {heatmap.shape}")
    s = _sigmoid(heatmap)
    s = np.where(_peaks(s), s, 0.0)
    flat = s.reshape(-1)
    k = min(top_k, flat.size)
    idx = np.argpartition(-flat, k - 1)[:k]
    idx = idx[np.argsort(-flat[idx], kind="stable")]
    idx = idx[flat[idx] > score_threshold]
    labels = idx // (G * G1)
    cell = idx % (G * G1)
    r, c = cell // G1, cell % G1
    reg = regression.reshape(10, -1)[:, cell]
    x = -spec.range_m + (r + reg[0]) * spec.cell_m
    y = -spec.range_m + (c + reg[1]) * spec.cell_m
    dims = np.exp(np.clip(reg[3:6], -5, 4))
    yaw = np.arctan2(reg[6], reg[7])
    boxes = np.stack([x, y, reg[2], dims[0], dims[1], dims[2], yaw, reg[8], reg[9]], 1).astype(np.float32)
    scores = flat[idx].astype(np.float32)
    keep_all = []
    for cl in np.unique(labels):
        m = np.flatnonzero(labels == cl)
        radius = NMS_RADIUS_M.get(classes[int(cl)], 1.0)
        keep_all.append(m[circle_nms(boxes[m, :2], scores[m], radius)])
    keep = np.concatenate(keep_all) if keep_all else np.zeros(0, np.int64)
    keep = keep[np.argsort(-scores[keep], kind="stable")][:max_boxes]
    return Detections(boxes[keep], scores[keep], labels[keep].astype(np.int64), cell[keep].astype(np.int64), classes)
