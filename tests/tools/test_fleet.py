"""Many bags: local worker processes and Ray; resumable; one broken bag never stops the others."""

import json
import os
import shutil
from pathlib import Path

import pytest

from fusion_monitor.pipeline import DEFAULT_PACKAGE
from fusion_monitor.tools.fleet import run_fleet
from fusion_monitor.tools.replay import replay_bag

PACKAGE = str(Path(os.environ.get("FUSION_MONITOR_TEST_PACKAGE", DEFAULT_PACKAGE)))


@pytest.fixture
def bags(sim_bag, faulted_bag, tmp_path):
    broken = tmp_path / "broken_bag"
    broken.mkdir()
    (broken / "broken_bag.mcap").write_bytes(b"\x89MCAP0\r\n" + os.urandom(4096))
    return [str(sim_bag), str(broken), str(faulted_bag)]


def _check(outcomes, out, bags):
    assert [o.bag for o in outcomes] == bags
    status = {Path(o.bag).name: o for o in outcomes}
    assert status["drive3s"].status == "ok"
    assert status["drive3s_faulted"].status == "ok"
    assert status["broken_bag"].status == "failed" and "broken_bag" in status["broken_bag"].reason
    fleet = json.loads((out / "fleet.json").read_text())
    assert fleet["failed"] == 1
    row = next(r for r in fleet["bags"] if r["bag"].endswith("drive3s_faulted"))
    assert row["health"]["fusion_monitor: CAM_FRONT/exposure"]["worst_level"] == 2
    assert (out / "drive3s" / "report.html").is_file()


@pytest.mark.slow
def test_local_workers_and_resume(bags, tmp_path):
    out = tmp_path / "fleet"
    outcomes = run_fleet(replay_bag, bags, out, workers=2, model=PACKAGE)
    _check(outcomes, out, bags)
    # resume: complete bags are skipped, the failed one is tried again
    again = run_fleet(replay_bag, bags, out, workers=2, model=PACKAGE)
    assert [o.status for o in again] == ["skipped", "failed", "skipped"]
    # an incomplete output (no result.json) is redone
    (out / "drive3s" / "result.json").unlink()
    third = run_fleet(replay_bag, bags, out, workers=1, model=PACKAGE)
    assert [o.status for o in third] == ["ok", "failed", "skipped"]


@pytest.mark.slow
def test_ray_local_two_workers(bags, tmp_path):
    pytest.importorskip("ray", reason="ray is not installed")
    out = tmp_path / "fleet_ray"
    outcomes = run_fleet(replay_bag, bags, out, workers=2, ray_address="local", model=PACKAGE)
    _check(outcomes, out, bags)
    shutil.rmtree(out)
