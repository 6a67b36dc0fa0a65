"""Writing ROS 2 messages to a single-file MCAP (profile ros2, CDR), readable by rosbags, the mcap
library and `ros2 bag play`. The offline replay records the node's output topics with it, serialised
as the live node publishes them.

:func:`serialize` is rclpy's ``serialize_message`` with a faster path for the two big per-frame
messages, MarkerArray and DiagnosticArray: rclpy converts every nested sub-message through the
generated C converters (~15 us per Marker, ~100 markers a frame), while the CDR (XCDR1, little endian,
as rmw writes it) of these types is a handful of ``struct`` packs. The bytes are those rclpy produces
except that alignment padding is zero here (rclpy leaves whatever was in its buffer); anything the fast
path does not handle exactly like rclpy - a value of an unexpected type, an out-of-range number, a
subclass, another ROS distribution's fields - raises inside it and the message goes through
``serialize_message`` instead. ``Publisher.publish`` accepts the bytes as they are.
"""

from __future__ import annotations

import os
import struct
from array import array
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from mcap.writer import CompressionType, Writer
from rclpy.serialization import serialize_message
from visualization_msgs.msg import Marker, MarkerArray

from fusion_monitor.bagio import typestore
from fusion_monitor.ros.markers import FAST_PATH, slots_are
from fusion_monitor.ros.qos import OUTPUT_QOS, playback_qos

try:
    from visualization_msgs.msg import UVCoordinate
except ImportError:  # pragma: no cover - older distributions (no fast path there)
    UVCoordinate = None

# ---- CDR fast path ---------------------------------------------------------------------------------
_ENCAPSULATION = b"\x00\x01\x00\x00"  # CDR_LE; offsets below count from the byte after it
_PAD = (b"", b"\x00", b"\x00\x00", b"\x00\x00\x00", b"\x00" * 4, b"\x00" * 5, b"\x00" * 6, b"\x00" * 7)
_u32 = struct.Struct("<I").pack
_stamp = struct.Struct("<iI").pack  # builtin_interfaces Time / Duration
_ids = struct.Struct("<iii").pack  # Marker id, type, action
_body = struct.Struct("<10d4fiI").pack  # Marker pose (7 d), scale (3 d), color (4 f), lifetime (i, I)
_point = struct.Struct("<3d").pack
_rgba = struct.Struct("<4f").pack
_uv = struct.Struct("<2f").pack


# CDR of a string (uint32 length incl. NUL, UTF-8, NUL) for the strings that come back frame after frame
# (frame ids, namespaces, status names, keys, most values); bounded, emptied when full. Only str keys get in.
_STRINGS: dict[str, bytes] = {}
_STRINGS_MAX = 8192


def _cdr_string(s: str) -> bytes:
    b = s.encode()  # a non-str raises: rclpy's path then decides
    out = _u32(len(b) + 1) + b + b"\x00"
    if len(_STRINGS) >= _STRINGS_MAX:
        _STRINGS.clear()
    _STRINGS[s] = out
    return out


def _string(buf: bytearray, s: str) -> None:
    b = s.encode()  # a non-str raises: rclpy's path then decides
    buf += _PAD[-len(buf) & 3]
    buf += _u32(len(b) + 1)
    buf += b
    buf.append(0)


def _octets(buf: bytearray, data) -> None:
    """uint8[] from an array('B') / bytes / bytearray (what rclpy copies through the buffer protocol)."""
    if type(data) is array:
        if data.typecode != "B":
            raise TypeError("uint8[] array.array must have typecode 'B'")
    elif type(data) is not bytes and type(data) is not bytearray:
        raise TypeError("uint8[] as a Python sequence: left to rclpy")
    buf += _PAD[-len(buf) & 3]
    buf += _u32(len(data))
    buf += data


def _header(buf: bytearray, h) -> None:
    t = h._stamp
    buf += _PAD[-len(buf) & 3]
    buf += _stamp(t._sec, t._nanosec)
    _string(buf, h._frame_id)


# Marker: from frame_locked (right after the 8-aligned pose..lifetime block, so at a multiple of 8) to
# uv_coordinates, when every field in it has its default value (as in this package's markers): constant bytes.
_MIDDLE_DEFAULT = (
    b"\x00" + b"\x00" * 3 + _u32(0) + _u32(0)  # frame_locked, pad, points [], colors []
    + _u32(1) + b"\x00" + b"\x00" * 3  # texture_resource "", pad
    + _stamp(0, 0) + _u32(1) + b"\x00" + b"\x00" * 3  # texture.header
    + _u32(1) + b"\x00" + b"\x00" * 3 + _u32(0)  # texture.format "", texture.data []
    + _u32(0)  # uv_coordinates []
)
# mesh_resource "", mesh_file {"", []}, mesh_use_embedded_materials False, for each offset % 4 after the text
_TAIL_DEFAULT = tuple(
    _PAD[-k & 3] + _u32(1) + b"\x00" + b"\x00" * 3 + _u32(1) + b"\x00" + b"\x00" * 3 + _u32(0) + b"\x00"
    for k in range(4)
)


def _is_default_time(t) -> bool:
    sec, nanosec = t._sec, t._nanosec
    return type(sec) is int and type(nanosec) is int and sec == 0 and nanosec == 0


def _marker(buf: bytearray, m) -> None:
    if type(m) is not Marker:
        raise TypeError("not a Marker")
    h = m._header
    t = h._stamp
    buf += _PAD[-len(buf) & 3]
    buf += _stamp(t._sec, t._nanosec)
    s = _STRINGS.get(h._frame_id) or _cdr_string(h._frame_id)
    buf += s
    buf += _PAD[-len(buf) & 3]
    s = _STRINGS.get(m._ns) or _cdr_string(m._ns)
    buf += s
    buf += _PAD[-len(buf) & 3]
    buf += _ids(m._id, m._type, m._action)
    buf += _PAD[(4 - len(buf)) & 7]  # doubles: 8-aligned counted from after the encapsulation
    pose, s, c, life = m._pose, m._scale, m._color, m._lifetime
    p, q = pose._position, pose._orientation
    buf += _body(p._x, p._y, p._z, q._x, q._y, q._z, q._w, s._x, s._y, s._z, c._r, c._g, c._b, c._a,
                 life._sec, life._nanosec)
    tex = m._texture
    th = tex._header
    if (m._frame_locked is not True and len(m._points) == 0 and len(m._colors) == 0 and len(tex._data) == 0
            and len(m._uv_coordinates) == 0 and m._texture_resource == "" and th._frame_id == ""
            and tex._format == "" and type(m._texture_resource) is str and type(th._frame_id) is str
            and type(tex._format) is str and _is_default_time(th._stamp)):
        buf += _MIDDLE_DEFAULT
    else:
        _marker_middle(buf, m)
    text = m._text.encode()
    buf += _PAD[-len(buf) & 3]
    buf += _u32(len(text) + 1)
    buf += text
    buf.append(0)
    mf = m._mesh_file
    if (m._mesh_resource == "" and mf._filename == "" and len(mf._data) == 0
            and m._mesh_use_embedded_materials is not True and type(m._mesh_resource) is str
            and type(mf._filename) is str):
        buf += _TAIL_DEFAULT[len(buf) & 3]
    else:
        _string(buf, m._mesh_resource)
        _string(buf, mf._filename)
        _octets(buf, mf._data)
        buf.append(1 if m._mesh_use_embedded_materials is True else 0)


def _marker_middle(buf: bytearray, m) -> None:
    """Marker fields frame_locked .. uv_coordinates, any values."""
    buf.append(1 if m._frame_locked is True else 0)  # rclpy: Py_True == field
    points = m._points
    buf += _PAD[-len(buf) & 3]
    buf += _u32(len(points))
    if points:
        buf += _PAD[(4 - len(buf)) & 7]
        for pt in points:
            buf += _point(pt._x, pt._y, pt._z)
    colors = m._colors
    buf += _PAD[-len(buf) & 3]
    buf += _u32(len(colors))
    for col in colors:
        buf += _rgba(col._r, col._g, col._b, col._a)
    _string(buf, m._texture_resource)
    tex = m._texture
    _header(buf, tex._header)
    _string(buf, tex._format)
    _octets(buf, tex._data)
    uvs = m._uv_coordinates
    buf += _PAD[-len(buf) & 3]
    buf += _u32(len(uvs))
    for uv in uvs:
        buf += _uv(uv._u, uv._v)


def _marker_array(msg) -> bytes:
    buf = bytearray(_ENCAPSULATION)
    markers = msg._markers
    buf += _u32(len(markers))
    for m in markers:
        _marker(buf, m)
    return bytes(buf)


def _diagnostic_array(msg) -> bytes:
    buf = bytearray(_ENCAPSULATION)
    _header(buf, msg._header)
    status = msg._status
    buf += _PAD[-len(buf) & 3]
    buf += _u32(len(status))
    pad, u32, strings, cdr_string = _PAD, _u32, _STRINGS, _cdr_string
    for st in status:
        if type(st) is not DiagnosticStatus:
            raise TypeError("not a DiagnosticStatus")
        level = st._level
        if type(level) is not bytes or len(level) != 1:
            raise TypeError("level is not one byte")
        buf += level
        for text in (st._name, st._message, st._hardware_id):
            buf += pad[-len(buf) & 3]
            buf += strings.get(text) or cdr_string(text)
        values = st._values
        buf += pad[-len(buf) & 3]
        buf += u32(len(values))
        for kv in values:
            if type(kv) is not KeyValue:
                raise TypeError("not a KeyValue")
            buf += pad[-len(buf) & 3]
            buf += strings.get(kv._key) or cdr_string(kv._key)
            buf += pad[-len(buf) & 3]
            buf += strings.get(kv._value) or cdr_string(kv._value)
    return bytes(buf)


# Only where every type the encoders walk has exactly the fields they write (FAST_PATH checks Marker and the
# types inside it; another distribution's Marker with other fields must not lose any): rclpy otherwise.
_FAST_SERIALIZERS = {}
if FAST_PATH and slots_are(UVCoordinate, "u", "v"):
    _FAST_SERIALIZERS[MarkerArray] = _marker_array
if FAST_PATH and slots_are(DiagnosticArray, "header", "status") and slots_are(KeyValue, "key", "value") \
        and slots_are(DiagnosticStatus, "level", "name", "message", "hardware_id", "values"):
    _FAST_SERIALIZERS[DiagnosticArray] = _diagnostic_array


FAST_SERIALIZED = frozenset(_FAST_SERIALIZERS)  # the message types serialize() encodes itself


def serialize(msg) -> bytes:
    """CDR bytes of an rclpy message, as ``rclpy.serialization.serialize_message`` (faster for the big ones)."""
    fast = _FAST_SERIALIZERS.get(type(msg))
    if fast is not None:
        try:
            return fast(msg)
        except Exception:  # noqa: BLE001 - anything unusual: rclpy's own conversion decides
            pass
    return serialize_message(msg)


def msgtype_of(msg) -> str:
    """'pkg/msg/Name' for an rclpy message instance."""
    cls = type(msg)
    return f"{cls.__module__.split('.')[0]}/msg/{cls.__name__}"


def offered_qos_yaml(profiles) -> str:
    """``offered_qos_profiles`` of an MCAP channel, in the form rosbag2 reads from a file whose ``rosbag2``
    metadata record has no serialized metadata (bag metadata version 8: policies as rmw's integers).

    ``profiles``: rclpy QoSProfiles, rosbags ``Qos`` tuples, or a recorded YAML string (either version)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
    from rosbags.rosbag2.metadata import dump_qos_v8, parse_qos

    if isinstance(profiles, str):
        profiles = parse_qos(profiles)
    zero = QosTime(sec=0, nsec=0)
    out = []
    for q in profiles or ():
        if not isinstance(q, Qos):  # an rclpy QoSProfile: rmw's enum values are rosbag2's integers
            q = Qos(history=QosHistory(int(q.history)), depth=int(q.depth), reliability=QosReliability(int(q.reliability)),
                    durability=QosDurability(int(q.durability)), deadline=zero, lifespan=zero,
                    liveliness=QosLiveliness(int(q.liveliness)), liveliness_lease_duration=zero,
                    avoid_ros_namespace_conventions=bool(q.avoid_ros_namespace_conventions))
        out.append(q)
    return dump_qos_v8(out)


class McapRecorder:
    """Append-only MCAP writer; `close()` (or the context manager) finalises the file.

    Every channel carries its offered QoS (``offered_qos_profiles``), so ``ros2 bag play`` offers what the
    node offered: the outputs as the node publishes them (:data:`OUTPUT_QOS`), recorded input topics as
    their source bag recorded them. A ``rosbag2`` metadata record names the ROS distribution."""

    def __init__(self, path: str | Path, *, compression: bool = True):
        self.path = Path(path)
        self._fh = open(self.path, "wb")
        self._writer = Writer(self._fh, compression=CompressionType.ZSTD if compression else CompressionType.NONE)
        self._writer.start(profile="ros2", library="fusion_monitor")
        # no serialized bag metadata: rosbag2 then reads the channels' QoS as version 8 (integer policies)
        self._writer.add_metadata("rosbag2", {"ROS_DISTRO": os.environ.get("ROS_DISTRO") or "kilted",
                                              "serialized_metadata": ""})
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, int] = {}
        self._seq: dict[str, int] = {}
        self.count = 0
        self.closed = False

    def _channel(self, topic: str, msgtype: str, qos=None) -> int:
        ch = self._channels.get(topic)
        if ch is not None:
            return ch
        sid = self._schemas.get(msgtype)
        if sid is None:
            text, _ = typestore().generate_msgdef(msgtype, ros_version=2)
            sid = self._writer.register_schema(name=msgtype, encoding="ros2msg", data=text.encode())
            self._schemas[msgtype] = sid
        ch = self._writer.register_channel(topic=topic, message_encoding="cdr", schema_id=sid,
                                           metadata={"offered_qos_profiles": offered_qos_yaml(qos)
                                                     or offered_qos_yaml([playback_qos(topic, msgtype)])})
        self._channels[topic] = ch
        return ch

    def write_raw(self, topic: str, msgtype: str, data: bytes, log_time_ns: int, qos=None) -> None:
        """Record already-serialised CDR bytes (e.g. the input topics of a replayed bag). ``qos``: the topic's
        offered QoS as recorded (see :func:`offered_qos_yaml`); without it, what ``fusion-monitor play`` offers
        for an unrecorded topic (sensor data best effort, /tf_static transient local, else reliable)."""
        ch = self._channel(topic, msgtype, qos)
        seq = self._seq.get(topic, 0)
        self._seq[topic] = seq + 1
        self._writer.add_message(channel_id=ch, log_time=int(log_time_ns), publish_time=int(log_time_ns),
                                 data=bytes(data), sequence=seq)
        self.count += 1

    def write(self, topic: str, msg, log_time_ns: int) -> None:
        """Record an rclpy message."""
        self.write_raw(topic, msgtype_of(msg), serialize(msg), log_time_ns, qos=[OUTPUT_QOS])

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
