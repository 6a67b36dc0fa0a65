"""Live-node benchmark: the full nuScenes rig at real rates into the node, LMD on and off side by side.

A feeder process publishes 6 cameras (1600x900 JPEG CompressedImage, 12 Hz), LIDAR_TOP (35k
points x y z intensity ring, 20 Hz) and 5 radars (ARS408-like clouds, 13 Hz), stamped with the
wall clock like real sensors; the node (separate process, real pipeline unless --fake) triggers
on the LiDAR at --trigger-rate. This script listens to the node's outputs and reports processed
frame rate, dropped triggers, pipeline latency p50/p99 (now - LiDAR stamp, the node's own
~/debug/pipeline_latency_ms) and CPU use of the node process (100 % = one core), of the feeder and of the
whole machine, and a speed probe: the CPU time of a fixed workload run every 2 s here (higher = the shared
machine's cores run slower now; compare runs only at similar probe values).

    ./run.sh exec python benchmarks/node.py [--seconds 60] [--trigger-rate 10] [--images DIR] [--model PKG] [--fake]
                                            [--load CORES]

--load runs a competing CPU load (other processes busy CORES cores' worth) during the feed: the margin a shared
vehicle computer leaves.

--images takes a folder of real 1600x900 JPEGs (e.g. $FUSION_MONITOR_REAL_DATA/
nuscenes_mini_scene-0061_CAM_FRONT_keyframes, used by default when that variable is set);
otherwise synthetic JPEGs of similar size are encoded once.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CAMERAS = ("CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")
RADARS = ("RADAR_FRONT", "RADAR_FRONT_LEFT", "RADAR_FRONT_RIGHT", "RADAR_BACK_LEFT", "RADAR_BACK_RIGHT")
RATES = {"camera": 12.0, "lidar": 20.0, "radar": 13.0}
NODE = "/fusion_monitor"
# per-stage times the node publishes: waits (LiDAR stamp -> callback, callback -> worker, inference done -> the
# previous frame finished) and the stages that dominate processing
STAGES = ("receive", "queue", "handoff", "ingest", "inference", "health")


# ---- feeder (child process) ---------------------------------------------------------------------
def _jpegs(images: str | None, n: int = 4) -> list[bytes]:
    if images:
        files = sorted(Path(images).glob("*.jpg"))[:n]
        if files:
            return [f.read_bytes() for f in files]
    from PIL import Image

    out = []
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:900, 0:1600]
    for k in range(n):
        base = (np.sin(xx / (40 + 7 * k)) * 60 + np.cos(yy / 30) * 50 + 120)[..., None]
        img = np.clip(base + rng.normal(0, 18, (900, 1600, 3)), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=85)
        out.append(buf.getvalue())
    return out


def feed(seconds: float, images: str | None) -> int:
    import rclpy
    from rclpy.node import Node
    from sensor_msgs.msg import CompressedImage, PointCloud2, PointField

    from fusion_monitor.ros.qos import sensor_qos

    def cloud(frame_id: str, names: tuple[str, ...], pts: np.ndarray) -> PointCloud2:
        m = PointCloud2()
        m.header.frame_id = frame_id
        m.height, m.width = 1, len(pts)
        m.fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate(names)]
        m.is_bigendian, m.point_step, m.row_step, m.is_dense = False, 4 * len(names), 4 * len(names) * len(pts), True
        m.data = np.ascontiguousarray(pts, dtype=np.float32).tobytes()
        return m

    rng = np.random.default_rng(1)
    jpegs = _jpegs(images)
    with rclpy.init():
        node = Node("fusion_monitor_bench_feeder")
        qos = sensor_qos("best_effort", 5)
        streams = []  # (name, publisher, list of messages, rate)
        for cam in CAMERAS:
            msgs = []
            for data in jpegs:
                m = CompressedImage()
                m.header.frame_id, m.format, m.data = cam, "jpeg", data
                msgs.append(m)
            streams.append((cam, node.create_publisher(CompressedImage, f"/{cam}/image_rect_compressed", qos), msgs,
                            RATES["camera"]))
        lidar = [cloud("LIDAR_TOP", ("x", "y", "z", "intensity", "ring"),
                       np.column_stack([rng.uniform(-50, 50, (35_000, 2)), rng.uniform(-2, 4, 35_000),
                                        rng.uniform(0, 100, 35_000), rng.integers(0, 32, 35_000)]))
                 for _ in range(3)]
        streams.append(("LIDAR_TOP", node.create_publisher(PointCloud2, "/LIDAR_TOP", qos), lidar, RATES["lidar"]))
        radar_names = ("x", "y", "z", "dyn_prop", "id", "rcs", "vx", "vy", "vx_comp", "vy_comp")
        for rad in RADARS:
            msgs = [cloud(rad, radar_names, np.column_stack([rng.uniform(0, 100, (60, 2)), np.zeros((60, 1)),
                                                             rng.integers(0, 7, (60, 1)), np.arange(60)[:, None],
                                                             rng.uniform(-5, 20, (60, 1)), rng.normal(0, 3, (60, 4))]))
                    for _ in range(3)]
            streams.append((rad, node.create_publisher(PointCloud2, f"/{rad}", qos), msgs, RATES["radar"]))
        deadline = time.monotonic() + 60
        while any(p.get_subscription_count() == 0 for _, p, _, _ in streams):
            if time.monotonic() > deadline:
                print(json.dumps({"error": "node subscriptions never matched"}), flush=True)
                return 3
            time.sleep(0.05)
        time.sleep(0.5)
        t0, cpu0 = time.monotonic(), time.process_time()
        next_t = [t0 + 0.003 * i for i in range(len(streams))]
        counts = [0] * len(streams)
        late_ms = []
        while True:
            i = int(np.argmin(next_t))
            if next_t[i] - t0 >= seconds:
                break
            delay = next_t[i] - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                late_ms.append(-delay * 1e3)
            name, pub, msgs, rate = streams[i]
            msg = msgs[counts[i] % len(msgs)]
            stamp = time.time_ns()  # a sensor stamps with its (PTP-synced) wall clock
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            pub.publish(msg)
            counts[i] += 1
            next_t[i] += 1.0 / rate
        elapsed = time.monotonic() - t0
        cpu_percent = (time.process_time() - cpu0) / elapsed * 100
        time.sleep(0.5)
        node.destroy_node()
    rates = {streams[i][0]: round(counts[i] / elapsed, 2) for i in range(len(streams))}
    print(json.dumps({"rates_hz": rates, "cpu_percent": round(cpu_percent, 1),
                      "publish_late_ms_p99": round(float(np.percentile(late_ms, 99)), 2)
                      if late_ms else 0.0, "jpeg_kb": round(float(np.mean([len(j) for j in jpegs])) / 1024, 1)}),
          flush=True)
    return 0


# ---- driver ---------------------------------------------------------------------------------------
def load(duty: float, seconds: float) -> int:
    """Competing load (child process): busy for ``duty`` of every 20 ms on one core, for ``seconds``."""
    period, end = 0.02, time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.perf_counter()
        while time.perf_counter() - t < period * duty:
            pass
        time.sleep(period * (1.0 - duty))
    return 0


def _start_load(cores: float, seconds: float, env) -> list[subprocess.Popen]:
    """``cores`` of competing CPU load (e.g. 0.8: one process busy 80 % of the time; 1.5: one full, one half)."""
    procs, left = [], cores
    while left > 1e-6:
        duty = min(left, 1.0)
        procs.append(subprocess.Popen([sys.executable, __file__, "load", "--duty", str(duty), "--seconds",
                                       str(seconds)], env=env))
        left -= duty
    return procs


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _system_ticks() -> tuple[int, int, int]:
    """(busy, steal, total) jiffies over all CPUs since boot (/proc/stat; steal: time the hypervisor ran others)."""
    v = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    idle, steal = v[3] + v[4], v[7]  # idle + iowait
    return sum(v) - idle - steal, steal, sum(v)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))
    env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds_large_messages.xml"))
    env.pop("RMW_IMPLEMENTATION", None)
    env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests" / "ros"), env.get("PYTHONPATH", "")])
    return env


def run_config(lmd: bool, args, env) -> dict:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.node import Node
    from sensor_msgs.msg import PointCloud2
    from std_msgs.msg import Float64

    from fusion_monitor.ros.qos import OUTPUT_QOS

    node_cmd = [sys.executable, "-m", "fusion_monitor.ros.node_main"]
    if args.fake:
        node_cmd += ["--pipeline-factory", "fake_pipeline:make"]
    if args.model:
        node_cmd += ["--model", args.model]
    node_cmd += ["--ros-args", "-p", f"lmd.enabled:={'true' if lmd else 'false'}",
                 "-p", f"trigger.rate_hz:={float(args.trigger_rate)}", "-p", f"model.num_threads:={int(args.threads)}"]
    for kv in args.param:
        node_cmd += ["-p", kv]
    got: dict[str, list] = {"det": [], "lat": [], "proc": [], "diag": [], "probe": [], **{k: [] for k in STAGES}}
    listener = Node("fusion_monitor_bench_listener")
    listener.create_subscription(PointCloud2, f"{NODE}/detections", lambda m: got["det"].append(m), OUTPUT_QOS)
    listener.create_subscription(Float64, f"{NODE}/debug/pipeline_latency_ms", lambda m: got["lat"].append(m.data),
                                 OUTPUT_QOS)
    listener.create_subscription(Float64, f"{NODE}/debug/processing_time_ms", lambda m: got["proc"].append(m.data),
                                 OUTPUT_QOS)
    for stage in STAGES:
        listener.create_subscription(Float64, f"{NODE}/debug/processing_time_ms/{stage}",
                                     lambda m, k=stage: got[k].append(m.data), OUTPUT_QOS)
    # /diagnostics (~150 statuses, 10-15 Hz) is kept serialized: deserializing every array cost this listener, which
    # shares the cores with the node, several % of a core; only the ones read below are deserialized
    listener.create_subscription(DiagnosticArray, "/diagnostics", lambda m: got["diag"].append(m), OUTPUT_QOS,
                                 raw=True)
    node = subprocess.Popen(node_cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    feeder, loads = None, []
    try:
        deadline = time.monotonic() + 120
        while listener.count_publishers(f"{NODE}/detections") == 0:
            if node.poll() is not None:
                raise RuntimeError(f"node exited ({node.returncode}): {node.stderr.read()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("node never came up")
            rclpy.spin_once(listener, timeout_sec=0.1)
        loads = _start_load(args.load, args.seconds + 30, env)
        feeder = subprocess.Popen([sys.executable, __file__, "feed", "--seconds", str(args.seconds),
                                   *(["--images", args.images] if args.images else [])],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while not got["diag"] or not any("pipeline/inference" in s.name for s in _diag(got["diag"][-1]).status):
            rclpy.spin_once(listener, timeout_sec=0.1)
        # measure from the first processed frame to the end of the feed
        while not got["det"]:
            if feeder.poll() is not None:
                raise RuntimeError(f"feeder ended before any frame: {feeder.stderr.read()[-2000:]}")
            rclpy.spin_once(listener, timeout_sec=0.05)
        n0, lat0, t0, cpu0 = len(got["det"]), len(got["lat"]), time.monotonic(), _cpu_ticks(node.pid)
        sys0 = _system_ticks()
        diag0 = _inference_values(_diag(got["diag"][-1]))
        next_probe = time.monotonic()
        while feeder.poll() is None:
            rclpy.spin_once(listener, timeout_sec=0.05)
            if time.monotonic() >= next_probe:
                next_probe += 2.0
                got["probe"].append(_speed_probe())
        t1, cpu1, sys1 = time.monotonic(), _cpu_ticks(node.pid), _system_ticks()
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            rclpy.spin_once(listener, timeout_sec=0.05)
        feed_report = json.loads(feeder.stdout.read().strip().splitlines()[-1])
    finally:
        for p in loads:
            p.kill()
            p.wait()
        for p in (feeder, node):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        listener.destroy_node()
    wall = t1 - t0
    diag1 = _inference_values(_diag(got["diag"][-1]))
    lat = np.array(got["lat"][lat0:] or [np.nan])
    triggers = int(diag1.get("triggers", 0)) - int(diag0.get("triggers", 0))
    dropped = int(diag1.get("dropped_triggers", 0)) - int(diag0.get("dropped_triggers", 0))
    return {
        "lmd": lmd,
        "load_cores": args.load,
        "seconds": round(wall, 1),
        "processed_fps": round((len(got["det"]) - n0) / wall, 2),
        "triggers": triggers,
        "dropped_triggers": dropped,
        "latency_ms_p50": round(float(np.nanpercentile(lat, 50)), 1),
        "latency_ms_p90": round(float(np.nanpercentile(lat, 90)), 1),
        "latency_ms_p99": round(float(np.nanpercentile(lat, 99)), 1),
        "processing_ms_p50": round(float(np.percentile(got["proc"], 50)), 1) if got["proc"] else None,
        "processing_ms_p99": round(float(np.percentile(got["proc"], 99)), 1) if got["proc"] else None,
        **{f"{k}_ms_p50_p99": [round(float(np.percentile(got[k], q)), 1) for q in (50, 99)] if got[k] else None
           for k in STAGES},
        "latency_ms": [round(float(v), 1) for v in lat],
        "processing_ms": [round(float(v), 1) for v in got["proc"][lat0:]],
        "stages_ms": {k: [round(float(v), 1) for v in got[k][lat0:]] for k in STAGES},
        "node_cpu_percent": round((cpu1 - cpu0) / os.sysconf("SC_CLK_TCK") / wall * 100, 1),
        # every process on the machine (feeder, this listener, the node, the rest), 100 % = one core
        "machine_cpu_percent": round((sys1[0] - sys0[0]) / max(sys1[2] - sys0[2], 1) * 100 * os.cpu_count(), 1),
        # CPU time of a fixed workload every 2 s on this (listener) thread: how fast the machine's cores run now;
        # slow phases of a shared VM raise it (steal stays 0) and the node's latency with it
        "probe_cpu_ms_p50_max": [round(float(np.median(got["probe"])), 2), round(float(np.max(got["probe"])), 2)]
        if got["probe"] else None,
        "steal_percent": round((sys1[1] - sys0[1]) / max(sys1[2] - sys0[2], 1) * 100 * os.cpu_count(), 1),
        "feeder": feed_report,
    }


def _diag(raw: bytes):
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.serialization import deserialize_message

    return deserialize_message(raw, DiagnosticArray)


_PROBE_DATA = np.random.default_rng(0).standard_normal(100_000).astype(np.float32)


def _speed_probe() -> float:
    """Thread CPU time (ms) of a fixed Python + numpy workload (~3 ms on a quiet core of the benchmark machine)."""
    t = time.thread_time()
    s = 0
    for i in range(20_000):
        s += i * i
    np.sort(_PROBE_DATA)
    return (time.thread_time() - t) * 1e3


def _inference_values(diag) -> dict[str, str]:
    s = next((s for s in diag.status if s.name.endswith("pipeline/inference")), None)
    return {kv.key: kv.value for kv in s.values} if s is not None else {}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "feed":
        ap = argparse.ArgumentParser(prog="node.py feed")
        ap.add_argument("--seconds", type=float, default=60.0)
        ap.add_argument("--images")
        a = ap.parse_args(argv[1:])
        return feed(a.seconds, a.images)
    if argv and argv[0] == "load":
        ap = argparse.ArgumentParser(prog="node.py load")
        ap.add_argument("--duty", type=float, required=True)
        ap.add_argument("--seconds", type=float, required=True)
        a = ap.parse_args(argv[1:])
        return load(a.duty, a.seconds)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="feed duration per configuration (default 60)")
    ap.add_argument("--trigger-rate", type=float, default=10.0, help="node trigger.rate_hz (default 10)")
    real = os.environ.get("FUSION_MONITOR_REAL_DATA")
    default_images = str(Path(real) / "nuscenes_mini_scene-0061_CAM_FRONT_keyframes") if real else None
    ap.add_argument("--images", default=default_images, help="folder of 1600x900 JPEGs for the cameras")
    ap.add_argument("--model", help="model package (default: the shipped one); LMD off uses <package>_plain if present")
    ap.add_argument("--fake", action="store_true", help="fake pipeline (tests/ros/fake_pipeline.py): harness only")
    ap.add_argument("--lmd", choices=("both", "on", "off"), default="both")
    ap.add_argument("--threads", type=int, default=0, help="node model.num_threads (default 0: backend default)")
    ap.add_argument("--load", type=float, default=0.0, metavar="CORES",
                    help="competing CPU load from other processes during the feed, in cores (e.g. 0.8; default 0)")
    ap.add_argument("--dump", metavar="FILE", help="also write every frame's latency and processing time (JSON)")
    ap.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE",
                    help="any other node parameter (repeatable), e.g. model.thread_spinning:=false")
    args = ap.parse_args(argv)
    env = _env()
    for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID", "FASTDDS_DEFAULT_PROFILES_FILE"):
        os.environ[k] = env[k]
    import rclpy

    configs = {"both": (True, False), "on": (True,), "off": (False,)}[args.lmd]
    rows, series = [], []
    with rclpy.init():
        for lmd in configs:
            rows.append(run_config(lmd, args, env))
            series.append({"lmd": lmd, **{k: rows[-1].pop(k) for k in ("latency_ms", "processing_ms", "stages_ms")}})
            print(json.dumps(rows[-1]), flush=True)
    if args.dump:
        Path(args.dump).write_text(json.dumps(series))
    print(f"\nnode benchmark: {args.seconds:.0f} s per run, trigger {args.trigger_rate} Hz, "
          f"{'FAKE pipeline' if args.fake else 'real pipeline'}, {os.cpu_count()} CPUs"
          + (f", competing load {args.load:g} cores" if args.load else ""))
    print(f"{'LMD':5} {'fps':>6} {'triggers':>9} {'dropped':>8} {'lat p50':>8} {'lat p90':>8} {'lat p99':>8} "
          f"{'proc p50':>9} {'proc p99':>9} {'node CPU %':>10} {'feeder %':>8} {'machine %':>9} {'steal %':>7} {'probe ms':>9}")
    for r in rows:
        print(f"{'on' if r['lmd'] else 'off':5} {r['processed_fps']:6.2f} {r['triggers']:9d} {r['dropped_triggers']:8d} "
              f"{r['latency_ms_p50']:8.1f} {r['latency_ms_p90']:8.1f} {r['latency_ms_p99']:8.1f} "
              f"{r['processing_ms_p50'] or 0:9.1f} {r['processing_ms_p99'] or 0:9.1f} {r['node_cpu_percent']:10.1f} "
              f"{r['feeder'].get('cpu_percent', 0):8.1f} {r['machine_cpu_percent']:9.1f} "
              f"{r['steal_percent']:7.1f} {(r['probe_cpu_ms_p50_max'] or [0])[0]:9.2f}")
    if rows:
        print(f"feeder achieved: {rows[-1]['feeder'].get('rates_hz')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
