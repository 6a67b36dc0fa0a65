"""Packaging trained weights into models/reference: weights.pt, model.onnx, metadata.json, evaluation.json.

    python -m fusion_monitor.model.release --weights /tmp/fm_run/weights.pt --out models/reference \
        --eval-data /tmp/fm_data/eval [--real-data ../shared/data/real]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from fusion_monitor.model.build import build_model, count_parameters
from fusion_monitor.model.evaluate import evaluate_model, format_table
from fusion_monitor.model.reference import export_onnx, infer, metadata, sha256
from fusion_monitor.sensors.preprocess import DEFAULT_SPEC
from fusion_monitor.sim.world import CLASSES


def real_data_report(model, root: str | Path) -> list[dict]:
    """Detections of the model on the real samples (no accuracy claim: trained on synthetic data)."""
    from fusion_monitor.model.real_data import input_summary, model_for, nuscenes_sample, vod_frame

    out = []
    samples = [nuscenes_sample(root)] + [vod_frame(root, i) for i in range(3)]
    for s in samples:
        m = model_for(s, model)
        det = infer(m, s.pre.inputs, DEFAULT_SPEC, score_threshold=0.3)
        counts = {c: int((det.labels == k).sum()) for k, c in enumerate(CLASSES)}
        gt_counts = {c: int(sum(1 for g in s.gt_labels if g == c)) for c in CLASSES}
        # how many labelled objects (within 50 m) have a same-class detection within 2 m
        matched = 0
        in_range = 0
        for lab, xy in zip(s.gt_labels, s.gt_xy):
            if np.hypot(*xy) > 50:
                continue
            in_range += 1
            k = CLASSES.index(lab)
            d = det.boxes[det.labels == k, :2]
            if len(d) and np.min(np.hypot(*(d - xy).T)) < 2.0:
                matched += 1
        out.append({"sample": s.name, "inputs": input_summary(s.pre), "detections_score_ge_0.3": counts,
                    "labelled_objects": gt_counts, "labelled_within_50m": in_range,
                    "labelled_within_50m_with_same_class_detection_within_2m": matched,
                    "top5": det.as_dicts()[:5]})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--eval-data", required=True)
    p.add_argument("--real-data", default=None)
    p.add_argument("--training", default=None, help="JSON string with training facts for the metadata")
    a = p.parse_args(argv)
    torch.set_num_threads(2)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    model = build_model(spec=DEFAULT_SPEC)
    model.load_state_dict(torch.load(a.weights, map_location="cpu", weights_only=True))
    model.eval()
    if Path(a.weights).resolve() != (out / "weights.pt").resolve():
        shutil.copyfile(a.weights, out / "weights.pt")
    export_onnx(model, out / "model.onnx", DEFAULT_SPEC)
    files = sorted(Path(a.eval_data).glob("w*_f*.npz"))
    results = evaluate_model(model, files, DEFAULT_SPEC)
    report = {"eval_frames": len(files), "eval_worlds": len({f.name.split("_")[0] for f in files}), "results": results}
    if a.real_data:
        report["real_data"] = real_data_report(model, a.real_data)
    (out / "evaluation.json").write_text(json.dumps(report, indent=1) + "\n")
    extra = {"parameters": count_parameters(model),
             "files": {n: {"sha256": sha256(out / n), "bytes": (out / n).stat().st_size}
                       for n in ("weights.pt", "model.onnx")},
             "training": json.loads(a.training) if a.training else {}}
    (out / "metadata.json").write_text(json.dumps(metadata(DEFAULT_SPEC, extra), indent=1) + "\n")
    print(format_table(results))
    print(json.dumps(extra["files"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
