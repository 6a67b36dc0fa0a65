"""Helpers for the node/player tests: child processes over real DDS and an in-test listener node.

The test process joins the children's private DDS domain (``ros_ctx``) and records what the
node publishes with a :class:`Listener` spinning in a background thread. Every child is ended
by its own pid in a finally.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def node_cmd(*extra: str, fake: bool = True, lifecycle: bool = False, autostart: bool = False) -> list[str]:
    cmd = [sys.executable, "-m", "fusion_monitor.ros.node_main"]
    if fake:
        cmd += ["--pipeline-factory", "fake_pipeline:make"]
    if lifecycle:
        cmd.append("--lifecycle")
    if autostart:
        cmd.append("--autostart")
    return cmd + list(extra)


def play_cmd(bag: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "fusion_monitor.ros.play", str(bag), *extra]


def child_env(ros_env: dict[str, str]) -> dict[str, str]:
    env = dict(ros_env)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 20.0) -> tuple[int, str, str]:
    """Send ``sig`` to the child (by pid), wait, kill if it hangs; return (code, stdout, stderr)."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return proc.returncode, out, err


class Listener:
    """A node in the test process recording messages per topic with the time they arrived."""

    def __init__(self, name: str = "fm_test_listener"):
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node

        self.node = Node(name)
        self.msgs: dict[str, list] = defaultdict(list)
        self.lock = threading.Lock()
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        self._subs = []
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._running = True
        self._thread.start()

    def _spin(self) -> None:
        while self._running:
            try:
                self._executor.spin_once(timeout_sec=0.05)
            except Exception:  # context shut down under us at teardown
                return

    def subscribe(self, msg_type, topic: str, qos=None) -> None:
        from fusion_monitor.ros.qos import OUTPUT_QOS

        def cb(msg, topic=topic):
            with self.lock:
                self.msgs[topic].append(msg)

        self._subs.append(self.node.create_subscription(msg_type, topic, cb, qos or OUTPUT_QOS))

    def get(self, topic: str) -> list:
        with self.lock:
            return list(self.msgs[topic])

    def wait_for(self, pred, timeout: float, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def wait_publisher(self, topic: str, timeout: float = 60.0) -> None:
        self.wait_for(lambda: self.node.count_publishers(topic) > 0, timeout, f"a publisher on {topic}")

    def node_names(self) -> set[str]:
        return set(self.node.get_node_names())

    def wait_node(self, name: str, present: bool = True, timeout: float = 60.0) -> None:
        """Wait until a node called ``name`` is (or is no longer) in the graph."""
        self.wait_for(lambda: (name in self.node_names()) == present, timeout,
                      f"node {name} to {'appear' if present else 'leave the graph'}")

    def call(self, srv_type, name: str, request, timeout: float = 30.0, attempts: int = 3):
        """Call a service; a request lost while discovery settles is retried (services are idempotent here)."""
        client = self.node.create_client(srv_type, name)
        try:
            for _attempt in range(attempts):
                if not client.wait_for_service(timeout_sec=timeout):
                    raise AssertionError(f"service {name} not available")
                fut = client.call_async(request)
                deadline = time.monotonic() + timeout / attempts
                while not fut.done() and time.monotonic() < deadline:
                    time.sleep(0.05)
                if fut.done():
                    return fut.result()
                client.remove_pending_request(fut)
            raise AssertionError(f"no reply from {name} after {attempts} attempts")
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=5)
        self._executor.remove_node(self.node)
        self.node.destroy_node()


