"""Replay throughput: multiples of real time per worker, and the speed-up from 1 to 2 workers.

Simulates (once, cached) a nuScenes-rig drive, then in one run replays two copies of it with one
worker and with two workers, and prints bag-seconds per wall-second per worker and the scaling.

    ./run.sh exec python benchmarks/replay.py [--seconds 60] [--model PKG]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from fusion_monitor.tools.fleet import run_fleet
from fusion_monitor.tools.replay import replay_bag

CACHE = Path(__file__).resolve().parent / ".cache"


def drive_bag(seconds: float, seed: int = 21) -> Path:
    from fusion_monitor.sim.bag import write_bag
    from fusion_monitor.sim.drive import simulate_drive

    path = CACHE / f"drive_{int(seconds)}s_seed{seed}"
    if not (path / "metadata.yaml").is_file():
        shutil.rmtree(path, ignore_errors=True)
        CACHE.mkdir(exist_ok=True)
        print(f"simulating a {seconds:.0f} s drive into {path} (cached for later runs) ...", flush=True)
        write_bag(simulate_drive(seed=seed, duration_s=seconds, upscale=False), path, storage="mcap", workers=2)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    bag = drive_bag(args.seconds)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        copies = []
        for k in range(2):
            c = Path(tmp) / f"copy{k}"
            c.symlink_to(bag, target_is_directory=True)
            copies.append(str(c))
        for workers in (1, 2):
            t0 = time.monotonic()
            outcomes = run_fleet(replay_bag, copies, Path(tmp) / f"out{workers}", workers=workers, model=args.model)
            wall = time.monotonic() - t0
            bad = [o for o in outcomes if o.status != "ok"]
            if bad:
                raise SystemExit(f"replay failed: {bad[0].reason}")
            bag_s = sum(o.summary["bag_s"] for o in outcomes)
            rows[workers] = (wall, bag_s)
    print(f"{'workers':>7} {'bags':>4} {'bag time s':>10} {'wall s':>7} {'x real time':>11} {'x per worker':>12}")
    for w, (wall, bag_s) in rows.items():
        print(f"{w:>7} {2:>4} {bag_s:>10.1f} {wall:>7.1f} {bag_s / wall:>11.2f} {bag_s / wall / w:>12.2f}")
    print(f"speed-up 1 -> 2 workers: {rows[1][0] / rows[2][0]:.2f}x (target >= 1.7x); "
          f"per worker {rows[1][1] / rows[1][0]:.2f}x real time (target >= 1x)")


if __name__ == "__main__":
    main()
