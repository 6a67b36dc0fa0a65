"""Parameter table, config files and the message builders (FrameResult -> standard messages); no DDS."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml

from fusion_monitor.frame import BevGrid, Detection, FrameResult
from fusion_monitor.ros import params as P

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def _result(dets=None, stamp_ns=1_700_000_000_123_000_000):
    dets = dets if dets is not None else [
        Detection(7, "car", 0.82, (10.0, 2.0, 0.8), (4.5, 1.9, 1.6), math.pi / 2, (3.0, 0.5),
                  {"camera": 0.45, "lidar": 0.40, "radar": 0.10, "bias": 0.05}),
        Detection(9, "pedestrian", 0.41, (5.0, -1.0, 0.9), (0.7, 0.7, 1.8), 0.0, (0.0, 0.0),
                  {"camera": 0.1, "lidar": 0.2, "radar": 0.6, "bias": 0.1}),
    ]
    grid = BevGrid(x_min_m=-4.0, y_min_m=-2.0, cell_m=0.5, rows=16, cols=8)
    lidar = np.zeros((16, 8), np.float32)
    lidar[15, 0] = 2.0  # x = +3.75 m, y = -1.75 m
    maps = {"lidar": lidar, "camera": np.full((16, 8), 0.5, np.float32), "radar": -np.ones((16, 8), np.float32)}
    return FrameResult(stamp_ns, "LIDAR_TOP", dets, maps, grid, [], {}, {"inference": 3.0, "total": 4.0}, [])


# ---- parameters and config files -----------------------------------------------------------------
def test_committed_param_files_are_generated_from_the_table():
    assert (REPO / "config/fusion_monitor.param.yaml").read_text() == P.param_yaml(), \
        "run: python -m fusion_monitor.ros.params --write-config config/"
    assert (REPO / "config/fusion_monitor.param.schema.json").read_text() == P.schema_text()


def test_param_yaml_matches_schema_and_defaults():
    jsonschema = pytest.importorskip("jsonschema")
    data = yaml.safe_load((REPO / "config/fusion_monitor.param.yaml").read_text())
    jsonschema.validate(data, json.loads(P.schema_text()))
    assert P.flatten(data["/**"]["ros__parameters"]) == P.defaults()
    bad = json.loads(json.dumps(data))
    bad["/**"]["ros__parameters"]["trigger"]["rate_hz"] = 1000.0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json.loads(P.schema_text()))


def test_every_parameter_is_described_typed_and_bounded():
    from rcl_interfaces.msg import ParameterType

    from fusion_monitor.ros.node import descriptor_of

    for spec in P.PARAMETERS:
        assert len(spec.description) > 10, spec.name
        assert spec.validate(spec.default) is None, spec.name
        d = descriptor_of(spec)
        assert d.description == spec.description and d.read_only == spec.read_only
        if d.type in (ParameterType.PARAMETER_DOUBLE, ParameterType.PARAMETER_INTEGER):
            assert d.floating_point_range or d.integer_range, f"{spec.name} has no range"
    assert P.validate({"trigger.rate_hz": 0.0})[0].startswith("trigger.rate_hz")
    assert "not one of" in P.validate({"model.backend": "tpu"})[0]
    assert "expected a double" in P.validate({"trigger.rate_hz": 10})[0]
    assert "not a parameter" in P.validate({"nope": 1})[0]
    assert "trigger.rate_hz" not in P.pipeline_params(P.defaults())


def test_pipeline_config_accepts_every_parameter():
    pipeline = pytest.importorskip("fusion_monitor.pipeline", reason="fusion_monitor.pipeline not importable yet")
    cfg = pipeline.PipelineConfig.from_params({**P.defaults(), "node_name": "fusion_monitor"})
    assert cfg.trigger_rate_hz == 10.0
    # what the node forwards to Pipeline.set_thresholds at runtime: the score threshold and health thresholds
    tunable = {p.name for p in P.PARAMETERS if not p.read_only and p.for_pipeline}
    assert tunable - {"model.score_threshold"} and all(n.startswith("health.") for n in tunable - {"model.score_threshold"})


def test_health_thresholds_are_all_declared():
    config = pytest.importorskip("fusion_monitor.health.config", reason="fusion_monitor.health.config not written yet")
    for d in config.describe():
        spec = P.BY_NAME[d.name]
        assert (spec.default, spec.min_value, spec.max_value, spec.read_only) == (d.default, d.min_value, d.max_value,
                                                                                 False)


# ---- markers ------------------------------------------------------------------------------------
def test_label_text_and_colour_by_dominant():
    from fusion_monitor.ros.markers import MODALITY_COLORS, MarkerBuilder, label_text

    r = _result()
    assert label_text(r.detections[0]) == "car 0.82 | cam 45% lidar 40% radar 10% bias 5%"
    arr = MarkerBuilder().build(r)
    boxes = [m for m in arr.markers if m.ns == "detections"]
    assert [m.id for m in boxes] == [7, 9]
    assert (boxes[0].color.r, boxes[0].color.g, boxes[0].color.b) == pytest.approx(MODALITY_COLORS["camera"])
    assert (boxes[1].color.r, boxes[1].color.g, boxes[1].color.b) == pytest.approx(MODALITY_COLORS["radar"])
    assert boxes[0].pose.orientation.z == pytest.approx(math.sin(math.pi / 4))
    assert boxes[0].header.frame_id == "LIDAR_TOP" and boxes[0].header.stamp.nanosec == 123_000_000


def test_vanished_ids_are_deleted_and_alerts_replace_each_other():
    from visualization_msgs.msg import Marker

    from fusion_monitor.ros.diagnostics import NodeStatus
    from fusion_monitor.ros.markers import MarkerBuilder

    b = MarkerBuilder()
    b.build(_result())
    warn = NodeStatus("fusion_monitor: CAM_FRONT/staleness", "CAM_FRONT", 2, "no image for 0.6 s")
    ok = NodeStatus("fusion_monitor: LIDAR_TOP/staleness", "LIDAR_TOP", 0, "ok")
    arr = b.build(_result(dets=[_result().detections[1]]), statuses=[warn, ok], min_score=0.0)
    deletes = [(m.ns, m.id) for m in arr.markers if m.action == Marker.DELETE]
    assert sorted(deletes) == [("detections", 7), ("detections/labels", 7)]
    alerts = [m for m in arr.markers if m.ns == "alerts"]
    assert alerts[0].action == Marker.DELETEALL
    assert [m.text for m in alerts[1:]] == ["ERROR CAM_FRONT/staleness: no image for 0.6 s"]
    hidden = b.build(_result(), min_score=0.5)  # display threshold drops the pedestrian
    assert {m.id for m in hidden.markers if m.ns == "detections" and m.action == Marker.ADD} == {7}


# ---- diagnostics --------------------------------------------------------------------------------
def test_diagnostic_array_levels_and_values():
    from fusion_monitor.ros.diagnostics import NodeStatus, diagnostic_array, level_of

    arr = diagnostic_array([NodeStatus("fusion_monitor: RADAR_FRONT/input", "RADAR_FRONT", 3, "no data yet",
                                       {"age_ms": 12.5})], 5_000_000_123)
    s = arr.status[0]
    assert level_of(s) == 3 and s.hardware_id == "RADAR_FRONT" and s.values[0].value == "12.5"
    assert (arr.header.stamp.sec, arr.header.stamp.nanosec) == (5, 123)
    with pytest.raises(ValueError):
        diagnostic_array([NodeStatus("x", "y", 7, "bad level")], 0)


# ---- detections, shares, BEV maps ---------------------------------------------------------------
def test_detections_cloud_and_shares_round_trip():
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import PointCloud2
    from std_msgs.msg import Float32MultiArray

    from fusion_monitor.ros.outputs import detections_cloud, parse_shares, shares_array
    from fusion_monitor.ros.pointcloud import pointcloud2_to_array

    r = _result()
    cloud = deserialize_message(serialize_message(detections_cloud(r)), PointCloud2)
    arr = pointcloud2_to_array(cloud)
    assert list(arr["track_id"]) == [7, 9] and list(arr["label_id"]) == [0, 8]
    assert arr["share_camera"][0] == pytest.approx(0.45) and arr["yaw"][0] == pytest.approx(math.pi / 2)
    sh = deserialize_message(serialize_message(shares_array(r)), Float32MultiArray)
    assert sh.layout.dim[1].label == "track_id,camera,radar,lidar,bias"
    assert parse_shares(sh)[9]["radar"] == pytest.approx(0.6)
    empty = shares_array(_result(dets=[]))
    assert empty.layout.dim[0].size == 0 and parse_shares(empty) == {}


def test_bev_occupancy_grid_orientation_and_scale():
    from fusion_monitor.ros.outputs import bev_grids

    grids = bev_grids(_result())
    g = grids["lidar"]
    assert (g.info.width, g.info.height, g.info.resolution) == (16, 8, 0.5)
    assert (g.info.origin.position.x, g.info.origin.position.y) == (-4.0, -2.0)
    data = np.asarray(g.data, dtype=np.int8).reshape(8, 16)  # rows = y cells, columns = x cells
    assert data[0, 15] == 100 and data.sum() == 100
    assert np.all(np.asarray(grids["camera"].data) == 25)  # shared scale: 0.5 / 2.0
    assert np.all(np.asarray(grids["radar"].data) == 0)  # negative contribution clipped
