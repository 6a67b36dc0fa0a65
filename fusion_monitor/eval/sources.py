"""Bags for scenarios: cached simulated / real-sample base drives, faults injected per scenario, sim-artifact windows."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from fusion_monitor.eval.scenario import IgnoreWindow, Scenario

#: An object this close (m) to the ego footprint counts as driving through the ego car (a sim artifact).
OVERLAP_MARGIN_M = 0.3
#: Ego footprint in base_link (x_min, x_max, y_min, y_max), metres (nuScenes Renault Zoe, base at the rear axle).
EGO_FOOTPRINT_M = (-1.0, 3.6, -0.95, 0.95)


def _atomic(build, out: Path) -> Path:
    """Build into a temporary sibling and rename (a killed run never leaves a half bag in the cache)."""
    if out.exists():
        return out
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    build(tmp)
    try:
        tmp.rename(out)
    except OSError:  # another run finished the same bag first
        if not out.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def base_bag(scenario: Scenario, cache_dir: str | Path, real_root: str | Path | None = None) -> Path:
    """The scenario's fault-free bag (built once and cached under ``cache_dir``).

    Raises
    ------
    fusion_monitor.eval.real.RealDataMissing
        A ``real`` source without the samples (``real_root`` or FUSION_MONITOR_REAL_DATA).
    """
    from fusion_monitor.sim.bag import write_bag

    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    src = scenario.source
    if scenario.source_kind == "bag":
        return Path(src["path"])
    if scenario.source_kind == "simulate":
        from fusion_monitor.sim import SIM_REVISION
        from fusion_monitor.sim.drive import simulate_drive

        out = cache / f"sim_s{src['seed']}_{src['duration_s']:g}s_r{SIM_REVISION}"
        return _atomic(lambda p: write_bag(simulate_drive(seed=src["seed"], duration_s=src["duration_s"],
                                                          upscale=False), p, storage="mcap", workers=1), out)
    from fusion_monitor.eval.real import RealDataMissing, RealSequence

    root = real_root or os.environ.get("FUSION_MONITOR_REAL_DATA")
    if not root:
        raise RealDataMissing(f"scenario {scenario.name}: a 'real' source needs FUSION_MONITOR_REAL_DATA "
                              "(the folder with nuscenes_mini_scene-0061_sample0)")
    seed = int(src.get("seed", 0))
    out = cache / f"real_s{seed}_{src['duration_s']:g}s"
    return _atomic(lambda p: write_bag(RealSequence(root, src["duration_s"], seed), p, storage="mcap"), out)


def scenario_bag(scenario: Scenario, cache_dir: str | Path, real_root: str | Path | None = None) -> Path:
    """The bag to replay: the base drive, with the scenario's faults injected (cached by fault-spec hash)."""
    from fusion_monitor.tools.inject import inject_bag

    base = base_bag(scenario, cache_dir, real_root)
    if not scenario.faults:
        return base
    key = hashlib.sha256(json.dumps([str(base), scenario.faults], sort_keys=True).encode()).hexdigest()[:12]
    out = Path(cache_dir) / "faulted" / f"{scenario.name}_{key}"
    out.parent.mkdir(parents=True, exist_ok=True)

    def build(p: Path) -> None:
        inject_bag(base, p, scenario.faults, storage="mcap")
        gt = Path(str(p) + ".faults.json")
        if gt.exists():
            gt.rename(Path(str(out) + ".faults.json"))

    return _atomic(build, out)


def sim_overlap_windows(seed: int, duration_s: float, step_s: float = 0.05, pad_before_s: float = 0.5,
                        pad_after_s: float = 1.5, avoid_collisions: bool = True) -> list[IgnoreWindow]:
    """Windows where a simulated object or building overlaps the ego car or comes within ``OVERLAP_MARGIN_M`` of it.
    The LiDAR and cameras then sit inside a box, or a truck passes inside the LiDAR's 1 m minimum range, and rightly
    report blockage; these windows are excluded from scoring and their total length is reported. With collision
    avoidance (the simulator's default since SIM_REVISION 2) vehicles brake and the ego keeps its lane, so such
    windows are rare; the first revision's traffic drove *through* the ego, brushed past it within 0.05-0.3 m
    (the 0.3 m margin), and long drives left the road into the buildings. Pedestrians keep walking and can still
    step into the ego from the side."""
    from fusion_monitor.sim.world import make_world

    w = make_world(seed, duration_s, avoid_collisions=avoid_collisions)
    x0, x1, y0, y1 = EGO_FOOTPRINT_M
    hits = []
    for t in np.arange(0.0, duration_s, step_s):
        inv = np.linalg.inv(w.ego_pose(float(t)))
        b = np.concatenate([w.object_boxes(float(t)), w.static_boxes])
        p = b[:, :2] @ inv[:2, :2].T + inv[:2, 3]
        yaw = b[:, 6] - w.ego_yaw
        hx = 0.5 * (np.abs(b[:, 3] * np.cos(yaw)) + np.abs(b[:, 4] * np.sin(yaw)))  # box extents in base axes
        hy = 0.5 * (np.abs(b[:, 3] * np.sin(yaw)) + np.abs(b[:, 4] * np.cos(yaw)))
        dx = np.maximum(np.maximum(x0 - hx - p[:, 0], p[:, 0] - hx - x1), 0.0)
        dy = np.maximum(np.maximum(y0 - hy - p[:, 1], p[:, 1] - hy - y1), 0.0)
        near = np.hypot(dx, dy) <= OVERLAP_MARGIN_M
        hits.append(bool(np.any(near)))
    out: list[IgnoreWindow] = []
    t_arr = np.arange(0.0, duration_s, step_s)
    i = 0
    while i < len(hits):
        if hits[i]:
            j = i
            while j < len(hits) and hits[j]:
                j += 1
            a, b_ = max(0.0, t_arr[i] - pad_before_s), t_arr[j - 1] + pad_after_s
            if out and a <= out[-1].end_s:
                out[-1] = IgnoreWindow(out[-1].start_s, b_)
            else:
                out.append(IgnoreWindow(float(a), float(b_)))
            i = j
        else:
            i += 1
    return out
