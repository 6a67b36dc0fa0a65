"""The `fusion-monitor` console script: help, version, unknown verbs."""

import subprocess
import sys
from pathlib import Path

import fusion_monitor
from fusion_monitor.tools import cli

EXE = Path(sys.executable).with_name("fusion-monitor")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=120)


def test_help_lists_every_registered_subcommand():
    res = run("--help")
    assert res.returncode == 0, res.stderr
    for name in cli.SUBCOMMANDS:
        assert name in res.stdout
    for verb in ("demo", "replay", "node", "play", "export", "simulate", "inject", "calibrate", "evaluate"):
        assert verb in cli.SUBCOMMANDS, f"design.md verb {verb} is not registered"


def test_version_matches_package():
    res = run("--version")
    assert res.returncode == 0
    assert res.stdout.strip() == f"fusion-monitor {fusion_monitor.__version__}"


def test_unknown_subcommand_is_an_error():
    res = run("no-such-verb")
    assert res.returncode == 2
    assert "invalid choice" in res.stderr


def test_duplicate_registration_refused():
    try:
        cli.register("demo", "x", "y")
    except ValueError as e:
        assert "already registered" in str(e)
    else:
        raise AssertionError("duplicate subcommand accepted")
