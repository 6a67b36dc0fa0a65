"""Simulator benchmark: one synthetic drive generated and written as a rosbag2, as `fusion-monitor simulate` does.

Runs the `simulate` command's own code path (defaults: 20 s, 6 cameras rendered at 144x256 and
delivered at 1600x900 JPEG, 32-beam LiDAR, 5 radars, MCAP, 2 workers) and prints wall time, CPU time
of this process and of the worker processes, the load average before and after, and a SHA-256 over
every message (topic, log time, bytes) so runs can be checked for determinism. Target (issue #4):
a 20 s drive in under 60 s wall on 2 cores.

    ./run.sh exec python benchmarks/sim.py [--duration 20] [--seed 0] [--workers 2] [--storage mcap]
        [--faults SPEC] [--keep DIR] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path


def bag_digest(path: Path) -> tuple[str, dict[str, int]]:
    """SHA-256 over (topic, log time, data) of every message in log-time order, and per-topic counts."""
    from fusion_monitor.bagio import open_bag

    h = hashlib.sha256()
    counts: dict[str, int] = {}
    for m in open_bag(path).messages():
        h.update(m.topic.encode())
        h.update(m.log_time_ns.to_bytes(8, "little"))
        h.update(m.data)
        counts[m.topic] = counts.get(m.topic, 0) + 1
    return h.hexdigest(), counts


def _children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_once(args: argparse.Namespace, out: Path) -> dict:
    """Run `fusion-monitor simulate` in this process; wall / CPU seconds and the load around it."""
    from fusion_monitor.tools import simulate

    parser = argparse.ArgumentParser()
    simulate.add_arguments(parser)
    argv = ["--out", str(out), "--duration", str(args.duration), "--seed", str(args.seed),
            "--workers", str(args.workers), "--storage", args.storage]
    if args.faults:
        argv += ["--faults", args.faults]
    sim_args = parser.parse_args(argv)
    load0 = os.getloadavg()
    c0, k0, t0 = time.process_time(), _children_cpu_s(), time.perf_counter()
    rc = simulate.run(sim_args)
    wall = time.perf_counter() - t0
    cpu_main, cpu_workers = time.process_time() - c0, _children_cpu_s() - k0
    if rc != 0:
        raise SystemExit(f"simulate returned {rc}")
    return {"duration_s": args.duration, "seed": args.seed, "workers": args.workers, "storage": args.storage,
            "wall_s": round(wall, 2), "cpu_main_s": round(cpu_main, 2), "cpu_workers_s": round(cpu_workers, 2),
            "cpu_total_s": round(cpu_main + cpu_workers, 2), "cpus": os.cpu_count(),
            "load_before": [round(v, 2) for v in load0], "load_after": [round(v, 2) for v in os.getloadavg()]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--faults", help="fault spec passed to simulate --faults")
    p.add_argument("--keep", metavar="DIR", help="write the bag here (must not exist) instead of a temporary folder")
    p.add_argument("--no-digest", action="store_true", help="skip the message hash (it re-reads the bag)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    tmp = None if args.keep else Path(tempfile.mkdtemp(prefix="fm_bench_sim_"))
    out = Path(args.keep) if args.keep else tmp / "drive"
    try:
        res = run_once(args, out)
        res["bag_mb"] = round(sum(f.stat().st_size for f in out.iterdir()) / 1e6, 1)
        if not args.no_digest:
            res["sha256"], counts = bag_digest(out)
            res["messages"] = sum(counts.values())
            res["topics"] = len(counts)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(res))
    else:
        print(f"simulate {res['duration_s']:g} s drive (seed {res['seed']}, {res['storage']}, {res['workers']} workers, "
              f"{res['cpus']} CPUs): wall {res['wall_s']:.1f} s, CPU {res['cpu_total_s']:.1f} s "
              f"(main {res['cpu_main_s']:.1f} s + workers {res['cpu_workers_s']:.1f} s), bag {res['bag_mb']} MB")
        print(f"load average before {res['load_before']}, after {res['load_after']}")
        if "sha256" in res:
            print(f"messages {res['messages']} on {res['topics']} topics, sha256 {res['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
