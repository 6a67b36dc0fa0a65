"""Radar-vs-LiDAR alignment: a turned radar mount is found against the LiDAR; a nominal radar, a lone wall or a
missing LiDAR never raise it (synthetic scenes with the rig's mountings, and a simulated drive)."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_monitor.health import HealthConfig, HealthMonitor, Level
from fusion_monitor.health.config import RadarCheckConfig
from fusion_monitor.health.radar import RadarChecker
from fusion_monitor.health.radar_alignment import lidar_occupancy
from fusion_monitor.sensors import faults as F
from fusion_monitor.sim.sensors import RADAR_DTYPE

CFG = RadarCheckConfig()


def poles(rng, n=80):
    """Pole positions (base frame) ahead of the car, 12-55 m out within +-35 deg."""
    r = rng.uniform(12, 55, n)
    a = np.radians(rng.uniform(-35, 35, n))
    return np.stack([r * np.cos(a) + 3.4, r * np.sin(a)], 1)


def lidar_points(centres, rng):
    """(3, N) base-frame returns on each pole (0.3 m wide, 0.5-2.5 m high) plus a flat road."""
    pts = [np.stack([c[0] + rng.uniform(-0.15, 0.15, 20), c[1] + rng.uniform(-0.15, 0.15, 20),
                     rng.uniform(0.5, 2.5, 20)]) for c in centres]
    road = np.stack([rng.uniform(0, 60, 3000), rng.uniform(-30, 30, 3000), rng.normal(0, 0.03, 3000)])
    return np.concatenate(pts + [road], 1)


def radar_scan(centres, T_base_radar, rng, n=25):
    """Targets on ``n`` of the poles, in the radar frame (0.2 m position noise), static world."""
    pick = centres[rng.choice(len(centres), size=min(n, len(centres)), replace=False)]
    T = np.linalg.inv(np.asarray(T_base_radar, np.float64))
    p = np.c_[pick, np.full(len(pick), 0.5), np.ones(len(pick))] @ T.T
    a = np.zeros(len(pick), RADAR_DTYPE)
    a["x"], a["y"] = p[:, 0] + rng.normal(0, 0.2, len(p)), p[:, 1] + rng.normal(0, 0.2, len(p))
    a["rcs"] = 5.0
    return a


def judge(rig, fault=None, severity=4, sign=1.0, scans=20, seed=0, sensor="RADAR_FRONT", wall=False, unrelated=False):
    rng = np.random.default_rng(seed)
    spec = rig.sensors[sensor]
    ch = RadarChecker(sensor, CFG, spec.T_base_sensor)
    res = None
    for i in range(scans):
        centres = poles(rng)
        if wall:  # one long wall along the road, 20 m to the left: matches about as well at any yaw
            centres = np.stack([np.linspace(13, 60, 200), np.full(200, 20.0)], 1)
        occ = lidar_occupancy(lidar_points(centres, rng), i * 100_000_000, CFG)
        scan = radar_scan(poles(rng) if unrelated else centres, spec.T_base_sensor, rng)
        if fault is not None:
            scan = fault(scan, severity, rng, sign=sign)
        res = ch.update(scan, occ, i * 100_000_000)["alignment"]
    return res


def test_nominal_radar_is_aligned(rig):
    for sensor in ("RADAR_FRONT", "RADAR_FRONT_LEFT"):
        res = judge(rig, sensor=sensor)
        assert res.level == Level.OK, res.message
        assert abs(float(res.values["value"])) <= 0.5, res.values


@pytest.mark.parametrize("severity,sign,level", [(4, 1.0, Level.ERROR), (4, -1.0, Level.ERROR), (3, 1.0, Level.WARN),
                                                 (5, -1.0, Level.ERROR)])
def test_turned_radar_mount_is_found_with_its_yaw(rig, severity, sign, level):
    """The R13 fault at 2 / 3 / 5 deg: the check reports the turn, with the sign that undoes it."""
    res = judge(rig, F.radar_extrinsic_drift, severity, sign)
    deg = (0.5, 1.0, 2.0, 3.0, 5.0)[severity - 1]
    assert res.level == level, res.message
    assert float(res.values["value"]) == pytest.approx(sign * deg, abs=0.5)
    assert "off the mounting yaw" in res.message and int(res.values["matched_at_offset"]) > \
        int(res.values["matched_as_mounted"])


def test_half_degree_turn_stays_ok(rig):
    assert judge(rig, F.radar_extrinsic_drift, 1, 1.0).level == Level.OK


def test_a_lone_wall_does_not_make_a_yaw_error(rig):
    res = judge(rig, F.radar_extrinsic_drift, 1, 1.0, wall=True)
    assert res.level == Level.OK, res.message


def test_targets_from_another_scene_are_not_judged(rig):
    """Radar and LiDAR that see different worlds match equally badly at every yaw: no alignment verdict."""
    for severity in (1, 4):
        res = judge(rig, F.radar_extrinsic_drift, severity, 1.0, unrelated=True)
        assert res.level == Level.OK and "not judged" in res.message, res.message


def test_without_a_recent_lidar_sweep_alignment_is_not_judged(rig):
    rng = np.random.default_rng(0)
    spec = rig.sensors["RADAR_FRONT"]
    ch = RadarChecker("RADAR_FRONT", CFG, spec.T_base_sensor)
    centres = poles(rng)
    occ = lidar_occupancy(lidar_points(centres, rng), 0, CFG)
    scan = F.radar_extrinsic_drift(radar_scan(centres, spec.T_base_sensor, rng), 5, rng, sign=1.0)
    for res in (ch.update(scan)["alignment"], ch.update(scan, occ, 500_000_000)["alignment"]):  # none / 500 ms old
        assert res.level == Level.OK and "not judged" in res.message


def drive_monitor(rig, seed, frames, lidar_fault=None, radar_fault=None):
    """HealthMonitor fed ``frames`` pole scenes at 10 Hz: a LiDAR sweep (sensor frame) then a RADAR_FRONT scan
    20 ms later; ``lidar_fault`` / ``radar_fault`` (i, data, rng) -> data alter them. Statuses by name at the end."""
    mon = HealthMonitor(rig, HealthConfig())
    rng = np.random.default_rng(seed)
    T_lidar = np.linalg.inv(np.asarray(rig.sensors["LIDAR_TOP"].T_base_sensor, np.float64))
    spec = rig.sensors["RADAR_FRONT"]
    for i in range(frames):
        t = 1_000_000_000 + i * 100_000_000
        centres = poles(rng)
        base = lidar_points(centres, rng)
        sweep = np.c_[(T_lidar[:3, :3] @ base + T_lidar[:3, 3:4]).T, np.zeros((base.shape[1], 2))].astype(np.float32)
        mon.on_lidar("LIDAR_TOP", sweep if lidar_fault is None else lidar_fault(i, sweep, rng), t, t)
        scan = radar_scan(centres, spec.T_base_sensor, rng)
        scan = scan if radar_fault is None else radar_fault(i, scan, rng)
        mon.on_radar("RADAR_FRONT", scan, t + 20_000_000, t + 20_000_000)
    return {s.name: s for s in mon.statuses(t + 30_000_000)}


def test_monitor_reports_a_turned_radar_by_name(rig):
    """Through HealthMonitor: LiDAR sweeps (sensor frame) and radar scans -> "<node>: RADAR_FRONT/alignment"."""
    def turn(i, scan, rng):
        return F.radar_extrinsic_drift(scan, 4, rng, sign=1.0) if i >= 10 else scan

    st = drive_monitor(rig, 3, 30, radar_fault=turn)["fusion_monitor: RADAR_FRONT/alignment"]
    assert st.level == Level.ERROR and "+3.0 deg" in st.message, st.message


def test_a_moved_lidar_does_not_blame_the_radars(rig):
    """When the LiDAR's own ground plane says it moved, it is no reference: the radars are not called turned."""
    delta = F.extrinsic_offset(5, np.random.default_rng(1))  # 3 deg, 0.5 m

    def move(i, sweep, rng):
        return F.lidar_extrinsic_drift(sweep, 5, rng, delta_T=delta) if i >= 15 else sweep

    st = drive_monitor(rig, 4, 40, lidar_fault=move)
    assert st["fusion_monitor: LIDAR_TOP/ground"].level >= Level.WARN, st["fusion_monitor: LIDAR_TOP/ground"].message
    align = st["fusion_monitor: RADAR_FRONT/alignment"]
    assert align.level == Level.OK and "ground plane moved" in align.message, align.message


def test_alignment_parameters_are_validated():
    with pytest.raises(ValueError, match="alignment_warn_deg"):
        RadarCheckConfig(alignment_warn_deg=4.0, alignment_error_deg=3.0)
    with pytest.raises(ValueError, match="alignment_min_range_m"):
        RadarCheckConfig(alignment_min_range_m=70.0)


def test_real_radar_scans_of_other_scenes_raise_no_alignment_alert(rig, radar_scans, lidar_sweep):
    """The real nuScenes ARS408 scans come from other scenes than the real LiDAR sweep: repeated for a whole
    window (a car standing still), they must not read as a turned radar."""
    T = np.asarray(rig.sensors["LIDAR_TOP"].T_base_sensor, np.float64)
    base = T[:3, :3] @ lidar_sweep[:, :3].T.astype(np.float64) + T[:3, 3:4]
    occ = lidar_occupancy(base, 0, CFG)
    for scan in radar_scans:
        ch = RadarChecker(scan.frame_id, CFG, rig.sensors[scan.frame_id].T_base_sensor)
        for _ in range(CFG.alignment_window):
            res = ch.update(scan.points, occ, 0)["alignment"]
        assert res.level == Level.OK, (scan.frame_id, res.message)


def test_radars_that_agree_blame_the_lidar():
    """A LiDAR turned on its mount makes every radar look turned the other way: three radars (or more) that line
    up with the LiDAR the same few degrees off blame the LiDAR, and their own alarms are withdrawn; one radar off
    while the others line up as mounted is that radar (sim404_lidar_yaw_drift, sim445_radar_yaw_drift)."""
    from fusion_monitor.health.radar_alignment import LidarYawConsensus
    from fusion_monitor.health.status import CheckResult

    def judged(off):
        level = Level.ERROR if abs(off) >= CFG.alignment_error_deg else (
            Level.WARN if abs(off) >= CFG.alignment_warn_deg else Level.OK)
        return CheckResult(level, f"offset {off:+.1f}", {"value": f"{off:+.1f}", "bound": "|x| < 1.5 deg"})

    t = 10_000_000_000
    lidar_moved = LidarYawConsensus(CFG)
    out = [lidar_moved.radar(r, t + k, judged(off)) for k, (r, off) in
           enumerate([("RADAR_FRONT", -3.0), ("RADAR_BACK_LEFT", -3.5), ("RADAR_BACK_RIGHT", -2.5)])]
    assert out[0].level == out[1].level == Level.ERROR  # one or two radars alone cannot tell yet
    assert out[2].level == Level.OK and "LiDAR moved" in out[2].message
    again = lidar_moved.radar("RADAR_FRONT", t + 30, judged(-3.0))  # its next scan, with the consensus standing
    assert again.level == Level.OK and "3 radars" in again.message
    lidar = lidar_moved.lidar("LIDAR_TOP", t + 50_000_000)
    assert lidar.level == Level.ERROR and "+3.0 deg" in lidar.message and "RADAR_BACK_LEFT" in lidar.message
    assert lidar_moved.lidar("LIDAR_TOP", t + 5_000_000_000).level == Level.OK  # the votes grew old

    radar_moved = LidarYawConsensus(CFG)
    for k, (r, off) in enumerate([("RADAR_BACK_LEFT", 0.0), ("RADAR_BACK_RIGHT", 0.5), ("RADAR_FRONT_LEFT", 0.0)]):
        radar_moved.radar(r, t + k, judged(off))
    front = radar_moved.radar("RADAR_FRONT", t + 10, judged(-3.0))
    assert front.level == Level.ERROR
    assert radar_moved.lidar("LIDAR_TOP", t + 20).level == Level.OK
