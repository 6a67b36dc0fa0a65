"""The one exception type for bad sensor input: which sensor, and why (turned into a diagnostic)."""

from __future__ import annotations


class MessageError(ValueError):
    """A sensor message (or file) cannot be turned into numpy data.

    Parameters
    ----------
    sensor : str
        Sensor or frame the message came from (``header.frame_id`` or a topic); ``"?"`` if unknown.
    reason : str
        One line saying what is wrong, naming the bad value.

    Notes
    -----
    A subclass of ValueError so callers that only know "bad value" still catch it. The
    pipeline catches ``MessageError`` without importing ROS and reports ``sensor``/``reason``
    on /diagnostics.
    """

    def __init__(self, sensor: str, reason: str):
        sensor = str(sensor) if sensor is not None else "?"
        super().__init__(f"{sensor}: {reason}")
        self.sensor = sensor
        self.reason = reason

    def __reduce__(self):  # picklable across processes (Ray workers)
        return (type(self), (self.sensor, self.reason))
