"""Fault injection: ladders, determinism, no mutation, dtype/column rules, spec validation, stream injector."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_monitor.sensors import faults as F
from fusion_monitor.sensors.rig import load_rig
from fusion_monitor.sensors.types import NUSCENES_RADAR_DTYPE

RIG = load_rig()
SENSORS = {n: s.modality for n, s in RIG.sensors.items()}


def image(seed=0, h=90, w=160):
    rng = np.random.default_rng(seed)
    return (rng.random((h, w, 3)) * 200 + 20).astype(np.uint8)


def sweep(seed=0, n=4000):
    rng = np.random.default_rng(seed)
    xyz = rng.normal(0, 20, (n, 3))
    xyz[:, 2] = rng.uniform(-2, 3, n)
    return np.column_stack([xyz, rng.uniform(0, 100, n), rng.integers(0, 32, n)]).astype(np.float32)


def radar(seed=0, n=50):
    rng = np.random.default_rng(seed)
    a = np.zeros(n, NUSCENES_RADAR_DTYPE)
    r, phi = rng.uniform(2, 80, n), rng.uniform(-0.8, 0.8, n)
    a["x"], a["y"] = r * np.cos(phi), r * np.sin(phi)
    a["rcs"] = rng.uniform(-5, 20, n)
    a["dyn_prop"] = 1
    a["id"] = np.arange(n)
    return a


DATA_FAULTS = [n for n, d in F.FAULTS.items() if d.kind == "data"]


def sample(modality):
    return {"camera": image, "lidar": sweep, "radar": radar}[modality]()


@pytest.mark.parametrize("name", DATA_FAULTS)
@pytest.mark.parametrize("sev", [1, 3, 5])
def test_every_data_fault_is_seeded_pure_and_keeps_layout(name, sev):
    fd = F.FAULTS[name]
    x = sample(fd.modalities[0])
    before = x.copy()
    a = fd.func(x, sev, np.random.default_rng(7))
    b = fd.func(x, sev, np.random.default_rng(7))
    np.testing.assert_array_equal(x, before)  # input untouched
    np.testing.assert_array_equal(a, b)  # same seed, same output
    assert a.dtype == x.dtype and a.shape[1:] == x.shape[1:]
    if fd.modalities == ("lidar",):
        ring = a[:, 4]
        assert np.all(ring == np.rint(ring)) and set(np.unique(ring)) <= set(range(32))  # ring never perturbed
    if fd.modalities == ("radar",) and len(a):
        assert set(np.unique(a["dyn_prop"])) <= set(range(8))


@pytest.mark.parametrize("sev", [0, 6, 2.5, True, "3"])
def test_bad_severity_is_named(sev):
    with pytest.raises(ValueError, match="severity"):
        F.camera_brightness(image(), sev, np.random.default_rng(0))


def test_ladders_grow_with_severity():
    rng = np.random.default_rng
    kept = [len(F.lidar_point_dropout(sweep(), s, rng(0))) for s in F.SEVERITIES]
    assert kept == sorted(kept, reverse=True) and kept[0] == round(0.88 * 4000) and kept[-1] == 400
    rings = [len(np.unique(F.lidar_beam_reduction(sweep(), s, rng(0))[:, 4])) for s in F.SEVERITIES]
    assert rings == [31, 28, 16, 8, 4]
    means = [F.camera_brightness(image(), s, rng(0)).mean() for s in F.SEVERITIES]
    assert means == sorted(means)
    stds = [F.camera_contrast(image(), s, rng(0)).std() for s in F.SEVERITIES]
    assert stds == sorted(stds, reverse=True)
    ghosts = [len(F.radar_clutter(radar(), s, rng(0))) - 50 for s in F.SEVERITIES]
    assert ghosts == [5, 10, 25, 50, 100]


def test_sector_blockage_removes_exactly_the_sector():
    pts = sweep(n=20000)
    out = F.lidar_sector_blockage(pts, 2, np.random.default_rng(0), center_deg=90.0)
    az = np.degrees(np.arctan2(out[:, 1], out[:, 0]))
    assert not np.any(np.abs(az - 90) < 45)
    az_in = np.degrees(np.arctan2(pts[:, 1], pts[:, 0]))
    assert len(out) == int(np.sum(np.abs(az_in - 90) > 45))


def test_sector_blockage_in_base_frame():
    T = RIG.sensors["LIDAR_TOP"].T_base_sensor
    pts = sweep(n=20000)
    out = F.lidar_sector_blockage(pts, 1, np.random.default_rng(0), center_deg=0.0, T_base_sensor=T)
    base = out[:, :3] @ T[:3, :3].T
    assert not np.any(np.abs(np.degrees(np.arctan2(base[:, 1], base[:, 0]))) < 14.5)  # forward sector gone


def test_fog_moves_far_points_to_a_near_shell_and_keeps_rings():
    pts = sweep(n=10000)
    out = F.lidar_fog(pts, 4, np.random.default_rng(0))
    r0, r1 = np.linalg.norm(pts[:, :3], axis=1), np.linalg.norm(out[:, :3], axis=1)
    far = r0 > 15.9
    assert np.all((r1[far] > 3) & (r1[far] < 6)) and np.allclose(r1[~far], r0[~far], atol=1e-4)
    np.testing.assert_array_equal(out[:, 4], pts[:, 4])


def test_radar_velocity_bias_is_along_line_of_sight():
    a = radar()
    out = F.radar_velocity_bias(a, 4, np.random.default_rng(0))
    r = np.hypot(a["x"], a["y"])
    vr = (out["vx_comp"] * a["x"] + out["vy_comp"] * a["y"]) / r
    np.testing.assert_allclose(vr, 1.0, atol=1e-5)


def test_radar_yaw_drift_rotates_positions():
    a = radar()
    out = F.radar_extrinsic_drift(a, 5, np.random.default_rng(0), sign=1.0)
    d = np.degrees(np.arctan2(out["y"], out["x"]) - np.arctan2(a["y"], a["x"]))
    np.testing.assert_allclose(d, -5.0, atol=1e-3)


def test_extrinsic_offset_magnitudes():
    T = F.extrinsic_offset(3, np.random.default_rng(0))
    angle = np.degrees(np.arccos((np.trace(T[:3, :3]) - 1) / 2))
    assert angle == pytest.approx(1.0, abs=1e-6) and np.linalg.norm(T[:3, 3]) == pytest.approx(0.10)


def test_spec_parsing_accepts_names_modalities_and_yaml():
    eps = F.parse_fault_spec("""
faults:
  - {fault: lidar_sector_blockage, sensor: LIDAR_TOP, severity: 2, start_s: 1.0, end_s: 3.5, params: {center_deg: 45}}
  - {fault: camera_frozen, sensor: camera, severity: 3, start_s: 0, end_s: 2}
  - {fault: radar_extrinsic_drift, sensor: RADAR_FRONT, severity: 4, start_s: 0, end_s: 60, ramp_s: 30}
""", SENSORS)
    assert [e.fault for e in eps] == ["lidar_sector_blockage", "frozen", "radar_extrinsic_drift"]
    assert len(eps[1].sensors) == 6 and eps[0].params == {"center_deg": 45}
    assert eps[2].record()["ramp_s"] == 30


@pytest.mark.parametrize("entry,msg", [
    ({"fault": "lidar_teleport", "sensor": "LIDAR_TOP", "severity": 1, "start_s": 0, "end_s": 1}, "unknown fault"),
    ({"fault": "lidar_fog", "sensor": "LIDAR_BOTTOM", "severity": 1, "start_s": 0, "end_s": 1}, "unknown sensor"),
    ({"fault": "lidar_fog", "sensor": "CAM_FRONT", "severity": 1, "start_s": 0, "end_s": 1}, "is a camera"),
    ({"fault": "lidar_fog", "sensor": "radar", "severity": 1, "start_s": 0, "end_s": 1}, "not 'radar'"),
    ({"fault": "lidar_fog", "sensor": "LIDAR_TOP", "severity": 0, "start_s": 0, "end_s": 1}, "severity 0"),
    ({"fault": "lidar_fog", "sensor": "LIDAR_TOP", "severity": 1, "start_s": 2, "end_s": 1}, "start_s=2.0 end_s=1.0"),
    ({"fault": "lidar_fog", "sensor": "LIDAR_TOP", "severity": 1, "start_s": -1, "end_s": 1}, "0 <= start_s"),
    ({"fault": "lidar_fog", "sensor": "LIDAR_TOP", "severity": 1, "start_s": 0}, "missing key 'end_s'"),
    ({"fault": "lidar_fog", "sensor": "LIDAR_TOP", "severity": 1, "start_s": 0, "end_s": 1, "when": 3}, "unknown keys"),
    ({"fault": "lidar_fog", "sensor": "LIDAR_TOP", "severity": 1, "start_s": 0, "end_s": 1, "params": {"beta": 1}},
     "no params"),
])
def test_spec_errors_name_the_entry_and_value(entry, msg):
    with pytest.raises(F.FaultSpecError, match=msg) as e:
        F.parse_fault_spec([{"fault": "camera_noise", "sensor": "CAM_FRONT", "severity": 1, "start_s": 0, "end_s": 1},
                            entry], SENSORS)
    assert e.value.index == 1


def stream(inj, sensor, modality, make, hz, seconds, t0_ns=1_000_000_000):
    out = []
    for i in range(int(hz * seconds)):
        stamp = t0_ns + int(i * 1e9 / hz)
        data = make(i)
        out.append((i, stamp, data, *inj.apply(sensor, modality, data, stamp)))
    return out


def test_injector_applies_only_inside_the_window():
    eps = F.parse_fault_spec([{"fault": "camera_blackout", "sensor": "CAM_FRONT", "severity": 1, "start_s": 1.0,
                               "end_s": 2.0, "params": {"p": 1.0}}], SENSORS)
    inj = F.FaultInjector(eps, seed=1)
    res = stream(inj, "CAM_FRONT", "camera", lambda i: image(i), 12, 3)
    black = [i for i, _, _, out, _ in res if out.max() == 0]
    assert black == list(range(12, 24))
    res2 = stream(F.FaultInjector(eps, seed=1), "CAM_BACK", "camera", lambda i: image(i), 12, 3)
    assert all(out.max() > 0 for *_, out, _ in res2)  # other cameras untouched
    assert F.FaultInjector(eps, t0_ns=0).active("CAM_FRONT", 1_500_000_000)[0].fault == "camera_blackout"


def test_injector_is_deterministic_across_runs():
    eps = F.parse_fault_spec([{"fault": "lidar_point_dropout", "sensor": "lidar", "severity": 3, "start_s": 0,
                               "end_s": 9}], SENSORS)
    a = stream(F.FaultInjector(eps, seed=5), "LIDAR_TOP", "lidar", lambda i: sweep(i), 20, 0.5)
    b = stream(F.FaultInjector(eps, seed=5), "LIDAR_TOP", "lidar", lambda i: sweep(i), 20, 0.5)
    assert all(np.array_equal(x[3], y[3]) for x, y in zip(a, b))


def test_dropped_frames_rate_matches_ladder():
    eps = F.parse_fault_spec([{"fault": "dropped_frames", "sensor": "RADAR_FRONT", "severity": 4, "start_s": 0,
                               "end_s": 1000}], SENSORS)
    res = stream(F.FaultInjector(eps, seed=2), "RADAR_FRONT", "radar", lambda i: radar(), 13, 60)
    dropped = np.mean([out is None for *_, out, _ in res])
    assert dropped == pytest.approx(0.4, abs=0.06)


def test_frozen_repeats_data_with_fresh_stamps():
    eps = F.parse_fault_spec([{"fault": "frozen", "sensor": "CAM_FRONT", "severity": 3, "start_s": 0.5,
                               "end_s": 10}], SENSORS)
    res = stream(F.FaultInjector(eps), "CAM_FRONT", "camera", lambda i: image(i), 12, 2)
    frozen = [(i, stamp, out_stamp, out) for i, stamp, _, out, out_stamp in res if i >= 6]
    assert all(s == o for _, s, o, _ in frozen)  # stamps stay fresh
    assert all(np.array_equal(frozen[0][3], f[3]) for f in frozen[:6])  # K = 5 repeats after the first
    assert not np.array_equal(frozen[0][3], frozen[6][3])  # then refreshed


def test_time_offset_modes():
    eps = F.parse_fault_spec([{"fault": "time_offset", "sensor": "LIDAR_TOP", "severity": 4, "start_s": 0,
                               "end_s": 10}], SENSORS)
    res = stream(F.FaultInjector(eps), "LIDAR_TOP", "lidar", lambda i: sweep(i), 20, 1)
    i, stamp, _, out, out_stamp = res[-1]
    assert out_stamp == stamp and np.array_equal(out, sweep(i - 5))  # 250 ms = 5 sweeps old
    eps = F.parse_fault_spec([{"fault": "time_offset", "sensor": "LIDAR_TOP", "severity": 4, "start_s": 0,
                               "end_s": 10, "params": {"mode": "stamp"}}], SENSORS)
    res = stream(F.FaultInjector(eps), "LIDAR_TOP", "lidar", lambda i: sweep(i), 20, 1)
    i, stamp, data, out, out_stamp = res[-1]
    assert out_stamp == stamp - 250_000_000 and np.array_equal(out, data)


def test_ramped_extrinsic_drift_grows_then_holds():
    eps = F.parse_fault_spec([{"fault": "lidar_extrinsic_drift", "sensor": "LIDAR_TOP", "severity": 5, "start_s": 0,
                               "end_s": 100, "ramp_s": 2.0}], SENSORS)
    inj = F.FaultInjector(eps, seed=3)
    pts = sweep()
    shifts = []
    for i in range(40):
        out, _ = inj.apply("LIDAR_TOP", "lidar", pts, 10**9 + i * 100_000_000)
        shifts.append(float(np.abs(out[:, :3] - pts[:, :3]).mean()))
    assert shifts[0] < 1e-6 and shifts[10] < shifts[19] and shifts[25] == pytest.approx(shifts[39])


def test_the_documented_example_spec_parses():
    eps = F.parse_fault_spec(F.FAULT_SPEC_EXAMPLE, SENSORS)
    assert [e.fault for e in eps][:2] == ["lidar_sector_blockage", "camera_occlusion"] and len(eps[2].sensors) == 5
