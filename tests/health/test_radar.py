"""Radar checks: target count, velocity plausibility and bias, clutter bursts (synthetic and real ARS408 scans)."""

from __future__ import annotations

import numpy as np
import pytest
from health_synthetic import remeasured, synthetic_radar

from fusion_monitor.health import Level, RadarChecker
from fusion_monitor.sensors import faults as F


def run(fault=None, severity=1, n_clean=10, n_fault=1, seed=0, n_targets=60, **params):
    rng = np.random.default_rng(seed)
    ch = RadarChecker("RADAR_FRONT")
    res = None
    for i in range(n_clean + n_fault):
        scan = synthetic_radar(rng, n=n_targets)
        if fault is not None and i >= n_clean:
            scan = fault(scan, severity, rng, **params)
        res = ch.update(scan)
    return res


def test_nominal_synthetic_scans_raise_nothing():
    rng = np.random.default_rng(1)
    ch = RadarChecker("RADAR_FRONT")
    for _ in range(50):
        res = ch.update(synthetic_radar(rng, n=int(rng.integers(30, 90))))
        assert all(r.level == Level.OK for r in res.values()), {k: r.message for k, r in res.items()}


def test_real_ars408_scans_raise_nothing(radar_scans):
    for scan in radar_scans:
        ch = RadarChecker(scan.frame_id)
        rng = np.random.default_rng(0)
        for _ in range(5):
            res = ch.update(remeasured(scan.points, rng, 0.05))
        assert all(r.level == Level.OK for r in res.values()), (scan.frame_id, {k: r.message for k, r in res.items()})


def test_dropout_with_message_present_is_error():
    r = run(F.radar_dropout, 2)["target_count"]
    assert r.level == Level.ERROR and "sees nothing" in r.message


def test_velocity_bias_ladder():
    assert run(F.radar_velocity_bias, 1)["velocity"].level == Level.OK  # 0.1 m/s: below datasheet-scale noise
    r = run(F.radar_velocity_bias, 3)["velocity"]
    assert r.level == Level.WARN and abs(float(r.values["value"]) - 0.5) < 0.05, r.message
    assert run(F.radar_velocity_bias, 4)["velocity"].level >= Level.WARN  # 1.0 m/s: on the ERROR bound
    assert run(F.radar_velocity_bias, 5)["velocity"].level == Level.ERROR


def test_real_scan_velocity_bias_detected(radar_scans):
    scan = radar_scans[0].points
    ch = RadarChecker("RADAR_FRONT")
    ch.update(scan)
    r = ch.update(F.radar_velocity_bias(scan, 5, np.random.default_rng(0)))["velocity"]
    assert r.level == Level.ERROR


def test_stuck_doppler_with_moving_targets_is_error():
    rng = np.random.default_rng(2)
    scan = synthetic_radar(rng)
    for f in ("vx", "vy", "vx_comp", "vy_comp"):
        scan[f] = 0.0
    r = RadarChecker("R").update(scan)["velocity"]
    assert r.level == Level.ERROR and "exactly zero" in r.message


def test_implausible_velocities_are_error():
    scan = synthetic_radar(np.random.default_rng(3))
    scan["vx_comp"][: len(scan) // 2] = 300.0
    assert RadarChecker("R").update(scan)["velocity"].level == Level.ERROR


@pytest.mark.parametrize("sev,level", [(1, Level.OK), (2, Level.OK), (4, Level.WARN), (5, Level.ERROR)])
def test_clutter_burst_ladder_and_where(sev, level):
    r = run(F.radar_clutter, sev, n_targets=25)["clutter"]
    assert r.level == level, r.message
    if level:
        assert "range" in r.values["region"] and "azimuth" in r.values["region"]


def test_clutter_burst_does_not_poison_the_count_reference():
    rng = np.random.default_rng(4)
    ch = RadarChecker("R")
    for _ in range(10):
        ch.update(synthetic_radar(rng))
    levels = [ch.update(F.radar_clutter(synthetic_radar(rng), 5, rng))["clutter"].level for _ in range(30)]
    assert all(lv >= Level.WARN for lv in levels)  # a persistent burst stays reported


def test_count_drop_warns():
    r = run(F.radar_dropout, 1, p=0.0)["target_count"]
    assert r.level == Level.OK
    rng = np.random.default_rng(5)
    ch = RadarChecker("R")
    for _ in range(10):
        ch.update(synthetic_radar(rng, n=60))
    assert ch.update(synthetic_radar(rng, n=10))["target_count"].level == Level.WARN


def test_needs_structured_fields():
    with pytest.raises(ValueError, match="vx_comp"):
        RadarChecker("R").update(np.zeros(3, dtype=[("x", "f4"), ("y", "f4"), ("rcs", "f4")]))


def _without_classification(scan):
    """The scan as the pipeline hands it to health: x y z rcs vx_comp vy_comp, no dyn_prop."""
    out = np.zeros(len(scan), dtype=[(f, np.float32) for f in ("x", "y", "z", "rcs", "vx_comp", "vy_comp")])
    for f in out.dtype.names:
        out[f] = scan[f]
    return out


def test_static_world_without_classification_ignores_slow_radial_movers():
    """Without dyn_prop the static world is the velocity shared by targets spread over the scene: a third of the targets
    walking at 1-1.8 m/s along the line of sight (pedestrians, slow cars) and a car with ten returns at -2.6 m/s do
    not look like a velocity bias; a real bias does."""
    rng = np.random.default_rng(5)
    ch = RadarChecker("RADAR_FRONT")
    for _ in range(20):
        scan = synthetic_radar(rng, n=45)
        movers = rng.random(len(scan)) < 0.35
        r = np.hypot(scan["x"], scan["y"])
        speed = rng.uniform(1.0, 1.8, len(scan))
        scan["vx_comp"][movers] = (speed * scan["x"] / r)[movers]
        scan["vy_comp"][movers] = (speed * scan["y"] / r)[movers]
        car = np.arange(10)  # ten returns of one oncoming car 20 m ahead, within 2 m of each other
        scan["x"][car], scan["y"][car] = 20.0 + rng.uniform(0, 2, 10), 1.0 + rng.uniform(0, 1, 10)
        r = np.hypot(scan["x"], scan["y"])
        scan["vx_comp"][car] = -2.6 * scan["x"][car] / r[car] + rng.normal(0, 0.02, 10)
        scan["vy_comp"][car] = -2.6 * scan["y"][car] / r[car]
        res = ch.update(_without_classification(scan))["velocity"]
        assert res.level == Level.OK and abs(float(res.values["value"])) < 0.15, res.message
    biased = _without_classification(F.radar_velocity_bias(synthetic_radar(rng, n=45), 3, rng))
    r = ch.update(biased)["velocity"]
    assert r.level == Level.WARN and abs(float(r.values["value"]) - 0.5) < 0.1, r.message
    assert "map cells" in r.message
    severe = _without_classification(F.radar_velocity_bias(synthetic_radar(rng, n=45), 5, rng))
    assert ch.update(severe)["velocity"].level == Level.ERROR


def test_frozen_target_list_ladder_and_short_lists_not_judged():
    rng = np.random.default_rng(3)
    ch = RadarChecker("RADAR_FRONT")
    scan = synthetic_radar(rng, n=40)
    levels = [ch.update(scan)["frozen"].level for _ in range(7)]  # the same list re-sent
    assert levels == [Level.OK, Level.OK, Level.WARN, Level.WARN, Level.WARN, Level.ERROR, Level.ERROR]
    assert ch.update(remeasured(scan, rng, 0.05))["frozen"].level == Level.OK  # the data moves again
    short = synthetic_radar(rng, n=3)  # a short list may legitimately repeat (e.g. waiting at a light)
    assert all(ch.update(short)["frozen"].level == Level.OK for _ in range(10))
    r = ch.update(short)["frozen"]
    assert "not judged" in r.message and r.values["min_items"] == "5"
