"""Cost of exact LMD next to the plain model, on PyTorch and ONNX Runtime (CPU), in one run.

For every zoo architecture (fusion_monitor.lmd.zoo, at --scale) and the reference detector
(fusion_monitor.model, picked up automatically when importable), prints:

* plain latency and decomposed (single-pass, lmd.md section 5) latency, and their ratio;
* the FLOP-ratio floor (pre_fusion + (M+1) * post_fusion) / (pre_fusion + post_fusion), FLOPs
  counted by torch.utils.flop_counter on the captured graph, and ratio / floor (target <= 1.10);
* the cost of the alternatives measured the same way: exact modality Shapley (2^M masked passes
  of the plain model, a modality masked by zeroing its inputs) and occlusion (M + 1 passes).

Each backend runs in a fresh process per model (torch's and ONNX Runtime's thread pools fight when
they share one). Two clocks, both printed:

* ``cpu``: one thread, per-call CPU time of the calling thread (time.thread_time), median over
  runs. The compute cost, insensitive to other processes on a shared machine: the ratios of this
  table are the ones checked against the target.
* ``wall``: --threads threads, wall-clock latency, median over interleaved plain/decomposed runs.

    python benchmarks/lmd_overhead.py [--threads 2] [--runs 20] [--scale 4] [--models resnet_bn,unet,reference]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------
# model specs
# ------------------------------------------------------------------------------------------------


def reference_available() -> str | None:
    """None when fusion_monitor.model exposes the reference detector, else why not."""
    try:
        from fusion_monitor.model import MODALITIES, build_model, example_inputs  # noqa: F401
    except Exception as e:  # the reference detector is optional for this benchmark
        return f"{type(e).__name__}: {e}"
    return None


def load_case(name: str, scale: int):
    """(model, example inputs, modalities) of a zoo entry or the reference detector."""
    import torch

    if name == "reference":
        from fusion_monitor.model import MODALITIES, build_model, example_inputs

        try:
            from fusion_monitor.model import load_reference

            model, _ = load_reference()
        except Exception:  # weights not shipped yet: same architecture and cost, random weights
            model = build_model().eval()
        return model.eval(), example_inputs(), dict(MODALITIES)
    from fusion_monitor.lmd.zoo import get

    e = get(name)
    return e.build(scale=scale), e.inputs(0, torch.float32, scale=scale), e.modalities


def masked_inputs(inputs: dict, modalities: dict, present: tuple) -> dict:
    """Inputs with every modality not in ``present`` zeroed (the masking of Shapley/occlusion)."""
    import torch

    out = dict(inputs)
    for arg, m in modalities.items():
        if m is not None and m not in present:
            out[arg] = torch.zeros_like(inputs[arg])
    return out


def subsets(mods: list[str]) -> list[tuple]:
    return [tuple(c) for r in range(len(mods) + 1) for c in itertools.combinations(mods, r)]


def occlusion_sets(mods: list[str]) -> list[tuple]:
    return [tuple(mods)] + [tuple(m for m in mods if m != x) for x in mods]


CLOCK = time.perf_counter


def _time(fns: dict, runs: int, warmup: int) -> dict:
    """Interleaved timing of several callables: {name: (median_ms, min_ms)} on CLOCK."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    acc = {k: [] for k in fns}
    for _ in range(runs):
        for k, f in fns.items():
            t = CLOCK()
            f()
            acc[k].append(CLOCK() - t)
    return {k: (statistics.median(v) * 1e3, min(v) * 1e3) for k, v in acc.items()}


# ------------------------------------------------------------------------------------------------
# workers (one fresh process each)
# ------------------------------------------------------------------------------------------------


def worker_torch(name: str, scale: int, threads: int, runs: int, warmup: int, outdir: Path) -> dict:
    import torch

    from fusion_monitor.lmd import decompose, export_onnx

    torch.set_num_threads(threads)
    warnings.simplefilter("ignore")
    model, ex, mods = load_case(name, scale)
    dm = decompose(model, ex, mods)
    M = len(dm.modality_names)
    fl = dm.region_flops(**ex)
    pre, post = fl["pre_fusion"], fl["post_fusion"]
    floor = (pre + (M + 1) * post) / (pre + post)
    compiled = dm.compile(**ex)
    plain_gm = torch.export.export(model, (), kwargs=ex).module()
    mod_of = dm.modalities
    subs = subsets(dm.modality_names)
    occ = occlusion_sets(dm.modality_names)
    shap_inputs = [masked_inputs(ex, mod_of, s) for s in subs]
    occ_inputs = [masked_inputs(ex, mod_of, s) for s in occ]
    with torch.inference_mode():
        t = _time(
            {
                "plain_eager": lambda: model(**ex),
                "plain_graph": lambda: plain_gm(**ex),
                "decomposed": lambda: compiled(**ex),
            },
            runs,
            warmup,
        )
        t_interp = _time({"interpreter": lambda: dm(**ex)}, max(3, runs // 5), 1)
        t_alt = _time(
            {
                "shapley": lambda: [plain_gm(**x) for x in shap_inputs],
                "occlusion": lambda: [plain_gm(**x) for x in occ_inputs],
            },
            max(3, runs // 5),
            1,
        )
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        export_onnx(dm, ex, outdir / f"{name}_lmd.onnx")
        torch.onnx.export(model, (), str(outdir / f"{name}_plain.onnx"), kwargs=ex, dynamo=True,
                          external_data=False, opset_version=18)
    return {
        "model": name,
        "modalities": dm.modality_names,
        "flops": {"pre_fusion": pre, "post_fusion": post},
        "floor": floor,
        "torch": {**t, **t_interp, **t_alt},
        "shapley_passes": len(subs),
        "occlusion_passes": len(occ),
        "inputs": {k: [list(v.shape), str(v.dtype)] for k, v in ex.items()},
    }


def worker_ort(name: str, scale: int, threads: int, runs: int, warmup: int, outdir: Path) -> dict:
    import numpy as np
    import onnxruntime as ort
    import torch

    model, ex, mods = load_case(name, scale)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    plain = ort.InferenceSession(str(outdir / f"{name}_plain.onnx"), so, providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(outdir / f"{name}_lmd.onnx"), so, providers=["CPUExecutionProvider"])

    def feed(sess, x):
        names = {i.name for i in sess.get_inputs()}
        return {k: np.ascontiguousarray(v.numpy()) for k, v in x.items() if k in names}

    fp, fd = feed(plain, ex), feed(dec, ex)
    m_names = []
    for m in (mods or {k: k for k, v in ex.items() if torch.is_tensor(v)}).values():
        if m is not None and m not in m_names:
            m_names.append(m)
    mod_of = mods or {k: k for k in ex}
    shap = [feed(plain, masked_inputs(ex, mod_of, s)) for s in subsets(m_names)]
    occ = [feed(plain, masked_inputs(ex, mod_of, s)) for s in occlusion_sets(m_names)]
    t = _time({"plain": lambda: plain.run(None, fp), "decomposed": lambda: dec.run(None, fd)}, runs, warmup)
    t_alt = _time(
        {
            "shapley": lambda: [plain.run(None, x) for x in shap],
            "occlusion": lambda: [plain.run(None, x) for x in occ],
        },
        max(3, runs // 5),
        1,
    )
    return {"model": name, "ort": {**t, **t_alt}}


# ------------------------------------------------------------------------------------------------
# driver
# ------------------------------------------------------------------------------------------------


def _spawn(kind: str, name: str, args, outdir: Path) -> dict:
    threads = 1 if args.clock == "cpu" else args.threads
    cmd = [sys.executable, __file__, "--worker", kind, "--model", name, "--scale", str(args.scale), "--threads",
           str(threads), "--runs", str(args.runs), "--warmup", str(args.warmup), "--outdir", str(outdir),
           "--clock", args.clock]
    env = dict(os.environ)
    env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if res.returncode != 0:
        raise RuntimeError(f"{kind} worker for {name} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _fmt_row(cols, widths):
    return "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(cols, widths)))


def report(results: list[dict], stat: int, clock: str, threads: int) -> str:
    label = "median" if stat == 0 else "min"
    what = "CPU time of one thread" if clock == "cpu" else f"wall-clock latency, {threads} threads"
    lines = [f"{what}, ms ({label} over interleaved runs); ratio = decomposed / plain; target ratio/floor <= 1.10"]
    head = ["model", "M", "floor", "backend", "plain", "LMD", "ratio", "ratio/floor", "Shapley 2^M", "x plain",
            "occlusion M+1", "x plain"]
    rows = []
    for r in results:
        M = len(r["modalities"])
        for be in ("torch", "ort"):
            if be not in r:
                continue
            t = r[be]
            plain = t["plain_graph" if be == "torch" else "plain"][stat]
            dec = t["decomposed"][stat]
            ratio = dec / plain
            rows.append([r["model"], M, f"{r['floor']:.2f}", "PyTorch" if be == "torch" else "ONNX Runtime",
                         f"{plain:.2f}", f"{dec:.2f}", f"{ratio:.2f}", f"{ratio / r['floor']:.2f}",
                         f"{t['shapley'][stat]:.1f}", f"{t['shapley'][stat] / plain:.1f}",
                         f"{t['occlusion'][stat]:.1f}", f"{t['occlusion'][stat] / plain:.1f}"])
    widths = [max(len(str(x[i])) for x in rows + [head]) for i in range(len(head))]
    lines.append(_fmt_row(head, widths))
    lines += [_fmt_row(x, widths) for x in rows]
    extra = []
    for r in results:
        t = r["torch"]
        extra.append(f"  {r['model']}: PyTorch eager plain {t['plain_eager'][stat]:.2f} ms, LMD interpreter (replay-capable "
                     f"eager form) {t['interpreter'][stat]:.2f} ms; FLOPs pre-fusion {r['flops']['pre_fusion'] / 1e6:.1f} M, "
                     f"post-fusion {r['flops']['post_fusion'] / 1e6:.1f} M")
    return "\n".join(lines + ["(PyTorch plain = the torch.export GraphModule of the model, LMD = dm.compile())"] + extra)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--scale", type=int, default=4, help="zoo model size multiplier (channels and spatial size)")
    ap.add_argument("--models", default="all", help="comma list of zoo names and/or 'reference' (default: all)")
    ap.add_argument("--json", help="also write the raw results here")
    ap.add_argument("--clock", choices=["cpu", "wall", "both"], default="both",
                    help="cpu: 1 thread, thread CPU time (robust on a loaded machine); wall: --threads, latency")
    ap.add_argument("--worker", choices=["torch", "ort"], help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--outdir", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        global CLOCK
        CLOCK = time.thread_time if args.clock == "cpu" else time.perf_counter
        fn = worker_torch if args.worker == "torch" else worker_ort
        res = fn(args.model, args.scale, args.threads, args.runs, args.warmup, Path(args.outdir))
        print(json.dumps(res))
        return 0
    sys.path.insert(0, str(REPO))
    from fusion_monitor.lmd.zoo import ZOO

    why = reference_available()
    if args.models == "all":
        names = list(ZOO) + (["reference"] if why is None else [])
    else:
        names = [n.strip() for n in args.models.split(",") if n.strip()]
    if why is not None:
        print(f"reference detector not included: fusion_monitor.model is not importable ({why})")
        names = [n for n in names if n != "reference"]
    clocks = ["cpu", "wall"] if args.clock == "both" else [args.clock]
    everything = {}
    with tempfile.TemporaryDirectory(prefix="lmd_bench_") as tmp:
        for clock in clocks:
            results = []
            for name in names:
                t0 = time.time()
                a = argparse.Namespace(**{**vars(args), "clock": clock})
                r = _spawn("torch", name, a, Path(tmp))
                r.update(_spawn("ort", name, a, Path(tmp)))
                results.append(r)
                print(f"  measured {name} ({clock} clock) in {time.time() - t0:.0f} s", file=sys.stderr)
            everything[clock] = results
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover
        load = float("nan")
    print(f"LMD overhead, zoo scale {args.scale}, {args.runs} runs, load average {load:.1f} at the end")
    for clock in clocks:
        print()
        print(report(everything[clock], 0, clock, args.threads))
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
