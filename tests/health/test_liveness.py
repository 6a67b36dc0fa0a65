"""Liveness: never received, rate against the expected rate, staleness, stamp skew, time jumps."""

from __future__ import annotations

import numpy as np

from fusion_monitor.health import Level, LivenessConfig, StreamLiveness
from fusion_monitor.health.liveness import stamp_skews_ms

MS = 1_000_000


def feed(lv: StreamLiveness, hz: float, t0_ms: float, t1_ms: float, delay_ms: float = 5.0, drop=None):
    t = t0_ms
    i = 0
    while t < t1_ms:
        if drop is None or not drop(i):
            lv.on_message(int(t * MS), int((t + delay_ms) * MS))
        t += 1000.0 / hz
        i += 1


def test_never_received_is_stale_with_expected_frequency():
    lv = StreamLiveness("CAM_FRONT", 12.0)
    r = lv.results(10 * MS)
    assert {k: v.level for k, v in r.items()} == {k: Level.STALE for k in r}
    assert r["rate"].values["expected_frequency"] == "12"


def test_nominal_rate_ok_with_greenwave_keys():
    lv = StreamLiveness("CAM_FRONT", 12.0)
    feed(lv, 12.0, 0, 3000)
    r = lv.check_rate(3000 * MS)
    assert r.level == Level.OK
    for key in ("frame_rate_node", "frame_rate_msg", "current_delay_from_realtime_ms", "expected_frequency",
                "tolerance"):
        assert key in r.values
    assert abs(float(r.values["frame_rate_node"]) - 12.0) < 1.0
    assert abs(float(r.values["frame_rate_msg"]) - 12.0) < 0.5


def test_rate_drop_warns_then_errors():
    lv = StreamLiveness("LIDAR_TOP", 20.0)
    feed(lv, 14.0, 0, 3000)  # 30 % low
    assert lv.check_rate(3000 * MS).level == Level.WARN
    lv2 = StreamLiveness("LIDAR_TOP", 20.0)
    feed(lv2, 5.0, 0, 3000)
    r = lv2.check_rate(3000 * MS)
    assert r.level == Level.ERROR and "expected 20 Hz" in r.message


def test_silence_becomes_stale_and_the_rate_falls():
    cfg = LivenessConfig(stale_timeout_ms=250.0)
    lv = StreamLiveness("RADAR_FRONT", 13.0, cfg)
    feed(lv, 13.0, 0, 2000)
    assert lv.check_staleness(2010 * MS).level == Level.OK
    r = lv.check_staleness(2400 * MS)
    assert r.level == Level.ERROR and r.message.startswith("stale: no message for")  # STALE is only "never received"
    assert lv.check_rate(3900 * MS).level == Level.ERROR  # window emptying: rate collapses too


def test_stamp_skew_between_sensors_is_reported_with_direction():
    a, b, c = (StreamLiveness(n, 12.0) for n in ("A", "B", "C"))
    feed(a, 12.0, 0, 2000, delay_ms=5)
    feed(b, 12.0, 0, 2000, delay_ms=8)
    feed(c, 12.0, 0, 2000, delay_ms=255)  # stamps 250 ms old on arrival: wrong clock / latency
    skews = stamp_skews_ms({lv.sensor: lv.median_delay_ms() for lv in (a, b, c)})
    assert abs(skews["A"]) < 5 and skews["C"] > 200
    assert a.check_sync(skews["A"]).level == Level.OK
    r = c.check_sync(skews["C"])
    assert r.level == Level.ERROR and "behind the other sensors" in r.message


def test_stamp_jump_backwards_warns_and_resets_without_crashing():
    lv = StreamLiveness("LIDAR_TOP", 20.0)
    feed(lv, 20.0, 10_000, 12_000)
    lv.on_message(0, 12_001 * MS)  # header stamps restart (bag loop with original stamps)
    r = lv.check_time_jump(12_002 * MS)
    assert r.level == Level.WARN and "jumped back" in r.message
    assert lv.resets == 1
    feed(lv, 20.0, 50, 2500, delay_ms=12_000)
    assert lv.check_time_jump(14_600 * MS).level == Level.OK  # held for one rate window only


def test_node_clock_jump_backwards_resets():
    lv = StreamLiveness("LIDAR_TOP", 20.0)
    feed(lv, 20.0, 5000, 7000)
    lv.on_message(100 * MS, 105 * MS)
    assert lv.check_time_jump(106 * MS).level == Level.WARN
    node, _ = lv.rates_hz(106 * MS)
    assert not np.isfinite(node) or node < 25  # no garbage rate from mixing timelines
