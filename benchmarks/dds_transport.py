"""DDS transport benchmark: 1600x900 rgb8 images + 35k-point clouds at 20 Hz between two processes.

Runs the cross-process probe side by side with the shipped Fast DDS profile and with stock Fast DDS
settings, for sensor-data (best effort) and reliable QoS, and prints delivery and latency.

    ./run.sh exec python benchmarks/dds_transport.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "config" / "fastdds_large_messages.xml"


def run_pair(qos: str, profile: str | None, rate: float, seconds: float) -> dict:
    env = dict(os.environ)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))
    env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)
    if profile:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = profile
    else:
        env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    expect = int(rate * seconds)
    probe = [sys.executable, "-m", "fusion_monitor.ros.transport_probe"]
    sub = subprocess.Popen([*probe, "sub", "--qos", qos, "--expect", str(expect), "--timeout", str(seconds + 20)],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    pub = subprocess.Popen([*probe, "pub", "--qos", qos, "--rate", str(rate), "--seconds", str(seconds)],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        out, _ = sub.communicate(timeout=seconds + 60)
        pub.wait(timeout=60)
    finally:
        for p in (sub, pub):
            if p.poll() is None:
                p.kill()
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rate", type=float, default=20.0)
    args = ap.parse_args()
    rows = []
    for label, profile in (("shipped profile", str(PROFILE)), ("stock Fast DDS", None)):
        for qos in ("best_effort", "reliable"):
            r = run_pair(qos, profile, args.rate, args.seconds)
            for topic, name in (("/probe/image", "image 4.3 MB"), ("/probe/cloud", "cloud 700 kB")):
                t = r[topic]
                rows.append((label, qos, name, f"{t['received']}/{r['expect']}", t["latency_ms_p50"],
                             t["latency_ms_p99"]))
    print(f"{'settings':16} {'qos':12} {'message':13} {'delivered':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for row in rows:
        print(f"{row[0]:16} {row[1]:12} {row[2]:13} {row[3]:>9} {row[4]:>8} {row[5]:>8}")


if __name__ == "__main__":
    main()
