"""`fusion-monitor demo`: the embedded default main job, end to end on this machine.

Simulates a short nuScenes-rig drive (6 cameras, LiDAR, 5 radars) with scripted sensor faults,
replays it through the monitor (the decomposed reference detector on ONNX Runtime, health checks),
writes the review bag, frames.jsonl and the HTML report, and prints a short summary.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

DEFAULT_FAULTS = [
    {"fault": "camera_blackout", "sensor": "CAM_FRONT", "severity": 5, "start_s": 3.0, "end_s": 6.0,
     "params": {"p": 1.0}},
    {"fault": "lidar_sector_blockage", "sensor": "LIDAR_TOP", "severity": 4, "start_s": 7.5, "end_s": 11.0,
     "params": {"center_deg": 0.0}},
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_out", help="output folder (replaced if it holds an earlier demo)")
    parser.add_argument("--seconds", type=float, default=12.0, help="length of the simulated drive")
    parser.add_argument("--seed", type=int, default=11, help="simulation seed")
    parser.add_argument("--model", metavar="PKG", help="model package (default: the shipped reference)")


def run(args: argparse.Namespace) -> int:
    from fusion_monitor.sim.bag import write_bag
    from fusion_monitor.sim.drive import simulate_drive
    from fusion_monitor.tools.inject import inject_bag
    from fusion_monitor.tools.replay import replay_bag

    out = Path(args.out).resolve()
    if out.exists():
        if not (out / "demo.txt").is_file():
            print(f"fusion-monitor demo: {out} exists and is not an earlier demo; choose another --out", file=sys.stderr)
            return 2
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / "demo.txt").write_text("output of `fusion-monitor demo`\n")
    t0 = time.monotonic()
    print(f"[1/3] simulating a {args.seconds:.0f} s drive (seed {args.seed}): 6 cameras 12 Hz, LiDAR 20 Hz, "
          "5 radars 13 Hz ...", flush=True)
    drive = simulate_drive(seed=args.seed, duration_s=args.seconds, upscale=False)
    clean = write_bag(drive, out / "drive_nominal", storage="mcap", workers=2)
    t1 = time.monotonic()
    print(f"      {clean} ({t1 - t0:.0f} s)")
    print("[2/3] injecting faults: " + "; ".join(
        f"{f['fault']} on {f['sensor']} {f['start_s']:.1f}-{f['end_s']:.1f} s" for f in DEFAULT_FAULTS), flush=True)
    faulted = out / "drive_faulted"
    inject_bag(clean, faulted, DEFAULT_FAULTS)
    t2 = time.monotonic()
    print(f"      {faulted} ({t2 - t1:.0f} s)")
    print("[3/3] replaying through the monitor (decomposed detector + health checks) ...", flush=True)
    res = replay_bag(faulted, out / "replay", model=args.model, progress=sys.stderr.isatty())
    t3 = time.monotonic()
    print(f"      done ({t3 - t2:.0f} s; {res['bag_s'] / max(t3 - t2, 1e-9):.2f}x real time)\n")
    shares = ", ".join(f"{k} {v:+.0%}" for k, v in sorted(res["mean_shares"].items(), key=lambda kv: -kv[1]))
    print(f"frames {res['frames']}, detections {res['detections']}, mean shares per detection: {shares or 'n/a'}")
    print("injected: " + "; ".join(f"{f['sensor']} {f['fault']} at {f['start_s']:.1f} s" for f in DEFAULT_FAULTS))
    alerts = [a for a in res["alerts"] if a["level"] >= 1]
    print(f"alerts raised ({len(alerts)}):")
    for a in alerts[:25]:
        level = {1: "WARN", 2: "ERROR"}.get(a["level"], str(a["level"]))
        print(f"  {a['t_s']:6.2f} s  {level:5}  {a['message']}")
    if len(alerts) > 25:
        print(f"  ... and {len(alerts) - 25} more (see the report)")
    for p in res["problems"]:
        print(f"problem: {p}")
    print(f"\nreport:     {out / 'replay' / 'report.html'}\nreview bag: {out / 'replay' / 'monitor.mcap'}"
          f"\nframes:     {out / 'replay' / 'frames.jsonl'}\ntotal {time.monotonic() - t0:.0f} s")
    return 0
