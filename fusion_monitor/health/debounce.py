"""k-of-n debounce with hysteresis for one check's raw levels; resets on time jumps backwards."""

from __future__ import annotations

from collections import deque

from fusion_monitor.health.config import DebounceConfig
from fusion_monitor.health.status import Level


class Debouncer:
    """Turns a sequence of raw levels into a debounced level.

    Rules (``window`` = n, ``raise_count`` = k, ``clear_count`` = c):

    - the output rises to level L (WARN or ERROR) once at least k of the last n raw levels
      are >= L;
    - a raised level L is held until the last c raw levels are all below L (hysteresis), then
      falls to the highest level the k-of-n rule still supports;
    - STALE passes through at once and clears at once (it is "no data", not a judgement);
    - a stamp earlier than the previous one (bag loop, clock reset) clears the window and the
      output (``resets`` counts it) instead of mixing two timelines.

    Parameters
    ----------
    config : DebounceConfig
    """

    def __init__(self, config: DebounceConfig | None = None):
        self.config = config or DebounceConfig()
        self._raw: deque[Level] = deque(maxlen=max(self.config.window, self.config.clear_count))
        self.level = Level.OK
        self.last_stamp_ns: int | None = None
        self.resets = 0

    def reset(self) -> None:
        """Forget the window and the raised level."""
        self._raw.clear()
        self.level = Level.OK
        self.last_stamp_ns = None

    def _supported(self) -> Level:
        win = list(self._raw)[-self.config.window:]
        for lv in (Level.ERROR, Level.WARN):
            if sum(1 for r in win if r >= lv and r != Level.STALE) >= self.config.raise_count:
                return lv
        return Level.OK

    def update(self, raw: Level | int, stamp_ns: int) -> Level:
        """Feed one raw level observed at ``stamp_ns`` (ns); returns the debounced level."""
        raw = Level(int(raw))
        stamp_ns = int(stamp_ns)
        if self.last_stamp_ns is not None and stamp_ns < self.last_stamp_ns:
            self.reset()
            self.resets += 1
        self.last_stamp_ns = stamp_ns
        if raw == Level.STALE:
            self._raw.clear()
            self.level = Level.STALE
            return self.level
        if self.level == Level.STALE:
            self.level = Level.OK
        self._raw.append(raw)
        supported = self._supported()
        if supported > self.level:
            self.level = supported
        elif self.level > Level.OK:
            tail = list(self._raw)[-self.config.clear_count:]
            if len(tail) >= self.config.clear_count and all(r < self.level for r in tail):
                self.level = Level(min(supported, max(tail)))
        return self.level
