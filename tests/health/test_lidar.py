"""LiDAR checks against faults injected into the real nuScenes LIDAR_TOP sweep (and a synthetic sweep)."""

from __future__ import annotations

import numpy as np
import pytest
from health_synthetic import synthetic_sweep

from fusion_monitor.health import Level, LidarCheckConfig, LidarChecker
from fusion_monitor.health.lidar import circular_runs
from fusion_monitor.sensors import faults as F


def check(sweep, T, fault=None, severity=1, seed=0, warm=3, **params):
    ch = LidarChecker("LIDAR_TOP", T_base_sensor=T)
    for _ in range(warm):
        ch.update(sweep)
    data = sweep if fault is None else fault(sweep, severity, np.random.default_rng(seed), **params)
    return ch.update(data)


def raised(res):
    return {k: v.level for k, v in res.items() if v.level != Level.OK}


@pytest.fixture(scope="module")
def T(rig):
    return rig.sensors["LIDAR_TOP"].T_base_sensor


def test_nominal_sweep_raises_nothing(lidar_sweep, T):
    res = check(lidar_sweep, T, warm=0)
    assert raised(res) == {}, {k: v.message for k, v in res.items()}
    assert raised(check(lidar_sweep, T)) == {}


@pytest.mark.parametrize("center", [0.0, 60.0, 135.0, -100.0, 180.0])
@pytest.mark.parametrize("sev", [1, 2, 3])
def test_sector_blockage_reports_azimuth_within_15_deg(lidar_sweep, T, center, sev):
    res = check(lidar_sweep, T, F.lidar_sector_blockage, sev, center_deg=center, T_base_sensor=T)
    r = res["blockage"]
    assert r.level >= Level.WARN, r.message
    mid = float(r.values["azimuth_center_deg"])
    assert abs((mid - center + 180) % 360 - 180) <= 15, (center, r.message)
    assert "azimuth" in r.message and "ground" in r.values["elevation"]
    if sev >= 2:
        assert r.level == Level.ERROR


def test_wide_blockage_reports_its_centre(lidar_sweep, T):
    r = check(lidar_sweep, T, F.lidar_sector_blockage, 5, center_deg=-90.0, T_base_sensor=T)["blockage"]
    assert r.level == Level.ERROR and abs(float(r.values["azimuth_center_deg"]) + 90) <= 15


def test_beam_loss_names_the_rings(lidar_sweep, T):
    r = check(lidar_sweep, T, F.lidar_beam_reduction, 1, seed=3)["beams"]
    assert r.level == Level.WARN and "rings" in r.message
    dropped = set(range(32)) - set(np.unique(F.lidar_beam_reduction(lidar_sweep, 1, np.random.default_rng(3))[:, 4])
                                   .astype(int))
    assert r.values["rings"] == ",".join(str(x) for x in sorted(dropped))
    assert check(lidar_sweep, T, F.lidar_beam_reduction, 3)["beams"].level == Level.ERROR


def test_point_dropout_is_a_count_drop_not_a_blockage(lidar_sweep, T):
    assert raised(check(lidar_sweep, T, F.lidar_point_dropout, 1)) == {}
    for sev in (3, 4, 5):
        res = check(lidar_sweep, T, F.lidar_point_dropout, sev)
        assert res["point_count"].level >= Level.WARN
        assert res["blockage"].level == Level.OK and res["beams"].level == Level.OK


@pytest.mark.parametrize("fault,first,name", [
    (F.lidar_fog, 2, "visibility"),
    (F.lidar_snow, 3, "near_clutter"),
    (F.lidar_crosstalk, 1, "outliers"),
])
def test_weather_and_interference_detected_from_ladder_level(lidar_sweep, T, fault, first, name):
    for sev in range(1, 6):
        r = check(lidar_sweep, T, fault, sev)[name]
        if sev >= first:
            assert r.level >= Level.WARN, (sev, r.message)
        assert r.values["value"] and r.values["bound"]
    assert check(lidar_sweep, T, fault, 5)[name].level == Level.ERROR


def test_fog_level_one_is_silent_by_design(lidar_sweep, T):
    assert raised(check(lidar_sweep, T, F.lidar_fog, 1)) == {}


def test_intensity_collapse(lidar_sweep, T):
    dim = lidar_sweep.copy()
    dim[:, 3] = np.rint(dim[:, 3] * 0.1)
    r = check(lidar_sweep, T)["intensity"]
    assert r.level == Level.OK
    ch = LidarChecker("LIDAR_TOP", T_base_sensor=T)
    r = ch.update(dim)["intensity"]
    assert r.level == Level.ERROR and "intensity" in r.message


def test_synthetic_sweep_and_structured_input():
    rng = np.random.default_rng(0)
    sweep = synthetic_sweep(rng)
    T = np.eye(4)
    T[:3, :3] = [[0, 1, 0], [-1, 0, 0], [0, 0, 1]]  # sensor x right, y forward -> base x forward, y left
    T[2, 3] = 1.84
    assert raised(check(sweep, T)) == {}, {k: v.message for k, v in check(sweep, T).items()}
    r = check(sweep, T, F.lidar_sector_blockage, 2, center_deg=30.0, T_base_sensor=T)["blockage"]
    assert r.level == Level.ERROR and abs(float(r.values["azimuth_center_deg"]) - 30) <= 15
    structured = np.zeros(len(sweep), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("intensity", "f4"), ("ring", "u2")])
    for i, f in enumerate(structured.dtype.names):
        structured[f] = sweep[:, i]
    assert raised(check(structured, T)) == {}


def test_empty_and_bad_input():
    ch = LidarChecker("L")
    res = ch.update(np.zeros((0, 5), np.float32))
    assert res["point_count"].level == Level.ERROR
    with pytest.raises(ValueError, match="N, >=3"):
        ch.update(np.zeros((10, 2), np.float32))


def test_circular_runs_wrap_around():
    m = np.zeros(36, bool)
    m[[34, 35, 0, 1, 10]] = True
    assert circular_runs(m) == [(34, 4), (10, 1)]
    assert circular_runs(np.ones(8, bool)) == [(0, 8)] and circular_runs(np.zeros(8, bool)) == []


def test_open_road_sky_loss_is_not_a_blockage(lidar_sweep, T):
    """Leaving the city: the upper beams stop returning everywhere at once; that is no blocked sector."""
    xyz = lidar_sweep[:, :3] @ T[:3, :3].T
    el = np.degrees(np.arctan2(xyz[:, 2], np.hypot(xyz[:, 0], xyz[:, 1])))
    r = np.linalg.norm(xyz, axis=1)
    open_road = lidar_sweep[~((el > -8) & (r > 12))]
    ch = LidarChecker("LIDAR_TOP", T_base_sensor=T)
    for _ in range(3):
        ch.update(lidar_sweep)
    for _ in range(3):
        res = ch.update(open_road)
    assert res["blockage"].level == Level.OK, res["blockage"].message


def test_sky_only_loss_listed_and_alerted_only_when_enabled(lidar_sweep, T):
    xyz = lidar_sweep[:, :3] @ T[:3, :3].T
    az = np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0]))
    el = np.degrees(np.arctan2(xyz[:, 2], np.hypot(xyz[:, 0], xyz[:, 1])))
    cut = lidar_sweep[~((np.abs(az + 60) < 60) & (el > -8))]  # 120 deg of upper beams
    results = {}
    for enabled in (False, True):
        ch = LidarChecker("LIDAR_TOP", LidarCheckConfig(sky_only_alerts=enabled), T_base_sensor=T)
        for _ in range(3):
            ch.update(lidar_sweep)
        results[enabled] = ch.update(cut)["blockage"]
    off, on = results[False], results[True]
    assert off.level == Level.OK and "upper_beams_empty_deg" in off.values
    assert on.level == Level.WARN and on.values["elevation"] == "sky"  # never ERROR on upper beams alone
    assert abs(float(on.values["azimuth_center_deg"]) + 60) <= 15
