"""Reading real rosbag2 files (sqlite3 and MCAP, written by rosbags) and surviving damage."""

import sqlite3

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer

from fusion_monitor.bagio import BagError, deserialize, open_bag, typestore

N = 40


def _write_bag(path, storage):
    ts = typestore()
    Float64 = ts.types["std_msgs/msg/Float64"]
    String = ts.types["std_msgs/msg/String"]
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as w:
        a = w.add_connection("/a", "std_msgs/msg/Float64", typestore=ts)
        b = w.add_connection("/b", "std_msgs/msg/String", typestore=ts)
        for i in range(N):
            w.write(a, 1_000 + 10 * i, ts.serialize_cdr(Float64(data=float(i)), "std_msgs/msg/Float64"))
            w.write(b, 1_005 + 10 * i, ts.serialize_cdr(String(data="x" * 2000), "std_msgs/msg/String"))
    return path


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_reads_every_message_in_time_order(tmp_path, storage):
    bag = _write_bag(tmp_path / "bag", storage)
    src = open_bag(bag)
    msgs = list(src.messages())
    assert src.problems == []
    assert src.topics == {"/a": "std_msgs/msg/Float64", "/b": "std_msgs/msg/String"}
    assert len(msgs) == 2 * N
    stamps = [m.log_time_ns for m in msgs]
    assert stamps == sorted(stamps)
    assert [deserialize(m).data for m in msgs if m.topic == "/a"] == [float(i) for i in range(N)]


def test_truncated_mcap_reads_up_to_the_break(tmp_path):
    bag = _write_bag(tmp_path / "bag", "mcap")
    f = next(bag.glob("*.mcap"))
    data = f.read_bytes()
    f.write_bytes(data[: int(len(data) * 0.6)])
    src = open_bag(bag)
    msgs = list(src.messages())  # no exception
    assert src.problems and "unreadable after" in src.problems[0] and f.name in src.problems[0]
    assert len(msgs) < 2 * N


def test_corrupt_sqlite_rows_are_reported(tmp_path):
    bag = _write_bag(tmp_path / "bag", "sqlite3")
    f = next(bag.glob("*.db3"))
    data = bytearray(f.read_bytes())
    # garble the tail pages of the database file
    tail = len(data) // 2
    data[tail:] = np.random.default_rng(0).integers(0, 256, len(data) - tail, dtype=np.uint8).tobytes()
    f.write_bytes(bytes(data))
    src = open_bag(bag)
    msgs = list(src.messages())
    assert src.problems, "damage went unnoticed"
    assert len(msgs) < 2 * N


def test_missing_and_empty_bags_are_named(tmp_path):
    with pytest.raises(BagError, match="no such file"):
        open_bag(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="holds no"):
        open_bag(tmp_path / "empty")
    (tmp_path / "zero.mcap").write_bytes(b"")
    with pytest.raises(BagError, match="empty"):
        open_bag(tmp_path / "zero.mcap")
    sqlite3.connect(tmp_path / "x.db3").close()
    with pytest.raises(BagError):
        open_bag(tmp_path / "x.db3")
