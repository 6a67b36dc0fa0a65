"""Scenario files: a drive (bag, simulated or built from real samples), injected faults, expected and forbidden alerts.

A scenario is a YAML mapping::

    name: cam_front_blackout            # default: the file stem
    source:                             # exactly one of
      simulate: {seed: 201, duration_s: 30}
      # bag: path/to/bag                (relative to the scenario file)
      # real: {duration_s: 8}           (sequence built from the nuScenes samples; needs FUSION_MONITOR_REAL_DATA)
    faults:                             # fusion_monitor.sensors.faults spec (may be empty: a nominal drive)
      - {fault: camera_blackout, sensor: CAM_FRONT, severity: 5, start_s: 4, end_s: 8, params: {p: 1.0}}
    expect:                             # alerts that must fire (default: one per fault, from the fault spec)
      - {sensor: CAM_FRONT, checks: [exposure], start_s: 4, end_s: 9, kind: dropout}
    ignore:                             # windows where alerts count neither way (e.g. recovery transients)
      - {start_s: 8, end_s: 10, sensors: [CAM_FRONT]}

Every alert (a status entering WARN/ERROR) that matches no expectation and no ignore window is a
false positive, as in tier4's driving_log_replayer (a "must not fire" criterion everywhere else).
Times are seconds from the first message of the bag (as the replay's ``t_s``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fusion_monitor.sensors.faults import FAULT_ALIASES

#: Faults whose expected alert is a dropout (message absent, empty or blank) rather than a content change.
DROPOUT_FAULTS = ("dropped_frames", "camera_blackout", "radar_dropout")
#: Seconds after a fault's end during which its alerts still count as detections.
DEFAULT_GRACE_S = 1.0
SOURCE_KINDS = ("simulate", "bag", "real")


class ScenarioError(ValueError):
    """A scenario file is invalid; the message names the file and the bad value."""


@dataclass(frozen=True)
class Expectation:
    """An alert that must fire: on ``sensor`` (or its modality's attribution statuses), optionally only from
    ``checks``, with its first alert at ``start_s <= t_s <= end_s``; ``kind`` is "dropout" or "content"."""

    sensor: str
    start_s: float
    end_s: float
    checks: tuple[str, ...] = ()
    kind: str = "content"
    fault: str = ""


@dataclass(frozen=True)
class IgnoreWindow:
    """Alerts in [start_s, end_s] (on ``sensors`` only, when given) count neither as TP nor as FP."""

    start_s: float
    end_s: float
    sensors: tuple[str, ...] = ()


@dataclass(frozen=True)
class Scenario:
    """One evaluation scenario (see the module docstring for the file format)."""

    name: str
    source_kind: str
    source: dict
    faults: list = field(default_factory=list)
    expect: tuple[Expectation, ...] = ()
    ignore: tuple[IgnoreWindow, ...] = ()
    path: Path | None = None
    description: str = ""

    @property
    def duration_s(self) -> float | None:
        """Drive length when the source says it (simulate / real), else None."""
        d = self.source.get("duration_s")
        return float(d) if d is not None else None


def _num(where: str, d: dict, key: str, default: float | None = None) -> float:
    if key not in d:
        if default is None:
            raise ScenarioError(f"{where}: missing '{key}'")
        return float(default)
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ScenarioError(f"{where}: {key} = {v!r} is not a number")
    return float(v)


def _canonical_fault(name: str) -> str:
    return FAULT_ALIASES.get(name, name)


def load_scenario(path: str | Path, *, sensors: dict[str, str] | None = None) -> Scenario:
    """Read and validate one scenario file.

    Parameters
    ----------
    path : scenario YAML file
    sensors : sensor name -> modality of the rig (default: the shipped nuScenes rig)

    Raises
    ------
    ScenarioError
        Unreadable YAML, unknown keys, unknown fault/sensor/check names, windows outside the drive, or
        a bag source that does not exist -- all before anything is simulated or replayed.
    """
    from fusion_monitor.health.attribution import ATTRIBUTION_CHECKS
    from fusion_monitor.health.liveness import LIVENESS_CHECKS
    from fusion_monitor.health.monitor import DATA_CHECKS
    from fusion_monitor.sensors.faults import FaultSpecError, parse_fault_spec

    path = Path(path)
    if sensors is None:
        from fusion_monitor.sensors.rig import load_rig

        sensors = {n: s.modality for n, s in load_rig().sensors.items()}
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ScenarioError(f"{path}: cannot read ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise ScenarioError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: a scenario must be a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - {"name", "description", "source", "faults", "expect", "ignore"})
    if unknown:
        raise ScenarioError(f"{path}: unknown keys {unknown}")
    name = str(data.get("name") or path.stem)
    src = data.get("source")
    if not isinstance(src, dict) or len(src) != 1 or next(iter(src)) not in SOURCE_KINDS:
        raise ScenarioError(f"{path}: source must be one of {{simulate: ..., bag: PATH, real: ...}}, got {src!r}")
    kind, spec = next(iter(src.items()))
    if kind == "bag":
        bag = Path(str(spec))
        bag = bag if bag.is_absolute() else path.parent / bag
        if not bag.exists():
            raise ScenarioError(f"{path}: source bag {bag} does not exist")
        spec = {"path": str(bag)}
        length = _bag_length_s(bag)
        if length:
            spec["length_s"] = length
    elif not isinstance(spec, dict):
        raise ScenarioError(f"{path}: source.{kind} must be a mapping, got {spec!r}")
    else:
        spec = dict(spec)
        dur = _num(f"{path}: source.{kind}", spec, "duration_s")
        if dur <= 0:
            raise ScenarioError(f"{path}: source.{kind}.duration_s = {dur} must be > 0")
        if kind == "simulate":
            spec["seed"] = int(_num(f"{path}: source.simulate", spec, "seed"))
    duration = float(spec["duration_s"]) if "duration_s" in spec else spec.get("length_s")
    faults = data.get("faults") or []
    try:
        episodes = parse_fault_spec(faults, sensors) if faults else []
    except FaultSpecError as e:
        raise ScenarioError(f"{path}: faults: {e}") from None
    for i, e in enumerate(episodes):
        if duration is not None and (e.start_s >= duration or e.end_s > duration + 1e-9):
            raise ScenarioError(f"{path}: faults[{i}] window {e.start_s}-{e.end_s} s lies outside the drive "
                                f"(0-{duration:g} s)")
    modalities = set(sensors.values())
    known_checks = set(LIVENESS_CHECKS) | {c for cs in DATA_CHECKS.values() for c in cs} | set(ATTRIBUTION_CHECKS) \
        | {"input"}
    expects = []
    raw_expect = data.get("expect")
    if raw_expect is None:  # one expectation per fault episode: any check of the faulted sensor(s)
        for e in episodes:
            for s in e.sensors:
                fault = _canonical_fault(e.fault)
                expects.append(Expectation(s, e.start_s, e.end_s + DEFAULT_GRACE_S, (),
                                           "dropout" if fault in DROPOUT_FAULTS else "content", fault))
    else:
        if not isinstance(raw_expect, list):
            raise ScenarioError(f"{path}: expect must be a list, got {type(raw_expect).__name__}")
        for i, x in enumerate(raw_expect):
            where = f"{path}: expect[{i}]"
            if not isinstance(x, dict):
                raise ScenarioError(f"{where}: must be a mapping, got {x!r}")
            bad = sorted(set(x) - {"sensor", "checks", "start_s", "end_s", "kind", "fault"})
            if bad:
                raise ScenarioError(f"{where}: unknown keys {bad}")
            s = str(x.get("sensor", ""))
            if s not in sensors and s not in modalities:
                raise ScenarioError(f"{where}: unknown sensor {s!r} (rig: {', '.join(sensors)}; or a modality)")
            checks = x.get("checks") or []
            checks = [checks] if isinstance(checks, str) else list(checks)
            unknown_c = sorted(set(checks) - known_checks)
            if unknown_c:
                raise ScenarioError(f"{where}: unknown checks {unknown_c}")
            a, b = _num(where, x, "start_s"), _num(where, x, "end_s")
            if b < a or a < 0 or (duration is not None and a >= duration):
                raise ScenarioError(f"{where}: window {a}-{b} s is empty or outside the drive")
            k = str(x.get("kind", "content"))
            if k not in ("dropout", "content"):
                raise ScenarioError(f"{where}: kind {k!r} must be 'dropout' or 'content'")
            expects.append(Expectation(s, a, b, tuple(checks), k, str(x.get("fault", ""))))
    ignores = []
    for i, x in enumerate(data.get("ignore") or []):
        where = f"{path}: ignore[{i}]"
        if not isinstance(x, dict):
            raise ScenarioError(f"{where}: must be a mapping, got {x!r}")
        ss = x.get("sensors") or []
        ss = [ss] if isinstance(ss, str) else list(ss)
        bad = sorted(set(ss) - set(sensors) - modalities)
        if bad:
            raise ScenarioError(f"{where}: unknown sensors {bad}")
        ignores.append(IgnoreWindow(_num(where, x, "start_s"), _num(where, x, "end_s"), tuple(ss)))
    return Scenario(name, kind, spec, list(faults), tuple(expects), tuple(ignores), path,
                    str(data.get("description", "")))


def _bag_length_s(bag: Path) -> float | None:
    """Bag length from its rosbag2 metadata (None when unknown or unreadable: checked again at injection)."""
    from fusion_monitor.bagio import BagError, open_bag
    from fusion_monitor.tools.replay import _duration_s

    try:
        return _duration_s(open_bag(bag)) or None
    except (BagError, OSError):
        return None


def load_scenarios(paths: list[str | Path], **kw: Any) -> list[Scenario]:
    """Scenarios from files and folders (``*.yaml`` inside, sorted); names must be unique.

    Raises
    ------
    ScenarioError
        A path does not exist, no scenario was found, a name repeats, or a file is invalid.
    """
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(list(p.glob("*.yaml")) + list(p.glob("*.yml")))
        elif p.is_file():
            files.append(p)
        else:
            raise ScenarioError(f"{p}: no such scenario file or folder")
    if not files:
        raise ScenarioError(f"no scenario files in {[str(p) for p in paths]}")
    out = [load_scenario(f, **kw) for f in files]
    seen: dict[str, Path | None] = {}
    for s in out:
        if s.name in seen:
            raise ScenarioError(f"scenario name {s.name!r} is used by {seen[s.name]} and {s.path}")
        seen[s.name] = s.path
    return out
