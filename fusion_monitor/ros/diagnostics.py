"""diagnostic_msgs/DiagnosticArray from sensor statuses (one DiagnosticStatus per sensor and check).

Statuses are duck-typed (fusion_monitor.health SensorStatus or :class:`NodeStatus`): ``name``
("<node>: <sensor>/<check>"), ``hardware_id``, ``level`` (0 OK, 1 WARN, 2 ERROR, 3 STALE),
``message`` and ``values`` (str -> str).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from fusion_monitor.ros.markers import CHECK_FIELDS, FAST_PATH, header_msg, slots_are

OK, WARN, ERROR, STALE = 0, 1, 2, 3


@dataclass(frozen=True)
class NodeStatus:
    """A status the node itself raises (inference, ingest), same shape as health's SensorStatus."""

    name: str
    hardware_id: str
    level: int
    message: str
    values: dict[str, str] = field(default_factory=dict)


_LEVEL_BYTES = {lv: bytes([lv]) for lv in (OK, WARN, ERROR, STALE)}
# Fast path (see fusion_monitor.ros.markers): fill the generated classes' slots directly when they are the
# ones this module knows; the result equals the constructors' field by field.
_FAST = FAST_PATH and slots_are(DiagnosticStatus, "level", "name", "message", "hardware_id", "values") \
    and slots_are(KeyValue, "key", "value") and slots_are(DiagnosticArray, "header", "status")
_new = object.__new__


def diagnostic_status(status) -> DiagnosticStatus:
    """One status -> DiagnosticStatus (level as the byte the message wants, values as KeyValue strings)."""
    level = int(status.level)
    level_byte = _LEVEL_BYTES.get(level)
    if level_byte is None:
        raise ValueError(f"status {status.name!r}: level {level} is not 0..3")
    values = status.values
    if type(values) is not dict:
        values = dict(values or {})
    if not _FAST:
        return DiagnosticStatus(  # fields converted here: the setters' type assertions are not needed
            check_fields=False, level=level_byte, name=str(status.name), message=str(status.message),
            hardware_id=str(status.hardware_id),
            values=[KeyValue(key=str(k), value=str(v), check_fields=False) for k, v in values.items()])
    kvs = []
    for k, v in values.items():
        kv = _new(KeyValue)
        kv._check_fields = False
        kv._key = str(k)
        kv._value = str(v)
        kvs.append(kv)
    msg = _new(DiagnosticStatus)
    msg._check_fields = False
    msg._level = level_byte
    msg._name = str(status.name)
    msg._message = str(status.message)
    msg._hardware_id = str(status.hardware_id)
    msg._values = kvs
    return msg


def diagnostic_array(statuses: Iterable, stamp_ns: int) -> DiagnosticArray:
    """DiagnosticArray stamped ``stamp_ns`` (the node clock at publication)."""
    status = [diagnostic_status(s) for s in statuses]
    if not _FAST:
        return DiagnosticArray(header=header_msg(stamp_ns, ""), status=status)
    arr = _new(DiagnosticArray)
    arr._check_fields = CHECK_FIELDS
    arr._header = header_msg(stamp_ns, "")
    arr._status = status
    return arr


def level_of(msg: DiagnosticStatus) -> int:
    """The integer level of a received DiagnosticStatus."""
    lv = msg.level
    return lv[0] if isinstance(lv, (bytes, bytearray)) else int(lv)
