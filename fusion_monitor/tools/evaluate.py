"""`fusion-monitor evaluate SCENARIOS`: replay fault scenarios and score the alerts (driving_log_replayer style).

Every scenario file (fusion_monitor.eval.scenario) names a drive -- a bag, a simulated drive or a sequence
built from the real nuScenes samples -- faults to inject, the alerts that must fire and windows to ignore.
Each scenario is replayed once; the alerts are scored twice, with the raw-signal checks alone and with
raw + attribution checks, giving per scenario TP / FP / FN and time to alert, and in total the detection
rate, median time to alert (dropouts and content faults) and false alarms per hour. Bags are cached
(simulated and real-sample drives, injected copies) under --cache.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from fusion_monitor.eval.scenario import Scenario, ScenarioError, load_scenarios
from fusion_monitor.eval.score import ScenarioScore, score_alerts, summary_rows, summary_table


def evaluate_scenario(scenario: Scenario, out_dir: str | Path, cache_dir: str | Path, *, params: dict | None = None,
                      model: str | None = None, real_root: str | None = None, ignore_sim_overlaps: bool = True
                      ) -> dict:
    """Build (or reuse) the scenario's bag, replay it, score the alerts; returns a JSON-able record."""
    from fusion_monitor.eval.sources import scenario_bag
    from fusion_monitor.tools.replay import replay_bag

    t0 = time.monotonic()
    bag = scenario_bag(scenario, cache_dir, real_root)
    t1 = time.monotonic()
    res = replay_bag(bag, Path(out_dir) / scenario.name, params=params, model=model)
    duration = float(scenario.duration_s or res["bag_s"])
    return {"name": scenario.name, "file": str(scenario.path), "source": scenario.source_kind, "bag": str(bag),
            "duration_s": duration, "frames": res["frames"], "build_s": round(t1 - t0, 1),
            "replay_wall_s": res["wall_s"], **_scores(scenario, res["alerts"], duration, ignore_sim_overlaps),
            "alerts": res["alerts"]}


def _scores(scenario: Scenario, alerts: list[dict], duration: float, ignore_sim_overlaps: bool) -> dict:
    """Both columns' scores of ``alerts`` (raw-signal only, raw + attribution) and the excluded sim-overlap time."""
    from dataclasses import replace

    from fusion_monitor.eval.sources import sim_overlap_windows
    from fusion_monitor.sensors.rig import load_rig

    extra = []
    if ignore_sim_overlaps and scenario.source_kind == "simulate":
        extra = sim_overlap_windows(scenario.source["seed"], duration)
    scored = replace(scenario, ignore=scenario.ignore + tuple(extra))
    modality_of = {n: s.modality for n, s in load_rig().sensors.items()}
    return {"sim_overlap_s": round(sum(w.end_s - w.start_s for w in extra), 2),
            "raw": _score_dict(score_alerts(scored, alerts, duration, modality_of, attribution=False)),
            "raw_attribution": _score_dict(score_alerts(scored, alerts, duration, modality_of, attribution=True))}


def rescore(record: dict, ignore_sim_overlaps: bool = True) -> dict:
    """A record of :func:`evaluate_scenario` scored again from its stored alerts with the current scenario file and
    scoring rules (no replay): for a change of expectations, ignore windows or scoring."""
    from fusion_monitor.eval.scenario import load_scenario

    scenario = load_scenario(record["file"])
    return {**record, **_scores(scenario, record["alerts"], float(record["duration_s"]), ignore_sim_overlaps)}


def _score_dict(s: ScenarioScore) -> dict:
    return {"tp": s.tp, "fp": s.fp, "fn": s.fn, "tta_s": s.tta_s, "duration_s": s.duration_s,
            "missed": s.missed, "false_alarms": s.false_alarms, "detected_by": {str(k): v for k, v in s.detected_by.items()}}


def _from_dict(name: str, d: dict) -> ScenarioScore:
    s = ScenarioScore(name, d["tp"], d["fp"], d["fn"], [tuple(x) for x in d["tta_s"]], d["duration_s"])
    s.missed, s.false_alarms = list(d["missed"]), [tuple(x) for x in d["false_alarms"]]
    return s


def report(records: list[dict]) -> str:
    """Markdown summary of evaluated scenario records (per scenario, totals, misses and false alarms)."""
    pairs = [(_from_dict(r["name"], r["raw"]), _from_dict(r["name"], r["raw_attribution"])) for r in records]
    lines = [summary_table(pairs), ""]
    for r in records:
        for label, key in (("raw", "raw"), ("raw+attr", "raw_attribution")):
            for m in r[key]["missed"]:
                lines.append(f"- {r['name']} [{label}] missed: {m}")
        for t, name, msg in r["raw_attribution"]["false_alarms"][:5]:
            lines.append(f"- {r['name']} false alarm at {t:.2f} s: {name}: {msg}")
    return "\n".join(lines)


def resolve_baseline(params: dict, params_file: str | Path | None) -> dict:
    """``health.attribution.baseline_file`` relative to the parameter file's folder (so a suite's parameter file
    and its baseline travel together), and checked to exist before any replay.

    Raises
    ------
    FileNotFoundError
        The baseline file does not exist.
    """
    key = "health.attribution.baseline_file"
    value = str(params.get(key) or "")
    if not value:
        return params
    path = Path(value)
    if not path.is_absolute() and params_file is not None and not path.exists():
        path = Path(params_file).resolve().parent / path
    if not path.is_file():
        raise FileNotFoundError(f"{key} {value!r} does not exist (relative paths are read from the parameter "
                                "file's folder)")
    return {**params, key: str(path)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenarios", nargs="+", metavar="SCENARIOS", help="scenario YAML files or folders")
    parser.add_argument("--out", default="evaluate_out", metavar="DIR", help="replays, results.json, summary.md")
    parser.add_argument("--cache", metavar="DIR", help="bag cache (default: OUT/cache)")
    parser.add_argument("--params", metavar="FILE", help="ROS parameter file for the replay")
    parser.add_argument("--model", metavar="PKG", help="model package (default: the shipped reference)")
    parser.add_argument("--real-data", metavar="DIR", help="real samples (default: $FUSION_MONITOR_REAL_DATA)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="run only these scenarios")
    parser.add_argument("--keep-sim-overlaps", action="store_true",
                        help="also score the windows where a simulated object drives through the ego car")


def run(args: argparse.Namespace) -> int:
    from fusion_monitor.bagio import BagError
    from fusion_monitor.eval.real import RealDataMissing
    from fusion_monitor.pipeline import ModelLoadError
    from fusion_monitor.sensors.faults import FaultSpecError
    from fusion_monitor.tools.replay import load_params

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        scenarios = load_scenarios(args.scenarios)
        params = resolve_baseline(load_params(args.params), args.params)
    except (ScenarioError, OSError, ValueError) as e:
        print(f"fusion-monitor evaluate: {e}", file=sys.stderr)
        return 2
    if args.only:
        unknown = sorted(set(args.only) - {s.name for s in scenarios})
        if unknown:
            print(f"fusion-monitor evaluate: --only names unknown scenarios {unknown}", file=sys.stderr)
            return 2
        scenarios = [s for s in scenarios if s.name in args.only]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(args.cache) if args.cache else out / "cache"
    records, failed = [], []
    for i, sc in enumerate(scenarios, 1):
        print(f"[{i}/{len(scenarios)}] {sc.name} ...", flush=True)
        try:
            rec = evaluate_scenario(sc, out, cache, params=params, model=args.model, real_root=args.real_data,
                                    ignore_sim_overlaps=not args.keep_sim_overlaps)
        except RealDataMissing as e:
            print(f"  skipped: {e}", flush=True)
            failed.append((sc.name, f"skipped: {e}"))
            continue
        except (BagError, FaultSpecError, ModelLoadError, FileExistsError) as e:
            print(f"  failed: {e}", flush=True)
            failed.append((sc.name, str(e)))
            continue
        records.append(rec)
        r, b = rec["raw"], rec["raw_attribution"]
        print(f"  raw TP/FP/FN {r['tp']}/{r['fp']}/{r['fn']}, raw+attr {b['tp']}/{b['fp']}/{b['fn']} "
              f"({rec['replay_wall_s']:.0f} s replay)", flush=True)
    text = report(records) if records else "no scenario was evaluated"
    if failed:
        text += "\n\n" + "\n".join(f"- {n}: {why}" for n, why in failed)
    (out / "results.json").write_text(json.dumps({"scenarios": records, "failed": failed,
                                                  "totals": {"raw": summary_rows([_from_dict(r["name"], r["raw"])
                                                                                  for r in records]),
                                                             "raw_attribution": summary_rows(
                                                                 [_from_dict(r["name"], r["raw_attribution"])
                                                                  for r in records])}}, indent=1))
    (out / "summary.md").write_text(text + "\n")
    print("\n" + text)
    return 0 if records and not [f for f in failed if not f[1].startswith("skipped")] else 1
