"""`fusion-monitor play`: raw CDR from a rosbag2 (sqlite3 and mcap) over real DDS, /clock, rate, loop, drop."""

from __future__ import annotations

import json
import signal

import pytest
from bagtools import T0_NS, camera_topic, write_rig_bag
from rosproc import play_cmd, start, stop


def _raw_bag_messages(path, topic):
    from rosbags.rosbag2 import Reader

    with Reader(path) as r:
        conns = [c for c in r.connections if c.topic == topic]
        return [bytes(raw) for _, _, raw in r.messages(connections=conns)]


@pytest.mark.ros
@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_play_publishes_raw_cdr_and_clock(tmp_path, listener, ros_ctx, storage):
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import CompressedImage, PointCloud2

    from fusion_monitor.ros.qos import CLOCK_QOS, sensor_qos

    bag = tmp_path / "bag"
    write_rig_bag(bag, 1.0, lidar_points=500, storage=storage)
    expected = _raw_bag_messages(bag, "/LIDAR_TOP")
    listener._subs.append(listener.node.create_subscription(
        PointCloud2, "/LIDAR_TOP", lambda raw: listener.msgs["raw"].append(raw), sensor_qos("best_effort", 100),
        raw=True))
    listener.subscribe(Clock, "/clock", CLOCK_QOS)
    listener.subscribe(CompressedImage, camera_topic("CAM_FRONT"), sensor_qos("best_effort", 100))
    cam = camera_topic("CAM_FRONT")
    player = start(play_cmd(bag, "--clock", "--rate", "2.0", "--wait-for", "/LIDAR_TOP", "--wait-for", cam,
                            "--drop", f"{cam}:0.5:"), ros_ctx)
    try:
        code = player.wait(timeout=60)
        out, err = player.communicate()
    finally:
        stop(player)
    assert code == 0, err
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["published"] > 0 and stats["dropped"] == 6  # CAM_FRONT from 0.5 s on: 6 of 12 frames
    listener.wait_for(lambda: len(listener.get("raw")) == len(expected), 20, "every LiDAR message")
    got = [bytes(b) for b in listener.get("raw")]
    # the recorded CDR, in order; DDS may pad the payload to a multiple of 4 bytes
    assert all(g[: len(e)] == e and len(g) - len(e) < 4 for g, e in zip(got, expected))
    cams = listener.get(cam)
    assert len(cams) == 6 and all(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec < T0_NS + 5 * 10**8
                                  for m in cams)
    clock = [c.clock.sec * 10**9 + c.clock.nanosec for c in listener.get("/clock")]
    assert clock and clock[-1] >= T0_NS + 900_000_000 and min(clock) >= T0_NS
    assert len(clock) > 20  # ticks between messages, not only at them


@pytest.mark.ros
def test_play_clock_replaces_a_recorded_clock(tmp_path, listener, ros_ctx):
    """--clock on a bag that recorded /clock (as simulated drives do): one /clock, ours, in bag time."""
    from rosgraph_msgs.msg import Clock

    from fusion_monitor.ros.qos import CLOCK_QOS

    bag = tmp_path / "bag"
    write_rig_bag(bag, 1.0, lidar_points=100, recorded_clock_offset_s=-1000.0)  # a recorded clock far in the past
    listener.subscribe(Clock, "/clock", CLOCK_QOS)
    player = start(play_cmd(bag, "--clock", "--wait-for", "/clock"), ros_ctx)
    try:
        code = player.wait(timeout=60)
        _, err = player.communicate()
    finally:
        stop(player)
    assert code == 0, err
    assert "bag's own /clock is not replayed" in err
    listener.wait_for(lambda: listener.get("/clock"), 20, "/clock")
    clock = [c.clock.sec * 10**9 + c.clock.nanosec for c in listener.get("/clock")]
    assert min(clock) >= T0_NS  # never the recorded (offset) clock


@pytest.mark.ros
def test_play_loop_until_sigint(tmp_path, listener, ros_ctx):
    from sensor_msgs.msg import PointCloud2

    from fusion_monitor.ros.qos import sensor_qos

    bag = tmp_path / "bag"
    write_rig_bag(bag, 0.5, lidar_points=100)
    listener.subscribe(PointCloud2, "/LIDAR_TOP", sensor_qos("best_effort", 100))
    player = start(play_cmd(bag, "--loop", "--rate", "4.0", "--topics", "/LIDAR_TOP", "--wait-for", "/LIDAR_TOP"),
                   ros_ctx)
    try:
        listener.wait_for(lambda: len(listener.get("/LIDAR_TOP")) >= 30, 60, "three loops of 10 sweeps")
    finally:
        code, out, err = stop(player, signal.SIGINT)
    assert code == 0, err
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["loops"] >= 2 and stats.get("interrupted")


def test_play_rejects_bad_arguments(tmp_path, capsys):
    from fusion_monitor.ros import play

    with pytest.raises(SystemExit):
        play.main([str(tmp_path / "missing")])
    with pytest.raises(SystemExit):
        play.main([str(tmp_path), "--rate", "0"])
    assert play.parse_drop("/a/b:1.5:2").end_s == 2.0
    assert play.message_class("sensor_msgs/msg/PointCloud2").__name__ == "PointCloud2"
    assert play.message_class("tf2_msgs/msg/TFMessage") is None or True  # absent here, present on a ROS install


def test_playback_qos_keeps_the_recorded_intent():
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    from fusion_monitor.ros.qos import playback_qos

    def q(rel, dur, depth=1):
        t = QosTime(0, 0)
        return Qos(QosHistory.KEEP_LAST, depth, rel, dur, t, t, QosLiveliness.AUTOMATIC, t, False)

    tf = playback_qos("/tf_static", "tf2_msgs/msg/TFMessage", [q(QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL)])
    assert tf.reliability == ReliabilityPolicy.RELIABLE and tf.durability == DurabilityPolicy.TRANSIENT_LOCAL
    mixed = playback_qos("/x", "std_msgs/msg/String", [q(QosReliability.RELIABLE, QosDurability.VOLATILE),
                                                       q(QosReliability.BEST_EFFORT, QosDurability.VOLATILE)])
    assert mixed.reliability == ReliabilityPolicy.BEST_EFFORT  # one best-effort writer: best effort
    assert playback_qos("/LIDAR_TOP", "sensor_msgs/msg/PointCloud2").reliability == ReliabilityPolicy.BEST_EFFORT
    no_record = playback_qos("/tf_static", "tf2_msgs/msg/TFMessage")
    assert no_record.durability == DurabilityPolicy.TRANSIENT_LOCAL
    assert playback_qos("/odom", "nav_msgs/msg/Odometry").reliability == ReliabilityPolicy.RELIABLE
