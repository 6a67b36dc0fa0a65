"""Alert quality on the scenario suite: raw-signal checks alone vs raw + attribution checks, side by side.

Runs `fusion-monitor evaluate` on scenarios/ (>= 20 scenarios over simulated drives and sequences built
from the real nuScenes samples; set FUSION_MONITOR_REAL_DATA) and prints the README table plus the targets:
>= 95 % of injected faults detected, median time to alert <= 0.5 s for dropouts and <= 1.5 s for content
faults, zero false alarms on the nominal drives, and the faults only the attribution checks catch.

    python benchmarks/alerts.py [--model PKG] [--out DIR] [--cache DIR] [--from-results results.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def targets(res: dict) -> list[str]:
    out = []
    for label, key in (("raw-signal only", "raw"), ("raw + attribution", "raw_attribution")):
        t = res["totals"][key]
        nominal = [r for r in res["scenarios"] if not r["raw"]["tp"] + r["raw"]["fn"]]
        fp_nominal = sum(r[key]["fp"] for r in nominal)
        minutes = sum(r["duration_s"] - r.get("sim_overlap_s", 0.0) for r in nominal) / 60
        out.append(f"{label}: detected {t['detection_rate']:.0%} (target >= 95 %), median TTA dropout "
                   f"{t['median_tta_dropout_s']:.2f} s (<= 0.5), content {t['median_tta_content_s']:.2f} s (<= 1.5), "
                   f"false alarms on nominal drives {fp_nominal} over {minutes:.1f} min (target 0 over >= 10 min)")
    only_attr = []
    for r in res["scenarios"]:
        if r["raw_attribution"]["tp"] > r["raw"]["tp"]:
            only_attr.append(r["name"])
    out.append("caught only with the attribution checks: " + (", ".join(only_attr) or "none in this run"))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="model package (default: the shipped reference)")
    ap.add_argument("--out", default="alerts_benchmark", help="evaluate output folder")
    ap.add_argument("--cache", help="bag cache (default: OUT/cache)")
    ap.add_argument("--from-results", help="print the table of an earlier run's results.json instead")
    args = ap.parse_args(argv)
    if args.from_results:
        res = json.loads(Path(args.from_results).read_text())
    else:
        from fusion_monitor.tools.cli import main as cli

        cmd = ["evaluate", str(REPO / "scenarios"), "--out", args.out]
        if args.model:
            cmd += ["--model", args.model]
        if args.cache:
            cmd += ["--cache", args.cache]
        rc = cli(cmd)
        if rc not in (0, 1):
            return rc
        res = json.loads((Path(args.out) / "results.json").read_text())
    from fusion_monitor.tools.evaluate import report

    print(report(res["scenarios"]))
    print()
    for line in targets(res):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
