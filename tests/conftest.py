"""Shared test fixtures: layer markers, real data location, GPU skips."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _gpu_reason() -> str | None:
    """None when a CUDA device and TensorRT are usable, else why not."""
    try:
        import torch

        if not torch.cuda.is_available():
            return "no CUDA device on this machine"
    except Exception as e:  # pragma: no cover - torch is a hard dependency
        return f"torch unavailable: {e}"
    try:
        import tensorrt  # noqa: F401
    except Exception:
        return "TensorRT is not installed (cannot be installed here)"
    return None


def pytest_collection_modifyitems(config, items):
    reason = None
    for item in items:
        if "gpu" in item.keywords:
            if reason is None:
                reason = _gpu_reason() or ""
            if reason:
                item.add_marker(pytest.mark.skip(reason=f"gpu test skipped: {reason}"))


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The folder of real nuScenes / View-of-Delft / KITTI samples, or a visible skip."""
    value = os.environ.get("FUSION_MONITOR_REAL_DATA")
    if not value:
        pytest.skip("FUSION_MONITOR_REAL_DATA is not set (CI sets it to ../shared/data/real)")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"FUSION_MONITOR_REAL_DATA={value} is not a folder")
    return path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture
def ros_env(monkeypatch) -> dict[str, str]:
    """Environment for child processes that talk DDS: localhost only, this run's private domain."""
    env = dict(os.environ)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))
    env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds_large_messages.xml"))
    env.pop("RMW_IMPLEMENTATION", None)
    env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env
