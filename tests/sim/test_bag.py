"""Synthetic drives written as rosbag2 (MCAP and sqlite3) read back with rosbags."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_monitor.sim import simulate_drive
from fusion_monitor.sim.bag import write_bag


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_round_trip(tmp_path, storage):
    from rosbags.highlevel import AnyReader

    drive = simulate_drive(4, 0.25, render_hw=(36, 64))
    path = write_bag(drive, tmp_path / "bag", storage=storage, workers=1)
    with AnyReader([path]) as reader:
        topics = {c.topic: c for c in reader.connections}
        assert "/tf_static" in topics and "/LIDAR_TOP" in topics and "/RADAR_BACK_LEFT" in topics
        assert topics["/clock"].msgtype == "rosgraph_msgs/msg/Clock"
        assert topics["/CAM_FRONT/image_rect_compressed"].msgtype == "sensor_msgs/msg/CompressedImage"
        seen = {}
        for conn, stamp, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            seen.setdefault(conn.topic, msg)
            if conn.topic == "/clock":
                assert msg.clock.sec * 1_000_000_000 + msg.clock.nanosec == stamp
            elif conn.topic != "/tf_static":
                assert msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec == stamp
    tf = seen["/tf_static"]
    assert {t.child_frame_id for t in tf.transforms} == set(drive.rig.sensors)
    info = seen["/CAM_FRONT/camera_info"]
    assert (info.width, info.height) == (1600, 900) and info.header.frame_id == "CAM_FRONT"
    np.testing.assert_allclose(info.k.reshape(3, 3), drive.rig.sensors["CAM_FRONT"].K)
    img = seen["/CAM_FRONT/image_rect_compressed"]
    assert img.format == "jpeg" and bytes(img.data[:2]) == b"\xff\xd8"
    lidar = seen["/LIDAR_TOP"]
    assert [f.name for f in lidar.fields] == ["x", "y", "z", "intensity", "ring"] and lidar.width > 10_000
    radar = seen["/RADAR_FRONT"]
    assert radar.point_step == 43 and radar.header.frame_id == "RADAR_FRONT"


def test_existing_path_is_refused(tmp_path):
    (tmp_path / "bag").mkdir()
    with pytest.raises(FileExistsError):
        write_bag(simulate_drive(4, 0.1), tmp_path / "bag")
    with pytest.raises(ValueError, match="storage"):
        write_bag(simulate_drive(4, 0.1), tmp_path / "bag2", storage="rosbag1")


def test_simulate_command_writes_bag_and_ground_truth(tmp_path):
    import argparse
    import json

    from fusion_monitor.tools import simulate

    parser = argparse.ArgumentParser()
    simulate.add_arguments(parser)
    out = tmp_path / "drive"
    args = parser.parse_args(["--out", str(out), "--duration", "0.15", "--render-size", "36x64", "--workers", "1",
                              "--storage", "sqlite3"])
    assert simulate.run(args) == 0
    assert (out / "metadata.yaml").is_file()
    lines = [json.loads(x) for x in (out / "ground_truth.jsonl").read_text().splitlines()]
    assert len(lines) == 3 and lines[0]["frame_id"] == "base_link" and lines[0]["classes"][0] == "car"
