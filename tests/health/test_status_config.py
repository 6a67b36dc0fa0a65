"""Levels, status names and the parameter config (validation, flat io for ROS parameters)."""

from __future__ import annotations

import pytest

from fusion_monitor.health import CheckResult, HealthConfig, Level, SensorStatus, describe, status_name, summarize
from fusion_monitor.health.config import CameraCheckConfig, DebounceConfig, LidarCheckConfig


def test_levels_match_diagnostic_msgs_bytes():
    assert [int(v) for v in (Level.OK, Level.WARN, Level.ERROR, Level.STALE)] == [0, 1, 2, 3]


def test_status_name_and_fields():
    st = SensorStatus.from_result("fusion_monitor", "CAM_FRONT", "staleness",
                                  CheckResult(Level.WARN, "late", {"value": 1.5, "bound": "<= 1"}))
    assert st.name == "fusion_monitor: CAM_FRONT/staleness"
    assert st.hardware_id == "CAM_FRONT" and st.message.startswith("CAM_FRONT: ")
    assert st.values == {"value": "1.5", "bound": "<= 1"}  # strings, like KeyValue
    with pytest.raises(ValueError, match="check"):
        status_name("n", "s", "")


def test_debounced_level_differs_from_raw_is_visible():
    st = SensorStatus.from_result("n", "s", "c", CheckResult(Level.ERROR, "x"), level=Level.OK)
    assert st.level == Level.OK and st.values["raw_level"] == "ERROR"


def test_flat_dict_round_trip_and_every_parameter_documented():
    cfg = HealthConfig()
    flat = cfg.to_dict()
    assert all(k.startswith("health.") and k.count(".") == 2 for k in flat)
    assert HealthConfig.from_dict(flat) == cfg
    docs = describe()
    assert {d.name for d in docs} == set(flat)
    assert all(d.description for d in docs)


def test_from_dict_validates_with_named_errors():
    with pytest.raises(KeyError, match="health.camera.nonsense"):
        HealthConfig.from_dict({"health.camera.nonsense": 1})
    with pytest.raises(ValueError, match="dark_threshold"):
        HealthConfig.from_dict({"health.camera.dark_threshold": 1.5})
    with pytest.raises(TypeError, match="window"):
        HealthConfig.from_dict({"health.debounce.window": "five"})
    with pytest.raises(ValueError, match="raise_count"):
        DebounceConfig(window=3, raise_count=4)
    with pytest.raises(ValueError, match="ego_box_m"):
        LidarCheckConfig(ego_box_m="1,2,3")


def test_legacy_parameter_names_are_accepted():
    cfg = HealthConfig.from_dict({"health.stale_timeout_ms": 500.0, "health.debounce_frames": 2,
                                  "health.camera.dark_threshold": 0.2})
    assert cfg.liveness.stale_timeout_ms == 500.0
    assert cfg.debounce.raise_count == 2
    assert cfg.camera == CameraCheckConfig(dark_threshold=0.2)


def test_replace_changes_one_threshold():
    cfg = HealthConfig().replace(**{"lidar.min_points": 100})
    assert cfg.lidar.min_points == 100 and cfg.camera == HealthConfig().camera


def test_summarize_lists_alerts_and_worst():
    sts = [SensorStatus.from_result("n", "A", "x", CheckResult(Level.OK, "ok")),
           SensorStatus.from_result("n", "B", "y", CheckResult(Level.ERROR, "bad"))]
    out = summarize(sts)
    assert out["worst"] == "ERROR" and out["alerts"] == ["n: B/y"] and out["counts"]["OK"] == 1
