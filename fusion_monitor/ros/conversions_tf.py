"""Live tf (tf2_ros) -> 4x4 transforms and a TransformTree, where a ROS install provides tf2.

tf2_ros / tf2_msgs have no PyPI wheel, so on a plain venv :func:`tf2_available` is False and
the node falls back to the rig profile (plus /tf_static read from bags). Lookups happen at
the message stamp with a timeout; every failure is reported per sensor, never swallowed.
"""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace
from typing import Any

import numpy as np

from fusion_monitor.sensors.calibration import StampedTransform, TransformTree, tf_message_to_transforms
from fusion_monitor.sensors.errors import MessageError
from fusion_monitor.sensors.rig import CalibrationError, Rig


def tf2_available() -> bool:
    """True when tf2_ros can be imported (a ROS install, not the PyPI wheels)."""
    return importlib.util.find_spec("tf2_ros") is not None


class LiveTf:
    """A tf2 buffer and listener on ``node``; lookups return 4x4 ``T_target_source``.

    Parameters
    ----------
    node : rclpy.node.Node
        The node that subscribes /tf and /tf_static.
    cache_time_s : float
        tf buffer length.
    """

    def __init__(self, node: Any, cache_time_s: float = 10.0):
        if not tf2_available():
            raise ImportError("tf2_ros is not installed (no PyPI wheel): use the rig profile or /tf_static from bags")
        import tf2_ros
        from rclpy.duration import Duration

        self._tf2 = tf2_ros
        self.buffer = tf2_ros.Buffer(cache_time=Duration(seconds=cache_time_s))
        self.listener = tf2_ros.TransformListener(self.buffer, node, spin_thread=False)

    def lookup(self, target: str, source: str, stamp_ns: int | None = None, timeout_s: float = 0.05) -> np.ndarray:
        """``T_target_source`` at ``stamp_ns`` (None: latest); CalibrationError(source, reason) on failure."""
        from rclpy.duration import Duration
        from rclpy.time import Time

        when = Time() if stamp_ns is None else Time(nanoseconds=int(stamp_ns))
        try:
            ts = self.buffer.lookup_transform(target, source, when, timeout=Duration(seconds=timeout_s))
        except self._tf2.TransformException as e:
            raise CalibrationError(source, f"tf lookup {target} <- {source} failed: {e}") from None
        try:
            [t] = tf_message_to_transforms(SimpleNamespace(transforms=[ts]))
        except MessageError as e:
            raise CalibrationError(source, e.reason) from None
        return t.T_parent_child

    def rig_tree(self, rig: Rig, stamp_ns: int | None = None, timeout_s: float = 0.05) -> tuple[TransformTree, dict]:
        """base_frame -> each sensor frame from live tf, for :func:`check_extrinsics`; failures per sensor."""
        tree = TransformTree()
        errors = {}
        for name, spec in rig.sensors.items():
            try:
                T = self.lookup(rig.base_frame, spec.frame_id, stamp_ns, timeout_s)
            except CalibrationError as e:
                errors[name] = e.reason
                continue
            tree.add(StampedTransform(rig.base_frame, spec.frame_id, int(stamp_ns or 0), T))
        return tree, errors
