"""Frozen-data check of LiDAR sweeps and radar scans: the same payload re-sent under fresh stamps.

A hung driver or a stuck buffer keeps publishing its last sweep at the nominal rate, so liveness, rate and
every per-message statistic stay nominal. A real LiDAR never returns two bit-identical sweeps (range noise
on every point), nor a radar two identical target lists with several targets (positions, RCS and
velocities jitter from scan to scan), so the check compares a CRC-32 of the whole point payload, its
shape and dtype, with the previous message's (0.15 ms for a 32k-point sweep).
"""

from __future__ import annotations

import zlib

import numpy as np

from fusion_monitor.health.status import CheckResult, Level


def payload_digest(points: np.ndarray) -> tuple:
    """(shape, dtype, CRC-32 of the bytes) of an array: equal for bit-identical payloads."""
    a = np.ascontiguousarray(points)
    return a.shape, a.dtype.str, zlib.crc32(memoryview(a).cast("B"))


class RepeatCounter:
    """Counts consecutive messages whose payload is bit-identical to the previous one.

    Parameters
    ----------
    what : str
        Message noun for the status text ("sweeps", "scans").
    warn, error : int
        Consecutive repeats (identical messages after the first) that raise WARN / ERROR.
    min_items : int
        Messages with fewer points / targets are not judged (a radar may legitimately report the same
        short list, e.g. nothing, twice); they also break a run.
    """

    def __init__(self, what: str, warn: int, error: int, min_items: int = 1):
        self.what, self.warn, self.error, self.min_items = what, int(warn), int(error), int(min_items)
        self.reset()

    def reset(self) -> None:
        self._prev: tuple | None = None
        self.repeats = 0

    def update(self, points: np.ndarray, n_items: int) -> CheckResult:
        """One message (its points and how many items it holds) -> the frozen check's result."""
        v = {"bound": f"< {self.warn} repeats", "min_items": str(self.min_items)}
        if n_items < self.min_items:
            self._prev, self.repeats = None, 0
            return CheckResult(Level.OK, f"frozen not judged ({n_items} < {self.min_items})",
                               {**v, "value": "nan", "repeats": "0"})
        digest = payload_digest(points)
        self.repeats = self.repeats + 1 if digest == self._prev else 0
        self._prev = digest
        v.update(value=str(self.repeats), repeats=str(self.repeats))
        if self.repeats >= self.warn:
            level = Level.ERROR if self.repeats >= self.error else Level.WARN
            return CheckResult(level, f"frozen: {self.repeats + 1} identical {self.what} in a row (the data stopped "
                               "updating while messages keep arriving)", v)
        return CheckResult(Level.OK, f"{self.what} updating", v)
