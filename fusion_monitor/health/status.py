"""Status types of the health layer: levels, one check's result, one published sensor status."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class Level(IntEnum):
    """Diagnostic level, numerically equal to diagnostic_msgs/DiagnosticStatus (OK=0 .. STALE=3)."""

    OK = 0
    WARN = 1
    ERROR = 2
    STALE = 3


def fmt(value: float, digits: int = 3) -> str:
    """A number as a short string for a diagnostic key/value (``nan`` stays ``nan``)."""
    return f"{float(value):.{digits}g}"


@dataclass(frozen=True)
class CheckResult:
    """The raw (not yet debounced) outcome of one check on one sensor.

    Attributes
    ----------
    level : Level
        OK, WARN, ERROR or STALE.
    message : str
        One line saying what is wrong and *where* (image region, azimuth range, ...).
    values : dict[str, str]
        Key/values: the measured ``value`` and the ``bound`` it was compared with, plus any
        check-specific keys (e.g. ``azimuth_deg``).
    """

    level: Level
    message: str
    values: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "level", Level(int(self.level)))
        object.__setattr__(self, "values", {str(k): str(v) for k, v in dict(self.values).items()})


def ok(message: str = "ok", **values) -> CheckResult:
    """An OK result with key/values."""
    return CheckResult(Level.OK, message, values)


def status_name(node: str, sensor: str, check: str) -> str:
    """The stable status name ``"<node>: <sensor>/<check>"`` (e.g. ``"fusion_monitor: CAM_FRONT/staleness"``)."""
    for what, s in (("node", node), ("sensor", sensor), ("check", check)):
        if not s or not isinstance(s, str):
            raise ValueError(f"status {what} name {s!r} must be a non-empty string")
    return f"{node}: {sensor}/{check}"


@dataclass(frozen=True)
class SensorStatus:
    """One published status (one per sensor and check), shaped like diagnostic_msgs/DiagnosticStatus.

    Attributes
    ----------
    name : str
        ``"<node>: <sensor>/<check>"``.
    hardware_id : str
        Sensor name (or modality name for attribution statuses).
    level : Level
    message : str
    values : dict[str, str]
    sensor, check : str
        The parts of ``name``, for filtering without parsing.
    """

    name: str
    hardware_id: str
    level: Level
    message: str
    values: dict[str, str] = field(default_factory=dict)
    sensor: str = ""
    check: str = ""

    @classmethod
    def from_result(cls, node: str, sensor: str, check: str, result: CheckResult, level: Level | None = None,
                    hardware_id: str | None = None) -> SensorStatus:
        """Status from a check result; ``level`` overrides the result's level (the debounced level)."""
        lv = result.level if level is None else Level(int(level))
        values = dict(result.values)
        if lv != result.level:
            values["raw_level"] = result.level.name
        return cls(status_name(node, sensor, check), hardware_id or sensor, lv, f"{sensor}: {result.message}",
                   values, sensor, check)


def summarize(statuses) -> dict:
    """Counts per level, the worst level and the non-OK status names (for frames.jsonl / fleet summaries)."""
    counts = {lv.name: 0 for lv in Level}
    alerts = []
    worst = Level.OK
    for s in statuses:
        lv = Level(int(s.level))
        counts[lv.name] += 1
        worst = max(worst, lv)
        if lv != Level.OK:
            alerts.append(s.name)
    return {"worst": worst.name, "counts": counts, "alerts": alerts}
