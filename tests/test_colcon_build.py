"""A ROS user can colcon-build the package: ros2_ws/src/fusion_monitor links back to the repo root."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns(".venv", ".git", "build", "install", "log", "__pycache__", "*.egg-info",
                                ".pytest_cache", ".ruff_cache", ".hypothesis", "models", "demo_out",
                                ".cache")  # benchmarks/.cache holds GBs of evaluation bags


def test_workspace_links_back_to_root():
    link = REPO / "ros2_ws" / "src" / "fusion_monitor"
    assert link.is_symlink()
    assert link.resolve() == REPO


@pytest.mark.slow
def test_colcon_build_installs_runnable_node(tmp_path):
    copy = tmp_path / "fusion_monitor"
    shutil.copytree(REPO, copy, symlinks=True, ignore=IGNORE)
    ws = copy / "ros2_ws"
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)
    res = subprocess.run(["colcon", "--log-base", str(tmp_path / "log"), "build"], cwd=ws, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    exe = ws / "install" / "fusion_monitor" / "lib" / "fusion_monitor" / "fusion_monitor_node"
    assert exe.is_file(), sorted(p.name for p in (ws / "install").rglob("*"))[:50]
    assert (ws / "install" / "fusion_monitor" / "share" / "fusion_monitor" / "package.xml").is_file()
    assert (ws / "install" / "fusion_monitor" / "share" / "ament_index" / "resource_index" / "packages"
            / "fusion_monitor").is_file()
    # the installed executable runs from the install space (not the source tree)
    env_run = dict(env)
    site = sorted((ws / "install" / "fusion_monitor" / "lib").glob("python3*/site-packages"))
    assert site, "colcon installed no Python package"
    env_run["PYTHONPATH"] = str(site[0])
    help_res = subprocess.run([sys.executable, str(exe), "--help"], cwd=tmp_path, env=env_run,
                              capture_output=True, text=True, timeout=120)
    assert help_res.returncode == 0, help_res.stderr
    assert "fusion_monitor live node" in help_res.stdout
    assert "--params" in help_res.stdout
