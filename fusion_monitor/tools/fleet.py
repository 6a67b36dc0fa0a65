"""Many bags at once: local worker processes or a Ray cluster, resumable, one summary for the fleet.

Each bag is replayed into its own folder OUT/<bag name>/; a bag whose folder already holds a
complete result (``result.json`` with ``complete: true``) is skipped, so an interrupted fleet run
resumes where it stopped. One failing bag never stops the others: it is listed with its reason.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

RESULT_FILE = "result.json"


@dataclass
class BagOutcome:
    bag: str
    out_dir: str
    status: str  # "ok" | "failed" | "skipped" | "partial"
    reason: str = ""
    summary: dict = field(default_factory=dict)
    seconds: float = 0.0


def bag_out_dir(out_root: Path, bag: str | Path, taken: set[str] | None = None) -> Path:
    """OUT/<bag name> (a numeric suffix keeps two bags with the same name apart)."""
    name = Path(bag).name
    for suffix in ("", *(f"_{i}" for i in range(1, 1000))):
        cand = name.removesuffix(".mcap").removesuffix(".db3") + suffix
        if taken is None or cand not in taken:
            if taken is not None:
                taken.add(cand)
            return out_root / cand
    raise ValueError(f"too many bags named {name}")


def is_complete(out_dir: Path) -> bool:
    try:
        return bool(json.loads((out_dir / RESULT_FILE).read_text()).get("complete"))
    except (OSError, ValueError):
        return False


def _run_one(job: tuple[Callable, str, str, dict]) -> BagOutcome:
    fn, bag, out_dir, kwargs = job
    t0 = time.monotonic()
    try:
        summary = fn(bag, out_dir, **kwargs)
    except Exception as e:  # one bad bag never stops the fleet
        return BagOutcome(bag, out_dir, "failed", f"{type(e).__name__}: {e}", seconds=time.monotonic() - t0)
    status = "ok" if summary.get("complete") else "partial"
    reason = "; ".join(summary.get("problems", []))
    return BagOutcome(bag, out_dir, status, reason, summary, time.monotonic() - t0)


def run_fleet(fn: Callable[..., dict], bags: list[str], out_root: str | Path, *, workers: int = 1,
              ray_address: str | None = None, progress: Callable[[BagOutcome], None] | None = None,
              **kwargs) -> list[BagOutcome]:
    """Replay every bag with ``fn(bag, out_dir, **kwargs) -> summary dict`` and collect outcomes.

    ``fn`` must be importable (a module-level function) for worker processes and Ray tasks.
    ``ray_address`` is "local" for a local Ray instance or a cluster address.
    """
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    if workers > 1 and (ray_address is None or ray_address == "local"):
        # N workers on one machine share its cores: give each an equal share of inference threads
        params = dict(kwargs.get("params") or {})
        params.setdefault("model.num_threads", max(1, (os.cpu_count() or 1) // max(1, workers)))
        kwargs = {**kwargs, "params": params}
    taken: set[str] = set()
    jobs, outcomes = [], []
    for bag in bags:
        out_dir = bag_out_dir(out_root, bag, taken)
        if is_complete(out_dir):
            outcomes.append(BagOutcome(str(bag), str(out_dir), "skipped", "complete result already there",
                                       json.loads((out_dir / RESULT_FILE).read_text())))
            if progress:
                progress(outcomes[-1])
            continue
        jobs.append((fn, str(bag), str(out_dir), kwargs))
    if ray_address:
        outcomes += _run_ray(jobs, ray_address, workers, progress)
    elif workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            outcomes.append(_run_one(job))
            if progress:
                progress(outcomes[-1])
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_run_one, job) for job in jobs]
            for fut in as_completed(futures):
                outcomes.append(fut.result())
                if progress:
                    progress(outcomes[-1])
    order = {str(b): i for i, b in enumerate(bags)}
    outcomes.sort(key=lambda o: order.get(o.bag, 0))
    write_fleet_summary(out_root, outcomes)
    return outcomes


def _run_ray(jobs, address: str, workers: int, progress) -> list[BagOutcome]:
    import ray

    if not ray.is_initialized():
        if address == "local":
            ray.init(num_cpus=max(1, workers), include_dashboard=False, log_to_driver=False,
                     configure_logging=False, _node_ip_address="127.0.0.1")
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    remote = ray.remote(num_cpus=1)(_run_one)
    pending = {remote.remote(job): job for job in jobs}
    out = []
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                job = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as e:  # worker died: report, keep going
                    outcome = BagOutcome(job[1], job[2], "failed", f"ray task failed: {e}")
                out.append(outcome)
                if progress:
                    progress(outcome)
    finally:
        if address == "local":
            ray.shutdown()
    return out


def write_fleet_summary(out_root: Path, outcomes: list[BagOutcome]) -> Path:
    """fleet.json: per bag status, reason, and per sensor/check the worst level and alert count."""
    rows = []
    for o in outcomes:
        rows.append({"bag": o.bag, "out_dir": os.path.relpath(o.out_dir, out_root), "status": o.status,
                     "reason": o.reason, "seconds": round(o.seconds, 2),
                     "frames": o.summary.get("frames"), "start_ns": o.summary.get("start_ns"),
                     "health": o.summary.get("health", {})})
    path = out_root / "fleet.json"
    path.write_text(json.dumps({"bags": rows, "failed": sum(o.status == "failed" for o in outcomes)}, indent=1))
    return path
