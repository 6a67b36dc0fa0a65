"""`fusion-monitor play BAG`: publish a rosbag2's messages over ROS 2 (raw CDR) with /clock.

ros2 bag is not available in a pip-only ROS environment; this player is its small substitute
(and how the tests and the benchmark drive the node). Messages are published as the recorded
CDR bytes on publishers of the recorded type, paced by the bag's receive timestamps divided by
``--rate``; with ``--clock`` a rosgraph_msgs/Clock carrying bag time is published at
``--clock-hz`` (wall) so ``use_sim_time`` nodes follow the bag. QoS follows the bag's
offered_qos_profiles when recorded (sensor topics best effort, /tf_static transient local).
Topics whose type has no Python message package here (tf2_msgs) are skipped with a note.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DropWindow:
    """Do not publish ``topic`` while bag time is in [start_s, end_s) seconds from the bag start."""

    topic: str
    start_s: float
    end_s: float


def parse_drop(text: str) -> DropWindow:
    """'TOPIC:START:END' (seconds from the bag start; END may be empty = to the end)."""
    try:
        topic, start, end = text.rsplit(":", 2)
        return DropWindow(topic, float(start), float(end) if end else float("inf"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--drop {text!r}: expected TOPIC:START_S:END_S") from None


def _positive(text: str) -> float:
    v = float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return v


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", type=Path, help="rosbag2 folder (sqlite3 or mcap) or a single .mcap/.db3 file")
    parser.add_argument("--rate", type=_positive, default=1.0, help="playback speed factor (default 1.0)")
    parser.add_argument("--loop", action="store_true", help="start again at the end (until interrupted)")
    parser.add_argument("--clock", action="store_true", help="publish /clock (rosgraph_msgs/Clock) in bag time")
    parser.add_argument("--clock-hz", type=_positive, default=100.0, help="/clock publish rate, wall (default 100)")
    parser.add_argument("--topics", nargs="+", metavar="TOPIC", help="only these topics (default: all)")
    parser.add_argument("--drop", type=parse_drop, action="append", default=[], metavar="TOPIC:START:END",
                        help="withhold TOPIC between START and END seconds of bag time (simulated dropout; repeatable)")
    parser.add_argument("--wait-for", action="append", default=[], metavar="TOPIC",
                        help="before playing, wait until TOPIC has a matched subscriber (repeatable)")
    parser.add_argument("--wait-timeout", type=_positive, default=60.0, help="seconds to wait for --wait-for")
    parser.add_argument("--start-delay", type=float, default=0.0, help="seconds to wait before the first message")
    parser.add_argument("--reliable", action="store_true", help="publish every topic reliable (overrides the bag)")


def _open_bag(path: Path):
    from rosbags.rosbag2 import Reader

    if path.is_file():  # a single storage file: rosbags wants the folder with metadata.yaml
        if (path.parent / "metadata.yaml").exists():
            path = path.parent
        else:
            raise SystemExit(f"fusion-monitor play: {path} has no metadata.yaml next to it")
    try:
        return Reader(path)
    except Exception as e:
        raise SystemExit(f"fusion-monitor play: cannot open {path}: {e}") from None


def message_class(msgtype: str):
    """The rclpy message class for 'pkg/msg/Type' (or 'pkg/Type'); None when the package is absent."""
    parts = msgtype.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3:
        return None
    try:
        return getattr(importlib.import_module(f"{parts[0]}.{parts[1]}"), parts[2])
    except (ImportError, AttributeError):
        return None


def run(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock

    from fusion_monitor.ros.qos import CLOCK_QOS, playback_qos

    reader = _open_bag(args.bag)
    with reader:
        conns = [c for c in reader.connections if args.topics is None or c.topic in args.topics]
        if args.clock and any(c.topic == "/clock" for c in conns):
            # one /clock publisher: ours follows --rate and pauses; the recorded one would fight it
            print("fusion-monitor play: --clock: the bag's own /clock is not replayed", file=sys.stderr)
            conns = [c for c in conns if c.topic != "/clock"]
        if not conns:
            print(f"fusion-monitor play: no matching topics in {args.bag}", file=sys.stderr)
            return 2
        start_ns, end_ns = reader.start_time, reader.end_time
        drops = list(args.drop)
        stats = {"published": 0, "dropped": 0, "skipped_types": [], "loops": 0}
        with rclpy.init():
            node = Node("fusion_monitor_player")
            pubs = {}
            for c in conns:
                cls = message_class(c.msgtype)
                if cls is None:
                    if c.msgtype not in stats["skipped_types"]:
                        stats["skipped_types"].append(c.msgtype)
                        print(f"fusion-monitor play: skipping {c.topic} ({c.msgtype} is not installed here)",
                              file=sys.stderr)
                    continue
                offered = getattr(getattr(c, "ext", None), "offered_qos_profiles", None)
                qos = playback_qos(c.topic, c.msgtype, offered)
                if args.reliable:
                    qos = QoSProfile(history=qos.history, depth=qos.depth, durability=qos.durability,
                                     reliability=ReliabilityPolicy.RELIABLE)
                if c.topic not in pubs:
                    pubs[c.topic] = node.create_publisher(cls, c.topic, qos)
            pub_by_conn = {c.id: pubs.get(c.topic) for c in conns}
            clock_pub = node.create_publisher(Clock, "/clock", CLOCK_QOS) if args.clock else None

            def publish_clock(bag_ns: int) -> None:
                if clock_pub is not None:
                    msg = Clock()
                    msg.clock.sec, msg.clock.nanosec = divmod(int(bag_ns), 1_000_000_000)
                    clock_pub.publish(msg)

            deadline = time.monotonic() + args.wait_timeout
            for topic in args.wait_for:
                pub = pubs.get(topic)
                while (pub.get_subscription_count() if pub else node.count_subscribers(topic)) == 0:
                    if time.monotonic() > deadline:
                        print(f"fusion-monitor play: no subscriber on {topic} after {args.wait_timeout} s",
                              file=sys.stderr)
                        node.destroy_node()
                        return 3
                    time.sleep(0.05)
            if args.wait_for:
                time.sleep(0.5)  # our side matched: give the readers' side time to match us too
            publish_clock(start_ns)
            if args.start_delay > 0:
                time.sleep(args.start_delay)

            clock_period = 1.0 / args.clock_hz
            try:
                _play_loop(reader, conns, pub_by_conn, publish_clock, clock_pub is not None, clock_period, drops,
                           stats, args, start_ns, end_ns)
            except (KeyboardInterrupt, ExternalShutdownException):
                stats["interrupted"] = True
            except Exception:  # a publish racing the signal handler's context shutdown
                if rclpy.ok():
                    raise
                stats["interrupted"] = True
            if not rclpy.ok():
                print(json.dumps(stats), flush=True)
                return 0
            time.sleep(0.5)  # let the last messages leave before the writers go away
            node.destroy_node()
    print(json.dumps(stats), flush=True)
    return 0


def _play_loop(reader, conns, pub_by_conn, publish_clock, with_clock: bool, clock_period: float, drops, stats,
               args, start_ns: int, end_ns: int) -> None:
    import rclpy

    while True:
        t0 = time.monotonic()
        next_clock = t0
        for conn, stamp_ns, raw in reader.messages(connections=conns):
            target = t0 + (stamp_ns - start_ns) / 1e9 / args.rate
            while True:  # wait for the message's time, ticking /clock meanwhile
                if not rclpy.ok():
                    return
                now = time.monotonic()
                if with_clock and now >= next_clock:
                    publish_clock(start_ns + (now - t0) * args.rate * 1e9)
                    next_clock = now + clock_period
                if now >= target:
                    break
                time.sleep(min(target - now, clock_period) if with_clock else target - now)
            pub = pub_by_conn.get(conn.id)
            if pub is None:
                continue
            rel_s = (stamp_ns - start_ns) / 1e9
            if any(d.topic == conn.topic and d.start_s <= rel_s < d.end_s for d in drops):
                stats["dropped"] += 1
                continue
            publish_clock(stamp_ns)
            pub.publish(bytes(raw))
            stats["published"] += 1
        publish_clock(end_ns)
        stats["loops"] += 1
        if not args.loop:
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fusion-monitor play", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
