"""Scoring replay alerts against a scenario: TP / FP / FN, time to alert, false alarms per hour, summary table.

Alerts are the replay's transitions of a status into WARN/ERROR (``replay_bag(...)["alerts"]``), named
``"<node>: <sensor>/<check>"`` (attribution: ``"<node>: <modality>/<check>"``). An expectation is detected
(TP) when a matching alert fires inside its window; alerts matching no expectation and no ignore window
are false positives. ``attribution=False`` scores the raw-signal checks alone (attribution alerts dropped),
so both columns of the comparison come from the same replay.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fusion_monitor.eval.scenario import Expectation, Scenario
from fusion_monitor.health.attribution import ATTRIBUTION_CHECKS


def split_name(name: str) -> tuple[str, str]:
    """``"fusion_monitor: CAM_FRONT/exposure"`` -> ("CAM_FRONT", "exposure")."""
    tail = name.split(": ", 1)[-1]
    sensor, _, check = tail.rpartition("/")
    return sensor, check


@dataclass
class ScenarioScore:
    """Score of one scenario for one check set.

    Attributes
    ----------
    tp, fn : int
        Expectations detected / missed.
    fp : int
        Alerts that matched no expectation and no ignore window.
    tta_s : list of (kind, fault, seconds)
        Time to alert of every detected expectation (first matching alert - window start).
    duration_s : float
        Scored drive length (for false alarms per hour).
    detected_by : dict
        Expectation index -> the first matching alert name.
    false_alarms : list of (t_s, name, message)
    """

    name: str
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tta_s: list = field(default_factory=list)
    duration_s: float = 0.0
    detected_by: dict = field(default_factory=dict)
    missed: list = field(default_factory=list)
    false_alarms: list = field(default_factory=list)

    @property
    def fa_per_hour(self) -> float:
        return self.fp / (self.duration_s / 3600.0) if self.duration_s > 0 else float("nan")


def _matches(e: Expectation, sensor: str, check: str, modality_of: Mapping[str, str], attribution: bool) -> bool:
    if check in ATTRIBUTION_CHECKS:
        if not attribution:
            return False
        target_modality = modality_of.get(e.sensor, e.sensor)
        return sensor == target_modality and (not e.checks or check in e.checks or
                                              not set(e.checks) & set(ATTRIBUTION_CHECKS))
    return sensor == e.sensor and (not e.checks or check in e.checks)


def score_alerts(scenario: Scenario, alerts: Sequence[Mapping], duration_s: float, modality_of: Mapping[str, str],
                 *, attribution: bool = True) -> ScenarioScore:
    """Score replay ``alerts`` ([{t_s, name, level, message}]) against ``scenario``.

    With ``attribution=False`` attribution alerts are dropped first (raw-signal checks alone). An
    expectation with ``checks`` naming only raw checks is still met by an attribution alert of its
    modality when ``attribution`` is on (the point of the comparison: who catches the fault).
    """
    res = ScenarioScore(scenario.name, duration_s=float(duration_s))
    used = set()
    for i, e in enumerate(scenario.expect):
        hit = None
        for k, a in enumerate(alerts):
            sensor, check = split_name(a["name"])
            if int(a.get("level", 1)) not in (1, 2):
                continue
            if e.start_s <= float(a["t_s"]) <= e.end_s and _matches(e, sensor, check, modality_of, attribution):
                used.add(k)
                if hit is None or float(a["t_s"]) < float(alerts[hit]["t_s"]):
                    hit = k
        if hit is None:
            res.fn += 1
            res.missed.append(f"{e.sensor}{'/' + ','.join(e.checks) if e.checks else ''} {e.fault} "
                              f"{e.start_s:g}-{e.end_s:g} s")
        else:
            res.tp += 1
            res.tta_s.append((e.kind, e.fault, max(0.0, float(alerts[hit]["t_s"]) - e.start_s)))
            res.detected_by[i] = alerts[hit]["name"]
    for k, a in enumerate(alerts):
        if k in used or int(a.get("level", 1)) not in (1, 2):
            continue
        sensor, check = split_name(a["name"])
        if not attribution and check in ATTRIBUTION_CHECKS:
            continue
        t = float(a["t_s"])
        ignored = any(w.start_s <= t <= w.end_s and (not w.sensors or sensor in w.sensors or
                                                     modality_of.get(sensor, sensor) in w.sensors
                                                     or any(modality_of.get(s) == sensor for s in w.sensors))
                      for w in scenario.ignore)
        if not ignored:
            res.fp += 1
            res.false_alarms.append((t, a["name"], a.get("message", "")))
    return res


def _median(v: list[float]) -> float:
    return statistics.median(v) if v else float("nan")


def summary_rows(scores: Sequence[ScenarioScore]) -> dict:
    """Totals over scenarios: detection rate, median TTA per kind, false alarms per hour."""
    tp = sum(s.tp for s in scores)
    fn = sum(s.fn for s in scores)
    fp = sum(s.fp for s in scores)
    dur = sum(s.duration_s for s in scores)
    tta = [t for s in scores for t in s.tta_s]
    return {
        "scenarios": len(scores), "tp": tp, "fn": fn, "fp": fp,
        "detection_rate": tp / (tp + fn) if tp + fn else float("nan"),
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "median_tta_dropout_s": _median([x for k, _, x in tta if k == "dropout"]),
        "median_tta_content_s": _median([x for k, _, x in tta if k == "content"]),
        "drive_s": dur, "fa_per_hour": fp / (dur / 3600.0) if dur else float("nan"),
    }


def _f(x: float, fmt: str) -> str:
    return "-" if x != x else format(x, fmt)


def summary_table(per_scenario: Sequence[tuple[ScenarioScore, ScenarioScore]]) -> str:
    """Markdown table: one row per scenario (raw alone | raw + attribution), then the totals."""
    lines = ["| scenario | raw TP/FP/FN | raw TTA s | raw+attr TP/FP/FN | raw+attr TTA s |",
             "|---|---|---|---|---|"]
    for raw, both in per_scenario:
        lines.append(f"| {raw.name} | {raw.tp}/{raw.fp}/{raw.fn} | "
                     f"{_f(_median([t for _, _, t in raw.tta_s]), '.2f')} | {both.tp}/{both.fp}/{both.fn} | "
                     f"{_f(_median([t for _, _, t in both.tta_s]), '.2f')} |")
    lines += ["", "| checks | detected | median TTA dropout s | median TTA content s | false alarms | FA per hour | "
              "drive min |", "|---|---|---|---|---|---|---|"]
    for label, idx in (("raw-signal only", 0), ("raw + attribution", 1)):
        t = summary_rows([p[idx] for p in per_scenario])
        lines.append(f"| {label} | {t['tp']}/{t['tp'] + t['fn']} ({_f(100 * t['detection_rate'], '.0f')} %) | "
                     f"{_f(t['median_tta_dropout_s'], '.2f')} | {_f(t['median_tta_content_s'], '.2f')} | {t['fp']} | "
                     f"{_f(t['fa_per_hour'], '.0f')} | {t['drive_s'] / 60:.1f} |")
    return "\n".join(lines)
