"""`fusion-monitor simulate`: a synthetic nuScenes-like drive with ground truth, written as a rosbag2."""

from __future__ import annotations

import argparse
import json
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


def _parse_hw(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--render-size must look like 144x256, got {text!r}") from None
    if h < 16 or w < 16:
        raise SystemExit(f"--render-size {text} is too small")
    return h, w


def run(args: argparse.Namespace) -> int:
    from fusion_monitor.sim import simulate_drive
    from fusion_monitor.sim.bag import write_bag

    if args.duration <= 0:
        raise SystemExit(f"--duration must be > 0, got {args.duration}")
    out = Path(args.out)
    if out.exists():
        raise SystemExit(f"fusion-monitor simulate: {out} already exists")
    drive = simulate_drive(args.seed, args.duration, render_hw=_parse_hw(args.render_size), upscale=not args.native_size)
    t0 = time.time()
    write_bag(drive, out, storage=args.storage, workers=args.workers, jpeg_quality=args.jpeg_quality)
    # Ground truth at every LiDAR stamp, next to the bag's own files (rosbag2 readers ignore it).
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
    print(f"wrote {out} ({args.storage}, {args.duration:g} s, seed {args.seed}) in {time.time() - t0:.1f} s")
    return 0
