"""`fusion-monitor simulate`: same seed -> same bag, /clock for use_sim_time, faults applied while simulating."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from fusion_monitor.bagio import deserialize, open_bag
from fusion_monitor.ros.ingest import camera_rgb
from fusion_monitor.ros.pointcloud import pointcloud2_to_array
from fusion_monitor.tools import simulate
from fusion_monitor.tools.inject import inject_bag

FAULTS = [
    {"fault": "camera_blackout", "sensor": "CAM_FRONT", "severity": 5, "start_s": 0.2, "end_s": 0.45,
     "params": {"p": 1.0}},
    {"fault": "dropped_frames", "sensor": "CAM_BACK", "severity": 5, "start_s": 0.0, "end_s": 0.3,
     "params": {"p": 1.0}},
    {"fault": "lidar_sector_blockage", "sensor": "LIDAR_TOP", "severity": 4, "start_s": 0.25, "end_s": 0.5,
     "params": {"center_deg": 0.0}},
    {"fault": "radar_ghosts", "sensor": "RADAR_FRONT", "severity": 5, "start_s": 0.1, "end_s": 0.6},
]
FAST = ["--render-size", "36x64", "--native-size", "--workers", "1"]


def _simulate(out, *extra: str, duration: float = 0.6, seed: int = 3) -> int:
    parser = argparse.ArgumentParser()
    simulate.add_arguments(parser)
    return simulate.run(parser.parse_args(["--out", str(out), "--duration", str(duration), "--seed", str(seed),
                                           *extra]))


def _by_topic(bag) -> dict[str, list]:
    out: dict[str, list] = {}
    for m in open_bag(bag).messages():
        out.setdefault(m.topic, []).append(m)
    return out


@pytest.fixture(scope="module")
def nominal(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "nominal"
    assert _simulate(out, *FAST) == 0
    return out


@pytest.fixture(scope="module")
def faulted(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "faulted"
    assert _simulate(out, *FAST, "--faults", json.dumps(FAULTS)) == 0
    return out


def test_same_seed_gives_byte_identical_bags_whatever_the_workers(tmp_path):
    # full-size delivery (1600x900 JPEGs upscaled from the render), one and two rendering processes
    assert _simulate(tmp_path / "a", "--render-size", "36x64", "--workers", "1", duration=0.3) == 0
    assert _simulate(tmp_path / "b", "--render-size", "36x64", "--workers", "2", duration=0.3) == 0
    a, b = list(open_bag(tmp_path / "a").messages()), list(open_bag(tmp_path / "b").messages())
    assert len(a) > 50
    assert [(m.topic, m.log_time_ns, m.data) for m in a] == [(m.topic, m.log_time_ns, m.data) for m in b]
    img = deserialize(next(m for m in a if m.topic == "/CAM_FRONT/image_rect_compressed"))
    assert camera_rgb(img, "CAM_FRONT")[0].shape == (900, 1600, 3)


def test_clock_ticks_at_100_hz_over_the_whole_drive(nominal):
    msgs = list(open_bag(nominal).messages())
    clock = [m for m in msgs if m.topic == "/clock"]
    assert open_bag(nominal).topics["/clock"] == "rosgraph_msgs/msg/Clock"
    values = [deserialize(m).clock for m in clock]
    ns = np.array([v.sec * 1_000_000_000 + v.nanosec for v in values])
    assert np.array_equal(ns, [m.log_time_ns for m in clock])  # the clock says the log time
    assert np.all(np.diff(ns) == 10_000_000)  # monotonic, 100 Hz of sim time
    sensor_stamps = [m.log_time_ns for m in msgs if m.topic != "/clock"]
    assert ns[0] == min(sensor_stamps) and ns[-1] > max(sensor_stamps) - 10_000_000
    # every sensor message is preceded by a tick at or before its stamp (use_sim_time sees it in time)
    seen = -1
    for m in msgs:
        if m.topic == "/clock":
            seen = m.log_time_ns
        else:
            assert 0 <= m.log_time_ns - seen < 10_000_000


def test_no_clock_when_disabled(tmp_path):
    assert _simulate(tmp_path / "bag", *FAST, "--clock-hz", "0", duration=0.1) == 0
    assert "/clock" not in open_bag(tmp_path / "bag").topics


def test_faults_land_in_their_windows_and_nowhere_else(nominal, faulted):
    before, after = _by_topic(nominal), _by_topic(faulted)
    t0 = min(m.log_time_ns for m in before["/clock"])

    def t(m):
        return (m.log_time_ns - t0) / 1e9

    cam = "/CAM_FRONT/image_rect_compressed"
    assert len(before[cam]) == len(after[cam])
    for a, b in zip(before[cam], after[cam]):
        if 0.2 <= t(a) < 0.45:
            assert camera_rgb(deserialize(b), "CAM_FRONT")[0].max() == 0, f"frame at {t(a):.2f} s not black"
        else:
            assert a.data == b.data, f"frame at {t(a):.2f} s changed outside the window"
    back = "/CAM_BACK/image_rect_compressed"
    assert [m.data for m in after[back]] == [m.data for m in before[back] if t(m) >= 0.3]
    assert len(after["/CAM_BACK/camera_info"]) == len(before["/CAM_BACK/camera_info"])  # as inject: info kept
    for a, b in zip(before["/LIDAR_TOP"], after["/LIDAR_TOP"]):
        if 0.25 <= t(a) < 0.5:
            assert len(pointcloud2_to_array(deserialize(b))) < 0.9 * len(pointcloud2_to_array(deserialize(a)))
        else:
            assert a.data == b.data
    for topic in ("/CAM_FRONT_LEFT/image_rect_compressed", "/RADAR_BACK_LEFT", "/tf_static", "/clock"):
        assert [m.data for m in before[topic]] == [m.data for m in after[topic]], topic
    truth = json.loads((faulted.parent / "faulted.faults.json").read_text())
    assert [e["fault"] for e in truth["episodes"]] == [f["fault"] for f in FAULTS]
    assert truth["t0_ns"] == t0 and truth["messages"]["dropped"] == len(before[back]) - len(after[back])


def test_faults_match_inject_on_the_nominal_drive(nominal, faulted, tmp_path):
    """Simulating with faults == simulating, then `fusion-monitor inject` with the same seed (point clouds; images
    differ only by inject's JPEG decode / re-encode)."""
    injected = tmp_path / "injected"
    inject_bag(nominal, injected, FAULTS, seed=3)
    sim, inj = _by_topic(faulted), _by_topic(injected)
    for topic in ("/LIDAR_TOP", "/RADAR_FRONT"):
        assert len(sim[topic]) == len(inj[topic])
        for a, b in zip(sim[topic], inj[topic]):
            pa, pb = pointcloud2_to_array(deserialize(a)), pointcloud2_to_array(deserialize(b))
            assert pa.dtype.names == pb.dtype.names
            for name in pa.dtype.names:
                np.testing.assert_array_equal(pa[name], pb[name])
    assert len(sim["/CAM_BACK/image_rect_compressed"]) == len(inj["/CAM_BACK/image_rect_compressed"])


@pytest.mark.parametrize("spec, match", [
    ([{"fault": "camera_sunburn", "sensor": "CAM_FRONT", "severity": 3, "start_s": 0, "end_s": 1}], "unknown fault"),
    ([{"fault": "camera_blackout", "sensor": "CAM_NOSE", "severity": 3, "start_s": 0, "end_s": 1}], "unknown sensor"),
    ([{"fault": "lidar_fog", "sensor": "RADAR_FRONT", "severity": 3, "start_s": 0, "end_s": 1}], "applies to"),
    ([{"fault": "camera_blackout", "sensor": "CAM_FRONT", "severity": 3, "start_s": 0.5, "end_s": 2}],
     "after the end of the drive"),
])
def test_bad_fault_spec_fails_before_simulating(tmp_path, monkeypatch, capsys, spec, match):
    from fusion_monitor.sim.drive import Drive

    def no_render(*_a, **_k):
        raise AssertionError("rendered before the fault spec was checked")

    monkeypatch.setattr(Drive, "render", no_render)
    out = tmp_path / "bag"
    assert _simulate(out, *FAST, "--faults", json.dumps(spec), duration=0.5) == 2
    assert match in capsys.readouterr().err
    assert not out.exists()


def test_avoid_collisions_clears_the_ego_lane(tmp_path):
    """Seed 2024 parks a car in the ego's lane 8 m ahead; with collision avoidance (the default) it is not there,
    with --no-avoid-collisions (the first simulator revision) it is."""

    def parked_ahead(out) -> int:
        first = json.loads((out / "ground_truth.jsonl").read_text().splitlines()[0])
        boxes, vel = np.array(first["boxes_xyzlwhyaw"]), np.array(first["velocity_xy"])
        ahead = (boxes[:, 0] > 0) & (boxes[:, 0] < 30) & (np.abs(boxes[:, 1]) < 1.5)
        return int(np.sum(ahead & (np.array(first["cls"]) == 0) & (np.abs(vel).sum(1) == 0)))

    assert _simulate(tmp_path / "free", *FAST, "--no-avoid-collisions", duration=0.1, seed=2024) == 0
    assert _simulate(tmp_path / "avoid", *FAST, duration=0.1, seed=2024) == 0
    assert parked_ahead(tmp_path / "free") == 1 and parked_ahead(tmp_path / "avoid") == 0
