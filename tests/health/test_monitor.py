"""HealthMonitor end to end on the nuScenes rig: start-up, nominal stream, silence, faults, time jumps."""

from __future__ import annotations

import numpy as np
import pytest
from health_synthetic import remeasured, synthetic_radar, synthetic_sweep, textured_image

from fusion_monitor.health import BaselineMismatch, HealthMonitor, Level, fit_baseline
from fusion_monitor.health.attribution import ATTRIBUTION_CHECKS
from fusion_monitor.health.camera import CAMERA_CHECKS
from fusion_monitor.health.lidar import LIDAR_CHECKS
from fusion_monitor.health.liveness import LIVENESS_CHECKS
from fusion_monitor.health.radar import RADAR_CHECKS
from fusion_monitor.sensors.faults import FaultInjector, parse_fault_spec

MS = 1_000_000
SHARES = {"camera": 0.3, "radar": 0.15, "lidar": 0.45, "bias": 0.1}


class Drive:
    """Feeds every rig sensor at its rate with synthetic data; node clock = stamp + 5 ms."""

    def __init__(self, rig, monitor, seed=0):
        self.rig, self.mon = rig, monitor
        self.rng = np.random.default_rng(seed)
        self.sweep = synthetic_sweep(self.rng)
        self.images = [textured_image(self.rng) for _ in range(4)]
        self.next = {n: 0.0 for n in rig.sensors}
        self.t_ms = 0.0
        self.silent: set[str] = set()
        self.camera_override = {}
        self.injector = None
        self.k = 0

    def run(self, until_ms, attribution=True, shares=SHARES, masked=()):
        while self.t_ms < until_ms:
            self.t_ms += 5.0
            now = int((self.t_ms + 5.0) * MS)
            for n, s in self.rig.sensors.items():
                if self.t_ms < self.next[n]:
                    continue
                self.next[n] += 1000.0 / s.rate_hz
                if n in self.silent:
                    continue
                stamp = int(self.t_ms * MS)
                if s.modality == "camera":
                    self.k += 1
                    data = self.camera_override.get(n, self.images[self.k % 4])
                elif s.modality == "lidar":
                    data = remeasured(self.sweep, self.rng)
                else:
                    data = synthetic_radar(self.rng)
                if self.injector is not None:
                    data, stamp = self.injector.apply(n, s.modality, data, stamp)
                    if data is None:
                        continue
                if s.modality == "camera":
                    self.mon.on_camera(n, data, stamp, now)
                elif s.modality == "lidar":
                    self.mon.on_lidar(n, data, stamp, now)
                    if attribution:
                        self.mon.on_attribution(stamp, [dict(shares) for _ in range(5)], [0.8] * 5,
                                                {m: v for m, v in shares.items() if m != "bias"}, now_ns=now,
                                                masked=masked)
                else:
                    self.mon.on_radar(n, data, stamp, now)
        return self.mon.statuses(int((self.t_ms + 5.0) * MS))


def by_name(statuses):
    return {s.name: s for s in statuses}


def expected_count(rig):
    per = {"camera": CAMERA_CHECKS, "lidar": LIDAR_CHECKS + ("alignment",), "radar": RADAR_CHECKS}  # the radars' verdict
    return sum(len(LIVENESS_CHECKS) + len(per[s.modality]) for s in rig.sensors.values()) + 3 * len(ATTRIBUTION_CHECKS)


def test_start_up_is_stale_and_waits_for_inference(rig):
    mon = HealthMonitor(rig)
    st = mon.statuses(0)
    assert len(st) == expected_count(rig) and len({s.name for s in st}) == len(st)
    assert all(s.level == Level.STALE for s in st)
    names = by_name(st)
    assert "fusion_monitor: CAM_FRONT/staleness" in names
    assert names["fusion_monitor: lidar/contribution"].message == "lidar: waiting for first inference"
    assert all(s.name == f"fusion_monitor: {s.sensor}/{s.check}" for s in st)


def test_nominal_drive_is_all_ok(rig):
    mon = HealthMonitor(rig, node_name="fm")
    st = Drive(rig, mon).run(3000)
    bad = {s.name: s.message for s in st if s.level != Level.OK}
    assert bad == {}
    assert by_name(st)["fm: RADAR_FRONT/rate"].values["frame_rate_node"].startswith("13")


def test_silent_sensor_goes_stale_while_the_rest_stays_ok(rig):
    mon = HealthMonitor(rig)
    d = Drive(rig, mon)
    d.run(2000)
    d.silent.add("RADAR_FRONT")
    st = by_name(d.run(2500))
    assert st["fusion_monitor: RADAR_FRONT/staleness"].level == Level.ERROR  # it delivered before: stale is an error
    assert st["fusion_monitor: RADAR_FRONT/target_count"].level == Level.STALE
    assert st["fusion_monitor: RADAR_FRONT/target_count"].message.startswith("RADAR_FRONT: no data")
    others = [s for s in st.values() if s.sensor not in ("RADAR_FRONT",) and s.level != Level.OK]
    assert others == []


def test_all_inputs_silent_still_reported_from_a_timer(rig):
    mon = HealthMonitor(rig)
    Drive(rig, mon).run(1000)
    st = mon.statuses(5000 * MS)  # nothing arrived for 4 s
    sensors = [s for s in st if s.check == "staleness"]
    assert all(s.level == Level.ERROR and "stale" in s.message for s in sensors)
    attr = [s for s in st if s.sensor in ("camera", "radar", "lidar")]
    assert all(s.level == Level.STALE and "no inference" in s.message for s in attr)


def test_camera_fault_debounced_raise_and_hysteresis(rig):
    mon = HealthMonitor(rig)
    d = Drive(rig, mon)
    d.run(1000)
    d.camera_override["CAM_BACK"] = np.zeros((450, 800, 3), np.uint8)
    st = by_name(d.run(1300))  # about 4 black frames at 12 Hz
    s = st["fusion_monitor: CAM_BACK/exposure"]
    assert s.level == Level.ERROR and s.hardware_id == "CAM_BACK" and "black" in s.message
    assert s.values["bound"] and s.values["value"] and "stamp_ns" in s.values
    del d.camera_override["CAM_BACK"]
    st = by_name(d.run(1450))  # 2 good frames: still held (hysteresis)
    assert st["fusion_monitor: CAM_BACK/exposure"].level == Level.ERROR
    st = by_name(d.run(1800))
    assert st["fusion_monitor: CAM_BACK/exposure"].level == Level.OK


def test_node_clock_jump_backwards_resets_without_crashing(rig):
    mon = HealthMonitor(rig)
    d = Drive(rig, mon)
    d.run(2000)
    d.t_ms = 0.0
    d.next = {n: 0.0 for n in rig.sensors}
    st = d.run(1500)  # replay loops: the clock restarts
    assert mon.resets >= 1
    assert [s.name for s in st if s.level in (Level.ERROR,)] == []
    assert {s.name for s in st} == {s.name for s in mon.statuses(0)}


def test_attribution_collapse_reported_and_masked_modality_spared(rig):
    mon = HealthMonitor(rig)
    d = Drive(rig, mon)
    d.run(1500)  # the camera contributes (no baseline: its own first frames are the reference)
    st = by_name(d.run(3500, shares={"camera": 0.01, "radar": 0.15, "lidar": 0.74, "bias": 0.1}))
    assert st["fusion_monitor: camera/contribution"].level == Level.ERROR
    assert st["fusion_monitor: camera/contribution"].hardware_id == "camera"
    mon2 = HealthMonitor(rig)
    st = by_name(Drive(rig, mon2).run(2000, shares={"camera": 0.01, "radar": 0.15, "lidar": 0.74, "bias": 0.1},
                                      masked=("camera",)))
    assert st["fusion_monitor: camera/contribution"].level == Level.OK


def test_baseline_for_another_model_or_rig_is_refused(rig):
    frames = [{"det.camera": 0.3 + 0.01 * (i % 3)} for i in range(30)]
    b = fit_baseline(frames, "model-a", rig.sensors, ("camera", "radar", "lidar"))
    HealthMonitor(rig, baseline=b, model_id="model-a")
    with pytest.raises(BaselineMismatch, match="model-b"):
        HealthMonitor(rig, baseline=b, model_id="model-b")
    b2 = fit_baseline(frames, "model-a", ["LIDAR_TOP"], ("lidar",))
    with pytest.raises(BaselineMismatch, match="sensor set"):
        HealthMonitor(rig, baseline=b2, model_id="model-a")


def test_unknown_sensor_and_wrong_modality_are_named(rig):
    mon = HealthMonitor(rig)
    with pytest.raises(KeyError, match="CAM_NOSE"):
        mon.on_message("CAM_NOSE", 0, 0)
    with pytest.raises(ValueError, match="LIDAR_TOP.*lidar"):
        mon.on_camera("LIDAR_TOP", np.zeros((90, 160, 3), np.uint8), 0)


def injected_drive(rig, spec, seconds):
    mon = HealthMonitor(rig)
    d = Drive(rig, mon)
    sensors = {n: s.modality for n, s in rig.sensors.items()}
    d.injector = FaultInjector(parse_fault_spec(spec, sensors), seed=0, t0_ns=0,
                               T_base_sensor={n: s.T_base_sensor for n, s in rig.sensors.items()})
    timeline = []
    t = 0
    while t < seconds * 1000:
        t += 100
        timeline.append((t, by_name(d.run(t))))
    return timeline


def test_injected_lidar_blockage_episode_raised_where_and_cleared_after(rig):
    spec = [{"fault": "lidar_sector_blockage", "sensor": "LIDAR_TOP", "severity": 2, "start_s": 1.0, "end_s": 2.0,
             "params": {"center_deg": -45.0}}]
    timeline = injected_drive(rig, spec, 3.0)
    name = "fusion_monitor: LIDAR_TOP/blockage"
    levels = {t: st[name].level for t, st in timeline}
    assert all(levels[t] == Level.OK for t in levels if t <= 1000)
    assert levels[1300] == Level.ERROR  # within 3 sweeps of the onset (20 Hz)
    st = dict(timeline)[1500][name]
    assert abs(float(st.values["azimuth_center_deg"]) + 45) <= 15 and "azimuth" in st.message
    assert levels[3000] == Level.OK  # recovered after the episode (hysteresis: clear_count sweeps)
    others = {n for t, s in timeline for n, v in s.items() if v.level != Level.OK and not n.startswith(
        "fusion_monitor: LIDAR_TOP/")}
    assert others == set()


@pytest.mark.parametrize("sensor", ["LIDAR_TOP", "RADAR_FRONT_LEFT"])
def test_frozen_lidar_or_radar_is_raised_on_that_sensor_only(rig, sensor):
    """A driver that keeps re-sending its last sweep / scan under fresh stamps: rate and every per-message
    statistic stay nominal, only the frozen check sees it; it clears when the data moves again."""
    spec = [{"fault": "frozen", "sensor": sensor, "severity": 5, "start_s": 1.0, "end_s": 2.0}]
    timeline = injected_drive(rig, spec, 3.5)
    name = f"fusion_monitor: {sensor}/frozen"
    levels = {t: st[name].level for t, st in timeline}
    assert all(levels[t] == Level.OK for t in levels if t <= 1000)
    assert levels[1400] != Level.OK and "identical" in dict(timeline)[1400][name].message
    assert levels[3500] == Level.OK
    raised = {n for t, st in timeline for n, v in st.items() if v.level != Level.OK}
    assert raised == {name}, raised


def test_injected_camera_stamp_offset_raises_sync(rig):
    spec = [{"fault": "time_offset", "sensor": "CAM_FRONT_LEFT", "severity": 4, "start_s": 0.5, "end_s": 10,
             "params": {"mode": "stamp"}}]
    timeline = injected_drive(rig, spec, 2.5)
    st = timeline[-1][1]["fusion_monitor: CAM_FRONT_LEFT/sync"]
    assert st.level == Level.ERROR and "behind the other sensors" in st.message
    assert timeline[-1][1]["fusion_monitor: CAM_FRONT/sync"].level == Level.OK


def test_injected_dropped_radar_frames_lower_the_rate(rig):
    spec = [{"fault": "dropped_frames", "sensor": "RADAR_BACK_LEFT", "severity": 5, "start_s": 0.0, "end_s": 10}]
    st = injected_drive(rig, spec, 3.0)[-1][1]
    r = st["fusion_monitor: RADAR_BACK_LEFT/rate"]
    assert r.level >= Level.WARN and float(r.values["frame_rate_node"]) < 8
    assert st["fusion_monitor: RADAR_FRONT/rate"].level == Level.OK


def test_silent_modality_is_not_called_collapsed(rig):
    mon = HealthMonitor(rig)
    d = Drive(rig, mon)
    d.silent |= {s.name for s in rig.of("radar")}
    st = by_name(d.run(2000, shares={"camera": 0.4, "radar": 0.0, "lidar": 0.5, "bias": 0.1}))
    assert st["fusion_monitor: radar/contribution"].level == Level.OK
    assert "masked" in st["fusion_monitor: radar/contribution"].message
    assert st["fusion_monitor: RADAR_FRONT/staleness"].level == Level.STALE  # never received
