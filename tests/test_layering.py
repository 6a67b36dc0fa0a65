"""Only fusion_monitor.ros may import rclpy or a *_msgs package (design.md layering)."""

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import fusion_monitor

PKG = Path(fusion_monitor.__file__).parent


def _is_ros(name: str) -> bool:
    top = name.split(".")[0]
    return top == "rclpy" or top.endswith("_msgs")


def _core_modules() -> list[str]:
    mods = []
    for info in pkgutil.walk_packages([str(PKG)], prefix="fusion_monitor."):
        if info.name == "fusion_monitor.ros" or info.name.startswith("fusion_monitor.ros."):
            continue
        mods.append(info.name)
    return mods


def test_no_ros_import_statements_outside_ros_package():
    offenders = []
    for path in PKG.rglob("*.py"):
        if (PKG / "ros") in path.parents:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.relative_to(PKG.parent)}:{node.lineno} imports {n}" for n in names if _is_ros(n)]
    assert not offenders, "\n".join(offenders)


def test_importing_the_core_loads_no_ros_module():
    mods = _core_modules()
    assert "fusion_monitor.tools.cli" in mods
    code = (
        "import importlib, json, sys\n"
        f"mods = {mods!r}\n"
        "failed = {}\n"
        "for m in mods:\n"
        "    try:\n"
        "        importlib.import_module(m)\n"
        "    except Exception as e:\n"
        "        failed[m] = repr(e)\n"
        "ros = sorted(n for n in sys.modules if n.split('.')[0] == 'rclpy' or n.split('.')[0].endswith('_msgs'))\n"
        "print(json.dumps({'ros': ros, 'failed': failed}))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["failed"] == {}, report["failed"]
    assert report["ros"] == [], f"core modules pulled in ROS: {report['ros']}"
