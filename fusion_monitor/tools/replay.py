"""`fusion-monitor replay`: rosbag2 drives through the same pipeline and checks as the node, offline.

Per bag it writes OUT/monitor.mcap (every output topic of the node, source-stamped; optionally the
input topics too, making a self-contained review bag), OUT/frames.jsonl (one line per frame) and
OUT/report.html. Bag time is the clock. A damaged bag is processed up to the break and reported;
Ctrl-C finalises the MCAP and writes a partial report.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

from fusion_monitor.bagio import BagError, deserialize, open_bag
from fusion_monitor.frame import frame_record
from fusion_monitor.pipeline import ModelLoadError, Pipeline, PipelineConfig, freeze_long_lived
from fusion_monitor.tools.fleet import RESULT_FILE, run_fleet
from fusion_monitor.tools.report import Snapshot, alerts_from_frames, summarise, write_report

log = logging.getLogger(__name__)
MAX_SNAPSHOTS = 12
IMAGE_TYPES = ("sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/Image")


def load_params(path: str | Path | None) -> dict:
    """Flat parameter names from a ROS params file (``/**: ros__parameters:`` or ``<node>: ...``)."""
    if not path:
        return {}
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a ROS parameter file")
    section = next((v["ros__parameters"] for v in data.values() if isinstance(v, dict) and "ros__parameters" in v),
                   None)
    if section is None:
        raise ValueError(f"{path}: no ros__parameters section")

    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            name = f"{prefix}{k}"
            out.update(flat(v, name + ".") if isinstance(v, dict) else {name: v})
        return out

    return flat(section)


def sensor_topics(pipeline: Pipeline, found: dict[str, str], remap: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Bag topic -> (sensor, modality). Cameras also match raw Image topics under /<CAMERA>/."""
    out = {}
    for s in pipeline.rig.sensors.values():
        topic = remap.get(s.topic, s.topic)
        if topic in found:
            out[topic] = (s.name, s.modality)
        elif s.modality == "camera":
            for t, typ in found.items():
                if t.startswith(f"/{s.name}/") and typ in IMAGE_TYPES and t not in out:
                    out[t] = (s.name, s.modality)
                    break
    return out


def _apply_bag_calibration(pipeline: Pipeline, bag: Path, notes: list[str]) -> None:
    from fusion_monitor.sensors.calibration import (
        apply_overrides,
        check_extrinsics,
        check_intrinsics,
        read_bag_calibration,
    )

    try:
        tree, infos, errors = read_bag_calibration(bag, pipeline.rig)
    except Exception as e:  # damaged bag: the rig profile stays in force
        notes.append(f"calibration: could not read /tf_static or CameraInfo ({type(e).__name__}: {e}); "
                     "using the rig profile")
        return
    for sensor, reason in errors.items():
        notes.append(f"calibration: {sensor}: {reason}")
    checks = []
    if tree.frames:
        checks += list(check_extrinsics(pipeline.rig, tree).values())
    if infos:
        checks += list(check_intrinsics(pipeline.rig, infos).values())
    for c in checks:
        if c.status == "mismatch":
            notes.append(f"calibration mismatch: {c.reason}")
    pipeline.rig = apply_overrides(pipeline.rig, tree if tree.frames else None, infos)


def health_summary(frames: list[dict]) -> dict:
    """Per status name: worst level seen and number of alerts (for the fleet table)."""
    worst: dict[str, int] = {}
    for fr in frames:
        for st in fr["statuses"]:
            worst[st["name"]] = max(worst.get(st["name"], 0), int(st["level"]) if int(st["level"]) != 3 else 0)
    counts: dict[str, int] = {}
    for a in alerts_from_frames(frames):
        counts[a.name] = counts.get(a.name, 0) + 1
    return {name: {"worst_level": lvl, "alerts": counts.get(name, 0)} for name, lvl in sorted(worst.items())}


class _Progress:
    """Progress over bag time with an ETA (stderr, only on a terminal unless forced)."""

    def __init__(self, total_s: float, label: str, enabled: bool):
        self.bar = None
        if enabled and total_s > 0:
            from tqdm import tqdm

            self.bar = tqdm(total=round(total_s, 1), unit="s", desc=label, file=sys.stderr,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s bag time "
                                       "[{elapsed}<{remaining}, {rate_fmt}]")
        self.done = 0.0

    def update(self, t_s: float) -> None:
        if self.bar is not None and t_s > self.done:
            self.bar.update(round(t_s - self.done, 1))
            self.done = round(self.done + round(t_s - self.done, 1), 1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def replay_bag(bag: str | Path, out_dir: str | Path, *, params: dict | None = None, model: str | None = None,
               backend: str | None = None, with_inputs: bool = False, remap: dict[str, str] | None = None,
               progress: bool = False, on_frame: Callable[[dict], None] | None = None) -> dict:
    """Replay one bag; returns the summary written to OUT/result.json.

    Raises BagError when nothing in the bag can be used (unreadable, or none of the rig's topics),
    ModelLoadError for a bad model package.
    """
    from fusion_monitor.ros.frame_outputs import FrameOutputs
    from fusion_monitor.ros.ingest import message_to_sample
    from fusion_monitor.ros.record import McapRecorder
    from fusion_monitor.sensors.errors import MessageError

    bag, out = Path(bag), Path(out_dir)
    params = dict(params or {})
    if model:
        params["model.package"] = str(model)
    if backend:
        params["model.backend"] = backend
    src = open_bag(bag)
    pipeline = Pipeline(PipelineConfig.from_params(params))
    freeze_long_lived()
    remap = dict(remap or {})
    topics = sensor_topics(pipeline, src.topics, remap)
    expected = {remap.get(s.topic, s.topic): s.name for s in pipeline.rig.sensors.values()}
    missing = sorted(t for t, name in expected.items() if name not in {v[0] for v in topics.values()})
    if not topics:
        raise BagError(bag, f"none of the expected sensor topics is in the bag: missing {missing}; "
                            f"found {sorted(src.topics)}")
    problems: list[str] = []
    notes: list[str] = []
    if missing:
        problems.append(f"missing topics (those sensors are reported stale): {missing}; found {sorted(src.topics)}")
    _apply_bag_calibration(pipeline, bag, notes)
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULT_FILE).unlink(missing_ok=True)
    outputs = FrameOutputs(pipeline.config.node_name, class_names=pipeline.classes,
                           min_score=params.get("output.min_score", 0.0))
    target_size = (pipeline.spec.image_hw[1], pipeline.spec.image_hw[0])
    frames: list[dict] = []
    snapshots: list[Snapshot] = []
    open_alerts: set[str] = set()
    t0_ns: int | None = None
    interrupted = False
    bad_messages = 0
    wall0 = time.monotonic()
    bar = None
    recorder = McapRecorder(out / "monitor.mcap")
    try:
        with open(out / "frames.jsonl", "w", buffering=1) as jsonl:
            for raw in src.messages():
                if t0_ns is None:
                    t0_ns = raw.log_time_ns
                    bar = _Progress(_duration_s(src), bag.name, progress)
                now_ns = raw.log_time_ns
                if with_inputs:
                    recorder.write_raw(raw.topic, raw.msgtype, raw.data, raw.log_time_ns, qos=src.qos.get(raw.topic))
                if bar is not None:
                    bar.update((now_ns - t0_ns) / 1e9)
                target = topics.get(raw.topic)
                if target is None:
                    continue
                sensor, modality = target
                try:
                    msg = deserialize(raw)
                    sample = message_to_sample(msg, sensor, modality,
                                               target_size=target_size if modality == "camera" else None)
                except MessageError as e:
                    bad_messages += 1
                    pipeline.on_bad_message(sensor, e.reason, now_ns)
                    continue
                except Exception as e:  # CDR that does not even deserialise
                    bad_messages += 1
                    pipeline.on_bad_message(sensor, f"undecodable message: {type(e).__name__}: {e}", now_ns)
                    continue
                trigger = pipeline.on_sample(sample, now_ns)
                if trigger is None:
                    continue
                result = pipeline.process(trigger, now_ns)
                rec = frame_record(result, t0_ns)
                frames.append(rec)
                jsonl.write(json.dumps(rec) + "\n")
                for topic, m in outputs.messages(result, latency_ms=result.timings_ms.get("total")):
                    recorder.write(topic, m, result.stamp_ns)
                _maybe_snapshot(result, rec, open_alerts, snapshots)
                if on_frame is not None:
                    on_frame(rec)
    except KeyboardInterrupt:
        interrupted = True
        problems.append("interrupted (Ctrl-C): outputs hold the frames processed so far")
    finally:
        recorder.close()
        if bar is not None:
            bar.close()
    problems += [f"bag damaged: {p} (the readable part was processed)" for p in src.problems]
    if bad_messages:
        notes.append(f"{bad_messages} malformed sensor messages rejected (see the sensors' input statuses)")
    summary = summarise(frames)
    result = {
        "bag": str(bag), "complete": not problems and not interrupted, "interrupted": interrupted,
        "problems": problems, "notes": notes, "frames": len(frames), "start_ns": t0_ns,
        "detections": summary["detections"], "mean_shares": summary["mean_shares"],
        "alerts": [{"t_s": a.t_s, "name": a.name, "level": a.level, "message": a.message}
                   for a in alerts_from_frames(frames)],
        "health": health_summary(frames), "bad_messages": bad_messages,
        "wall_s": round(time.monotonic() - wall0, 2),
        "bag_s": round(frames[-1]["t_s"], 2) if frames else 0.0,
    }
    write_report(out / "report.html", frames, title=f"fusion_monitor replay: {bag.name}", snapshots=snapshots,
                 problems=problems, notes={"model": str(pipeline.package_path), "backend": pipeline.backend.name,
                                           **{f"note {i + 1}": n for i, n in enumerate(notes)}})
    (out / RESULT_FILE).write_text(json.dumps(result, indent=1))
    if interrupted:
        raise KeyboardInterrupt
    return result


def _duration_s(src) -> float:
    """Bag duration from the rosbag2 metadata when there is one (else unknown: 0)."""
    meta = src.path / "metadata.yaml" if src.path.is_dir() else None
    if meta is not None and meta.is_file():
        try:
            info = yaml.safe_load(meta.read_text())["rosbag2_bagfile_information"]
            return float(info["duration"]["nanoseconds"]) / 1e9
        except (KeyError, TypeError, ValueError):
            return 0.0
    return 0.0


def _maybe_snapshot(result, rec: dict, open_alerts: set[str], snapshots: list[Snapshot]) -> None:
    """Keep the BEV maps of frames where a status newly enters WARN/ERROR."""
    now_bad = {s["name"] for s in rec["statuses"] if s["level"] in (1, 2)}
    new = sorted(now_bad - open_alerts)
    open_alerts.clear()
    open_alerts.update(now_bad)
    if new and result.bev_maps and len(snapshots) < MAX_SNAPSHOTS:
        msgs = [s["message"] for s in rec["statuses"] if s["name"] in new]
        snapshots.append(Snapshot(rec["t_s"], "; ".join(msgs)[:300],
                                  {k: np.asarray(v, np.float32) for k, v in result.bev_maps.items()},
                                  rec["detections"]))


# --------------------------------------------------------------------------------------- CLI

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bags", nargs="+", metavar="BAG", help="rosbag2 folders or .mcap/.db3 files")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (one subfolder per bag when many)")
    parser.add_argument("--params", metavar="FILE", help="ROS parameter file (config/fusion_monitor.param.yaml style)")
    parser.add_argument("--model", metavar="PKG", help="model package folder (default: the shipped reference)")
    parser.add_argument("--backend", choices=("auto", "onnxruntime", "pytorch", "tensorrt"), help="inference backend")
    parser.add_argument("--with-inputs", action="store_true", help="also record the input topics (self-contained bag)")
    parser.add_argument("--remap", action="append", default=[], metavar="FROM:=TO",
                        help="topic remapping, e.g. /CAM_FRONT/image_rect_compressed:=/cam0/compressed")
    parser.add_argument("--workers", type=int, default=1, help="local worker processes for many bags")
    parser.add_argument("--ray", metavar="ADDRESS", help="run bags as Ray tasks: 'local' or a cluster address")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _parse_remap(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if ":=" not in item:
            raise SystemExit(f"fusion-monitor replay: --remap {item!r}: expected FROM:=TO")
        a, b = item.split(":=", 1)
        out[a] = b
    return out


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        params = load_params(args.params)
        PipelineConfig.from_params({k: v for k, v in params.items()})
    except (OSError, ValueError) as e:
        print(f"fusion-monitor replay: {e}", file=sys.stderr)
        return 2
    kwargs = dict(params=params, model=args.model, backend=args.backend, with_inputs=args.with_inputs,
                  remap=_parse_remap(args.remap))
    if len(args.bags) == 1 and not args.ray:
        try:
            res = replay_bag(args.bags[0], args.out, progress=not args.no_progress, **kwargs)
        except (BagError, ModelLoadError) as e:
            print(f"fusion-monitor replay: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"fusion-monitor replay: interrupted; partial outputs in {args.out}", file=sys.stderr)
            return 130
        _print_result(res, Path(args.out))
        return 0 if res["complete"] else 1

    def show(o):
        print(f"[{o.status}] {o.bag} -> {o.out_dir}" + (f": {o.reason}" if o.reason else ""), flush=True)

    outcomes = run_fleet(replay_bag, args.bags, args.out, workers=args.workers, ray_address=args.ray,
                         progress=show, **kwargs)
    bad = [o for o in outcomes if o.status in ("failed", "partial")]
    print(f"fleet: {len(outcomes)} bags, {sum(o.status == 'ok' for o in outcomes)} ok, "
          f"{sum(o.status == 'skipped' for o in outcomes)} skipped (already complete), {len(bad)} with problems; "
          f"summary: {Path(args.out) / 'fleet.json'}")
    return 1 if bad else 0


def _print_result(res: dict, out: Path) -> None:
    print(f"replayed {res['bag']}: {res['frames']} frames, {res['detections']} detections, "
          f"{len(res['alerts'])} alerts ({res['wall_s']:.1f} s wall for {res['bag_s']:.1f} s of bag)")
    for p in res["problems"]:
        print(f"  problem: {p}")
    print(f"  report: {out / 'report.html'}\n  review bag: {out / 'monitor.mcap'}\n  frames: {out / 'frames.jsonl'}")
