"""Reading rosbag2 recordings (MCAP and sqlite3) message by message, surviving damage.

A bag is a rosbag2 folder (metadata.yaml plus .mcap or .db3 files) or a single .mcap / .db3
file. Messages come out in log-time order as raw CDR bytes with their type; deserialise them with
:func:`deserialize`. A truncated or corrupt file is read up to the break: the break is recorded
in :attr:`BagSource.problems` (where it broke) and iteration ends normally, so callers process the
readable part and then report.
"""

from __future__ import annotations

import heapq
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from rosbags.typesys import Stores, get_typestore

BAG_SUFFIXES = (".mcap", ".db3")


class BagError(ValueError):
    """The bag cannot be read at all (names the path and the reason)."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class RawMessage:
    topic: str
    msgtype: str  # e.g. "sensor_msgs/msg/PointCloud2"
    log_time_ns: int
    data: bytes


@lru_cache(maxsize=1)
def typestore():
    """The ROS 2 Kilted type store (rosbags), used to (de)serialise CDR without rclpy."""
    return get_typestore(Stores.ROS2_KILTED)


def deserialize(msg: RawMessage):
    """CDR bytes -> rosbags message object (field names as in rclpy)."""
    return typestore().deserialize_cdr(msg.data, msg.msgtype)


def bag_files(path: str | Path) -> list[Path]:
    """The storage files of a bag path (folder or single file), in order."""
    p = Path(path)
    if p.is_file():
        if p.suffix not in BAG_SUFFIXES:
            raise BagError(p, f"not a rosbag2 storage file (expected one of {', '.join(BAG_SUFFIXES)})")
        return [p]
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix in BAG_SUFFIXES)
        if not files:
            raise BagError(p, f"folder holds no {' or '.join(BAG_SUFFIXES)} file")
        return files
    raise BagError(p, "no such file or folder")


@dataclass
class BagSource:
    """One bag: its topics and a damage-tolerant message iterator."""

    path: Path
    files: list[Path]
    topics: dict[str, str] = field(default_factory=dict)  # topic -> msgtype
    qos: dict[str, str] = field(default_factory=dict)  # topic -> offered_qos_profiles as recorded (YAML)
    problems: list[str] = field(default_factory=list)
    last_good_ns: int | None = None

    def messages(self) -> Iterator[RawMessage]:
        """All messages in log-time order (files merged); stops cleanly at a break."""
        iters = [self._file_messages(f) for f in self.files]
        for msg in heapq.merge(*iters, key=lambda m: m.log_time_ns):
            self.last_good_ns = msg.log_time_ns
            yield msg

    def _file_messages(self, f: Path) -> Iterator[RawMessage]:
        if f.suffix == ".mcap":
            yield from self._mcap_messages(f)
        else:
            yield from self._sqlite_messages(f)

    def _broke(self, f: Path, where: str, err: Exception) -> None:
        self.problems.append(f"{f.name}: unreadable after {where}: {type(err).__name__}: {err}")

    def _mcap_messages(self, f: Path) -> Iterator[RawMessage]:
        from mcap.records import Channel, Message, Schema
        from mcap.stream_reader import StreamReader

        schemas: dict[int, str] = {}
        channels: dict[int, tuple[str, str]] = {}
        count, last_ns = 0, None
        with open(f, "rb") as fh:
            records = iter(StreamReader(fh, skip_magic=False, validate_crcs=True).records)
            while True:
                try:
                    rec = next(records)
                except StopIteration:
                    return
                except Exception as e:  # truncated chunk, bad CRC, garbage: keep what was read
                    where = f"{count} messages" + ("" if last_ns is None else f" (last log time {last_ns} ns)")
                    self._broke(f, where, e)
                    return
                if isinstance(rec, Schema):
                    schemas[rec.id] = rec.name
                elif isinstance(rec, Channel):
                    channels[rec.id] = (rec.topic, schemas.get(rec.schema_id, ""))
                    self.topics.setdefault(rec.topic, channels[rec.id][1])
                    if rec.metadata.get("offered_qos_profiles"):
                        self.qos.setdefault(rec.topic, rec.metadata["offered_qos_profiles"])
                elif isinstance(rec, Message) and rec.channel_id in channels:
                    topic, msgtype = channels[rec.channel_id]
                    count, last_ns = count + 1, rec.log_time
                    yield RawMessage(topic, msgtype, rec.log_time, bytes(rec.data))

    def _sqlite_messages(self, f: Path) -> Iterator[RawMessage]:
        try:
            con = sqlite3.connect(f"file:{f}?mode=ro", uri=True)
            topics = {tid: (name, typ) for tid, name, typ in con.execute("SELECT id, name, type FROM topics")}
            columns = {row[1] for row in con.execute("PRAGMA table_info(topics)")}
            if "offered_qos_profiles" in columns:
                for name, qos in con.execute("SELECT name, offered_qos_profiles FROM topics"):
                    if qos:
                        self.qos.setdefault(name, qos)
        except sqlite3.DatabaseError as e:
            self._broke(f, "0 messages", e)
            return
        for name, typ in topics.values():
            self.topics.setdefault(name, typ)
        count, last_ns = 0, None
        try:
            cur = con.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY timestamp")
            for tid, ts, data in cur:
                if tid not in topics:
                    continue
                count, last_ns = count + 1, int(ts)
                name, typ = topics[tid]
                yield RawMessage(name, typ, int(ts), bytes(data))
        except sqlite3.DatabaseError as e:
            where = f"{count} messages" + ("" if last_ns is None else f" (last log time {last_ns} ns)")
            self._broke(f, where, e)
        finally:
            con.close()


def open_bag(path: str | Path) -> BagSource:
    """Open a bag for reading; raises BagError when there is nothing readable at that path."""
    files = bag_files(path)
    for f in files:
        if f.stat().st_size == 0:
            raise BagError(f, "file is empty")
    src = BagSource(Path(path), files)
    src.topics.update(_declared_topics(files))
    return src


def _declared_topics(files: list[Path]) -> dict[str, str]:
    """Topics a bag declares up front (metadata.yaml, sqlite topics table, MCAP summary or first records)."""
    out: dict[str, str] = {}
    meta = files[0].parent / "metadata.yaml"
    if meta.is_file():
        try:
            import yaml

            info = yaml.safe_load(meta.read_text())["rosbag2_bagfile_information"]
            for t in info.get("topics_with_message_count", []):
                out[t["topic_metadata"]["name"]] = t["topic_metadata"]["type"]
        except Exception:  # a damaged metadata file: fall back to the storage files
            pass
    for f in files:
        try:
            if f.suffix == ".db3":
                con = sqlite3.connect(f"file:{f}?mode=ro", uri=True)
                try:
                    out.update({n: t for n, t in con.execute("SELECT name, type FROM topics")})
                finally:
                    con.close()
            else:
                from mcap.reader import make_reader

                with open(f, "rb") as fh:
                    summary = make_reader(fh).get_summary()
                if summary is not None:
                    for ch in summary.channels.values():
                        schema = summary.schemas.get(ch.schema_id)
                        out[ch.topic] = schema.name if schema else ""
                else:
                    out.update(_scan_mcap_channels(f))
        except Exception:  # damaged file: topics are learnt while reading instead
            continue
    return out


def _scan_mcap_channels(f: Path, max_records: int = 20000) -> dict[str, str]:
    """Channels of an MCAP without a summary (truncated), from its first records."""
    from mcap.records import Channel, Schema
    from mcap.stream_reader import StreamReader

    schemas: dict[int, str] = {}
    out: dict[str, str] = {}
    with open(f, "rb") as fh:
        try:
            for i, rec in enumerate(StreamReader(fh, skip_magic=False).records):
                if isinstance(rec, Schema):
                    schemas[rec.id] = rec.name
                elif isinstance(rec, Channel):
                    out[rec.topic] = schemas.get(rec.schema_id, "")
                if i >= max_records:
                    break
        except Exception:  # the break itself
            pass
    return out
