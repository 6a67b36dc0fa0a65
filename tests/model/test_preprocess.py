"""Preprocessing into model inputs: rasters, image resizing with scaled intrinsics, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_monitor.sensors.preprocess import (
    DEFAULT_SPEC,
    InputSpec,
    lidar_raster,
    normalise_images,
    prepare_image,
    preprocess_frame,
    preprocess_images,
    radar_raster,
    scale_intrinsics,
)
from fusion_monitor.sensors.rig import CalibrationError, load_rig

SPEC = InputSpec()


def test_lidar_raster_counts_and_means_match_a_slow_reference():
    rng = np.random.default_rng(0)
    pts = np.c_[rng.uniform(-60, 60, (5000, 2)), rng.uniform(-3, 5, 5000), rng.uniform(0, 100, 5000)].astype(np.float32)
    T = np.eye(4)
    T[:3, 3] = [1.0, -2.0, 0.5]
    out, dropped = lidar_raster(pts, T, SPEC)
    assert dropped == 0 and out.shape == (10, 128, 128)
    # slow reference, one point at a time
    ref_count = np.zeros((8, 128, 128))
    s_int = np.zeros((128, 128))
    s_z = np.zeros((128, 128))
    n = np.zeros((128, 128))
    for p in pts.astype(np.float64):
        x, y, z = p[0] + 1.0, p[1] - 2.0, p[2] + 0.5
        zb = int(np.floor((z + 2.0) / 0.75))
        r, c = int(np.floor((x + 51.2) / 0.8)), int(np.floor((y + 51.2) / 0.8))
        if 0 <= zb < 8 and 0 <= r < 128 and 0 <= c < 128:
            ref_count[zb, r, c] += 1
            s_int[r, c] += p[3]
            s_z[r, c] += z
            n[r, c] += 1
    np.testing.assert_allclose(out[:8], np.log1p(ref_count), atol=1e-6)
    nz = np.maximum(n, 1)
    np.testing.assert_allclose(out[8], s_int / nz / 100, atol=1e-4)
    np.testing.assert_allclose(out[9], s_z / nz / 4, atol=1e-4)


def test_empty_cloud_is_valid_and_nan_rows_are_dropped():
    out, dropped = lidar_raster(np.zeros((0, 4), np.float32), np.eye(4), SPEC)
    assert dropped == 0 and not out.any()
    pts = np.array([[1, 1, 0.5, 10], [np.nan, 0, 0, 1], [2, 2, np.inf, 3]], np.float32)
    out, dropped = lidar_raster(pts, np.eye(4), SPEC)
    assert dropped == 2 and out[:8].sum() == pytest.approx(np.log(2))
    res = preprocess_frame(lidar_points=np.zeros((0, 5), np.float32), T_base_lidar=np.eye(4))
    assert res.inputs["present"].tolist() == [[0, 1, 0]] and not res.inputs["lidar"].any()


def test_radar_raster_rotates_velocities_into_base_link():
    T = np.eye(4)
    T[:2, :2] = [[0, -1], [1, 0]]  # radar x axis = base +y
    pts = np.array([[10, 0, 0, 20, 5, 0]], np.float64)  # moving along radar x at 5 m/s
    out, _ = radar_raster({"R": (pts, T)}, SPEC)
    r, c = int((0 + 51.2) / 0.8), int((10 + 51.2) / 0.8)
    assert out[0, r, c] == 1 and out[2, r, c] == pytest.approx(1.0)
    assert out[3, r, c] == pytest.approx(0.0, abs=1e-6) and out[4, r, c] == pytest.approx(0.5)


def test_images_any_size_are_resized_and_intrinsics_scaled():
    rig = load_rig()
    cam = rig.sensors["CAM_FRONT"]
    img = np.full((450, 800, 3), 128, np.uint8)
    K_half = scale_intrinsics(cam.K, 0.5, 0.5)
    res = preprocess_frame(images={"CAM_FRONT": img}, intrinsics={"CAM_FRONT": K_half})
    H, W = SPEC.image_hw
    assert res.inputs["camera"].shape == (1, 6, 3, H, W)
    np.testing.assert_allclose(res.intrinsics["CAM_FRONT"], scale_intrinsics(cam.K, W / 1600, H / 900), rtol=1e-9)
    assert not res.inputs["camera"][0, 1:].any()  # cameras not given are zero


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="CAM_FRONT"):
        preprocess_frame(images={"CAM_FRONT": np.zeros((90, 160), np.uint8)})
    with pytest.raises(ValueError, match="unknown camera"):
        preprocess_frame(images={"CAM_TOP": np.zeros((90, 160, 3), np.uint8)})
    with pytest.raises(CalibrationError, match="CAM_FRONT"):
        preprocess_frame(images={"CAM_FRONT": np.zeros((90, 160, 3), np.uint8)}, intrinsics={})
    rig = load_rig()
    with pytest.raises(CalibrationError, match="another image size"):  # full-size K with a half-size image
        preprocess_frame(images={"CAM_FRONT": np.zeros((450, 800, 3), np.uint8)},
                         intrinsics={"CAM_FRONT": rig.sensors["CAM_FRONT"].K})
    with pytest.raises(CalibrationError, match="LIDAR"):
        preprocess_frame(lidar_points=np.zeros((3, 4), np.float32), T_base_lidar=None)
    with pytest.raises(ValueError, match="shape"):
        preprocess_frame(lidar_points=np.zeros((3, 3), np.float32), T_base_lidar=np.eye(4))
    with pytest.raises(ValueError, match="present"):
        preprocess_frame(present={"sonar": True})


def test_absent_modality_is_zeroed():
    pts = np.array([[1, 1, 0.5, 10]], np.float32)
    res = preprocess_frame(lidar_points=pts, T_base_lidar=np.eye(4), present={"lidar": False})
    assert not res.inputs["lidar"].any() and res.inputs["present"].tolist() == [[0, 0, 0]]


def test_serving_normalisation_equals_the_training_one_bit_for_bit():
    """The pipeline normalises each camera image in place (preprocess_images); training batches use
    normalise_images. They must give the same float32 values, or the detector sees other inputs than it was
    trained on."""
    rng = np.random.default_rng(7)
    spec = DEFAULT_SPEC
    imgs = {name: rng.integers(0, 256, (*spec.image_hw, 3), dtype=np.uint8) for name in spec.camera_names}
    served, _ = preprocess_images(imgs, None, spec)
    trained = normalise_images(np.stack([imgs[n] for n in spec.camera_names]), spec)
    assert served.dtype == trained.dtype == np.float32
    np.testing.assert_array_equal(served, trained)


def test_images_prepared_ahead_give_the_same_inputs_bit_for_bit():
    """The node resizes and normalises each camera image in its decode threads (prepare_image) so a frame only
    copies it: the model must get exactly the inputs the frame would compute; a slot of another size is ignored."""
    rng = np.random.default_rng(3)
    spec = DEFAULT_SPEC
    imgs = {name: rng.integers(0, 256, (112, 200, 3), dtype=np.uint8) for name in spec.camera_names[:4]}
    direct, _ = preprocess_images(imgs, None, spec)
    ahead = {n: prepare_image(img, spec) for n, img in imgs.items()}
    ahead[spec.camera_names[3]] = np.zeros((3, 8, 8), np.float32)  # stale slot of another model size: recomputed
    served, _ = preprocess_images(imgs, None, spec, prepared=ahead)
    np.testing.assert_array_equal(served, direct)
    assert served[:4].any() and not served[4:].any()
