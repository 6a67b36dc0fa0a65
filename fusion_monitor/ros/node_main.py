"""Executable entry of the live node: `fusion_monitor_node` (colcon/launch) and `fusion-monitor node`."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", metavar="FILE", help="ROS parameter file (default: config/fusion_monitor.param.yaml)")
    parser.add_argument("--lifecycle", action="store_true", help="run the managed (lifecycle) variant of the node")
    parser.add_argument("ros_args", nargs=argparse.REMAINDER, help="--ros-args ... passed to rclpy (remaps, params)")


def run(args: argparse.Namespace) -> int:
    from fusion_monitor.ros import node  # heavy imports (rclpy, torch, onnxruntime) only when running

    return node.run_node(params_file=args.params, lifecycle=args.lifecycle, ros_args=args.ros_args)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # launch_ros appends "--ros-args ..." to the command line; keep it for rclpy
    if "--ros-args" in argv:
        i = argv.index("--ros-args")
        argv, ros_args = argv[:i], argv[i:]
    else:
        ros_args = []
    parser = argparse.ArgumentParser(
        prog="fusion_monitor_node",
        description="fusion_monitor live node: subscribes to camera, radar and LiDAR topics, runs the decomposed "
        "fusion detector and publishes detections, per-modality attribution, RViz markers and /diagnostics.",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    args.ros_args = ros_args + [a for a in args.ros_args if a]
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
