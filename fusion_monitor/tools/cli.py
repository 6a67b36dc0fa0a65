"""The `fusion-monitor` command line: one verb per subcommand, each in its own module."""

from __future__ import annotations

import argparse
import importlib
import sys

from fusion_monitor import __version__

# name -> (module under fusion_monitor, one-line help). Modules are imported only when their
# verb runs, so `fusion-monitor --help` stays fast. Each module defines
# add_arguments(parser) and run(args) -> int.
SUBCOMMANDS: dict[str, tuple[str, str]] = {}


def register(name: str, module: str, help_text: str) -> None:
    """Add a subcommand; names are unique."""
    if name in SUBCOMMANDS:
        raise ValueError(f"subcommand {name!r} is already registered")
    SUBCOMMANDS[name] = (module, help_text)


register("demo", "fusion_monitor.tools.demo", "the embedded default end to end: simulate, replay, report")
register("replay", "fusion_monitor.tools.replay", "replay rosbag2 files: monitor.mcap, frames.jsonl, report.html")
register("node", "fusion_monitor.ros.node_main", "the live ROS 2 node")
register("play", "fusion_monitor.ros.play", "publish a rosbag2's topics over ROS 2 (with /clock)")
register("export", "fusion_monitor.tools.export", "export a PyTorch fusion model (+ LMD streams) to a model package")
register("simulate", "fusion_monitor.tools.simulate", "synthetic multi-sensor drive with ground truth, as a rosbag2")
register("train", "fusion_monitor.tools.train", "train the reference detector on simulated drives (CPU)")
register("inject", "fusion_monitor.tools.inject", "inject sensor faults into a recorded rosbag2")
register("calibrate", "fusion_monitor.tools.calibrate", "fit the attribution baseline from nominal drives")
register("evaluate", "fusion_monitor.tools.evaluate", "score alerts on fault scenarios: precision, recall, time to alert")
register("selftest", "fusion_monitor.tools.selftest", "check this installation: ROS 2 over DDS, ONNX Runtime, torch")


def _load(name: str):
    module, _ = SUBCOMMANDS[name]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module:
            raise SystemExit(f"fusion-monitor {name}: not available in this version ({module} is missing)") from None
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fusion-monitor",
        description="ROS 2 runtime monitor for camera-radar-LiDAR fusion perception "
        "(per-modality attribution by Layer-Wise Modality Decomposition, sensor-degradation alerts).",
    )
    parser.add_argument("--version", action="version", version=f"fusion-monitor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] not in SUBCOMMANDS:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 0
    name = argv[0]
    mod = _load(name)
    sub = argparse.ArgumentParser(prog=f"fusion-monitor {name}", description=SUBCOMMANDS[name][1])
    mod.add_arguments(sub)
    args = sub.parse_args(argv[1:])
    try:
        return int(mod.run(args) or 0)
    except KeyboardInterrupt:
        print(f"fusion-monitor {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
