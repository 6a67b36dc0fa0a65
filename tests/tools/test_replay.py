"""`fusion-monitor replay`: a recorded drive through the monitor, offline, with every output a user reviews."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader
from rosbags.highlevel import AnyReader

from fusion_monitor.bagio import BagError
from fusion_monitor.pipeline import DEFAULT_PACKAGE
from fusion_monitor.tools.replay import replay_bag

PACKAGE = Path(os.environ.get("FUSION_MONITOR_TEST_PACKAGE", DEFAULT_PACKAGE))
NODE_TOPICS = {"/fusion_monitor/markers", "/fusion_monitor/detections", "/fusion_monitor/detections/shares",
               "/diagnostics", "/fusion_monitor/debug/processing_time_ms", "/fusion_monitor/debug/pipeline_latency_ms"}


@pytest.fixture(scope="module")
def replayed(faulted_bag, tmp_path_factory):
    out = tmp_path_factory.mktemp("replay") / "out"
    result = replay_bag(faulted_bag, out, model=str(PACKAGE), with_inputs=True)
    return out, result


@pytest.mark.slow
def test_outputs_one_frame_per_trigger(replayed):
    out, result = replayed
    frames = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
    # 20 Hz LiDAR for 3 s, triggered at 10 Hz: every other sweep
    assert 29 <= len(frames) <= 31  # 60 sweeps of a 20 Hz LiDAR in 3 s, triggered at 10 Hz
    assert result["frames"] == len(frames) and result["complete"]
    stamps = [f["stamp_ns"] for f in frames]
    assert stamps == sorted(stamps) and np.all(np.diff(stamps) >= 90_000_000)
    for f in frames:
        assert {s["name"].split(": ")[1].split("/")[0] for s in f["statuses"]} >= {"CAM_FRONT", "LIDAR_TOP", "RADAR_FRONT"}
        for d in f["detections"]:
            assert set(d["shares"]) == {"camera", "lidar", "radar", "bias"}
            assert sum(abs(v) for v in d["shares"].values()) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.slow
def test_confident_detections_keep_their_id_from_frame_to_frame(replayed):
    out, _ = replayed
    frames = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
    kept = total = 0
    prev: dict[int, str] = {}
    for f in frames:
        for d in f["detections"]:
            if d["score"] >= 0.5 and prev:
                total += 1
                kept += prev.get(d["id"]) == d["label"]
        prev = {d["id"]: d["label"] for d in f["detections"]}
    assert total > 100 and kept / total >= 0.8, (kept, total)  # 93% on a nominal 20 s drive


@pytest.mark.slow
def test_injected_faults_raise_alerts_that_say_where(replayed):
    _, result = replayed
    alerts = result["alerts"]
    cam = [a for a in alerts if a["name"].startswith("fusion_monitor: CAM_FRONT/") and a["level"] >= 1]
    assert cam and 0.8 <= min(a["t_s"] for a in cam) <= 1.6, alerts
    lid = [a for a in alerts if a["name"] == "fusion_monitor: LIDAR_TOP/blockage"]
    assert lid and 1.5 <= lid[0]["t_s"] <= 2.5, alerts
    assert "azimuth" in lid[0]["message"]


@pytest.mark.slow
def test_review_bag_readable_by_rosbags_and_mcap(replayed):
    out, _ = replayed
    path = out / "monitor.mcap"
    with AnyReader([path]) as reader:
        topics = {c.topic: c.msgtype for c in reader.connections}
        assert NODE_TOPICS <= set(topics)
        assert topics["/fusion_monitor/markers"] == "visualization_msgs/msg/MarkerArray"
        if "plain" not in PACKAGE.name:
            assert "/fusion_monitor/attribution/camera" in topics
        assert "/LIDAR_TOP" in topics, "input topics were asked for (with_inputs)"
        diag = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages()
                if c.topic == "/diagnostics"]
    names = {s.name for d in diag for s in d.status}
    assert "fusion_monitor: CAM_FRONT/staleness" in names
    with open(path, "rb") as f:
        summary = make_reader(f).get_summary()
    assert summary is not None and summary.statistics.message_count > 0


@pytest.mark.slow
def test_review_bag_offers_the_qos_of_the_node_and_of_the_source_bag(replayed, faulted_bag):
    """`ros2 bag play monitor.mcap` must offer what the node offered (outputs reliable, volatile) and the input
    topics as recorded (sensor data best effort, /tf_static transient local, so late subscribers get it)."""
    out, _ = replayed
    with AnyReader([out / "monitor.mcap"]) as reader:
        qos = {c.topic: c.ext.offered_qos_profiles for c in reader.connections}
    with AnyReader([faulted_bag]) as reader:
        source = {c.topic: c.ext.offered_qos_profiles for c in reader.connections}
    for topic in NODE_TOPICS:
        (q,) = qos[topic]
        assert (q.reliability.name, q.durability.name, q.history.name, q.depth) == \
            ("RELIABLE", "VOLATILE", "KEEP_LAST", 10), topic
    assert qos["/LIDAR_TOP"][0].reliability.name == "BEST_EFFORT"
    assert qos["/tf_static"][0].durability.name == "TRANSIENT_LOCAL"
    for topic, recorded in source.items():
        if topic in qos and recorded:
            assert [(q.reliability, q.durability, q.depth) for q in qos[topic]] == \
                [(q.reliability, q.durability, q.depth) for q in recorded], topic
    # rosbag2 reads these integer policies because the file's rosbag2 record has no serialized metadata
    with open(out / "monitor.mcap", "rb") as f:
        records = {m.name: m.metadata for m in make_reader(f).iter_metadata()}
    assert records["rosbag2"]["serialized_metadata"] == "" and records["rosbag2"]["ROS_DISTRO"]


@pytest.mark.slow
def test_report_written(replayed):
    out, _ = replayed
    html = (out / "report.html").read_text()
    assert "CAM_FRONT" in html and "<svg" in html


@pytest.mark.slow
def test_truncated_bag_processed_to_the_break(faulted_bag, tmp_path):
    import shutil

    bag = tmp_path / "cut"
    shutil.copytree(faulted_bag, bag)
    f = next(bag.glob("*.mcap"))
    data = f.read_bytes()
    f.write_bytes(data[: int(len(data) * 0.6)])
    res = subprocess.run([sys.executable, "-m", "fusion_monitor.tools.cli", "replay", str(bag), "--out",
                          str(tmp_path / "out"), "--model", str(PACKAGE), "--no-progress"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 1, res.stderr
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert not result["complete"] and result["frames"] > 0
    assert any("unreadable after" in p for p in result["problems"])
    assert "unreadable after" in (tmp_path / "out" / "report.html").read_text()
    assert "problem: bag damaged" in res.stdout


@pytest.mark.slow
def test_bag_without_expected_topics_says_what_it_found(tmp_path):
    from rosbags.rosbag2 import StoragePlugin, Writer

    from fusion_monitor.bagio import typestore

    ts = typestore()
    with Writer(tmp_path / "other", version=9, storage_plugin=StoragePlugin.MCAP) as w:
        c = w.add_connection("/cam0/image", "std_msgs/msg/String", typestore=ts)
        w.write(c, 1, ts.serialize_cdr(ts.types["std_msgs/msg/String"](data="x"), "std_msgs/msg/String"))
    with pytest.raises(BagError, match=r"missing .*/LIDAR_TOP.*found \['/cam0/image'\]"):
        replay_bag(tmp_path / "other", tmp_path / "out", model=str(PACKAGE))


@pytest.mark.slow
def test_ctrl_c_leaves_a_readable_review_bag(faulted_bag, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "fusion_monitor.tools.cli", "replay", str(faulted_bag), "--out",
                             str(out), "--model", str(PACKAGE), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            jsonl = out / "frames.jsonl"
            if jsonl.is_file() and jsonl.read_text().count("\n") >= 3:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    with AnyReader([out / "monitor.mcap"]) as reader:
        n = sum(1 for c, _, _ in reader.messages() if c.topic == "/diagnostics")
    assert n >= 2
    result = json.loads((out / "result.json").read_text())
    assert result["interrupted"] and not result["complete"]
    assert (out / "report.html").is_file()


@pytest.mark.slow
def test_checks_beside_inference_give_the_same_frames_as_serial(replayed, faulted_bag, tmp_path):
    """pipeline.parallel_checks (the node's default) runs the raw-signal checks on their own thread while the
    detector runs: every detection, share and status must be the ones the serial replay gives."""
    out, _ = replayed
    replay_bag(faulted_bag, tmp_path / "par", model=str(PACKAGE), params={"pipeline.parallel_checks": True})

    def frames(d):
        rows = [json.loads(line) for line in (d / "frames.jsonl").read_text().splitlines()]
        for r in rows:
            r.pop("timings_ms", None)
        return rows

    serial, parallel = frames(out), frames(tmp_path / "par")
    assert len(serial) >= 29 and parallel == serial
    assert any(s["level"] != 0 for f in serial for s in f["statuses"])  # the injected faults are in both


@pytest.mark.slow
def test_two_frames_in_flight_give_the_serial_detections_and_alerts(replayed, faulted_bag):
    """The node's pipeline.overlap_frames: frame N+1's begin (align, checks, inference) runs before frame N's
    finish (decode, attribution, statuses). Detections, ids and shares must be the serial replay's, and every
    alert the serial replay raised must be raised (statuses may show the next frame's raw checks earlier)."""
    from fusion_monitor.frame import frame_record
    from fusion_monitor.pipeline import Pipeline, PipelineConfig

    out, _ = replayed
    pipeline = Pipeline(PipelineConfig.from_params({"model.package": str(PACKAGE), "pipeline.parallel_checks": True}))
    rows, pending = [], None
    try:
        for trigger, now_ns, t0 in _triggers(pipeline, faulted_bag):
            begun = pipeline.begin(trigger, now_ns)
            if pending is not None:  # the previous frame finishes after this one's inference
                rows.append(frame_record(pipeline.finish(pending, now_ns), t0))
            pending = begun
        rows.append(frame_record(pipeline.finish(pending, now_ns), t0))
    finally:
        pipeline.close()

    serial = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
    assert len(rows) == len(serial) >= 29
    assert [r["detections"] for r in rows] == [r["detections"] for r in serial]

    def alerts(frames):
        return {s["name"] for f in frames for s in f["statuses"] if s["level"] in (1, 2)}

    assert alerts(serial) and alerts(serial) <= alerts(rows)


@pytest.mark.slow
def test_warm_up_frames_leave_no_trace(replayed, faulted_bag):
    """The node warms its pipeline up with synthetic frames before the first real one (first calls cost the first
    frames 100-200 ms); afterwards every frame, detection id and status must be the ones a fresh pipeline gives."""
    from fusion_monitor.frame import frame_record
    from fusion_monitor.pipeline import Pipeline, PipelineConfig

    out, _ = replayed
    pipeline = Pipeline(PipelineConfig.from_params({"model.package": str(PACKAGE)}))
    pipeline.warmup()
    assert all(s.level == 3 for s in pipeline.statuses(10_000_000_000) if s.name.endswith("/staleness"))
    rows = []
    for trigger, now_ns, t0 in _triggers(pipeline, faulted_bag):
        rows.append(frame_record(pipeline.process(trigger, now_ns), t0))
    serial = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
    for r in rows + serial:
        r.pop("timings_ms", None)
    assert len(rows) == len(serial) >= 29
    assert json.loads(json.dumps(rows)) == serial


def _triggers(pipeline, bag):
    """Feed a bag's sensor messages to ``pipeline`` as replay does; yields (trigger stamp, now_ns, first log time)
    for every message that triggers a frame."""
    from fusion_monitor.bagio import deserialize, open_bag
    from fusion_monitor.ros.ingest import message_to_sample

    topics = {s.topic: s for s in pipeline.rig.sensors.values()}
    size = (pipeline.spec.image_hw[1], pipeline.spec.image_hw[0])
    t0 = None
    for raw in open_bag(bag).messages():
        t0 = t0 or raw.log_time_ns
        spec = topics.get(raw.topic)
        if spec is None:
            continue
        sample = message_to_sample(deserialize(raw), spec.name, spec.modality,
                                   target_size=size if spec.modality == "camera" else None)
        trigger = pipeline.on_sample(sample, raw.log_time_ns)
        if trigger is not None:
            yield trigger, raw.log_time_ns, t0
