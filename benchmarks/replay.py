"""Replay throughput: multiples of real time per worker, and the speed-up from 1 to 2 workers.

Simulates (once, cached) a nuScenes-rig drive, then in one run replays two copies of it with one worker
and with two workers, each worker with one inference thread (a fleet worker owns one core), and prints
bag-seconds per wall-second per worker and the scaling; then one copy alone with every core's thread
(what a single `fusion-monitor replay BAG` uses).

    ./run.sh exec python benchmarks/replay.py [--seconds 60] [--model PKG]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from fusion_monitor.tools.fleet import run_fleet
from fusion_monitor.tools.replay import replay_bag

CACHE = Path(__file__).resolve().parent / ".cache"


def drive_bag(seconds: float, seed: int = 21) -> Path:
    from fusion_monitor.sim import SIM_REVISION
    from fusion_monitor.sim.bag import write_bag
    from fusion_monitor.sim.drive import simulate_drive

    path = CACHE / f"drive_{int(seconds)}s_seed{seed}_r{SIM_REVISION}"
    if not (path / "metadata.yaml").is_file():
        shutil.rmtree(path, ignore_errors=True)
        CACHE.mkdir(exist_ok=True)
        print(f"simulating a {seconds:.0f} s drive into {path} (cached for later runs) ...", flush=True)
        write_bag(simulate_drive(seed=seed, duration_s=seconds, upscale=False), path, storage="mcap", workers=2)
    return path


def _run(copies: list[str], out: Path, workers: int, threads: int, model: str | None) -> tuple[float, float]:
    """(wall s, bag s) for replaying ``copies`` with ``workers`` processes of ``threads`` inference threads."""
    t0 = time.monotonic()
    outcomes = run_fleet(replay_bag, copies, out, workers=workers, model=model,
                         params={"model.num_threads": threads})
    wall = time.monotonic() - t0
    bad = [o for o in outcomes if o.status != "ok"]
    if bad:
        raise SystemExit(f"replay failed: {bad[0].reason}")
    return wall, sum(o.summary["bag_s"] for o in outcomes)


def stage_means(out: Path) -> tuple[dict[str, float], int]:
    """(mean ms per frame of each pipeline stage, frames) over every frames.jsonl under ``out``."""
    sums: dict[str, float] = {}
    n = 0
    for f in out.rglob("frames.jsonl"):
        for line in f.read_text().splitlines():
            for k, v in json.loads(line).get("timings_ms", {}).items():
                sums[k] = sums.get(k, 0.0) + float(v)
            n += 1
    return {k: v / max(n, 1) for k, v in sums.items()}, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    bag = drive_bag(args.seconds)
    cores = os.cpu_count() or 1
    # (label, bags, workers, inference threads per worker)
    configs = [("fleet, 1 worker", 2, 1, 1), ("fleet, 2 workers", 2, 2, 1),
               (f"single bag, {cores} threads", 1, 1, cores)]
    rows = []
    stages: dict[str, tuple[dict[str, float], int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        copies = []
        for k in range(2):
            c = Path(tmp) / f"copy{k}"
            c.symlink_to(bag, target_is_directory=True)
            copies.append(str(c))
        for i, (label, n, workers, threads) in enumerate(configs):
            wall, bag_s = _run(copies[:n], Path(tmp) / f"out{i}", workers, threads, args.model)
            rows.append((label, n, workers, threads, wall, bag_s))
            stages[label] = stage_means(Path(tmp) / f"out{i}")
    print(f"replay of a {args.seconds:.0f} s simulated nuScenes-rig drive, LMD on, default trigger rate; {cores} CPUs")
    print(f"{'configuration':<24} {'bags':>4} {'workers':>7} {'threads':>7} {'bag s':>6} {'wall s':>7} "
          f"{'x real time':>11} {'x per worker':>12}")
    for label, n, workers, threads, wall, bag_s in rows:
        print(f"{label:<24} {n:>4} {workers:>7} {threads:>7} {bag_s:>6.1f} {wall:>7.1f} {bag_s / wall:>11.2f} "
              f"{bag_s / wall / workers:>12.2f}")
    # where a frame's time goes (the rest of wall time: reading, message conversion, output messages, MCAP)
    for label, _n, workers, _threads, wall, _bag_s in rows:
        st, frames = stages[label]
        per_frame = wall * workers / max(frames, 1)
        print(f"  {label}: {1e3 * per_frame:.0f} ms wall per frame per worker; pipeline stages (ms): "
              + ", ".join(f"{k} {v:.1f}" for k, v in st.items()))
    one, two = rows[0], rows[1]
    print(f"speed-up 1 -> 2 workers (one inference thread each): {one[4] / two[4]:.2f}x (target >= 1.7x); "
          f"per worker {two[5] / two[4] / 2:.2f}x real time with 2 workers, {one[5] / one[4]:.2f}x alone "
          f"(target >= 1x)")


if __name__ == "__main__":
    main()
