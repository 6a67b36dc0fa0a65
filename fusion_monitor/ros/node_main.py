"""Executable entry of the live node: `fusion_monitor_node` (colcon/launch) and `fusion-monitor node`."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", metavar="FILE",
                        help="ROS parameter file, loaded with --params-file (without it the declared defaults "
                        "apply: they equal config/fusion_monitor.param.yaml)")
    parser.add_argument("--model", metavar="PKG", default="",
                        help="model package folder (same as -p model.package:=PKG; empty: the parameter's value)")
    parser.add_argument("--lifecycle", action="store_true", help="run the managed (lifecycle) variant of the node")
    parser.add_argument("--autostart", action="store_true",
                        help="with --lifecycle: configure and activate at once (exit 2 if configure fails)")
    parser.add_argument("--pipeline-factory", metavar="MODULE:CALLABLE",
                        help="advanced: build the pipeline with this callable (flat parameter dict -> pipeline); "
                        "default: fusion_monitor.pipeline")
    parser.add_argument("--ros-args", dest="ros_args", nargs=argparse.REMAINDER, default=[], metavar="ARG",
                        help="everything after it goes to rclpy (remaps -r, parameters -p, --params-file)")


def run(args: argparse.Namespace) -> int:
    from fusion_monitor.ros import node  # heavy imports (rclpy, torch, onnxruntime) only when running

    ros_args = list(getattr(args, "ros_args", None) or [])
    if ros_args and ros_args[0] != "--ros-args":
        ros_args = ["--ros-args", *ros_args]
    if getattr(args, "model", ""):
        ros_args = [*(ros_args or ["--ros-args"]), "-p", f"model.package:={args.model}"]
    return node.run_node(params_file=args.params, lifecycle=args.lifecycle, ros_args=ros_args,
                         autostart=getattr(args, "autostart", False),
                         pipeline_factory=getattr(args, "pipeline_factory", None))


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
