"""Attribution checks: baseline fit and yaml io, modality collapse, CUSUM drift with its false-alarm rate,
contradiction."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_monitor.health import (
    AttributionCheckConfig,
    AttributionChecker,
    Baseline,
    BaselineMismatch,
    Cusum,
    Level,
    cusum_arl0,
    fit_baseline,
    frame_statistics,
)

MODS = ("camera", "radar", "lidar")
SENSORS = ("CAM_FRONT", "LIDAR_TOP", "RADAR_FRONT")
NOMINAL = {"camera": 0.3, "radar": 0.15, "lidar": 0.45}


def nominal_frame(rng, n_det=6, shift=None):
    shift = shift or {}
    dets = []
    for _ in range(n_det):
        s = {m: NOMINAL[m] + shift.get(m, 0.0) + rng.normal(0, 0.05) for m in MODS}
        s["bias"] = 0.1
        dets.append(s)
    bev = {m: NOMINAL[m] + shift.get(m, 0.0) + rng.normal(0, 0.02) for m in MODS}
    return dets, [0.8] * n_det, bev


@pytest.fixture(scope="module")
def baseline():
    rng = np.random.default_rng(0)
    frames = [frame_statistics(*nominal_frame(rng)[:1], MODS, None, nominal_frame(rng)[2]) for _ in range(300)]
    return fit_baseline(frames, "ref-model@abc123", SENSORS, MODS, source="synthetic nominal")


def test_frame_statistics_uses_confirmed_detections_only():
    st = frame_statistics([{"camera": 0.9}, {"camera": -0.5}], MODS, scores=[0.9, 0.1], min_score=0.3)
    assert st["det.camera"] == pytest.approx(0.9)
    assert st["det.radar"] == 0.0  # a modality absent from a detection contributed nothing
    assert np.isnan(st["bev.camera"])
    with pytest.raises(ValueError, match="2 scores for 1"):
        frame_statistics([{"camera": 1.0}], MODS, scores=[1, 2])


def test_baseline_yaml_round_trip_and_refusal(baseline, tmp_path):
    path = tmp_path / "baseline.yaml"
    baseline.to_yaml(path)
    back = Baseline.from_yaml(path)
    assert back == baseline
    assert Baseline.from_yaml(path.read_text()) == baseline
    assert back.mean["det.lidar"] == pytest.approx(0.45, abs=0.01)
    back.check_compatible("ref-model@abc123", reversed(SENSORS))
    with pytest.raises(BaselineMismatch, match="model"):
        back.check_compatible("other-model", SENSORS)
    with pytest.raises(BaselineMismatch, match="RADAR_FRONT"):
        back.check_compatible("ref-model@abc123", SENSORS[:2])
    with pytest.raises(ValueError, match="format"):
        Baseline.from_dict({**baseline.to_dict(), "format": 99})


def test_every_calibration_drive_counts_once_whatever_its_length():
    """A short drive from another domain widens the baseline as much as a long one: drive means, not frames."""
    rng = np.random.default_rng(5)
    long_a = [{"det.camera": 0.30 + rng.normal(0, 0.01)} for _ in range(400)]
    short_b = [{"det.camera": 0.40 + rng.normal(0, 0.01)} for _ in range(40)]
    fit = fit_baseline(long_a + short_b, "m", SENSORS, MODS, drive_ids=[0] * 400 + [1] * 40)
    assert fit.mean["det.camera"] == pytest.approx(0.35, abs=0.005)
    assert fit.block_std["det.camera"] == pytest.approx(0.05, abs=0.005)  # each drive 0.05 off the mean
    longer = fit_baseline(long_a * 3 + short_b, "m", SENSORS, MODS, drive_ids=[0] * 1200 + [1] * 40)
    assert longer.mean["det.camera"] == pytest.approx(fit.mean["det.camera"], abs=1e-9)
    assert longer.block_std["det.camera"] == pytest.approx(fit.block_std["det.camera"], rel=0.02)


def test_fit_refuses_too_few_frames():
    with pytest.raises(ValueError, match="need >= 20"):
        fit_baseline([{"det.camera": 0.3}] * 5, "m", SENSORS, MODS)


def run(checker, rng, frames, shift=None, live=None, flip=None):
    out = None
    for _ in range(frames):
        dets, scores, bev = nominal_frame(rng, shift=shift)
        if flip:
            for d in dets[: int(len(dets) * flip[1])]:
                d[flip[0]] = -0.4
        out = checker.update(dets, scores, bev, live)
    return out


def test_nominal_frames_raise_nothing(baseline):
    rng = np.random.default_rng(1)
    ch = AttributionChecker(MODS, baseline=baseline)
    for _ in range(500):
        out = run(ch, rng, 1)
        bad = {(m, c): r.message for m, cs in out.items() for c, r in cs.items() if r.level}
        assert bad == {}


def test_modality_collapse_while_sensor_delivers_is_error(baseline):
    rng = np.random.default_rng(2)
    ch = AttributionChecker(MODS, baseline=baseline)
    run(ch, rng, 20)
    out = run(ch, rng, 20, shift={"camera": -0.29})
    r = out["camera"]["contribution"]
    assert r.level == Level.ERROR and "collapse" in r.message and "baseline 30%" in r.message
    assert out["lidar"]["contribution"].level == Level.OK


def test_a_dip_within_the_modalitys_own_variability_is_not_a_collapse():
    """Radar's share swings with the scene (few moving targets: near zero). A baseline that saw such swings does
    not call a dip under min_share a collapse; a dip far outside them still is."""
    rng = np.random.default_rng(12)

    def frame(radar):
        dets = [{"camera": 0.3, "lidar": 0.5, "radar": radar + rng.normal(0, 0.01), "bias": 0.1} for _ in range(6)]
        return dets, [0.8] * 6, None

    # nominal: radar share 0.12 on average, whole stretches of drive at 0.01-0.03 or 0.25
    levels = np.repeat(rng.choice([0.01, 0.05, 0.12, 0.2, 0.25], size=30), 20)
    frames = [frame_statistics(frame(x)[0], MODS) for x in levels]
    swinging = fit_baseline(frames, "ref-model@abc123", SENSORS, MODS)
    assert swinging.mean["det.radar"] >= 2 * AttributionCheckConfig().min_share
    ch = AttributionChecker(MODS, baseline=swinging)
    for _ in range(30):
        out = ch.update(*frame(0.02))
    r = out["radar"]["contribution"]
    assert r.level != Level.ERROR and float(r.values["z_window"]) > -3, r.message
    steady = fit_baseline([frame_statistics(frame(0.12)[0], MODS) for _ in range(600)], "ref-model@abc123",
                          SENSORS, MODS)
    ch = AttributionChecker(MODS, baseline=steady)
    for _ in range(30):
        out = ch.update(*frame(0.02))
    assert out["radar"]["contribution"].level == Level.ERROR
    strict = AttributionChecker(MODS, AttributionCheckConfig(collapse_z=0.0), baseline=swinging)
    for _ in range(30):
        out = strict.update(*frame(0.02))
    assert out["radar"]["contribution"].level == Level.ERROR  # collapse_z 0: the share alone decides


def test_masked_modality_is_not_called_collapsed(baseline):
    rng = np.random.default_rng(3)
    ch = AttributionChecker(MODS, baseline=baseline)
    out = run(ch, rng, 20, shift={"radar": -0.15}, live={"camera": True, "radar": False, "lidar": True})
    assert out["radar"]["contribution"].level == Level.OK and "masked" in out["radar"]["contribution"].message


def test_collapse_without_baseline_is_judged_against_the_modality_itself():
    """Without a baseline a modality is collapsed only when it contributed and stopped: a detector that barely
    uses its camera (about 1 % of the logit on this reference model) is nominal, not a collapse."""
    rng = np.random.default_rng(4)
    ch = AttributionChecker(MODS)
    out = run(ch, rng, 30)
    assert out["lidar"]["contribution"].level == Level.OK
    out = run(ch, rng, 15, shift={"lidar": -0.45})
    r = out["lidar"]["contribution"]
    assert r.level == Level.ERROR and "collapse" in r.message and "first 20 frames" in r.message
    assert out["lidar"]["drift"].level == Level.OK and "no baseline" in out["lidar"]["drift"].message
    weak = AttributionChecker(MODS)
    out = run(weak, rng, 60, shift={"camera": -0.29})  # 1 % from the start: what this detector does
    assert out["camera"]["contribution"].level == Level.OK


def test_a_modality_that_normally_contributes_little_is_not_collapsed(baseline):
    """The baseline says what is nominal for the running model."""
    rng = np.random.default_rng(9)
    frames = [frame_statistics(*nominal_frame(rng, shift={"camera": -0.29})[:1], MODS) for _ in range(100)]
    weak_camera = fit_baseline(frames, "ref-model@abc123", SENSORS, MODS)
    ch = AttributionChecker(MODS, baseline=weak_camera)
    out = run(ch, rng, 40, shift={"camera": -0.29})
    assert out["camera"]["contribution"].level == Level.OK


def test_empty_bev_is_no_evidence():
    st = frame_statistics([], MODS, bev_shares={m: 0.0 for m in MODS})
    assert all(np.isnan(st[f"bev.{m}"]) for m in MODS)


def test_block_std_holds_the_correlation_of_consecutive_frames():
    """Shares of consecutive frames move together (the same objects in view): the block std measured on the
    nominal drives is far above std / sqrt(block) of independent frames, and the drift check uses it."""
    rng = np.random.default_rng(10)
    slow = np.repeat(rng.normal(0.4, 0.05, 30), 20) + rng.normal(0, 0.01, 600)  # 1 s plateaus
    frames = [{"det.lidar": float(x)} for x in slow]
    b = fit_baseline(frames, "m", SENSORS, MODS, min_std=0.001, block_frames=20, drive_ids=[0] * 300 + [1] * 300)
    assert b.block_std["det.lidar"] > 3 * b.std["det.lidar"] / np.sqrt(20)
    assert b.block_sd("det.lidar", 20) == pytest.approx(b.block_std["det.lidar"])
    assert Baseline.from_dict(b.to_dict()) == b
    legacy = {k: v for k, v in b.to_dict().items() if k not in ("block_std", "block_frames")}
    old = Baseline.from_dict({**legacy, "format": 1})  # a format-1 file: independent frames assumed
    assert old.block_sd("det.lidar", 20) == pytest.approx(old.std["det.lidar"] / np.sqrt(20))
    with pytest.raises(ValueError, match="drive ids"):
        fit_baseline(frames, "m", SENSORS, MODS, drive_ids=[0])


def test_correlated_nominal_shares_raise_no_drift():
    """A nominal drive whose shares wander slowly (scene by scene) stays within the block-std CUSUM."""
    rng = np.random.default_rng(11)

    def drive(n_blocks):
        return np.repeat(rng.normal(0.4, 0.05, n_blocks), 20) + rng.normal(0, 0.01, 20 * n_blocks)

    fit = [{"det.lidar": float(x)} for x in np.concatenate([drive(60) for _ in range(3)])]
    b = fit_baseline(fit, "m", SENSORS, ("lidar",), min_std=0.001, drive_ids=np.repeat([0, 1, 2], 1200).tolist())
    ch = AttributionChecker(("lidar",), baseline=b)
    alarms = 0
    for x in drive(600):  # 10 min of 1 s blocks
        alarms += ch.update([{"lidar": float(x)}], [0.9])["lidar"]["drift"].level != Level.OK
    assert alarms == 0


def scene_drives(rng, offsets, n_blocks=60):
    """Nominal drives whose LiDAR share sits at its own steady level (the scene), 1 s plateaus around it."""
    return [np.repeat(0.4 + off + rng.normal(0, 0.02, n_blocks), 20) + rng.normal(0, 0.01, 20 * n_blocks)
            for off in offsets]


def drift_alarms(b, shares):
    ch = AttributionChecker(("lidar",), baseline=b)
    return [i for i, x in enumerate(shares) if ch.update([{"lidar": float(x)}], [0.9])["lidar"]["drift"].level
            != Level.OK]


def test_held_out_drives_set_the_drift_reference_and_interval():
    """Drives differ by their scenes for their whole length. A CUSUM with k = 1 block std climbs through h = 8 on
    a new nominal drive that sits 1.5 block std off; the reference value and decision interval measured by
    holding each calibration drive out of the fit do not, and a real drift is still found."""
    rng = np.random.default_rng(12)
    offsets = [-0.04, -0.02, 0.0, 0.01, 0.03, 0.05]
    drives = scene_drives(rng, offsets)
    fit = [{"det.lidar": float(x)} for x in np.concatenate(drives)]
    ids = np.repeat(np.arange(len(drives)), drives[0].size).tolist()
    b = fit_baseline(fit, "m", SENSORS, ("lidar",), min_std=0.001, drive_ids=ids)
    assert b.drift_drives == 6 and b.drift_k["det.lidar"] > 1.0 and b.drift_excursion["det.lidar"] > 0
    plain = Baseline.from_dict({**b.to_dict(), "drift_k": {}, "drift_excursion": {}})  # k = 1, h = 8 as before

    new_drive = scene_drives(rng, [-0.038], n_blocks=120)[0]  # 2 min, within the calibration drives' spread
    assert drift_alarms(plain, new_drive), "the plain CUSUM should alarm on a steady scene offset"
    assert drift_alarms(b, new_drive) == []
    k, h = AttributionChecker(("lidar",), baseline=b).drift_kh("det.lidar")
    assert k == pytest.approx(b.drift_k["det.lidar"]) and h >= 8.0

    drifting = new_drive - 0.15 * np.clip(np.arange(new_drive.size) / 600 - 1, 0, 1)  # from 30 s, to -0.15 at 60 s
    alarms = drift_alarms(b, drifting)
    assert alarms and 600 < alarms[0] < 1800
    assert Baseline.from_dict(b.to_dict()) == b
    with pytest.raises(ValueError, match="drift_k"):
        Baseline.from_dict({**b.to_dict(), "drift_excursion": {}})
    two = fit_baseline(fit[: 2 * drives[0].size], "m", SENSORS, ("lidar",), min_std=0.001,
                       drive_ids=ids[: 2 * drives[0].size])
    assert two.drift_k == {} and two.drift_drives == 0  # a held-out fit needs two other drives


def test_only_a_drop_alarms_unless_drift_up_is_set():
    """A modality whose share rises took it from the others (their drop is their alarm); health.attribution.drift_up
    also alarms on rises."""
    from fusion_monitor.health.config import AttributionCheckConfig

    rng = np.random.default_rng(3)
    drives = scene_drives(rng, [-0.02, 0.0, 0.01, 0.02])
    fit = [{"det.lidar": float(x)} for x in np.concatenate(drives)]
    ids = np.repeat(np.arange(len(drives)), drives[0].size).tolist()
    b = fit_baseline(fit, "m", SENSORS, ("lidar",), min_std=0.001, drive_ids=ids)
    base = scene_drives(rng, [0.0], n_blocks=90)[0]
    ramp = 0.2 * np.clip(np.arange(base.size) / 600 - 1, 0, 1)  # from 30 s, +-0.2 by 60 s

    def alarms(shares, **cfg):
        ch = AttributionChecker(("lidar",), AttributionCheckConfig(**cfg), baseline=b)
        return [ch.update([{"lidar": float(x)}], [0.9])["lidar"]["drift"] for x in shares]

    down = [r for r in alarms(base - ramp) if r.level != Level.OK]
    assert down and "drifted down" in down[0].message
    assert all(r.level == Level.OK for r in alarms(base + ramp))
    up = [r for r in alarms(base + ramp, drift_up=True) if r.level != Level.OK]
    assert up and "drifted up" in up[0].message


def test_slow_drift_caught_by_cusum_not_by_the_frame_bound(baseline):
    rng = np.random.default_rng(5)
    ch = AttributionChecker(MODS, baseline=baseline)
    first_alarm = None
    for i in range(300):
        out = run(ch, rng, 1, shift={"radar": -0.03 * min(1.0, i / 100)})  # ramps to -0.03 (under 1 std)
        assert out["radar"]["contribution"].level == Level.OK
        if out["radar"]["drift"].level == Level.WARN and first_alarm is None:
            first_alarm = i
            assert "down" in out["radar"]["drift"].message
    assert first_alarm is not None and first_alarm < 250


def test_contradicting_modality(baseline):
    rng = np.random.default_rng(6)
    ch = AttributionChecker(MODS, baseline=baseline)
    run(ch, rng, 10)
    out = run(ch, rng, 10, flip=("radar", 0.5))
    r = out["radar"]["contradiction"]
    assert r.level == Level.WARN and "argues against 50%" in r.message
    out = run(ch, rng, 10, flip=("radar", 1.0))
    assert out["radar"]["contradiction"].level == Level.ERROR
    assert out["camera"]["contradiction"].level == Level.OK


def test_cusum_false_alarm_rate_matches_the_documented_formula():
    k, h = 0.5, 3.0
    expected = cusum_arl0(k, h)
    rng = np.random.default_rng(7)
    runs = []
    for _ in range(400):
        c = Cusum(k, h)
        n = 0
        while True:
            n += 1
            if c.update(rng.normal()):
                break
        runs.append(n)
    assert np.mean(runs) == pytest.approx(expected, rel=0.25)
    assert cusum_arl0(0.5, 10.0) > 60000  # the default: about 19 h of 1 s blocks per false alarm and CUSUM


def test_config_bounds_are_used(baseline):
    rng = np.random.default_rng(8)
    strict = run(AttributionChecker(MODS, AttributionCheckConfig(min_share=0.2), baseline), rng, 12,
                 shift={"lidar": -0.3})
    assert strict["lidar"]["contribution"].level == Level.ERROR  # 15 % < 20 % of a modality normally at 45 %
    default = run(AttributionChecker(MODS, baseline=baseline), rng, 12, shift={"lidar": -0.3})
    assert default["lidar"]["contribution"].level == Level.WARN  # far from its baseline, above 5 %
