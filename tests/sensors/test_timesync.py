"""Latest-per-sensor cache: LiDAR trigger, ages, stale masking, out-of-order, duplicates, bag loops."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fusion_monitor.sensors.rig import load_rig
from fusion_monitor.sensors.timesync import (
    ACCEPTED,
    DUPLICATE,
    OUT_OF_ORDER,
    TIME_JUMP_BACK,
    UNKNOWN_SENSOR,
    LatestCache,
    SyncPolicy,
)

MS = 1_000_000
T0 = 1_532_402_927_000 * MS


@pytest.fixture
def cache():
    return LatestCache(SyncPolicy.from_rig(load_rig(), trigger_rate_hz=10.0))


def _drive(cache, until_ms, skip=(), start_ms=0):
    """Feed the nuScenes rates (LiDAR 20 Hz, cameras 12 Hz, radars 13 Hz) in stamp order; return frames."""
    rig = load_rig()
    events = []
    for name, spec in rig.sensors.items():
        if name in skip:
            continue
        period = 1000.0 / spec.rate_hz
        k = 0
        while k * period < until_ms - start_ms:
            events.append((start_ms + k * period + (3 if spec.modality == "camera" else 0), name))
            k += 1
    frames = []
    for t_ms, name in sorted(events):
        stamp = T0 + int(t_ms * MS)
        r = cache.push(name, stamp, f"{name}@{t_ms:.0f}", now_ns=stamp + 5 * MS)
        if r.frame is not None:
            frames.append(r.frame)
    return frames


def test_complete_rig_triggers_at_10hz_with_every_sensor_fresh(cache):
    frames = _drive(cache, 2000)
    assert len(frames) == 20  # 20 Hz LiDAR, 10 Hz trigger
    assert all(f.trigger == "LIDAR_TOP" for f in frames)
    late = frames[2:]  # after every sensor's first message
    assert all(f.stale() == [] for f in late)
    # messages arrive in stamp order, so a camera is at most one period (+3 ms offset) old
    assert max(abs(a.age_ns) for f in late for a in f.sensors.values()) <= 1000 / 12 * MS + 3 * MS + 1
    assert late[-1].sensors["LIDAR_TOP"].age_ns == 0


def test_never_waits_for_a_complete_set_and_names_the_missing_sensor(cache):
    frames = _drive(cache, 1000, skip=("CAM_BACK", "RADAR_FRONT"))
    assert len(frames) == 10
    f = frames[-1]
    assert sorted(f.stale()) == ["CAM_BACK", "RADAR_FRONT"]
    assert f.sensors["CAM_BACK"].reason == "CAM_BACK: no message received"
    assert f.payload("CAM_BACK") is None and f.payload("CAM_FRONT") is not None


def test_a_sensor_that_stops_is_masked_once_older_than_its_bound(cache):
    rig = load_rig()
    _drive(cache, 1000)
    # only the LiDAR goes on: cameras age out after 1/12 s + 40 ms = 123.3 ms
    frames = []
    for k in range(20, 30):
        stamp = T0 + k * 50 * MS
        r = cache.push("LIDAR_TOP", stamp, None, stamp)
        if r.frame:
            frames.append(r.frame)
    bound = cache.policy.max_age_ns["CAM_FRONT"]
    assert bound == round((1 / 12 + 0.04) * 1e9)
    for f in frames:
        a = f.sensors["CAM_FRONT"]
        assert a.stale == (a.age_ns > bound)
        if a.stale:
            assert "old at the trigger" in a.reason and f"bound {bound / 1e6:.1f} ms" in a.reason
    assert frames[-1].stale() == [s.name for s in rig.sensors.values() if s.modality != "lidar"]


def test_timer_trigger_reports_silence_when_every_input_stops(cache):
    _drive(cache, 500)
    f = cache.snapshot(T0 + 3000 * MS, now_ns=T0 + 3000 * MS)
    assert f.trigger == "timer"
    assert sorted(f.stale()) == sorted(load_rig().sensors)
    assert f.sensors["LIDAR_TOP"].age_ns > 2400 * MS


def test_closest_sample_to_the_trigger_is_chosen_from_history(cache):
    cache.push("CAM_FRONT", T0 + 0 * MS, "a", T0)
    cache.push("CAM_FRONT", T0 + 83 * MS, "b", T0 + 83 * MS)
    cache.push("CAM_FRONT", T0 + 166 * MS, "c", T0 + 166 * MS)  # arrives before the LiDAR at 90 ms
    f = cache.push("LIDAR_TOP", T0 + 90 * MS, "L", T0 + 170 * MS).frame
    assert f.payload("CAM_FRONT") == "b" and f.sensors["CAM_FRONT"].age_ns == 7 * MS


def test_out_of_order_and_duplicates_are_dropped_and_counted(cache):
    assert cache.push("RADAR_FRONT", T0 + 100 * MS, "new", T0).event == ACCEPTED
    r = cache.push("RADAR_FRONT", T0 + 50 * MS, "old", T0)
    assert r.event == OUT_OF_ORDER and "older than cached" in r.reason
    assert cache.push("RADAR_FRONT", T0 + 100 * MS, "dup", T0).event == DUPLICATE
    c = cache.counters["RADAR_FRONT"]
    assert (c.accepted, c.out_of_order, c.duplicate) == (1, 1, 1)
    assert cache.snapshot(T0 + 100 * MS, T0).payload("RADAR_FRONT") == "new"
    assert cache.push("RADAR_MARS", T0, None, T0).event == UNKNOWN_SENSOR


def test_bag_loop_resets_instead_of_masking_forever(cache):
    frames = _drive(cache, 3000)
    assert frames[-1].stale() == []
    # the bag restarts: stamps jump 3 s back; the first message clears the cache, then it refills
    again = _drive(cache, 1000)
    assert cache.resets == 1
    assert sum(c.time_jump_back for c in cache.counters.values()) == 1
    assert again and again[-1].stale() == []
    assert all(a.age_ns is None or a.age_ns < 200 * MS for a in again[-1].sensors.values())


def test_node_clock_jumping_back_resets(cache):
    _drive(cache, 500)
    r = cache.push("LIDAR_TOP", T0 + 550 * MS, None, now_ns=T0 - 10_000 * MS)  # sim clock restarted
    assert r.event == TIME_JUMP_BACK and cache.resets == 1 and "node clock jumped back" in r.reason
    assert r.frame is not None and sorted(r.frame.fresh()) == ["LIDAR_TOP"]


def test_jump_back_event_is_reported():
    cache = LatestCache(SyncPolicy.from_rig(load_rig()))
    cache.push("CAM_FRONT", T0 + 5000 * MS, None, T0)
    r = cache.push("CAM_FRONT", T0, None, T0)
    assert r.event == TIME_JUMP_BACK and "time jumped backwards" in r.reason


def test_policy_rejects_bad_parameters():
    with pytest.raises(ValueError, match="trigger_rate_hz"):
        SyncPolicy.from_rig(load_rig(), trigger_rate_hz=0)
    with pytest.raises(ValueError, match="not in rig"):
        SyncPolicy.from_rig(load_rig(), trigger_sensor="LIDAR_LEFT")


def test_one_sensor_with_a_future_clock_does_not_thrash_the_others(cache):
    f = None
    for k in range(20):
        stamp = T0 + k * 50 * MS
        cache.push("RADAR_FRONT", stamp + 3600 * 1000 * MS, None, stamp)  # an hour ahead
        cache.push("CAM_FRONT", stamp, None, stamp)
        f = cache.push("LIDAR_TOP", stamp, None, stamp).frame or f
    assert cache.resets == 0
    a = f.sensors["RADAR_FRONT"]
    assert a.stale and "ahead of the trigger" in a.reason
    assert not f.sensors["CAM_FRONT"].stale


def test_a_short_bag_looping_resets_after_consecutive_reorders(cache):
    # a 0.5 s bag (shorter than the 1 s jump bound) played in a loop
    seen = []
    for loop in range(3):
        for k in range(10):
            stamp = T0 + k * 50 * MS
            r = cache.push("LIDAR_TOP", stamp, (loop, k), now_ns=T0 + (loop * 10 + k) * 50 * MS)
            seen.append(r.event)
    assert seen.count(TIME_JUMP_BACK) == 2  # once per loop, after reorder_limit consecutive reorders
    assert seen.count(OUT_OF_ORDER) == 2 * (cache.policy.reorder_limit - 1)
    assert cache.snapshot(T0 + 450 * MS, T0 + 1450 * MS).payload("LIDAR_TOP") == (2, 9)


_SENSORS = ["LIDAR_TOP", "CAM_FRONT", "RADAR_FRONT", "CAM_BACK"]


@pytest.mark.slow
@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(st.lists(st.tuples(st.sampled_from(_SENSORS + ["timer"]), st.integers(-3000, 3000),
                          st.integers(-3000, 3000)), max_size=60))
def test_any_message_order_keeps_the_invariants(events):
    """Random stamps, reorders, duplicates and clock jumps: never a crash; every frame is self-consistent."""
    cache = LatestCache(SyncPolicy.from_rig(load_rig()))
    pushes = 0
    for sensor, stamp_ms, now_ms in events:
        stamp, now = T0 + stamp_ms * MS, T0 + now_ms * MS
        if sensor == "timer":
            frames = [cache.snapshot(now, now)]
        else:
            pushes += 1
            r = cache.push(sensor, stamp, stamp_ms, now)
            assert r.event in (ACCEPTED, DUPLICATE, OUT_OF_ORDER, TIME_JUMP_BACK)
            frames = [r.frame] if r.frame else []
        for f in frames:
            for a in f.sensors.values():
                if a.sample is None:
                    assert a.stale and a.age_ns is None
                else:
                    assert a.age_ns == f.trigger_stamp_ns - a.sample.stamp_ns
                    assert a.stale == (abs(a.age_ns) > a.max_age_ns)
                    assert a.stale == bool(a.reason)
    total = sum(c.accepted + c.duplicate + c.out_of_order for c in cache.counters.values())
    assert total == pushes
    for q in cache._samples.values():  # each sensor's history stays in stamp order
        stamps = [s.stamp_ns for s in q]
        assert stamps == sorted(set(stamps))
