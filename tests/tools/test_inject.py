"""`fusion-monitor inject`: faults land where and when the spec says; nothing else changes."""

import json

import pytest

from fusion_monitor.bagio import deserialize, open_bag
from fusion_monitor.ros.ingest import camera_rgb, cloud_columns
from fusion_monitor.sensors.faults import FaultSpecError
from fusion_monitor.tools.inject import inject_bag


def _by_topic(bag):
    src = open_bag(bag)
    out = {}
    for m in src.messages():
        out.setdefault(m.topic, []).append(m)
    return src, out


@pytest.mark.slow
def test_blackout_and_blockage_only_inside_their_windows(sim_bag, faulted_bag):
    _, before = _by_topic(sim_bag)
    _, after = _by_topic(faulted_bag)
    assert set(before) == set(after)
    t0 = min(m.log_time_ns for ms in before.values() for m in ms)
    for topic in before:
        assert len(before[topic]) == len(after[topic]), topic
    cam = "/CAM_FRONT/image_rect_compressed"
    for a, b in zip(before[cam], after[cam]):
        t = (a.log_time_ns - t0) / 1e9
        img, _ = camera_rgb(deserialize(b), "CAM_FRONT")
        if 0.8 <= t < 2.2:
            assert img.mean() < 3, f"frame at {t:.2f}s not black"
        else:
            assert a.data == b.data, f"frame at {t:.2f}s changed outside the window"
    for a, b in zip(before["/LIDAR_TOP"], after["/LIDAR_TOP"]):
        t = (a.log_time_ns - t0) / 1e9
        pa, _ = cloud_columns(deserialize(a), "LIDAR_TOP", ("x", "y", "z"))
        pb, _ = cloud_columns(deserialize(b), "LIDAR_TOP", ("x", "y", "z"))
        if 1.5 <= t < 3.0:
            assert len(pb) < 0.9 * len(pa)
        else:
            assert a.data == b.data
    # other sensors untouched, byte for byte
    for topic in ("/CAM_BACK/image_rect_compressed", "/RADAR_FRONT", "/tf_static"):
        assert [m.data for m in before[topic]] == [m.data for m in after[topic]]
    truth = json.loads((faulted_bag.parent / (faulted_bag.name + ".faults.json")).read_text())
    assert [e["fault"] for e in truth["episodes"]] == ["camera_blackout", "lidar_sector_blockage"]


@pytest.mark.slow
@pytest.mark.parametrize("spec, match", [
    ([{"fault": "camera_sunburn", "sensor": "CAM_FRONT", "severity": 3, "start_s": 0, "end_s": 1}], "unknown fault"),
    ([{"fault": "camera_blackout", "sensor": "CAM_NOSE", "severity": 3, "start_s": 0, "end_s": 1}], "unknown sensor"),
    ([{"fault": "camera_blackout", "sensor": "LIDAR_TOP", "severity": 3, "start_s": 0, "end_s": 1}], "applies to"),
    ([{"fault": "camera_blackout", "sensor": "CAM_FRONT", "severity": 9, "start_s": 0, "end_s": 1}], "severity"),
    ([{"fault": "camera_blackout", "sensor": "CAM_FRONT", "severity": 3, "start_s": 30, "end_s": 40}], "after the end"),
])
def test_bad_spec_fails_before_writing(sim_bag, tmp_path, spec, match):
    out = tmp_path / "out"
    with pytest.raises(FaultSpecError, match=match):
        inject_bag(sim_bag, out, spec)
    assert not out.exists()


def test_long_inline_fault_spec_is_read_as_yaml_not_a_path():
    from fusion_monitor.tools.inject import load_fault_spec

    spec = "- {fault: camera_blackout, sensor: CAM_FRONT, start_s: 1, end_s: 2, severity: 3, note: " + "x" * 5000 + "}"
    assert load_fault_spec(spec)[0]["fault"] == "camera_blackout"  # longer than any file name: no OSError


def test_injected_bag_keeps_the_offered_qos_of_the_source(sim_bag, faulted_bag):
    """A player offers what the faulted bag recorded: sensor data best effort, /tf_static transient local."""
    from rosbags.highlevel import AnyReader

    def qos(bag):
        with AnyReader([bag]) as reader:
            return {c.topic: [(q.reliability.name, q.durability.name) for q in c.ext.offered_qos_profiles]
                    for c in reader.connections}

    before, after = qos(sim_bag), qos(faulted_bag)
    assert after == before
    assert after["/LIDAR_TOP"] == [("BEST_EFFORT", "VOLATILE")]
    assert after["/tf_static"] == [("RELIABLE", "TRANSIENT_LOCAL")]
