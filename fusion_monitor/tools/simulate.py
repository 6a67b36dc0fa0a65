"""`fusion-monitor simulate`: a synthetic nuScenes-like drive with ground truth, written as a rosbag2.

With ``--faults SPEC`` (the syntax of `fusion-monitor inject`: a YAML file or inline YAML list of
{fault, sensor, severity, start_s, end_s}), the faults are applied to the sensor data while the drive is
written, by the same injector `inject` uses; the episodes go next to the bag as ground truth
(<out>.faults.json, as `inject` writes them). The spec is checked before anything is rendered.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output bag folder (must not exist)")
    parser.add_argument("--seed", type=int, default=0, help="scene seed (same seed -> same bag)")
    parser.add_argument("--duration", type=float, default=20.0, help="drive length in seconds (default 20)")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="rosbag2 storage plugin")
    parser.add_argument("--render-size", default="144x256", help="camera render HxW before upscaling (default 144x256)")
    parser.add_argument("--native-size", action="store_true",
                        help="store images at the render size (CameraInfo scaled) instead of upscaling to 1600x900")
    parser.add_argument("--workers", type=int, default=2, help="rendering processes (output does not depend on it)")
    parser.add_argument("--jpeg-quality", type=int, default=90)
    parser.add_argument("--clock-hz", type=float, default=100.0,
                        help="/clock (rosgraph_msgs/Clock) rate in sim time, for use_sim_time consumers; 0: no /clock")
    parser.add_argument("--avoid-collisions", action=argparse.BooleanOptionalAction, default=True,
                        help="vehicles, cyclists and the ego brake for what is ahead instead of driving through it "
                             "(default; --no-avoid-collisions: the first simulator revision's traffic)")
    parser.add_argument("--faults", metavar="SPEC",
                        help="sensor faults applied while simulating, as for `fusion-monitor inject` (YAML file or "
                             "inline YAML: list of {fault, sensor, severity 1..5, start_s, end_s}); seeded by --seed")


def _parse_hw(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--render-size must look like 144x256, got {text!r}") from None
    if h < 16 or w < 16:
        raise SystemExit(f"--render-size {text} is too small")
    return h, w


def _write_ground_truth(drive, out: Path) -> None:
    """Ground truth at every LiDAR stamp, next to the bag's own files (rosbag2 readers ignore it)."""
    with (out / "ground_truth.jsonl").open("w") as f:
        for stamp, name in drive.schedule():
            if drive.rig.sensors[name].modality != "lidar":
                continue
            gt = drive.ground_truth(stamp)
            f.write(json.dumps({
                "stamp_ns": stamp, "frame_id": drive.rig.base_frame, "classes": list(drive.classes),
                "cls": gt.cls.tolist(), "boxes_xyzlwhyaw": gt.boxes.round(4).tolist(),
                "velocity_xy": gt.velocity.round(4).tolist(), "instance": gt.instance.tolist(),
                "ego_pose": drive.ego_pose(stamp).round(6).tolist()}) + "\n")


def _write_fault_truth(out: Path, injector, args: argparse.Namespace, counts: dict) -> Path:
    """The episodes as `fusion-monitor inject` records them (<out>.faults.json)."""
    record = {"source": "simulate", "out": str(out), "seed": args.seed, "duration_s": args.duration,
              "t0_ns": injector.t0_ns, "episodes": [e.record() for e in injector.episodes], "messages": counts,
              "source_problems": []}
    path = Path(str(out) + ".faults.json")
    path.write_text(json.dumps(record, indent=1))
    return path


def _fault_spec(text: str):
    """The --faults value as `fusion-monitor inject` reads it (YAML file or inline YAML)."""
    from fusion_monitor.tools.inject import load_fault_spec

    try:
        return load_fault_spec(text)
    except OSError:  # inline text too long to be tried as a file name: parse_fault_spec reads YAML text itself
        return text


def run(args: argparse.Namespace) -> int:
    from fusion_monitor.sensors.faults import FaultSpecError
    from fusion_monitor.sim import simulate_drive
    from fusion_monitor.sim.bag import fault_injector, write_bag

    if args.duration <= 0:
        raise SystemExit(f"--duration must be > 0, got {args.duration}")
    if args.clock_hz < 0:
        raise SystemExit(f"--clock-hz must be >= 0, got {args.clock_hz}")
    out = Path(args.out)
    if out.exists():
        raise SystemExit(f"fusion-monitor simulate: {out} already exists")
    drive = simulate_drive(args.seed, args.duration, render_hw=_parse_hw(args.render_size), upscale=not args.native_size,
                           avoid_collisions=args.avoid_collisions)
    injector = None
    if args.faults:
        try:
            injector = fault_injector(drive, _fault_spec(args.faults))
        except FaultSpecError as e:
            print(f"fusion-monitor simulate: {e}", file=sys.stderr)
            return 2
    t0 = time.time()
    counts: dict = {}
    write_bag(drive, out, storage=args.storage, workers=args.workers, jpeg_quality=args.jpeg_quality,
              clock_hz=args.clock_hz or None, faults=injector, stats=counts)
    _write_ground_truth(drive, out)
    print(f"wrote {out} ({args.storage}, {args.duration:g} s, seed {args.seed}) in {time.time() - t0:.1f} s")
    if injector is not None:
        truth = _write_fault_truth(out, injector, args, counts)
        print(f"faults: {counts.get('faulted', 0)} messages faulted, {counts.get('dropped', 0)} dropped; "
              f"ground truth: {truth}")
    return 0
