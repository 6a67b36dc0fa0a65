"""`fusion-monitor selftest`: is this installation a working ROS 2 + inference environment?"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=2.0, help="how long to stream images/clouds over DDS")


def check_dds(seconds: float) -> tuple[bool, str]:
    """Stream 1600x900 images and 35k-point clouds at 20 Hz between two processes."""
    expect = int(20 * seconds)
    env = dict(os.environ)
    env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)
    probe = [sys.executable, "-m", "fusion_monitor.ros.transport_probe"]
    sub = subprocess.Popen([*probe, "sub", "--expect", str(expect), "--timeout", str(seconds + 30)],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pub = subprocess.Popen([*probe, "pub", "--seconds", str(seconds)], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        out, err = sub.communicate(timeout=seconds + 60)
        pub.wait(timeout=60)
    finally:
        for p in (sub, pub):
            if p.poll() is None:
                p.kill()
    if not out.strip():
        return False, f"subscriber produced no report: {err.strip()[-300:]}"
    r = json.loads(out.strip().splitlines()[-1])
    img, cld = r["/probe/image"], r["/probe/cloud"]
    ok = img["received"] == expect and cld["received"] == expect
    return ok, (f"{img['received']}/{expect} images (p50 {img['latency_ms_p50']} ms), "
                f"{cld['received']}/{expect} clouds (p50 {cld['latency_ms_p50']} ms)")


def check_onnx() -> tuple[bool, str]:
    """Export a small conv net with torch and compare ONNX Runtime against it."""
    import numpy as np
    import onnxruntime as ort
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 4, 1)).eval()
    x = torch.randn(1, 3, 32, 32)
    with tempfile.TemporaryDirectory() as d, torch.no_grad():
        path = os.path.join(d, "net.onnx")
        torch.onnx.export(net, (x,), path, input_names=["x"], output_names=["y"], dynamo=False)
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        t0 = time.perf_counter()
        y = sess.run(None, {"x": x.numpy()})[0]
        ms = (time.perf_counter() - t0) * 1e3
        ref = net(x).numpy()
    err = float(np.abs(y - ref).max() / (np.abs(ref).max() + 1e-12))
    return err < 1e-4, f"torch {torch.__version__} vs onnxruntime {ort.__version__}: max rel err {err:.1e} ({ms:.1f} ms)"


def run(args: argparse.Namespace) -> int:
    results = [("ROS 2 over DDS (cross-process)", *check_dds(args.seconds)), ("ONNX export + Runtime", *check_onnx())]
    for name, ok, detail in results:
        print(f"[{'ok' if ok else 'FAIL'}] {name}: {detail}")
    return 0 if all(ok for _, ok, _ in results) else 1
