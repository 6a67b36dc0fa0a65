"""`fusion-monitor calibrate BAG... --out baseline.yaml`: the attribution baseline from nominal drives.

Every bag is checked first (readable, not empty, holds the rig's sensor topics) and the model package is
loaded once, so bad input fails before any replay. Each bag is then replayed through the monitor (the
same pipeline as `replay`); per frame each modality's mean share over confirmed detections and its share
of the BEV contribution (:func:`fusion_monitor.health.frame_statistics`, read back from the contribution
statuses' ``frame_det_share`` / ``frame_bev_share``) are collected, and
:func:`fusion_monitor.health.fit_baseline` fits per modality and statistic the mean, the frame std and the
std of 1 s block means (the drift check's unit, holding the frames' autocorrelation and the spread between
drives). The baseline names the model (package name + graph sha256) and the sensor set; the monitor refuses
it for anything else. Use it with the parameter ``health.attribution.baseline_file``.

Refit after every model rebuild (the graph hash changes), with the same nominal drives::

    fusion-monitor calibrate DRIVE... --out baseline.yaml [--model PKG]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from fusion_monitor.bagio import BagError, open_bag


def check_calibration_bag(bag: str | Path, topics: set[str]) -> None:
    """Raise BagError unless ``bag`` opens, holds at least one message and one of ``topics``."""
    src = open_bag(bag)
    if not topics & set(src.topics):
        raise BagError(bag, f"none of the rig's sensor topics is in the bag (found {sorted(src.topics)})")
    first = next(iter(src.messages()), None)
    if first is None:
        raise BagError(bag, "calibration bag holds no messages")


def frame_shares(rec: dict, modalities: tuple[str, ...]) -> dict[str, float]:
    """``{"det.<m>": x, "bev.<m>": y}`` of one frames.jsonl record, from its contribution statuses (nan if absent)."""
    out = {f"{k}.{m}": float("nan") for m in modalities for k in ("det", "bev")}
    for st in rec.get("statuses", []):
        m, check = st.get("hardware_id", ""), st["name"].rpartition("/")[2]
        if check != "contribution" or m not in modalities:
            continue
        for kind in ("det", "bev"):
            try:
                out[f"{kind}.{m}"] = float(st["values"].get(f"frame_{kind}_share", "nan"))
            except ValueError:
                pass
    return out


def calibrate(bags: list[str | Path], out: str | Path, *, params: dict | None = None, model: str | None = None,
              min_frames: int = 20, min_std: float = 0.02, work_dir: str | Path | None = None,
              save_frames: str | Path | None = None):
    """Fit and write an attribution baseline from nominal ``bags``; returns the Baseline.

    Raises
    ------
    BagError
        A bag is unreadable, empty or holds none of the rig's topics (checked before any replay).
    fusion_monitor.pipeline.ModelLoadError
        The model package does not load, or is not decomposed (no modality shares to calibrate).
    ValueError
        Too few frames with confirmed detections (fewer than ``min_frames``).

    ``save_frames`` writes the per-frame statistics (JSON lines) for :func:`refit`.
    """
    from fusion_monitor.health import HealthConfig, model_identity
    from fusion_monitor.pipeline import ModelLoadError, Pipeline, PipelineConfig
    from fusion_monitor.tools.replay import replay_bag

    if not bags:
        raise ValueError("calibrate needs at least one nominal bag")
    params = dict(params or {})
    params.pop("health.attribution.baseline_file", None)  # calibrating: no baseline in force
    if model:
        params["model.package"] = str(model)
    probe = Pipeline(PipelineConfig.from_params(params))
    if not probe.stream_names:
        raise ModelLoadError(probe.package_path, "model package is not decomposed: no modality shares to calibrate")
    topics = {s.topic for s in probe.rig.sensors.values()}
    for b in bags:
        check_calibration_bag(b, topics)
    model_id = model_identity(probe.package_path.name, probe.package.metadata.attribution_sha256)
    modalities = tuple(m for m in probe.health.modalities)
    attribution = (HealthConfig.from_dict(probe.config.health) if probe.config.health else HealthConfig()).attribution
    rows: list[dict] = []
    drive_ids: list[int] = []

    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        for i, b in enumerate(bags):
            def on_frame(rec: dict, drive: int = i) -> None:
                rows.append(frame_shares(rec, modalities))
                drive_ids.append(drive)

            replay_bag(b, Path(tmp) / f"bag{i}", params=params, on_frame=on_frame)
    header = {"model_id": model_id, "sensors": sorted(probe.rig.sensors), "modalities": list(modalities),
              "source": "; ".join(str(b) for b in bags), "block_frames": attribution.drift_block,
              "cusum_k": attribution.cusum_k}
    if save_frames is not None:
        with open(save_frames, "w") as f:
            f.write(json.dumps(header) + "\n")
            for d, r in zip(drive_ids, rows, strict=True):
                f.write(json.dumps({"drive": d, **r}) + "\n")
    return _fit(header, rows, drive_ids, out, min_std=min_std, min_frames=min_frames)


def _fit(header: dict, rows: list[dict], drive_ids: list[int], out: str | Path, *, min_std: float, min_frames: int):
    from fusion_monitor.health import fit_baseline

    baseline = fit_baseline(rows, header["model_id"], header["sensors"], tuple(header["modalities"]),
                            min_std=min_std, min_frames=min_frames, source=header["source"],
                            block_frames=int(header["block_frames"]), drive_ids=drive_ids,
                            cusum_k=float(header["cusum_k"]))
    baseline.to_yaml(out)
    return baseline


def refit(frames_file: str | Path, out: str | Path, *, min_frames: int = 20, min_std: float = 0.02):
    """Fit a baseline from the statistics a calibration saved (``--save-frames``) without replaying the drives.

    Raises ValueError for a file that is not such a save (the message names it and the line)."""
    path = Path(frames_file)
    lines = path.read_text().splitlines()
    rows, ids, n = [], [], 1
    try:
        header = json.loads(lines[0]) if lines else None
        if not isinstance(header, dict) or not {"model_id", "sensors", "modalities", "block_frames",
                                                 "cusum_k"} <= set(header):
            raise ValueError("line 1 is not a calibration header")
        for n in range(2, len(lines) + 1):
            rec = json.loads(lines[n - 1])
            ids.append(int(rec.pop("drive")))
            rows.append({k: float("nan") if v is None else float(v) for k, v in rec.items()})
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{path}: not a saved calibration (line {n}): {e}") from None
    header.setdefault("source", str(path))
    return _fit(header, rows, ids, out, min_std=min_std, min_frames=min_frames)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bags", nargs="*", metavar="BAG", help="nominal drives (rosbag2 folders or .mcap/.db3)")
    parser.add_argument("--save-frames", metavar="JSONL", help="also write the per-frame share statistics here")
    parser.add_argument("--from-frames", metavar="JSONL", help="refit from a --save-frames file instead of replaying")
    parser.add_argument("--out", required=True, metavar="YAML", help="baseline file to write")
    parser.add_argument("--model", metavar="PKG", help="model package (default: the shipped reference)")
    parser.add_argument("--params", metavar="FILE", help="ROS parameter file (thresholds such as min_score)")
    parser.add_argument("--min-frames", type=int, default=20, help="frames with detections needed per modality")
    parser.add_argument("--min-std", type=float, default=0.02, help="floor of the fitted share std")


def run(args: argparse.Namespace) -> int:
    from fusion_monitor.pipeline import ModelLoadError
    from fusion_monitor.tools.replay import load_params

    try:
        if args.from_frames:
            if args.bags:
                raise ValueError("give either bags or --from-frames, not both")
            b = refit(args.from_frames, args.out, min_frames=args.min_frames, min_std=args.min_std)
        else:
            params = load_params(args.params)
            b = calibrate(args.bags, args.out, params=params, model=args.model, min_frames=args.min_frames,
                          min_std=args.min_std, save_frames=args.save_frames)
    except (BagError, ModelLoadError, OSError, ValueError) as e:
        print(f"fusion-monitor calibrate: {e}", file=sys.stderr)
        return 2
    shares = ", ".join(f"{k} {b.mean[k]:+.2f} +- {b.std[k]:.2f}" for k in sorted(b.mean))
    print(f"wrote {args.out}: {b.n_frames} frames, model {b.model_id}; {shares}")
    return 0
