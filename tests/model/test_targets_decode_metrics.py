"""Round trip box -> targets -> (ideal) logits -> decode -> box, circle NMS, and the AP metric."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_monitor.model.decode import circle_nms, decode
from fusion_monitor.model.metrics import average_precision, evaluate_detections
from fusion_monitor.model.targets import build_targets, gaussian_radius
from fusion_monitor.sensors.preprocess import InputSpec

SPEC = InputSpec()


def _ideal_outputs(cls, boxes, vel):
    t = build_targets(cls, boxes, vel, SPEC, 4)
    h = np.clip(t["heatmap"], 1e-4, 1 - 1e-3)
    hm = np.log(h / (1 - h)).astype(np.float32)  # logits whose sigmoid is the target Gaussian
    reg = np.zeros((10, SPEC.grid * SPEC.grid), np.float32)
    m = t["mask"] > 0
    reg[:, t["index"][m]] = t["regression"][m].T
    return hm, reg.reshape(10, SPEC.grid, SPEC.grid)


def test_round_trip_recovers_boxes():
    cls = np.array([0, 1, 2, 3])
    boxes = np.array([[10.3, -4.1, 0.8, 4.5, 1.9, 1.6, 0.3], [-30.0, 20.2, 1.6, 8.0, 2.5, 3.2, -2.9],
                      [5.55, 8.05, 0.9, 0.6, 0.6, 1.8, 1.2], [-12.2, -40.9, 0.9, 1.8, 0.7, 1.7, 3.1]])
    vel = np.array([[5.0, 0.1], [-3.0, 0.0], [0.0, 1.2], [4.0, -0.5]])
    hm, reg = _ideal_outputs(cls, boxes, vel)
    det = decode(hm, reg, SPEC)
    assert len(det) == 4
    order = np.argsort(det.labels)
    np.testing.assert_array_equal(det.labels[order], cls)
    got = det.boxes[order]
    np.testing.assert_allclose(got[:, :6], boxes[:, :6], atol=1e-4)
    np.testing.assert_allclose(np.angle(np.exp(1j * (got[:, 6] - boxes[:, 6]))), 0, atol=1e-5)
    np.testing.assert_allclose(got[:, 7:9], vel, atol=1e-5)
    assert det.as_dicts()[0]["class"] in ("car", "truck", "pedestrian", "cyclist")


def test_radius_is_at_least_two_cells_and_grows_with_size():
    assert gaussian_radius(4.5 / 0.8, 1.9 / 0.8) < 2
    assert gaussian_radius(30 / 0.8, 10 / 0.8) > 2
    t = build_targets(np.array([0]), np.array([[0.1, 0.1, 0.8, 4.5, 1.9, 1.6, 0.0]]), np.zeros((1, 2)), SPEC, 4)
    assert (t["heatmap"][0] > 0).sum() == 25 and t["heatmap"].max() == 1.0


def test_objects_outside_the_grid_are_skipped():
    t = build_targets(np.array([0]), np.array([[60.0, 0, 0.8, 4, 2, 1.5, 0]]), np.zeros((1, 2)), SPEC, 4)
    assert t["mask"].sum() == 0 and not t["heatmap"].any()


def test_circle_nms_keeps_the_best_of_close_boxes():
    xy = np.array([[0, 0], [1.0, 0], [5, 5]])
    keep = circle_nms(xy, np.array([0.5, 0.9, 0.3]), 2.0)
    assert keep.tolist() == [1, 2]


def test_decode_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="regression"):
        decode(np.zeros((4, 128, 128)), np.zeros((10, 64, 64)))


def test_ap_perfect_none_and_half():
    g = [np.array([[0.0, 0.0], [10.0, 0.0]])]
    assert average_precision([g[0]], [np.array([0.9, 0.8])], g, 1.0) == pytest.approx(1.0)
    assert average_precision([np.zeros((0, 2))], [np.zeros(0)], g, 1.0) == 0.0
    # one right, one wrong with a higher score: precision 0.5 at recall 0.5, recall never reaches 1
    ap = average_precision([np.array([[50.0, 0], [0.0, 0.0]])], [np.array([0.9, 0.8])], g, 1.0)
    assert 0 < ap < 0.5
    assert np.isnan(average_precision([np.zeros((0, 2))], [np.zeros(0)], [np.zeros((0, 2))], 1.0))


def test_evaluate_detections_uses_class_ranges():
    class D:
        boxes = np.array([[45.0, 0, 0], [10.0, 0, 0]])
        scores = np.array([0.9, 0.8])
        labels = np.array([2, 0])

    gts = [(np.array([2, 0]), np.array([[45.0, 0, 0], [10.0, 0, 0]]))]
    r = evaluate_detections([D()], gts, ("car", "truck", "pedestrian", "cyclist"))
    assert r["per_class"]["car"] == pytest.approx(1.0)
    assert np.isnan(r["per_class"]["pedestrian"])  # beyond the 40 m pedestrian range: not scored
