"""`fusion-monitor evaluate`: scenario files, scoring (TP / FP / FN, time to alert, raw vs attribution), end to end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from fusion_monitor.eval import ScenarioError, load_scenario, load_scenarios, score_alerts, summary_rows
from fusion_monitor.eval.scenario import Expectation, IgnoreWindow, Scenario
from fusion_monitor.pipeline import DEFAULT_PACKAGE
from fusion_monitor.sensors.rig import load_rig
from fusion_monitor.tools.cli import main

REPO = Path(__file__).resolve().parents[2]
PACKAGE = Path(os.environ.get("FUSION_MONITOR_TEST_PACKAGE", DEFAULT_PACKAGE))
MODALITY = {n: s.modality for n, s in load_rig().sensors.items()}


def write(tmp_path: Path, name: str, data: dict) -> Path:
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


SIM = {"simulate": {"seed": 1, "duration_s": 8.0}}


@pytest.mark.parametrize("data,fragment", [
    ({"source": SIM, "faults": [{"fault": "camera_melt", "sensor": "CAM_FRONT", "severity": 2, "start_s": 1,
                                 "end_s": 2}]}, "camera_melt"),
    ({"source": SIM, "faults": [{"fault": "camera_noise", "sensor": "CAM_FRONT", "severity": 2, "start_s": 9,
                                 "end_s": 12}]}, "outside the drive"),
    ({"source": SIM, "faults": [{"fault": "camera_noise", "sensor": "CAM_MIDDLE", "severity": 2, "start_s": 1,
                                 "end_s": 2}]}, "CAM_MIDDLE"),
    ({"source": SIM, "expect": [{"sensor": "CAM_FRONT", "checks": ["sparkle"], "start_s": 1, "end_s": 2}]},
     "sparkle"),
    ({"source": SIM, "expect": [{"sensor": "SONAR", "start_s": 1, "end_s": 2}]}, "SONAR"),
    ({"source": {"bag": "no/such/bag"}}, "does not exist"),
    ({"source": SIM, "faults": [], "expected": []}, "expected"),
    ({"source": {"simulate": {"seed": 1, "duration_s": -3}}}, "-3"),
])
def test_bad_scenarios_fail_early_naming_the_value(tmp_path, data, fragment):
    with pytest.raises(ScenarioError, match=fragment):
        load_scenario(write(tmp_path, "bad", data))


def test_default_expectations_follow_the_faults(tmp_path):
    s = load_scenario(write(tmp_path, "x", {"source": SIM, "faults": [
        {"fault": "dropped_frames", "sensor": "LIDAR_TOP", "severity": 5, "start_s": 2, "end_s": 4},
        {"fault": "camera_noise", "sensor": "CAM_BACK", "severity": 3, "start_s": 3, "end_s": 5}]}))
    assert [(e.sensor, e.kind, e.start_s, e.end_s) for e in s.expect] == [
        ("LIDAR_TOP", "dropout", 2.0, 5.0), ("CAM_BACK", "content", 3.0, 6.0)]


def test_shipped_suite_has_twenty_scenarios_over_sim_and_real_drives():
    suite = load_scenarios([REPO / "scenarios"])
    kinds = {s.source_kind for s in suite}
    assert len(suite) >= 20 and kinds >= {"simulate", "real"}
    assert sum(1 for s in suite if not s.faults) >= 3  # nominal drives: the false-alarm measurement
    assert sum(len(s.expect) for s in suite) >= 15
    nominal_sim_s = sum(s.duration_s for s in suite if not s.faults and s.source_kind == "simulate")
    assert nominal_sim_s >= 600  # >= 10 min of nominal simulated driving


def test_suite_parameter_file_finds_its_baseline(tmp_path, capsys):
    from fusion_monitor.tools.evaluate import resolve_baseline
    from fusion_monitor.tools.replay import load_params

    suite = REPO / "scenarios" / "params" / "alerts.param.yaml"
    params = resolve_baseline(load_params(suite), suite)
    assert Path(params["health.attribution.baseline_file"]).is_file()
    bad = tmp_path / "p.yaml"
    bad.write_text("/**:\n  ros__parameters:\n    health:\n      attribution:\n        baseline_file: nope.yaml\n")
    scen = write(tmp_path, "s", {"source": SIM})
    assert main(["evaluate", str(scen), "--params", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "nope.yaml" in capsys.readouterr().err and not (tmp_path / "o" / "results.json").exists()


def _scenario(expect, ignore=()):
    return Scenario("t", "simulate", {"seed": 1, "duration_s": 10.0}, [], tuple(expect), tuple(ignore))


def alert(t, name, level=2):
    return {"t_s": t, "name": f"fusion_monitor: {name}", "level": level, "message": name}


def test_scoring_tp_fp_fn_and_time_to_alert():
    sc = _scenario([Expectation("CAM_FRONT", 2.0, 5.0, kind="dropout"), Expectation("LIDAR_TOP", 2.0, 5.0)])
    alerts = [alert(0.5, "RADAR_FRONT/rate"), alert(2.3, "CAM_FRONT/exposure"), alert(2.2, "CAM_FRONT/contrast"),
              alert(6.0, "CAM_FRONT/exposure", level=3)]  # STALE is no alert
    s = score_alerts(sc, alerts, 10.0, MODALITY)
    assert (s.tp, s.fp, s.fn) == (1, 1, 1)
    assert s.tta_s == [("dropout", "", pytest.approx(0.2))]
    assert s.false_alarms[0][1].endswith("RADAR_FRONT/rate")
    assert s.fa_per_hour == pytest.approx(360.0)
    assert "LIDAR_TOP" in s.missed[0]


def test_attribution_alerts_count_only_in_the_attribution_column():
    sc = _scenario([Expectation("LIDAR_TOP", 2.0, 5.0, fault="lidar_extrinsic_drift")])
    alerts = [alert(3.0, "lidar/drift", 1), alert(1.0, "camera/contribution")]
    raw = score_alerts(sc, alerts, 10.0, MODALITY, attribution=False)
    both = score_alerts(sc, alerts, 10.0, MODALITY, attribution=True)
    assert (raw.tp, raw.fp, raw.fn) == (0, 0, 1)
    assert (both.tp, both.fp, both.fn) == (1, 1, 0)
    totals = summary_rows([both])
    assert totals["detection_rate"] == 1.0 and totals["median_tta_content_s"] == pytest.approx(1.0)


def test_ignore_windows_by_time_and_sensor():
    sc = _scenario([], [IgnoreWindow(1.0, 3.0, ("LIDAR_TOP",))])
    alerts = [alert(2.0, "LIDAR_TOP/blockage"), alert(2.0, "lidar/contribution"), alert(2.0, "CAM_BACK/blur"),
              alert(4.0, "LIDAR_TOP/beams")]
    s = score_alerts(sc, alerts, 10.0, MODALITY)
    assert [a[1].split(": ")[1] for a in s.false_alarms] == ["CAM_BACK/blur", "LIDAR_TOP/beams"]


def test_sim_overlap_windows_find_objects_driving_through_the_ego():
    from fusion_monitor.eval.sources import sim_overlap_windows

    # the first simulator revision's traffic (no collision avoidance)
    hit = sim_overlap_windows(301, 10.0, avoid_collisions=False)  # a parked car inside the ego footprint at t = 2 s
    assert any(w.start_s <= 2.0 <= w.end_s for w in hit)
    assert sim_overlap_windows(404, 8.0, avoid_collisions=False) == []
    # seed 973: at 114.5 s a car in the next lane passes 0.13 m from the ego's side (no overlap, a near miss)
    near = sim_overlap_windows(973, 120.0, avoid_collisions=False)
    assert any(w.start_s <= 114.5 <= w.end_s for w in near)
    # the default traffic brakes and keeps its lane: the parked car is gone and nothing passes that close
    assert sim_overlap_windows(301, 10.0) == [] and sim_overlap_windows(973, 120.0) == []


def test_cli_rejects_a_bad_suite_before_any_processing(tmp_path, capsys):
    write(tmp_path, "ok", {"source": SIM})
    write(tmp_path, "bad", {"source": SIM, "faults": [{"fault": "lidar_fog", "sensor": "LIDAR_TOP", "severity": 9,
                                                         "start_s": 1, "end_s": 2}]})
    assert main(["evaluate", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "severity" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_real_sequence_plays_real_samples_at_rig_rates(real_data):
    from fusion_monitor.eval.real import RealSequence

    seq = RealSequence(real_data, 1.0)
    sched = seq.schedule()
    assert sum(1 for _, n in sched if n == "LIDAR_TOP") == 20 and sum(1 for _, n in sched if n == "CAM_BACK") == 12
    stamps = [t for t, n in sched if n == "CAM_BACK"][:3]
    imgs = [seq.render(t, "CAM_BACK").data for t in stamps]
    assert imgs[0].shape == (225, 400, 3) and not any((a == b).all() for a, b in zip(imgs, imgs[1:]))


@pytest.mark.skipif(not PACKAGE.is_dir(), reason=f"model package {PACKAGE} missing (set FUSION_MONITOR_TEST_PACKAGE)")
def test_evaluate_two_tiny_scenarios_end_to_end(sim_bag, tmp_path):
    write(tmp_path, "blackout", {"source": {"bag": str(sim_bag)}, "faults": [
        {"fault": "camera_blackout", "sensor": "CAM_FRONT", "severity": 5, "start_s": 1.0, "end_s": 2.8,
         "params": {"p": 1.0}}]})
    write(tmp_path, "nominal", {"source": {"bag": str(sim_bag)}, "faults": []})
    out = tmp_path / "out"
    assert main(["evaluate", str(tmp_path), "--out", str(out), "--model", str(PACKAGE)]) == 0
    res = json.loads((out / "results.json").read_text())
    by = {r["name"]: r for r in res["scenarios"]}
    raw = by["blackout"]["raw"]
    assert raw["tp"] == 1 and raw["fn"] == 0, raw
    assert raw["tta_s"][0][2] <= 1.0  # a black frame is seen within a few frames (3-of-5 debounce at 12 Hz)
    # Known limitation, measured in the report: on the flat-shaded simulated images the camera occlusion check
    # raises false alarms (textured objects leaving cells of untextured road); every other check must stay quiet.
    others = [a for a in by["nominal"]["raw"]["false_alarms"] if not a[1].endswith("/occlusion")]
    assert others == []
    assert "raw-signal only" in (out / "summary.md").read_text()
    # scored again from the stored alerts (no replay): the same scores; a changed expectation changes them
    from fusion_monitor.tools.evaluate import rescore

    again = json.loads(json.dumps(rescore(by["blackout"])))  # as stored (tuples become lists)
    assert {k: again[k] for k in ("raw", "raw_attribution")} == {k: by["blackout"][k] for k in ("raw", "raw_attribution")}
    write(tmp_path, "blackout", {"source": {"bag": str(sim_bag)}, "faults": [
        {"fault": "camera_blackout", "sensor": "CAM_FRONT", "severity": 5, "start_s": 1.0, "end_s": 2.8,
         "params": {"p": 1.0}}], "expect": []})
    again = rescore(by["blackout"])["raw"]
    assert again["tp"] == 0 and again["fp"] >= 1, again


def test_fault_window_outside_a_recorded_bag_is_refused_at_load(sim_bag, tmp_path):
    p = write(tmp_path, "late", {"source": {"bag": str(sim_bag)}, "faults": [
        {"fault": "lidar_fog", "sensor": "LIDAR_TOP", "severity": 2, "start_s": 4.0, "end_s": 5.0}]})
    with pytest.raises(ScenarioError, match="outside the drive"):
        load_scenario(p)
