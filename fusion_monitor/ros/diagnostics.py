"""diagnostic_msgs/DiagnosticArray from sensor statuses (one DiagnosticStatus per sensor and check).

Statuses are duck-typed (fusion_monitor.health SensorStatus or :class:`NodeStatus`): ``name``
("<node>: <sensor>/<check>"), ``hardware_id``, ``level`` (0 OK, 1 WARN, 2 ERROR, 3 STALE),
``message`` and ``values`` (str -> str).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from fusion_monitor.ros.markers import stamp_msg

OK, WARN, ERROR, STALE = 0, 1, 2, 3


@dataclass(frozen=True)
class NodeStatus:
    """A status the node itself raises (inference, ingest), same shape as health's SensorStatus."""

    name: str
    hardware_id: str
    level: int
    message: str
    values: dict[str, str] = field(default_factory=dict)


def diagnostic_status(status) -> DiagnosticStatus:
    """One status -> DiagnosticStatus (level as the byte the message wants, values as KeyValue strings)."""
    level = int(status.level)
    if level not in (OK, WARN, ERROR, STALE):
        raise ValueError(f"status {status.name!r}: level {level} is not 0..3")
    msg = DiagnosticStatus(check_fields=False)  # fields below are converted explicitly
    msg.level = bytes([level])
    msg.name = str(status.name)
    msg.message = str(status.message)
    msg.hardware_id = str(status.hardware_id)
    msg.values = [KeyValue(key=str(k), value=str(v), check_fields=False) for k, v in dict(status.values or {}).items()]
    return msg


def diagnostic_array(statuses: Iterable, stamp_ns: int) -> DiagnosticArray:
    """DiagnosticArray stamped ``stamp_ns`` (the node clock at publication)."""
    arr = DiagnosticArray()
    arr.header.stamp = stamp_msg(stamp_ns)
    arr.status = [diagnostic_status(s) for s in statuses]
    return arr


def level_of(msg: DiagnosticStatus) -> int:
    """The integer level of a received DiagnosticStatus."""
    lv = msg.level
    return lv[0] if isinstance(lv, (bytes, bytearray)) else int(lv)
