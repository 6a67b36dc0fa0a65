"""Fixtures of the ROS tests: rclpy in the test process on the children's private DDS domain."""

from __future__ import annotations

import pytest
from rosproc import Listener, child_env


@pytest.fixture
def ros_ctx(ros_env, monkeypatch):
    """rclpy initialised in the test process on the children's DDS domain; yields the env for children."""
    import rclpy

    for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID", "FASTDDS_DEFAULT_PROFILES_FILE"):
        monkeypatch.setenv(k, ros_env[k])
    monkeypatch.delenv("RMW_IMPLEMENTATION", raising=False)
    rclpy.init()
    try:
        yield child_env(ros_env)
    finally:
        rclpy.shutdown()


@pytest.fixture
def listener(ros_ctx):
    lst = Listener()
    try:
        yield lst
    finally:
        lst.close()
