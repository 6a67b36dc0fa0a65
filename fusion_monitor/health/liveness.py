"""Liveness of one sensor stream: never received, rate, staleness, stamp skew, time jumps.

Key names follow NVIDIA greenwave_monitor (frame_rate_node, frame_rate_msg,
current_delay_from_realtime_ms, expected_frequency, tolerance). All times are injected:
``now_ns`` is the node clock (sim time in replay), ``stamp_ns`` the header stamp.
"""

from __future__ import annotations

import statistics
from collections import deque

import numpy as np

from fusion_monitor.health.config import LivenessConfig
from fusion_monitor.health.status import CheckResult, Level, fmt

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000

#: Checks a :class:`StreamLiveness` reports, in order.
LIVENESS_CHECKS = ("rate", "staleness", "sync", "time_jump")


class StreamLiveness:
    """Arrival bookkeeping and liveness checks of one sensor stream.

    Parameters
    ----------
    sensor : str
        Sensor name (used in messages).
    expected_hz : float
        Nominal message rate (the rig profile's ``rate_hz``).
    config : LivenessConfig
    """

    def __init__(self, sensor: str, expected_hz: float, config: LivenessConfig | None = None):
        if not (expected_hz > 0):
            raise ValueError(f"{sensor}: expected_hz {expected_hz!r} must be > 0")
        self.sensor = sensor
        self.expected_hz = float(expected_hz)
        self.config = config or LivenessConfig()
        self._recv: deque[int] = deque()
        self._stamps: deque[int] = deque()
        self._delays_ms: deque[float] = deque(maxlen=32)
        self.count = 0
        self.first_recv_ns: int | None = None
        self.last_recv_ns: int | None = None
        self.last_stamp_ns: int | None = None
        self._jump: tuple[int, str, dict] | None = None
        self.resets = 0

    # -- input ------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the rate window (after a time jump); the last stamp is kept for messages."""
        self._recv.clear()
        self._stamps.clear()
        self._delays_ms.clear()
        self.first_recv_ns = None
        self.resets += 1

    def on_message(self, stamp_ns: int, now_ns: int) -> None:
        """Record one message with header stamp ``stamp_ns`` received at node time ``now_ns`` (both ns)."""
        stamp_ns, now_ns = int(stamp_ns), int(now_ns)
        if self.last_recv_ns is not None and now_ns < self.last_recv_ns:
            self._jump = (now_ns, f"node clock jumped back by {(self.last_recv_ns - now_ns) / NS_PER_MS:.0f} ms "
                          "(bag loop or clock reset); windows reset",
                          {"value": fmt((now_ns - self.last_recv_ns) / NS_PER_MS), "bound": ">= 0 ms"})
            self.reset()
        elif self.last_stamp_ns is not None:
            d_stamp = stamp_ns - self.last_stamp_ns
            d_recv = now_ns - (self.last_recv_ns if self.last_recv_ns is not None else now_ns)
            if d_stamp < 0:
                self._jump = (now_ns, f"header stamp jumped back by {-d_stamp / NS_PER_MS:.0f} ms; windows reset",
                              {"value": fmt(d_stamp / NS_PER_MS), "bound": ">= 0 ms"})
                self.reset()
            elif abs(d_stamp - d_recv) > self.config.time_jump_ms * NS_PER_MS:
                self._jump = (now_ns, f"header stamp stepped {d_stamp / NS_PER_MS:.0f} ms while the node clock "
                              f"stepped {d_recv / NS_PER_MS:.0f} ms",
                              {"value": fmt((d_stamp - d_recv) / NS_PER_MS),
                               "bound": f"|x| <= {self.config.time_jump_ms:g} ms"})
                self.reset()
        self.count += 1
        if self.first_recv_ns is None:
            self.first_recv_ns = now_ns
        self._recv.append(now_ns)
        self._stamps.append(stamp_ns)
        self._delays_ms.append((now_ns - stamp_ns) / NS_PER_MS)
        self.last_recv_ns = now_ns
        self.last_stamp_ns = stamp_ns

    def _trim(self, now_ns: int) -> None:
        horizon = now_ns - int(self.config.rate_window_s * NS_PER_S)
        while self._recv and (self._recv[0] < horizon or self._recv[0] > now_ns):
            self._recv.popleft()
            self._stamps.popleft()

    # -- measurements -----------------------------------------------------------------------
    def rates_hz(self, now_ns: int) -> tuple[float, float]:
        """(frame_rate_node, frame_rate_msg): receive rate over the window and header-stamp rate; nan if unknown."""
        now_ns = int(now_ns)
        self._trim(now_ns)
        n = len(self._recv)
        window_ns = int(self.config.rate_window_s * NS_PER_S)
        if self.first_recv_ns is not None and now_ns - self.first_recv_ns >= window_ns:
            node = n / self.config.rate_window_s
        elif n >= 2 and self._recv[-1] > self._recv[0]:
            node = (n - 1) * NS_PER_S / (self._recv[-1] - self._recv[0])
        else:
            node = float("nan")
        if n >= 2 and self._stamps[-1] > self._stamps[0]:
            msg = (n - 1) * NS_PER_S / (self._stamps[-1] - self._stamps[0])
        else:
            msg = float("nan")
        return node, msg

    def median_delay_ms(self) -> float:
        """Median of (receive time - header stamp) over the last messages, ms; nan before any."""
        return float(statistics.median(self._delays_ms)) if self._delays_ms else float("nan")

    # -- checks -----------------------------------------------------------------------------
    def _never(self) -> CheckResult:
        return CheckResult(Level.STALE, "no message received yet",
                           {"expected_frequency": fmt(self.expected_hz), "messages": "0"})

    def check_rate(self, now_ns: int) -> CheckResult:
        """Receive rate against the expected rate (WARN outside tolerance, ERROR below the error fraction)."""
        if self.count == 0:
            return self._never()
        c = self.config
        node, msg = self.rates_hz(now_ns)
        values = {"frame_rate_node": fmt(node), "frame_rate_msg": fmt(msg), "expected_frequency": fmt(self.expected_hz),
                  "tolerance": fmt(c.rate_tolerance * 100) + "%",
                  "current_delay_from_realtime_ms": fmt((int(now_ns) - self.last_stamp_ns) / NS_PER_MS),
                  "value": fmt(node)}
        if not np.isfinite(node):
            return CheckResult(Level.OK, "rate not measured yet", {**values, "bound": "needs 2 messages"})
        lo, hi = self.expected_hz * (1 - c.rate_tolerance), self.expected_hz * (1 + c.rate_tolerance)
        if node < self.expected_hz * c.rate_error_fraction:
            return CheckResult(Level.ERROR, f"rate {node:.1f} Hz, expected {self.expected_hz:g} Hz",
                               {**values, "bound": f">= {self.expected_hz * c.rate_error_fraction:.3g} Hz"})
        if not (lo <= node <= hi):
            return CheckResult(Level.WARN, f"rate {node:.1f} Hz, expected {self.expected_hz:g} Hz "
                               f"+-{c.rate_tolerance * 100:.0f}%", {**values, "bound": f"[{lo:.3g}, {hi:.3g}] Hz"})
        return CheckResult(Level.OK, f"rate {node:.1f} Hz", {**values, "bound": f"[{lo:.3g}, {hi:.3g}] Hz"})

    def check_staleness(self, now_ns: int) -> CheckResult:
        """ERROR ("stale") when a sensor that delivered is silent longer than the timeout (STALE only before its
        first message); WARN when the header stamp lags the node clock too much."""
        if self.count == 0:
            return self._never()
        c = self.config
        age_ms = (int(now_ns) - self.last_recv_ns) / NS_PER_MS
        delay_ms = (int(now_ns) - self.last_stamp_ns) / NS_PER_MS
        values = {"value": fmt(age_ms), "bound": f"<= {c.stale_timeout_ms:g} ms", "age_ms": fmt(age_ms),
                  "current_delay_from_realtime_ms": fmt(delay_ms), "last_stamp_ns": str(self.last_stamp_ns)}
        if age_ms > c.stale_timeout_ms:
            return CheckResult(Level.ERROR, f"stale: no message for {age_ms:.0f} ms (timeout {c.stale_timeout_ms:g} ms)",
                               values)
        if delay_ms > c.max_delay_ms:
            return CheckResult(Level.WARN, f"data {delay_ms:.0f} ms behind the node clock",
                               {**values, "value": fmt(delay_ms), "bound": f"<= {c.max_delay_ms:g} ms"})
        return CheckResult(Level.OK, f"last message {age_ms:.0f} ms ago", values)

    def check_sync(self, skew_ms: float) -> CheckResult:
        """Stamp skew against the other sensors (this sensor's median delay minus the rig's median delay, ms)."""
        if self.count == 0:
            return self._never()
        c = self.config
        values = {"value": fmt(skew_ms), "bound": f"|x| <= {c.sync_warn_ms:g} ms",
                  "median_delay_ms": fmt(self.median_delay_ms())}
        if not np.isfinite(skew_ms):
            return CheckResult(Level.OK, "skew not measured (no other sensor)", values)
        where = "behind" if skew_ms > 0 else "ahead of"
        if abs(skew_ms) > c.sync_error_ms:
            return CheckResult(Level.ERROR, f"header stamps {abs(skew_ms):.0f} ms {where} the other sensors",
                               {**values, "bound": f"|x| <= {c.sync_error_ms:g} ms"})
        if abs(skew_ms) > c.sync_warn_ms:
            return CheckResult(Level.WARN, f"header stamps {abs(skew_ms):.0f} ms {where} the other sensors", values)
        return CheckResult(Level.OK, f"stamp skew {skew_ms:.0f} ms", values)

    def check_time_jump(self, now_ns: int) -> CheckResult:
        """WARN for one rate window after a time jump (stamps or node clock), then OK."""
        if self.count == 0:
            return self._never()
        if self._jump is not None:
            t, message, values = self._jump
            if 0 <= int(now_ns) - t <= self.config.rate_window_s * NS_PER_S:
                return CheckResult(Level.WARN, message, values)
        return CheckResult(Level.OK, "no time jump", {"value": "0", "bound": f"|x| <= {self.config.time_jump_ms:g} ms",
                                                      "resets": str(self.resets)})

    def results(self, now_ns: int, skew_ms: float = float("nan")) -> dict[str, CheckResult]:
        """All liveness checks at ``now_ns``."""
        return {"rate": self.check_rate(now_ns), "staleness": self.check_staleness(now_ns),
                "sync": self.check_sync(skew_ms), "time_jump": self.check_time_jump(now_ns)}


def stamp_skews_ms(median_delays_ms: dict[str, float]) -> dict[str, float]:
    """Each sensor's delay minus the median delay of all sensors with data (ms); nan where unknown.

    A sensor whose header stamps are offset (wrong clock, constant latency) has a delay
    (receive time - stamp) that differs from the rest of the rig by that offset.
    """
    finite = [v for v in median_delays_ms.values() if np.isfinite(v)]
    if len(finite) < 2:
        return {k: float("nan") for k in median_delays_ms}
    ref = float(np.median(finite))
    return {k: (v - ref if np.isfinite(v) else float("nan")) for k, v in median_delays_ms.items()}
