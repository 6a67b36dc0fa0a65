"""Writing ROS 2 messages to a single-file MCAP (profile ros2, CDR), readable by rosbags, the mcap
library and `ros2 bag play`. The offline replay records the node's output topics with it, serialised
by rclpy exactly as the live node publishes them."""

from __future__ import annotations

from pathlib import Path

from mcap.writer import CompressionType, Writer
from rclpy.serialization import serialize_message

from fusion_monitor.bagio import typestore


def msgtype_of(msg) -> str:
    """'pkg/msg/Name' for an rclpy message instance."""
    cls = type(msg)
    return f"{cls.__module__.split('.')[0]}/msg/{cls.__name__}"


class McapRecorder:
    """Append-only MCAP writer; `close()` (or the context manager) finalises the file."""

    def __init__(self, path: str | Path, *, compression: bool = True):
        self.path = Path(path)
        self._fh = open(self.path, "wb")
        self._writer = Writer(self._fh, compression=CompressionType.ZSTD if compression else CompressionType.NONE)
        self._writer.start(profile="ros2", library="fusion_monitor")
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, int] = {}
        self._seq: dict[str, int] = {}
        self.count = 0
        self.closed = False

    def _channel(self, topic: str, msgtype: str) -> int:
        ch = self._channels.get(topic)
        if ch is not None:
            return ch
        sid = self._schemas.get(msgtype)
        if sid is None:
            text, _ = typestore().generate_msgdef(msgtype, ros_version=2)
            sid = self._writer.register_schema(name=msgtype, encoding="ros2msg", data=text.encode())
            self._schemas[msgtype] = sid
        ch = self._writer.register_channel(topic=topic, message_encoding="cdr", schema_id=sid,
                                           metadata={"offered_qos_profiles": ""})
        self._channels[topic] = ch
        return ch

    def write_raw(self, topic: str, msgtype: str, data: bytes, log_time_ns: int) -> None:
        """Record already-serialised CDR bytes (e.g. the input topics of a replayed bag)."""
        ch = self._channel(topic, msgtype)
        seq = self._seq.get(topic, 0)
        self._seq[topic] = seq + 1
        self._writer.add_message(channel_id=ch, log_time=int(log_time_ns), publish_time=int(log_time_ns),
                                 data=bytes(data), sequence=seq)
        self.count += 1

    def write(self, topic: str, msg, log_time_ns: int) -> None:
        """Record an rclpy message."""
        self.write_raw(topic, msgtype_of(msg), serialize_message(msg), log_time_ns)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self._writer.finish()
            finally:
                self._fh.close()

    def __enter__(self) -> McapRecorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
