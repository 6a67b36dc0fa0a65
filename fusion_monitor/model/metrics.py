"""nuScenes-style BEV detection AP: greedy centre-distance matching, 101-point recall, min recall/precision 0.1."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DIST_THRESHOLDS_M = (0.5, 1.0, 2.0, 4.0)
CLASS_RANGE_M = {"car": 50.0, "truck": 50.0, "pedestrian": 40.0, "cyclist": 40.0}
MIN_RECALL = 0.1
MIN_PRECISION = 0.1


def average_precision(pred_xy: Sequence[np.ndarray], pred_scores: Sequence[np.ndarray], gt_xy: Sequence[np.ndarray],
                      dist_th_m: float) -> float:
    """AP of one class at one threshold over frames (lists aligned by frame). NaN when there is no ground truth.

    Matching: predictions in descending score order over all frames; each takes the nearest unmatched ground truth
    of its frame within ``dist_th_m`` (xy centre distance).
    """
    npos = int(sum(len(g) for g in gt_xy))
    if npos == 0:
        return float("nan")
    frame = np.concatenate([np.full(len(s), i) for i, s in enumerate(pred_scores)]) if pred_scores else np.zeros(0)
    if len(frame) == 0:
        return 0.0
    scores = np.concatenate(pred_scores)
    xy = np.concatenate(pred_xy)
    order = np.argsort(-scores, kind="stable")
    taken = [np.zeros(len(g), bool) for g in gt_xy]
    tp = np.zeros(len(order))
    for k, i in enumerate(order):
        f = int(frame[i])
        g = gt_xy[f]
        if len(g) == 0:
            continue
        d = np.hypot(g[:, 0] - xy[i, 0], g[:, 1] - xy[i, 1])
        d[taken[f]] = np.inf
        j = int(np.argmin(d))
        if d[j] < dist_th_m:
            taken[f][j] = True
            tp[k] = 1
    ctp = np.cumsum(tp)
    cfp = np.cumsum(1 - tp)
    prec = ctp / np.maximum(ctp + cfp, 1)
    rec = ctp / npos
    rec_points = np.linspace(0, 1, 101)
    p = np.interp(rec_points, rec, prec, right=0)
    p = p[int(round(100 * MIN_RECALL)) + 1:]
    p = np.maximum(p - MIN_PRECISION, 0)
    return float(np.mean(p) / (1 - MIN_PRECISION))


def evaluate_detections(dets: Sequence, gts: Sequence[tuple[np.ndarray, np.ndarray]], classes: Sequence[str]) -> dict:
    """Per-class AP (mean over DIST_THRESHOLDS_M) and mAP.

    Parameters
    ----------
    dets : per frame, an object with boxes (N, >=2 xy), scores (N,), labels (N,).
    gts : per frame, (cls (M,), boxes (M, >=2 xy)) in base_link.
    """
    out = {"per_class": {}, "per_class_threshold": {}}
    aps = []
    for c, name in enumerate(classes):
        rng_m = CLASS_RANGE_M.get(name, 50.0)
        pxy, ps, gxy = [], [], []
        for d, (gc, gb) in zip(dets, gts):
            m = d.labels == c
            b = d.boxes[m]
            keep = np.hypot(b[:, 0], b[:, 1]) <= rng_m
            pxy.append(b[keep, :2])
            ps.append(d.scores[m][keep])
            gm = (gc == c) & (np.hypot(gb[:, 0], gb[:, 1]) <= rng_m)
            gxy.append(gb[gm, :2])
        per_th = [average_precision(pxy, ps, gxy, th) for th in DIST_THRESHOLDS_M]
        out["per_class_threshold"][name] = dict(zip(map(str, DIST_THRESHOLDS_M), per_th))
        ap = float(np.mean(per_th))
        out["per_class"][name] = ap
        if np.isfinite(ap):
            aps.append(ap)
    out["mAP"] = float(np.mean(aps)) if aps else float("nan")
    return out
