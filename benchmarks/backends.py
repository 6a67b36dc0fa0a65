"""Backend latency and memory, plain vs LMD-decomposed, measured side by side in one run.

For the reference detector package and one zoo model, and for every backend available here
(ONNX Runtime CPU/CUDA/TensorRT-EP, PyTorch CPU/CUDA, TensorRT), each measurement runs in a
fresh worker process (a process that has just run torch slows ONNX Runtime down), with
ONNX Runtime intra_op=2, inter_op=1 and torch.set_num_threads(2). Prints a Markdown table.

    python benchmarks/backends.py                        # models/reference/package{,_plain} + zoo model
    python benchmarks/backends.py --reference DIR --runs 200 --json results.json

Packages missing on disk are exported into a temporary directory first (the reference
detector with its shipped weights when present, else freshly initialised weights: latency
does not depend on weight values). Decomposed packages need fusion_monitor.lmd.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
THREADS = 2


# ------------------------------------------------------------------------------------- worker
def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def worker(package_dir: str, kind: str, device: str | None, runs: int, warmup: int) -> dict:
    """Load one backend in this (fresh) process, warm up, time ``runs`` inferences."""
    import numpy as np

    from fusion_monitor.inference import create_backend, load_package

    package = load_package(package_dir)
    options: dict = {}
    if kind == "onnxruntime":
        options = {"intra_op_threads": THREADS, "inter_op_threads": 1, "device": device or "cpu"}
    elif kind == "pytorch":
        options = {"threads": THREADS, "device": device or "cpu"}
    elif kind == "tensorrt":
        options = {"precision": device or "fp32", "rebuild": True}
    rng = np.random.default_rng(0)
    inputs = {i.name: rng.standard_normal(i.shape).astype(i.dtype) for i in package.metadata.inputs}
    rss0 = _rss_mib()
    t0 = time.perf_counter()
    backend = create_backend(package, kind, **options)
    load_s = time.perf_counter() - t0
    backend.warmup(warmup)
    rss1 = _rss_mib()
    times = np.empty(runs)
    for k in range(runs):
        t = time.perf_counter()
        backend.run(inputs)
        times[k] = (time.perf_counter() - t) * 1e3
    return {
        "backend": backend.name,
        "p50_ms": float(np.percentile(times, 50)),
        "p99_ms": float(np.percentile(times, 99)),
        "mean_ms": float(times.mean()),
        "load_s": load_s,
        "rss_backend_mib": rss1 - rss0,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


# ------------------------------------------------------------------------------------- driver
def _available_backends(package_dir: Path) -> list[tuple[str, str | None]]:
    """(kind, device) pairs that can run here; probed in a child so the driver stays torch-free."""
    code = (
        "import json, onnxruntime as ort\n"
        "out = [('onnxruntime', 'cpu')]\n"
        "have = ort.get_available_providers()\n"
        "out += [('onnxruntime', d) for d, p in (('cuda', 'CUDAExecutionProvider'),"
        " ('tensorrt', 'TensorrtExecutionProvider')) if p in have]\n"
        "import torch\n"
        "out.append(('pytorch', 'cpu'))\n"
        "if torch.cuda.is_available():\n"
        "    out.append(('pytorch', 'cuda'))\n"
        "    try:\n"
        "        import tensorrt\n"
        "        out += [('tensorrt', 'fp32'), ('tensorrt', 'fp16')]\n"
        "    except Exception:\n"
        "        pass\n"
        "print(json.dumps(out))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_env())
    return [tuple(x) for x in json.loads(res.stdout.strip().splitlines()[-1])]


def _env() -> dict:
    env = dict(os.environ)
    env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)
    env["OMP_NUM_THREADS"] = str(THREADS)
    return env


def _run_worker(package_dir: Path, kind: str, device: str | None, runs: int, warmup: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(package_dir), "--kind", kind,
           "--runs", str(runs), "--warmup", str(warmup), "--threads", str(THREADS)]
    if device:
        cmd += ["--device", device]
    res = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=3600)
    if res.returncode != 0:
        return {"error": res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def _reference_model():
    """The reference detector (shipped weights when found), its example inputs and modality map."""
    import torch

    from fusion_monitor.model.build import build_model
    from fusion_monitor.model.network import LIDAR_CHANNELS, RADAR_CHANNELS
    from fusion_monitor.sensors.preprocess import InputSpec

    spec = InputSpec()
    model = build_model(spec=spec)
    note = "initialised weights"
    for ckpt in sorted((REPO / "models" / "reference").glob("*.pt")):
        try:
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state) if isinstance(state, dict) else state
            model.load_state_dict(state, strict=False)
            note = f"weights {ckpt.name}"
            break
        except Exception:  # a checkpoint of another shape: keep the fresh weights
            continue
    h, w = spec.image_hw
    g = spec.grid
    gen = torch.Generator().manual_seed(0)
    example = {
        "camera": torch.randn(1, len(spec.camera_names), 3, h, w, generator=gen),
        "lidar": torch.randn(1, LIDAR_CHANNELS, g, g, generator=gen).abs(),
        "radar": torch.randn(1, RADAR_CHANNELS, g, g, generator=gen).abs(),
        "present": torch.ones(1, 3),
    }
    modalities = {"camera": "camera", "lidar": "lidar", "radar": "radar", "present": None}
    return model.eval(), example, modalities, note


def _zoo_model(name: str, scale: int):
    """One model of the LMD engine's zoo (fusion_monitor.lmd.zoo), else the tiny fusion network."""
    from fusion_monitor.inference.toy import ZOO_FACTORY, zoo_model

    try:
        from fusion_monitor.lmd import zoo
    except ImportError:
        zoo = None
    if zoo is not None:
        entry = zoo.get(name)
        kwargs = {"name": name, "scale": scale}
        example = entry.inputs(seed=0, scale=scale)
        modalities = entry.modalities or {k: k for k in example}
        return f"zoo:{name} (scale {scale})", zoo_model(**kwargs), example, modalities, ZOO_FACTORY, kwargs
    from fusion_monitor.inference.toy import TINY_FACTORY, TINY_MODALITIES, tiny_example_inputs, tiny_fusion_net

    kwargs = {"bev": 64, "width": 32}
    ex = tiny_example_inputs(image_hw=(96, 176), bev=64)
    return "toy:TinyFusionNet", tiny_fusion_net(**kwargs), ex, TINY_MODALITIES, TINY_FACTORY, kwargs


def _export(out: Path, model, example, modalities, decomposed: bool, factory: str | None = None,
            factory_kwargs: dict | None = None) -> str | None:
    from fusion_monitor.inference import write_package

    try:
        write_package(out, model, example, modalities, decomposed=decomposed, overwrite=True, factory=factory,
                      factory_kwargs=factory_kwargs)
        return None
    except Exception as e:  # report and continue with the other cases
        return f"{type(e).__name__}: {str(e)[:200]}"


def _packages(args, tmp: Path) -> list[tuple[str, str, Path | None, str]]:
    """(model label, variant, package dir or None, note)."""
    out = []
    ref_dir = Path(args.reference)
    plain_dir = ref_dir.with_name(ref_dir.name + "_plain")
    need_ref = not (ref_dir / "metadata.json").is_file() or not (plain_dir / "metadata.json").is_file()
    ref = _reference_model() if need_ref else None
    for variant, path, decomposed in (("plain", plain_dir, False), ("LMD", ref_dir, True)):
        if (path / "metadata.json").is_file():
            out.append(("reference", variant, path, f"package {path.relative_to(REPO) if path.is_relative_to(REPO) else path}"))
            continue
        dst = tmp / f"reference_{variant}"
        err = _export(dst, ref[0], ref[1], ref[2], decomposed, factory="fusion_monitor.model.build:build_model")
        out.append(("reference", variant, None if err else dst, err or f"exported here ({ref[3]})"))
    label, model, example, modalities, factory, kwargs = _zoo_model(args.zoo, args.zoo_scale)
    for variant, decomposed in (("plain", False), ("LMD", True)):
        dst = tmp / f"zoo_{variant}"
        err = _export(dst, model, example, modalities, decomposed, factory, kwargs)
        out.append((label, variant, None if err else dst, err or "exported here"))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", default=str(REPO / "models" / "reference" / "package"),
                   help="decomposed reference package (the plain one is DIR_plain)")
    p.add_argument("--zoo", default="simplebev", help="zoo model of fusion_monitor.lmd.zoo (default simplebev)")
    p.add_argument("--zoo-scale", type=int, default=2, help="zoo model scale (default 2: 32x32 BEV, 64x64 images)")
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--threads", type=int, default=2, help="ORT intra-op / torch threads (default 2)")
    p.add_argument("--json", default=None, help="also write the raw results here")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--kind", default=None, help=argparse.SUPPRESS)
    p.add_argument("--device", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    global THREADS
    THREADS = args.threads
    if args.worker:
        print(json.dumps(worker(args.worker, args.kind, args.device, args.runs, args.warmup)))
        return 0

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="fm-bench-") as tmp:
        cases = _packages(args, Path(tmp))
        first = next((c[2] for c in cases if c[2] is not None), None)
        backends = _available_backends(first) if first else []
        results = []
        for label, variant, pkg, note in cases:
            for kind, device in backends:
                r = _run_worker(pkg, kind, device, args.runs, args.warmup) if pkg else {"error": note}
                r.update(model=label, variant=variant, note=note, kind=kind, device=device)
                results.append(r)
                print(f"# {label} {variant} {kind}-{device}: "
                      + (r["error"] if "error" in r else f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms"),
                      file=sys.stderr)
    print(_table(results, args, (load_before, os.getloadavg()[0])))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _table(results: list[dict], args, load: tuple[float, float]) -> str:
    cpu = platform.processor() or platform.machine()
    lines = [f"Backend latency, batch 1, {args.runs} runs after {args.warmup} warm-up, {THREADS} threads, "
             f"{os.cpu_count()} cores ({cpu}), 1-min load average {load[0]:.1f} before / {load[1]:.1f} after; "
             "each cell a fresh process. Memory: RSS added by loading and warming the backend.", "",
             "| model | backend | plain p50 / p99 (ms) | LMD p50 / p99 (ms) | LMD / plain (p50) | plain MiB | LMD MiB |",
             "|---|---|---|---|---|---|---|"]
    keyed = {(r["model"], r["kind"], r["device"], r["variant"]): r for r in results}
    seen = []
    for r in results:
        k = (r["model"], r["kind"], r["device"])
        if k not in seen:
            seen.append(k)
    for model, kind, device in seen:
        plain, lmd = keyed.get((model, kind, device, "plain"), {}), keyed.get((model, kind, device, "LMD"), {})

        def lat(r):
            return f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f}" if "p50_ms" in r else f"n/a ({r.get('error', '?')[:60]})"

        def mem(r):
            return f"{r['rss_backend_mib']:.0f}" if "rss_backend_mib" in r else "n/a"

        ratio = f"{lmd['p50_ms'] / plain['p50_ms']:.2f}x" if "p50_ms" in plain and "p50_ms" in lmd else "n/a"
        name = plain.get("backend") or lmd.get("backend") or f"{kind}-{device}"
        lines.append(f"| {model} | {name} | {lat(plain)} | {lat(lmd)} | {ratio} | {mem(plain)} | {mem(lmd)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
