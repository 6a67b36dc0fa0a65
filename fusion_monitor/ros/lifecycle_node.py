"""Managed (lifecycle) variant of the fusion_monitor node.

on_configure builds the pipeline (model package and backend: the slow part, never on the road);
a bad model package logs a clear ERROR and the node stays unconfigured. on_activate subscribes,
creates the publishers, the diagnostics timer and the worker; on_deactivate stops them;
on_cleanup drops the pipeline. Transitions are driven by the standard lifecycle services
(~/change_state) or by :meth:`FusionMonitorLifecycleNode.autostart`.
"""

from __future__ import annotations

import sys

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from fusion_monitor.ros import params as P
from fusion_monitor.ros.node import MonitorCore, PipelineFactory


class FusionMonitorLifecycleNode(LifecycleNode):
    """Lifecycle node running :class:`MonitorCore` from its transitions."""

    def __init__(self, pipeline_factory: PipelineFactory | None = None, node_name: str = P.NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        self.core = MonitorCore(self, pipeline_factory)
        self.core.declare()
        self._active = False
        self.configure_error: str | None = None

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.core.configure()
        except Exception as e:  # ModelLoadError and friends: stay unconfigured, say why
            self.configure_error = f"{type(e).__name__}: {e}"
            self.get_logger().error(f"configure failed: {self.configure_error}")
            self.core.cleanup()
            return TransitionCallbackReturn.FAILURE
        self.configure_error = None
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.core.activate()
        self._active = True
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_core()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.core.cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_core()
        self.core.cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_core()
        self.core.cleanup()
        return TransitionCallbackReturn.SUCCESS

    def _stop_core(self) -> None:
        if self._active:
            self.core.deactivate()
            self._active = False

    def autostart(self) -> bool:
        """configure then activate; False (node left unconfigured) when configure fails."""
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            print(f"fusion_monitor: ERROR: configure failed: {self.configure_error}", file=sys.stderr, flush=True)
            return False
        return self.trigger_activate() == TransitionCallbackReturn.SUCCESS

    def shutdown(self) -> None:
        """Stop the worker and the decode threads (called by run_node before destroy_node)."""
        self._stop_core()
        self.core.close()
