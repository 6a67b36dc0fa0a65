"""The README's bootstrap (run.sh): idempotent, and clear about what is missing."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUN = REPO / "run.sh"


def _clean_env(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV"))}
    env.update(extra)
    return env


def test_second_run_installs_nothing():
    # the venv running this test was bootstrapped by run.sh: a second bootstrap must be a no-op
    t0 = time.monotonic()
    res = subprocess.run([str(RUN), "exec", "python", "-c", "import fusion_monitor, rclpy, torch, onnxruntime"],
                         capture_output=True, text=True, timeout=300)
    elapsed = time.monotonic() - t0
    assert res.returncode == 0, res.stderr
    assert "installing" not in res.stderr, res.stderr
    assert "creating the project venv" not in res.stderr
    assert elapsed < 60, f"no-op bootstrap took {elapsed:.1f}s"


def test_exec_sets_localhost_ros_environment():
    code = "import os; print(os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'], os.environ['ROS_DOMAIN_ID'], " \
           "os.environ['FASTDDS_DEFAULT_PROFILES_FILE'], os.environ.get('RMW_IMPLEMENTATION'))"
    res = subprocess.run([str(RUN), "exec", "python", "-c", code], capture_output=True, text=True, timeout=300,
                         env=_clean_env(RMW_IMPLEMENTATION="rmw_cyclonedds_cpp", ROS_DOMAIN_ID=""))
    assert res.returncode == 0, res.stderr
    rng, domain, profile, rmw = res.stdout.split()
    assert rng == "LOCALHOST"
    assert 1 <= int(domain) <= 101
    assert Path(profile) == REPO / "config" / "fastdds_large_messages.xml" and Path(profile).is_file()
    assert rmw == "None", "a non-Fast-DDS RMW makes rclpy.init() exit the process"


def test_wrong_python_gives_one_clear_message(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in ("bash", "cat", "sha256sum", "cut", "head", "dirname", "env"):
        src = shutil.which(tool)
        assert src, tool
        (fake / tool).symlink_to(src)
    py = fake / "python3"
    py.write_text("#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'Python 3.9.2'; exit 0; fi\nexit 1\n")
    py.chmod(0o755)
    res = subprocess.run([str(fake / "bash"), str(RUN), "test"], capture_output=True, text=True, timeout=60,
                         env=_clean_env(PATH=str(fake), FUSION_MONITOR_VENV=str(tmp_path / "venv")))
    assert res.returncode != 0
    assert "Python 3.11 is required" in res.stderr
    assert "Python 3.9.2" in res.stderr
    assert not (tmp_path / "venv").exists()


@pytest.mark.slow
def test_unreachable_registry_gives_one_clear_message(tmp_path):
    env = _clean_env(FUSION_MONITOR_VENV=str(tmp_path / "venv"), PIP_CONFIG_FILE=os.devnull,
                     PIP_INDEX_URL="http://127.0.0.1:9/simple", PIP_NO_CACHE_DIR="1")
    res = subprocess.run([str(RUN), "test"], capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode != 0
    assert "could not install the pinned dependencies" in res.stderr
    assert "registry" in res.stderr
    assert not (tmp_path / "venv" / ".fusion_monitor-installed").exists()
