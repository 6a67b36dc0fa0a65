"""`fusion-monitor calibrate`: attribution baseline from nominal drives; bad input fails before any processing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from fusion_monitor.bagio import BagError
from fusion_monitor.health import (
    Baseline,
    BaselineMismatch,
    HealthConfig,
    HealthMonitor,
    fit_baseline,
    load_baseline,
    model_identity,
)
from fusion_monitor.pipeline import DEFAULT_PACKAGE, ModelLoadError
from fusion_monitor.sensors.rig import load_rig
from fusion_monitor.tools import calibrate as cal
from fusion_monitor.tools.cli import main

PACKAGE = Path(os.environ.get("FUSION_MONITOR_TEST_PACKAGE", DEFAULT_PACKAGE))
needs_package = pytest.mark.skipif(not PACKAGE.is_dir(),
                                   reason=f"model package {PACKAGE} missing (set FUSION_MONITOR_TEST_PACKAGE)")


def empty_bag(path: Path, topic: str = "/LIDAR_TOP") -> Path:
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        w.add_connection(topic, "sensor_msgs/msg/PointCloud2", typestore=get_typestore(Stores.ROS2_KILTED))
    return path


def baseline_for(model_id: str, sensors) -> Baseline:
    rows = [{"det.camera": 0.3 + 0.01 * (i % 3), "det.lidar": 0.5, "det.radar": 0.2} for i in range(30)]
    return fit_baseline(rows, model_id, sensors, ("camera", "radar", "lidar"))


@pytest.fixture(scope="module")
def rig():
    return load_rig()


def test_model_identity_names_package_and_graph_hash():
    assert model_identity("reference", "ab" * 32) == "reference@" + "ab" * 8
    with pytest.raises(ValueError, match="toy"):
        model_identity("toy", "")


def test_baseline_file_is_checked_against_sensors_and_model(tmp_path, rig):
    good = tmp_path / "good.yaml"
    baseline_for("pkg@1", rig.sensors).to_yaml(good)
    cfg = HealthConfig().replace(**{"attribution.baseline_file": str(good)})
    assert HealthMonitor(rig, cfg, model_id="pkg@1").baseline.model_id == "pkg@1"
    with pytest.raises(BaselineMismatch, match="pkg@2"):
        HealthMonitor(rig, cfg, model_id="pkg@2")
    other = tmp_path / "other.yaml"
    baseline_for("pkg@1", [*rig.sensors, "RADAR_ROOF"]).to_yaml(other)
    with pytest.raises(BaselineMismatch, match="RADAR_ROOF"):
        HealthMonitor(rig, HealthConfig().replace(**{"attribution.baseline_file": str(other)}))
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_baseline(tmp_path / "nope.yaml", rig.sensors)
    junk = tmp_path / "junk.yaml"
    junk.write_text(yaml.safe_dump({"format": 1, "model_id": "x"}))
    with pytest.raises(ValueError, match="junk.yaml"):
        load_baseline(junk, rig.sensors)


@needs_package
def test_empty_or_foreign_bags_fail_before_any_replay(tmp_path, monkeypatch):
    import fusion_monitor.tools.replay as replay

    def boom(*a, **k):
        raise AssertionError("replay must not start")

    monkeypatch.setattr(replay, "replay_bag", boom)
    with pytest.raises(BagError, match="no messages"):
        cal.calibrate([empty_bag(tmp_path / "empty")], tmp_path / "b.yaml", model=str(PACKAGE))
    with pytest.raises(BagError, match="none of the rig"):
        cal.check_calibration_bag(empty_bag(tmp_path / "foreign", "/camera/points"), {"/LIDAR_TOP"})
    assert not (tmp_path / "b.yaml").exists()


def test_cli_reports_a_missing_model_and_writes_nothing(tmp_path, capsys):
    rc = main(["calibrate", str(tmp_path), "--out", str(tmp_path / "b.yaml"), "--model", str(tmp_path / "nopkg")])
    assert rc == 2 and "nopkg" in capsys.readouterr().err
    assert not (tmp_path / "b.yaml").exists()


@needs_package
def test_calibrate_fits_a_baseline_the_monitor_accepts(sim_bag, tmp_path, rig):
    out = tmp_path / "baseline.yaml"
    try:
        b = cal.calibrate([sim_bag], out, model=str(PACKAGE), min_frames=5, save_frames=tmp_path / "frames.jsonl")
    except ValueError as e:
        if "share statistic" in str(e) or "only" in str(e):
            pytest.skip(f"{PACKAGE} gives too few confirmed detections to calibrate on 3 s ({e}); untrained package?")
        raise
    loaded = load_baseline(out, rig.sensors, b.model_id)
    assert loaded.model_id.startswith(PACKAGE.name + "@") and set(loaded.sensors) == set(rig.sensors)
    assert loaded.n_frames >= 20 and all(v > 0 for v in loaded.std.values())
    modalities = {k.split(".", 1)[1] for k in loaded.mean}
    assert {f"bev.{m}" for m in modalities} <= set(loaded.mean)  # shares over the BEV, not only per detection
    assert set(loaded.block_std) <= set(loaded.mean) and loaded.block_frames >= 1
    with pytest.raises(ModelLoadError):
        cal.calibrate([sim_bag], tmp_path / "x.yaml", model=str(tmp_path / "missing"))
    # the saved statistics refit the same baseline without a replay (e.g. with another min_std)
    assert main(["calibrate", "--from-frames", str(tmp_path / "frames.jsonl"), "--out", str(tmp_path / "r.yaml"),
                 "--min-frames", "5"]) == 0
    assert Baseline.from_yaml(tmp_path / "r.yaml") == b


def test_refit_names_the_file_and_line_of_a_bad_save(tmp_path, capsys):
    bad = tmp_path / "frames.jsonl"
    bad.write_text('{"model_id": "m@1", "sensors": ["LIDAR_TOP"], "modalities": ["lidar"], "block_frames": 20, '
                   '"cusum_k": 1.0}\n{"drive": 0, "det.lidar": 0.4}\n{"det.lidar": 0.5}\n')
    rc = main(["calibrate", "--from-frames", str(bad), "--out", str(tmp_path / "b.yaml")])
    err = capsys.readouterr().err
    assert rc == 2 and "frames.jsonl" in err and "line 3" in err and not (tmp_path / "b.yaml").exists()
    bad.write_text("not json\n")
    with pytest.raises(ValueError, match="line 1"):
        cal.refit(bad, tmp_path / "b.yaml")
    assert main(["calibrate", "--out", str(tmp_path / "b.yaml")]) == 2  # neither bags nor saved frames


def test_frame_shares_read_back_from_the_contribution_statuses():
    rec = {"statuses": [
        {"name": "fusion_monitor: lidar/contribution", "hardware_id": "lidar",
         "values": {"frame_det_share": "0.41", "frame_bev_share": "0.37"}},
        {"name": "fusion_monitor: camera/contribution", "hardware_id": "camera",
         "values": {"frame_det_share": "nan", "frame_bev_share": "0.02"}},
        {"name": "fusion_monitor: LIDAR_TOP/point_count", "hardware_id": "LIDAR_TOP", "values": {"value": "3"}}]}
    got = cal.frame_shares(rec, ("camera", "lidar", "radar"))
    assert got["det.lidar"] == 0.41 and got["bev.lidar"] == 0.37 and got["bev.camera"] == 0.02
    assert all(v != v for k, v in got.items() if k in ("det.camera", "det.radar", "bev.radar"))
