"""LiDAR checks against faults injected into the real nuScenes LIDAR_TOP sweep (and a synthetic sweep)."""

from __future__ import annotations

import numpy as np
import pytest
from health_synthetic import remeasured, synthetic_sweep

from fusion_monitor.health import Level, LidarCheckConfig, LidarChecker
from fusion_monitor.health.lidar import circular_runs
from fusion_monitor.sensors import faults as F


def check(sweep, T, fault=None, severity=1, seed=0, warm=3, **params):
    ch = LidarChecker("LIDAR_TOP", T_base_sensor=T)
    rng = np.random.default_rng(seed + 1000)
    for _ in range(warm):
        ch.update(remeasured(sweep, rng))
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


def dark_car_alongside(sweep, T, side_m=3.0, length_m=6.0):
    """The real sweep plus the flank of a dark (intensity 1) car driving in the next lane, 0.5-1.5 m high."""
    rng = np.random.default_rng(0)
    n = 4000
    base = np.stack([rng.uniform(-length_m / 2, length_m / 2, n), np.full(n, side_m), rng.uniform(0.5, 1.5, n),
                     np.ones(n)])
    sensor = np.linalg.inv(np.asarray(T, np.float64)) @ base
    car = np.zeros((n, sweep.shape[1]), np.float32)
    car[:, :3] = sensor[:3].T
    car[:, 3] = 1.0
    return np.concatenate([sweep, car])


def test_dark_car_alongside_is_not_fog(lidar_sweep, T):
    """Dark returns a few metres away in one direction (a car in the next lane) are not a fog shell."""
    sweep = dark_car_alongside(lidar_sweep, T)
    r = check(sweep, T)["visibility"]
    assert float(r.values["fog_shell_fraction"]) > 0.03  # as many dark shell returns as fog level 2
    assert r.level == Level.OK and int(r.values["fog_shell_sectors"]) < 12, r.message
    fog = check(sweep, T, F.lidar_fog, 2)["visibility"]
    assert fog.level >= Level.WARN and int(fog.values["fog_shell_sectors"]) >= 12, fog.message


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


def _jittered(sweep, rng):
    """The sweep as a repeated real scan looks: 3 % dropout, 1 cm noise, +-0.2 deg yaw."""
    keep = sweep[rng.random(len(sweep)) >= 0.03].copy()
    keep[:, :3] += rng.normal(0, 0.01, (len(keep), 3)).astype(np.float32)
    a = np.radians(rng.uniform(-0.2, 0.2))
    x, y = keep[:, 0].copy(), keep[:, 1].copy()
    keep[:, 0], keep[:, 1] = np.cos(a) * x - np.sin(a) * y, np.sin(a) * x + np.cos(a) * y
    return keep


def _ground_after(sweep, T, fault=None, seed=0, warm=12, **kw):
    rng = np.random.default_rng(100 + seed)
    ch = LidarChecker("LIDAR_TOP", T_base_sensor=T)
    for _ in range(warm):
        assert ch.update(_jittered(sweep, rng))["ground"].level == Level.OK
    data = _jittered(sweep, rng)
    if fault is not None:
        data = fault(data, np.random.default_rng(seed), **kw)
    return ch.update(data)["ground"]


@pytest.fixture(scope="module")
def sim_sweep():
    from fusion_monitor.sim import make_world, render_frame

    return render_frame(make_world(404, 4.0), 1.0).lidar


@pytest.mark.parametrize("which", ["real", "sim"])
def test_ground_plane_step_catches_extrinsic_drift(request, T, which):
    """A LiDAR whose mount moved by 3 deg / 50 cm (S1 level 5, random axis) shifts the ground plane it sees;
    count, blockage and clutter statistics do not change. Nominal jittered scans stay OK."""
    sweep = request.getfixturevalue("lidar_sweep" if which == "real" else "sim_sweep")
    for seed in range(5):
        r = _ground_after(sweep, T, seed=seed)
        assert r.level == Level.OK, r.message
        assert abs(float(r.values["height_step_m"])) < 0.05 and float(r.values["tilt_step_deg"]) < 0.4
    levels = [_ground_after(sweep, T, lambda d, g: F.lidar_extrinsic_drift(d, 5, g), seed=s) for s in range(10)]
    assert sum(r.level >= Level.WARN for r in levels) >= 8, [r.values for r in levels]
    assert all("ground plane moved" in r.message for r in levels if r.level)
    small = [_ground_after(sweep, T, lambda d, g: F.lidar_extrinsic_drift(d, 1, g), seed=s) for s in range(5)]
    assert all(r.level == Level.OK for r in small), [r.message for r in small]


def test_ground_reference_follows_a_slow_grade_change_but_not_a_step(lidar_sweep, T):
    """Road grade changing 0.05 deg per sweep is followed; the same total change at once is a step."""
    rng = np.random.default_rng(7)
    ch = LidarChecker("LIDAR_TOP", T_base_sensor=T)

    def pitched(deg):
        d = _jittered(lidar_sweep, rng)
        a = np.radians(deg)
        x, z = d[:, 0].copy(), d[:, 2].copy()
        d[:, 0], d[:, 2] = np.cos(a) * x + np.sin(a) * z, -np.sin(a) * x + np.cos(a) * z
        return d

    for _ in range(12):
        ch.update(pitched(0.0))
    for k in range(60):
        r = ch.update(pitched(0.05 * k))["ground"]
        assert r.level == Level.OK, (k, r.message)
    r = ch.update(pitched(0.05 * 59 + 2.5))["ground"]
    assert r.level == Level.ERROR and "tilt" in r.message


def test_lowest_return_per_cell_same_on_dense_grid_and_sorted_path():
    """The ground fit's lowest return per cell: the dense-grid path (usual cell counts) and the sort path (huge
    grids from extreme parameters) give the same cells in ascending order and the true minimum of each."""
    from fusion_monitor.health.lidar import _lowest_per_cell

    rng = np.random.default_rng(3)
    key = rng.integers(0, 500, 4000).astype(np.intp)
    z = rng.normal(size=4000).astype(np.float32)
    dense = _lowest_per_cell(key, z, 500)
    sparse = _lowest_per_cell(key, z, (1 << 20) + 1)
    cells = np.unique(key)
    expect = np.array([z[key == k].min() for k in cells], np.float64)
    for got_cells, got_z in (dense, sparse):
        np.testing.assert_array_equal(got_cells, cells)
        np.testing.assert_array_equal(got_z, expect)
