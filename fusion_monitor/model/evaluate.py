"""Held-out evaluation of the reference detector for every non-empty modality subset."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import torch

from fusion_monitor.model.dataset import arrays_to_inputs, load_frame
from fusion_monitor.model.decode import decode
from fusion_monitor.model.metrics import evaluate_detections
from fusion_monitor.sensors.preprocess import DEFAULT_SPEC, MODALITY_ORDER, InputSpec
from fusion_monitor.sensors.rig import load_rig
from fusion_monitor.sim.world import CLASSES

SHORT = {"camera": "C", "lidar": "L", "radar": "R"}


def all_subsets() -> list[tuple[str, ...]]:
    """The 7 non-empty subsets of MODALITY_ORDER, singles first."""
    return [s for n in (1, 2, 3) for s in itertools.combinations(MODALITY_ORDER, n)]


def subset_name(subset) -> str:
    return "+".join(SHORT[m] for m in subset)


def evaluate_model(model: torch.nn.Module, files: list[Path], spec: InputSpec = DEFAULT_SPEC, subsets=None,
                   batch: int = 8) -> dict:
    """mAP / per-class AP per modality subset on stored frames (ground truth with >= 1 LiDAR or radar point)."""
    subsets = subsets or all_subsets()
    rig = load_rig()
    frames, gts = [], []
    for f in files:
        d = load_frame(f)
        frames.append(arrays_to_inputs(d, spec, rig))
        keep = (d["gt_lidar_pts"] + d["gt_radar_pts"]) >= 1
        gts.append((d["gt_cls"][keep].astype(np.int64), d["gt_boxes"][keep]))
    results = {}
    model.eval()
    for subset in subsets:
        flags = np.array([m in subset for m in MODALITY_ORDER], np.float32)
        dets = []
        for i in range(0, len(frames), batch):
            chunk = frames[i:i + batch]
            x = {m: torch.from_numpy(np.stack([c[m] for c in chunk]) * flags[k])
                 for k, m in enumerate(MODALITY_ORDER)}
            x["present"] = torch.from_numpy(np.tile(flags, (len(chunk), 1)))
            with torch.no_grad():
                out = model(**x)
            hm, rg = out["heatmap"].numpy(), out["regression"].numpy()
            dets.extend(decode(hm[j], rg[j], spec) for j in range(len(chunk)))
        results[subset_name(subset)] = evaluate_detections(dets, gts, CLASSES)
    return results


def format_table(results: dict) -> str:
    """Markdown table: subset, mAP, AP per class (percent)."""
    lines = ["| inputs | mAP | " + " | ".join(CLASSES) + " |", "|---|---|" + "---|" * len(CLASSES)]
    for name, r in results.items():
        cells = " | ".join(f"{100 * r['per_class'][c]:.1f}" for c in CLASSES)
        lines.append(f"| {name} | **{100 * r['mAP']:.1f}** | {cells} |")
    return "\n".join(lines)
