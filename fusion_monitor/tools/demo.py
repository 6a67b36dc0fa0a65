"""`fusion-monitor demo`: the embedded default main job."""

from __future__ import annotations

import argparse

from fusion_monitor.tools import selftest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_out", help="output folder (report, monitor.mcap, frames.jsonl)")


def run(args: argparse.Namespace) -> int:
    print("fusion-monitor demo: the full demo (simulate a drive with faults -> replay -> report) is not built yet;\n"
          "running the best end-to-end check that exists: the installation self-test.")
    return selftest.run(argparse.Namespace(seconds=2.0))
