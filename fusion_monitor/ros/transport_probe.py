"""Cross-process DDS probe: full-size camera images and LiDAR clouds at sensor rates.

One process publishes 1600x900 rgb8 Images and 35k-point x5-float32 PointCloud2 messages at a
fixed rate; another subscribes and reports what arrived and how late. The smoke test and the
transport benchmark both run it, as two real processes over DDS.

    python -m fusion_monitor.ros.transport_probe pub --qos best_effort --rate 20 --seconds 5
    python -m fusion_monitor.ros.transport_probe sub --qos best_effort --expect 100 --timeout 30

The subscriber prints one JSON line: received counts per topic, sequence gaps, latency stats (ms).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2, PointField

IMAGE_TOPIC = "/probe/image"
CLOUD_TOPIC = "/probe/cloud"
IMAGE_W, IMAGE_H = 1600, 900
CLOUD_POINTS = 35_000


def probe_qos(kind: str, depth: int = 10) -> QoSProfile:
    """``best_effort`` is the sensor-data QoS (best effort, volatile, keep last); ``reliable`` the default one."""
    if kind not in ("best_effort", "reliable"):
        raise ValueError(f"qos {kind!r}: expected 'best_effort' or 'reliable'")
    rel = ReliabilityPolicy.BEST_EFFORT if kind == "best_effort" else ReliabilityPolicy.RELIABLE
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=rel)


def make_image(seq: int) -> Image:
    msg = Image()
    msg.height, msg.width, msg.encoding, msg.is_bigendian = IMAGE_H, IMAGE_W, "rgb8", 0
    msg.step = IMAGE_W * 3
    rng = np.random.default_rng(seq)
    msg.data = rng.integers(0, 256, IMAGE_H * IMAGE_W * 3, dtype=np.uint8).tobytes()
    return msg


def make_cloud(seq: int) -> PointCloud2:
    msg = PointCloud2()
    msg.height, msg.width = 1, CLOUD_POINTS
    msg.fields = [
        PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
        for i, n in enumerate(("x", "y", "z", "intensity", "ring"))
    ]
    msg.is_bigendian, msg.point_step, msg.is_dense = False, 20, True
    msg.row_step = 20 * CLOUD_POINTS
    rng = np.random.default_rng(seq)
    msg.data = rng.standard_normal(CLOUD_POINTS * 5).astype(np.float32).tobytes()
    return msg


def _stamp(msg, seq: int) -> None:
    now_ns = time.time_ns()  # wall clock shared by both processes: latency = receive - send
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now_ns, 1_000_000_000)
    msg.header.frame_id = str(seq)


def run_publisher(qos: str, rate_hz: float, seconds: float, match_timeout_s: float = 30.0) -> int:
    with rclpy.init():
        node = Node("transport_probe_pub")
        pubs = [node.create_publisher(Image, IMAGE_TOPIC, probe_qos(qos)),
                node.create_publisher(PointCloud2, CLOUD_TOPIC, probe_qos(qos))]
        deadline = time.monotonic() + match_timeout_s
        while any(p.get_subscription_count() == 0 for p in pubs):
            if time.monotonic() > deadline:
                print("transport_probe pub: no subscriber matched", file=sys.stderr)
                return 3
            time.sleep(0.05)
        time.sleep(0.5)  # both sides matched: let the reader finish matching too
        image, cloud = make_image(0), make_cloud(0)
        n = int(round(rate_hz * seconds))
        period = 1.0 / rate_hz
        t0 = time.monotonic()
        for seq in range(n):
            target = t0 + seq * period
            while (delay := target - time.monotonic()) > 0:
                time.sleep(delay)
            _stamp(image, seq)
            pubs[0].publish(image)
            _stamp(cloud, seq)
            pubs[1].publish(cloud)
        time.sleep(1.0)  # let reliable retransmissions drain before the writer goes away
        node.destroy_node()
    return 0


def run_subscriber(qos: str, expect: int, timeout_s: float) -> int:
    got: dict[str, list[tuple[int, float]]] = {IMAGE_TOPIC: [], CLOUD_TOPIC: []}
    bad: list[str] = []

    def handler(topic: str, expected_bytes: int):
        def cb(msg) -> None:
            recv_ns = time.time_ns()
            sent_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            if len(msg.data) != expected_bytes:
                bad.append(f"{topic} seq {msg.header.frame_id}: {len(msg.data)} bytes")
            got[topic].append((int(msg.header.frame_id), (recv_ns - sent_ns) / 1e6))
        return cb

    with rclpy.init():
        node = Node("transport_probe_sub")
        node.create_subscription(Image, IMAGE_TOPIC, handler(IMAGE_TOPIC, IMAGE_W * IMAGE_H * 3), probe_qos(qos))
        node.create_subscription(PointCloud2, CLOUD_TOPIC, handler(CLOUD_TOPIC, CLOUD_POINTS * 20), probe_qos(qos))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and min(len(v) for v in got.values()) < expect:
            rclpy.spin_once(node, timeout_sec=0.1)
        node.destroy_node()
    report = {"qos": qos, "expect": expect, "bad": bad[:5]}
    for topic, rows in got.items():
        seqs = sorted(s for s, _ in rows)
        lat = np.array([ms for _, ms in rows]) if rows else np.zeros(1)
        report[topic] = {
            "received": len(rows),
            "missing": sorted(set(range(expect)) - set(seqs))[:20],
            "latency_ms_p50": round(float(np.percentile(lat, 50)), 3),
            "latency_ms_p99": round(float(np.percentile(lat, 99)), 3),
            "latency_ms_max": round(float(lat.max()), 3),
        }
    print(json.dumps(report), flush=True)
    ok = not bad and all(report[t]["received"] == expect for t in got)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="transport_probe", description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=("pub", "sub"))
    parser.add_argument("--qos", choices=("best_effort", "reliable"), default="best_effort")
    parser.add_argument("--rate", type=float, default=20.0, help="publish rate in Hz (pub)")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to publish (pub)")
    parser.add_argument("--expect", type=int, default=100, help="messages per topic to wait for (sub)")
    parser.add_argument("--timeout", type=float, default=60.0, help="give up after this many seconds (sub)")
    args = parser.parse_args(argv)
    if args.role == "pub":
        return run_publisher(args.qos, args.rate, args.seconds)
    return run_subscriber(args.qos, args.expect, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
