"""Plain reference-detector latency on PyTorch and ONNX Runtime (CPU) at the default input size.

Each backend is timed in a fresh process (torch's and ORT's thread pools fight when they share one),
median and p90 of --runs runs after --warmup runs. Also times preprocessing (rasters + image normalisation
from a rendered synthetic frame) and decode + circle NMS.

    python benchmarks/detector.py [--threads 2] [--runs 50]

Target (issue 4): plain inference <= 40 ms with ONNX Runtime on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np


def _stats(times_s: list[float]) -> dict:
    a = np.asarray(times_s) * 1e3
    return {"median_ms": round(float(np.median(a)), 2), "p90_ms": round(float(np.percentile(a, 90)), 2)}


def bench_torch(threads: int, runs: int, warmup: int) -> dict:
    import torch

    from fusion_monitor.model import example_inputs, load_reference

    torch.set_num_threads(threads)
    model, _ = load_reference()
    x = example_inputs()
    times = []
    with torch.inference_mode():
        for i in range(warmup + runs):
            t = time.perf_counter()
            model(**x)
            if i >= warmup:
                times.append(time.perf_counter() - t)
    return _stats(times)


def bench_ort(threads: int, runs: int, warmup: int) -> dict:
    import onnxruntime as ort

    from fusion_monitor.model.reference import default_model_dir
    from fusion_monitor.sensors.preprocess import InputSpec

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(default_model_dir() / "model.onnx"), so, providers=["CPUExecutionProvider"])
    spec = InputSpec()
    rng = np.random.default_rng(0)
    H, W = spec.image_hw
    G = spec.grid
    x = {"camera": rng.standard_normal((1, 6, 3, H, W), np.float32),
         "lidar": (rng.random((1, 10, G, G)) * (rng.random((1, 10, G, G)) < 0.05)).astype(np.float32),
         "radar": (rng.random((1, 6, G, G)) * (rng.random((1, 6, G, G)) < 0.01)).astype(np.float32),
         "present": np.ones((1, 3), np.float32)}
    times = []
    for i in range(warmup + runs):
        t = time.perf_counter()
        sess.run(None, x)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return _stats(times)


def bench_pre_post(runs: int) -> dict:
    from fusion_monitor.model import decode
    from fusion_monitor.sensors.preprocess import preprocess_frame
    from fusion_monitor.sim import make_world, render_frame

    f = render_frame(make_world(7, 2.0), 0.5)
    rig = f.rig
    cams = [c.name for c in rig.of("camera")]
    lidar = rig.of("lidar")[0]
    radars = {r.name: (f.radars[r.name], r.T_base_sensor) for r in rig.of("radar")}
    pre_t, dec_t = [], []
    rng = np.random.default_rng(0)
    hm = rng.normal(-4, 1.5, (4, 128, 128)).astype(np.float32)
    rg = rng.normal(0, 1, (10, 128, 128)).astype(np.float32)
    for _ in range(runs):
        t = time.perf_counter()
        preprocess_frame(dict(zip(cams, f.images)), dict(zip(cams, f.K)), f.lidar, lidar.T_base_sensor, radars)
        pre_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        decode(hm, rg)
        dec_t.append(time.perf_counter() - t)
    return {"preprocess (model-size images, 1 LiDAR sweep, 5 radars)": _stats(pre_t),
            "decode + circle NMS": _stats(dec_t), "lidar_points": int(len(f.lidar))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--only", choices=("torch", "ort", "prepost"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.only:
        fn = {"torch": lambda: bench_torch(a.threads, a.runs, a.warmup),
              "ort": lambda: bench_ort(a.threads, a.runs, a.warmup), "prepost": lambda: bench_pre_post(a.runs)}[a.only]
        print(json.dumps(fn()))
        return 0
    results = {}
    for what in ("ort", "torch", "prepost"):
        cmd = [sys.executable, __file__, "--only", what, "--threads", str(a.threads), "--runs", str(a.runs),
               "--warmup", str(a.warmup)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results[what] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"reference detector, {a.threads} threads, median / p90 of {a.runs} runs (fresh process per backend)")
    print(f"  ONNX Runtime plain model : {results['ort']['median_ms']:.1f} / {results['ort']['p90_ms']:.1f} ms"
          f"  (target <= 40 ms: {'met' if results['ort']['median_ms'] <= 40 else 'NOT met'})")
    print(f"  PyTorch eager plain model: {results['torch']['median_ms']:.1f} / {results['torch']['p90_ms']:.1f} ms")
    for k, v in results["prepost"].items():
        if isinstance(v, dict):
            print(f"  {k}: {v['median_ms']:.1f} / {v['p90_ms']:.1f} ms")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
