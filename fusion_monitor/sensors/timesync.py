"""Time alignment for monitoring: latest messages per sensor, a LiDAR or timer trigger, per-sensor age.

Never waits for a complete set: at each trigger every sensor gets its sample closest to the
trigger stamp (from a short history), its age, and a stale flag with a reason. Out-of-order
messages, duplicate stamps and time jumping backwards (a bag loop, a sim-clock reset) are
counted and handled. Pure: stamps are integer nanoseconds, ``now_ns`` is always passed in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from fusion_monitor.sensors.rig import Rig

#: Events :meth:`LatestCache.push` reports.
ACCEPTED, DUPLICATE, OUT_OF_ORDER, TIME_JUMP_BACK, UNKNOWN_SENSOR = (
    "accepted", "duplicate", "out_of_order", "time_jump_back", "unknown_sensor",
)


@dataclass(frozen=True)
class SensorSample:
    """One cached message: header stamp, arrival time on the node clock, and the decoded payload."""

    sensor: str
    stamp_ns: int
    receive_ns: int
    payload: Any


@dataclass(frozen=True)
class SyncPolicy:
    """Per-sensor freshness bounds and cache behaviour.

    Attributes
    ----------
    max_age_ns : dict[str, int]
        A sensor whose best sample is further than this from the trigger stamp is stale.
    trigger_sensor : str | None
        The sensor whose messages trigger a frame (None: timer only).
    trigger_period_ns : int
        Minimum spacing of triggers (a 20 Hz LiDAR with a 10 Hz period triggers every 2nd scan).
    jump_back_ns : int
        A sensor stamp this much older than that sensor's latest (or a ``now_ns`` this much
        older than the previous one) means time jumped backwards (bag loop, sim-clock reset):
        the cache is cleared instead of dropping everything as out of order. Per sensor, so one
        sensor with a wrong clock cannot make the others look like they jumped.
    reorder_limit : int
        This many consecutive out-of-order messages from one sensor are a (short) time jump
        too: a bag shorter than ``jump_back_ns`` looping must not mask the sensor forever.
    history : int
        Samples kept per sensor to pick the one closest to the trigger.
    """

    max_age_ns: dict[str, int]
    trigger_sensor: str | None = None
    trigger_period_ns: int = 100_000_000
    jump_back_ns: int = 1_000_000_000
    reorder_limit: int = 3
    history: int = 3

    @classmethod
    def from_rig(
        cls,
        rig: Rig,
        *,
        trigger_rate_hz: float = 10.0,
        margin_s: float = 0.04,
        trigger_sensor: str | None = None,
        jump_back_s: float = 1.0,
        reorder_limit: int = 3,
        history: int = 3,
    ) -> SyncPolicy:
        """Bounds of one sensor period + ``margin_s`` (camera 12 Hz -> 123 ms); first LiDAR triggers."""
        if not trigger_rate_hz > 0:
            raise ValueError(f"trigger_rate_hz {trigger_rate_hz} must be > 0")
        if history < 1:
            raise ValueError(f"history {history} must be >= 1")
        if reorder_limit < 1:
            raise ValueError(f"reorder_limit {reorder_limit} must be >= 1")
        max_age = {n: int(round((1.0 / s.rate_hz + margin_s) * 1e9)) for n, s in rig.sensors.items()}
        if trigger_sensor is None:
            lidars = rig.of("lidar")
            trigger_sensor = lidars[0].name if lidars else None
        if trigger_sensor is not None and trigger_sensor not in rig.sensors:
            raise ValueError(f"trigger sensor {trigger_sensor!r} is not in rig {rig.name}")
        return cls(max_age_ns=max_age, trigger_sensor=trigger_sensor,
                   trigger_period_ns=int(round(1e9 / trigger_rate_hz)),
                   jump_back_ns=int(jump_back_s * 1e9), reorder_limit=reorder_limit, history=history)


@dataclass(frozen=True)
class SensorAlignment:
    """One sensor at one trigger: its chosen sample, age and stale flag.

    ``age_ns`` = trigger stamp - sample stamp (negative: the sample is newer than the
    trigger); None when the sensor never sent anything (since the last reset).
    """

    sensor: str
    sample: SensorSample | None
    age_ns: int | None
    max_age_ns: int
    stale: bool
    reason: str = ""


@dataclass(frozen=True)
class SyncedFrame:
    """What the pipeline gets at a trigger: every sensor, fresh or masked."""

    trigger_stamp_ns: int
    trigger: str
    now_ns: int
    sensors: dict[str, SensorAlignment]

    def fresh(self) -> list[str]:
        """Sensors usable for this frame."""
        return [n for n, a in self.sensors.items() if not a.stale]

    def stale(self) -> list[str]:
        """Sensors masked for this frame (missing, too old or too new)."""
        return [n for n, a in self.sensors.items() if a.stale]

    def payload(self, sensor: str) -> Any:
        """The sensor's payload, or None when it is stale."""
        a = self.sensors[sensor]
        return None if a.stale or a.sample is None else a.sample.payload


@dataclass
class SensorCounters:
    """Per-sensor event counts since start (never reset, for diagnostics)."""

    accepted: int = 0
    duplicate: int = 0
    out_of_order: int = 0
    time_jump_back: int = 0


@dataclass(frozen=True)
class PushResult:
    """Outcome of one :meth:`LatestCache.push`; ``frame`` is set when this message triggered one."""

    event: str
    frame: SyncedFrame | None = None
    reason: str = ""


@dataclass
class LatestCache:
    """Latest messages per sensor with trigger logic (one per node / replay; not thread-safe).

    Examples
    --------
    >>> cache = LatestCache(SyncPolicy.from_rig(load_rig()))       # doctest: +SKIP
    >>> r = cache.push("LIDAR_TOP", stamp_ns, cloud, now_ns)       # doctest: +SKIP
    >>> if r.frame: run_pipeline(r.frame)                          # doctest: +SKIP
    """

    policy: SyncPolicy
    counters: dict[str, SensorCounters] = field(default_factory=dict)
    resets: int = 0
    _samples: dict[str, deque] = field(default_factory=dict)
    _reordered: dict[str, int] = field(default_factory=dict)
    _last_now_ns: int | None = None
    _last_trigger_ns: int | None = None

    def __post_init__(self):
        for name in self.policy.max_age_ns:
            self._samples[name] = deque(maxlen=self.policy.history)
            self.counters[name] = SensorCounters()
            self._reordered[name] = 0

    def reset(self) -> None:
        """Forget every cached sample and the trigger phase (counters are kept)."""
        for q in self._samples.values():
            q.clear()
        for name in self._reordered:
            self._reordered[name] = 0
        self._last_trigger_ns = None
        self.resets += 1

    def _check_clock(self, now_ns: int) -> bool:
        jumped = self._last_now_ns is not None and now_ns < self._last_now_ns - self.policy.jump_back_ns
        self._last_now_ns = now_ns
        if jumped:
            self.reset()
        return jumped

    def push(self, sensor: str, stamp_ns: int, payload: Any, now_ns: int) -> PushResult:
        """Cache one message; returns what happened and, for the trigger sensor, maybe a frame.

        Parameters
        ----------
        sensor : str
            Rig sensor name.
        stamp_ns : int
            Header stamp, nanoseconds.
        payload : Any
            Decoded data (PointCloud, CameraFrame, ...), stored by reference.
        now_ns : int
            Node clock (sim time under replay).
        """
        stamp_ns, now_ns = int(stamp_ns), int(now_ns)
        if sensor not in self._samples:
            return PushResult(UNKNOWN_SENSOR, reason=f"{sensor}: not a sensor of this rig")
        last_now_ns = self._last_now_ns
        clock_jumped = self._check_clock(now_ns)
        q = self._samples[sensor]
        c = self.counters[sensor]
        event = ACCEPTED
        reason = ""
        if clock_jumped:
            reason = (f"{sensor}: node clock jumped back {(last_now_ns - now_ns) / 1e9:.3f} s (bag loop or "
                      f"sim-time reset), cache cleared")
            c.time_jump_back += 1
            event = TIME_JUMP_BACK
        elif q and stamp_ns == q[-1].stamp_ns:
            c.duplicate += 1
            return PushResult(DUPLICATE, reason=f"{sensor}: duplicate stamp {stamp_ns}")
        elif q and stamp_ns < q[-1].stamp_ns:
            back_s = (q[-1].stamp_ns - stamp_ns) / 1e9
            self._reordered[sensor] += 1
            if stamp_ns >= q[-1].stamp_ns - self.policy.jump_back_ns and \
                    self._reordered[sensor] < self.policy.reorder_limit:
                c.out_of_order += 1
                return PushResult(OUT_OF_ORDER, reason=f"{sensor}: stamp {stamp_ns} is {back_s:.3f} s older than "
                                                       f"cached {q[-1].stamp_ns}, dropped")
            reason = (f"{sensor}: stamp went back {back_s:.3f} s"
                      + (f" ({self._reordered[sensor]} times in a row)" if back_s * 1e9 <= self.policy.jump_back_ns
                         else "") + ": time jumped backwards, cache cleared")
            self.reset()
            c.time_jump_back += 1
            event = TIME_JUMP_BACK
        self._reordered[sensor] = 0
        q.append(SensorSample(sensor, stamp_ns, now_ns, payload))
        c.accepted += 1
        frame = None
        if sensor == self.policy.trigger_sensor:
            due = self._last_trigger_ns is None or stamp_ns - self._last_trigger_ns >= self.policy.trigger_period_ns * 0.9
            if due:
                self._last_trigger_ns = stamp_ns
                frame = self.snapshot(stamp_ns, now_ns, trigger=sensor)
        return PushResult(event, frame, reason)

    def snapshot(self, trigger_stamp_ns: int, now_ns: int, trigger: str = "timer") -> SyncedFrame:
        """Align every sensor to ``trigger_stamp_ns`` (a timer passes its own ``now_ns``).

        Each sensor's sample is the cached one closest to the trigger stamp; it is stale when
        missing or when ``|age| > max_age_ns``.
        """
        trigger_stamp_ns, now_ns = int(trigger_stamp_ns), int(now_ns)
        if trigger == "timer":
            self._check_clock(now_ns)
        out = {}
        for name, q in self._samples.items():
            bound = self.policy.max_age_ns[name]
            if not q:
                out[name] = SensorAlignment(name, None, None, bound, True, f"{name}: no message received")
                continue
            best = min(q, key=lambda s: abs(trigger_stamp_ns - s.stamp_ns))
            age = trigger_stamp_ns - best.stamp_ns
            stale = abs(age) > bound
            reason = ""
            if stale:
                where = "old at" if age > 0 else "ahead of"
                reason = f"{name}: {abs(age) / 1e6:.1f} ms {where} the trigger, bound {bound / 1e6:.1f} ms"
            out[name] = SensorAlignment(name, best, age, bound, stale, reason)
        return SyncedFrame(trigger_stamp_ns, trigger, now_ns, out)
