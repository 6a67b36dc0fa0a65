"""Camera checks against faults injected into real nuScenes CAM_FRONT frames (and synthetic images)."""

from __future__ import annotations

import numpy as np
import pytest
from health_synthetic import textured_image

from fusion_monitor.health import CameraCheckConfig, CameraChecker, DebounceConfig, Debouncer, Level
from fusion_monitor.health.camera import CAMERA_CHECKS
from fusion_monitor.sensors import faults as F

WARMUP = 4
N_FRAMES = 8  # 4 clean + 4 faulty: enough for the default 3-of-5 debounce


def debounced_run(frames, fault=None, severity=1, seed=0, **params):
    """Warm up on clean frames, then inject; returns check -> (debounced level, last raw result)."""
    ch = CameraChecker("CAM_FRONT")
    debs = {c: Debouncer(DebounceConfig()) for c in CAMERA_CHECKS}
    rng = np.random.default_rng(seed)
    out = {}
    for i, im in enumerate(frames):
        if fault is not None and i >= WARMUP:
            im = fault(im, severity, rng, **params)
        res = ch.update(im)
        for c, r in res.items():
            out[c] = (debs[c].update(r.level, i), r)
    return out


def raised(out):
    return {c: lv for c, (lv, _) in out.items() if lv != Level.OK}


def test_nominal_sequence_raises_nothing(cam_front_sequence):
    out = debounced_run(cam_front_sequence)
    assert raised(out) == {}, {c: r.message for c, (_, r) in out.items()}
    # also raw: no single frame of the real drive triggers any check
    ch = CameraChecker("CAM_FRONT")
    bad = [(i, c, r.message) for i, im in enumerate(cam_front_sequence) for c, r in ch.update(im).items() if r.level]
    assert bad == []


# fault, lowest severity that must be detected, check that must fire
LADDER = [
    ("camera_brightness", 3, "exposure"),
    ("camera_darkness", 1, "exposure"),
    ("camera_contrast", 2, "contrast"),
    ("camera_fog", 3, "visibility"),
    ("camera_motion_blur", 2, "blur"),
    ("camera_noise", 1, "noise"),
]


@pytest.mark.parametrize("name,first,check", LADDER)
def test_global_faults_detected_from_their_ladder_level(cam_front_sequence, name, first, check):
    frames = cam_front_sequence[:N_FRAMES]
    for sev in sorted({first, 5}):
        out = debounced_run(frames, getattr(F, name), sev)
        assert out[check][0] >= Level.WARN, (name, sev, out[check][1].message)
        assert out[check][1].values["value"] and out[check][1].values["bound"]


def test_errors_at_the_top_of_the_ladders(cam_front_sequence):
    frames = cam_front_sequence[:N_FRAMES]
    assert debounced_run(frames, F.camera_contrast, 4)["contrast"][0] == Level.ERROR
    assert debounced_run(frames, F.camera_motion_blur, 5)["blur"][0] == Level.ERROR
    assert debounced_run(frames, F.camera_noise, 3)["noise"][0] == Level.ERROR
    out = debounced_run(frames, F.camera_blackout, 1, p=1.0)
    assert out["exposure"][0] == Level.ERROR and "black" in out["exposure"][1].message
    assert out["frozen"][0] == Level.OK  # a black frame is not also called frozen


def jittered(image, n, step=1):
    """``n`` frames of one keyframe at 400x225 (the decoded size of the real-sample drives) with a small drifting
    crop: a camera moving slowly past a static scene."""
    small = image[::4, ::4]
    h, w = small.shape[:2]
    return [np.ascontiguousarray(small[(k * step) % 4:h - 4 + (k * step) % 4, (k * step) % 6:w - 6 + (k * step) % 6])
            for k in range(n)]


def occlusion_run(frames, warmup, **params):
    """Debounced occlusion results: clean ``warmup`` frames, then a lens blob on every further frame."""
    ch = CameraChecker("CAM_FRONT")
    deb = Debouncer(DebounceConfig())
    levels, res = [], None
    for i, im in enumerate(frames):
        if i >= warmup:  # the same blob every frame: dirt sits still on the lens
            im = F.camera_occlusion(im, rng=np.random.default_rng(0), **params)
        out = ch.update(im)
        res = out["occlusion"]
        levels.append(deb.update(res.level, i))
        assert {c for c, r in out.items() if r.level} <= {"occlusion", "blur"}, {c: r.message for c, r in out.items()}
    return levels, res


@pytest.mark.parametrize("sev", [4, 5])
@pytest.mark.parametrize("center,word", [((0.3, 0.3), "top-left"), ((0.75, 0.7), "bottom-right")])
def test_lens_occlusion_reports_where(cam_front_sequence, sev, center, word):
    """A blob over 35 % or 60 % of the image that stays in the same cells for 2 s (k of n persistence) is reported
    with its place. (20 %, level 3, is found top-left but not bottom-right on this frame: the cell threshold is a
    tenfold sharpness loss, set so that plain facades and road on the simulator's flat-shaded drives stay quiet.)"""
    levels, r = occlusion_run(jittered(cam_front_sequence[0], 8 + 30), 8, severity=sev, center_xy=center)
    assert levels[-1] >= Level.WARN, r.message
    assert max(levels[:8 + 12]) == Level.OK  # a blob younger than the persistence window is not yet blocked
    vert, horiz = word.split("-")
    assert vert in r.values["region"] or horiz in r.values["region"], r.message
    assert "px" in r.message


def test_frozen_frames_detected(cam_front_sequence):
    ch = CameraChecker("CAM_FRONT")
    debs = Debouncer(DebounceConfig())
    levels = []
    for i, im in enumerate(cam_front_sequence[:6] + [cam_front_sequence[5]] * 8):
        levels.append(debs.update(ch.update(im)["frozen"].level, i))
    assert levels[5] == Level.OK and levels[-1] == Level.ERROR


def test_synthetic_images_without_dataset():
    rng = np.random.default_rng(0)
    ch = CameraChecker("CAM_X")
    for _ in range(4):
        r = ch.update(textured_image(rng))
    assert all(v.level == Level.OK for v in r.values()), {k: v.message for k, v in r.items()}
    r = ch.update(np.zeros((450, 800, 3), np.uint8))
    assert r["exposure"].level == Level.ERROR and r["contrast"].level == Level.ERROR
    r = ch.update(np.full((450, 800, 3), 255, np.uint8))
    assert r["exposure"].level == Level.ERROR and "overexposed" in r["exposure"].message


def test_rejects_bad_image_with_named_shape():
    with pytest.raises(ValueError, match="float32"):
        CameraChecker("c").update(np.zeros((10, 10, 3), np.float32))


def test_other_real_cameras_raise_nothing(real_data):
    """Single frames of the six nuScenes cameras, KITTI and View-of-Delft (incl. a sunny, partly saturated street)."""
    from PIL import Image

    files = sorted((real_data / "nuscenes_mini_scene-0061_sample0" / "samples").glob("CAM_*/*.jpg"))
    files += sorted(real_data.glob("kitti_000008/*.png")) + sorted(real_data.glob("vod_example_set/**/*.jpg"))
    if len(files) < 6:
        pytest.skip("camera samples missing")
    for f in files:
        res = CameraChecker(f.parent.name).update(np.asarray(Image.open(f).convert("RGB")))
        assert {k: r.message for k, r in res.items() if r.level} == {}, f.name


def test_lasting_scene_change_is_absorbed_by_the_baseline():
    """A tunnel darkens every frame: reported at first, absorbed by the slow baseline, not an alarm forever."""
    from fusion_monitor.health import CameraCheckConfig

    rng = np.random.default_rng(1)
    ch = CameraChecker("C", CameraCheckConfig(baseline_alpha_degraded=0.05))
    for _ in range(6):
        ch.update(textured_image(rng))
    levels = [ch.update((textured_image(rng) * 0.45).astype(np.uint8))["exposure"].level for _ in range(60)]
    assert levels[0] == Level.WARN and levels[-1] == Level.OK
    assert CameraCheckConfig().baseline_alpha_degraded > 0


G = CameraCheckConfig().grid_rows  # the default occlusion grid is G x G
assert CameraCheckConfig().grid_cols == G


def context(near_columns=(False,) * G, covered=True, near_cells=None):
    from fusion_monitor.health.crossmodal import CameraContext

    cov = np.full((G, G), bool(covered))
    return CameraContext(np.array(near_columns), cov, None if near_cells is None else np.array(near_cells))


def test_view_filled_by_a_near_object_is_the_scene_not_the_camera():
    """A flat truck side beside the car (the LiDAR sees it within a few metres): no contrast, exposure or occlusion
    alarm; a black frame is still an error."""
    rng = np.random.default_rng(2)
    ch = CameraChecker("CAM_FRONT_LEFT")
    for _ in range(6):
        ch.update(textured_image(rng))
    truck = np.full((450, 800, 3), 30, np.uint8)
    for _ in range(40):
        res = ch.update(truck, context(near_columns=(True,) * G))
    assert {k: r.message for k, r in res.items() if r.level} == {}
    assert "near object" in res["contrast"].message
    res = ch.update(np.zeros((450, 800, 3), np.uint8), context(near_columns=(True,) * G))
    assert res["exposure"].level == Level.ERROR
    plain = CameraChecker("CAM_FRONT_LEFT")  # without the LiDAR's word the same frames are alarms
    for _ in range(6):
        plain.update(textured_image(rng))
    assert plain.update(truck)["contrast"].level == Level.ERROR


def test_a_dark_car_filling_the_lower_half_is_the_scene_and_stays_so_while_it_passes():
    """A dark car alongside fills the lower half of a side camera's view (close cells) while the facade above keeps
    the columns from counting as near: the darkened view is not an exposure or contrast alarm, and it stays
    explained for a few frames while the car drifts under the cell fraction."""
    from fusion_monitor.health.crossmodal import CameraContext

    rng = np.random.default_rng(4)
    ch = CameraChecker("CAM_FRONT_RIGHT")
    for _ in range(12):
        ch.update(textured_image(rng))
    half = textured_image(rng)
    half[half.shape[0] * 3 // 10:] = 12  # the car body (its roof line high in a side camera's view)
    lower = np.vstack([np.zeros((G // 2, G), bool), np.ones((G // 2, G), bool)])
    car = CameraContext(np.zeros(G, bool), np.ones((G, G), bool), lower, lower)
    for _ in range(10):
        res = ch.update(half, car)
    assert {k: r.message for k, r in res.items() if r.level and k in ("exposure", "contrast")} == {}
    corner = np.zeros((G, G), bool)
    corner[-1, -1] = True  # the car leaving the view: one close cell left, under the fraction
    res = ch.update(half, CameraContext(np.zeros(G, bool), np.ones((G, G), bool), corner, corner))
    assert res["exposure"].level == Level.OK and "near object" in res["exposure"].message  # held
    plain = CameraChecker("CAM_FRONT_RIGHT")  # without the LiDAR's word the darkened view is an alarm
    for _ in range(12):
        plain.update(textured_image(rng))
    assert plain.update(half)["exposure"].level != Level.OK


def test_soft_cells_count_only_where_the_lidar_sees_structure():
    from fusion_monitor.health.crossmodal import CameraContext

    rng = np.random.default_rng(3)
    frames = [textured_image(rng) for _ in range(40)]
    for im in frames[8:]:
        im[:225, :400] = im[:225, :400].mean().astype(np.uint8)  # top-left quarter flat, as sky or dirt
    seen = CameraChecker("C")
    sky = CameraChecker("C")
    no_top = CameraContext(np.zeros(G, bool), np.vstack([np.zeros((G // 2, G), bool), np.ones((G // 2, G), bool)]))
    for im in frames:
        a, b = seen.update(im, context()), sky.update(im, no_top)
    assert a["occlusion"].level >= Level.WARN and "top-left" in a["occlusion"].message
    assert b["occlusion"].level == Level.OK


def test_fewer_edges_in_view_is_not_blur(cam_front_sequence):
    """Turning from a busy street to an open view loses detail but keeps sharp edges: the edge profile tells it
    from motion blur, which the same frames raise once blurred."""
    frames = jittered(cam_front_sequence[0], 20)
    ch = CameraChecker("CAM_FRONT")
    for im in frames[:8]:
        ch.update(im)
    plain = frames[8].copy()
    plain[: plain.shape[0] * 3 // 4] = 150  # most of the view becomes flat sky, edges at its border stay crisp
    assert ch.update(plain)["blur"].level == Level.OK
    blurred = F.camera_motion_blur(frames[9], 3, np.random.default_rng(0))
    r = ch.update(blurred)["blur"]
    assert r.level >= Level.WARN and "along x" in r.message


def test_brightening_toward_open_sky_needs_a_washed_out_image():
    """A camera turning to open space (the LiDAR sees almost nothing in its view) brightens without a fault; an
    overexposed image is still reported, with or without the LiDAR context."""
    rng = np.random.default_rng(4)
    open_view = context(covered=False)
    ch = CameraChecker("C")
    for _ in range(8):
        ch.update(textured_image(rng), open_view)
    sky = (np.clip(textured_image(rng).astype(int) + 60, 0, 230)).astype(np.uint8)
    assert ch.update(sky, open_view)["exposure"].level == Level.OK
    washed = F.camera_brightness(textured_image(rng), 5, rng)
    assert ch.update(washed, open_view)["exposure"].level >= Level.WARN


@pytest.mark.parametrize("cells,blocked", [(((1, 1), (1, 2), (2, 1), (2, 2)), True),
                                           (((1, 1), (1, 5), (5, 2), (6, 6)), False)])
def test_a_blocked_region_is_one_piece(cells, blocked):
    """Dirt on the lens is one piece: four soft cells side by side are a blocked region, four scattered over the
    view (plain patches of a slowly passing facade, sim872's CAM_BACK_LEFT) are not."""
    rng = np.random.default_rng(4)
    ch = CameraChecker("C")
    h, w = 400 // G, 800 // G
    for i in range(50):
        im = textured_image(rng, 400, 800)  # cells of whole pixels
        if i >= 20:  # after the per-cell sharpness references settled
            for r, c in cells:  # flat in the same cells (and a little around), frame after frame
                im[max(r * h - 12, 0):(r + 1) * h + 12, max(c * w - 20, 0):(c + 1) * w + 20] = 128
        res = ch.update(im, context())["occlusion"]
    assert int(res.values["persistent_cells"]) == 4
    assert (res.level >= Level.WARN) == blocked, res.message


def test_a_near_object_behind_a_blob_neither_clears_it_nor_becomes_one():
    """sim420: a truck pulls up in front while a blob sits on the lens. Cells the truck explains are not judged:
    the blob's cells keep their blocked state while they stay soft, and cells that were clear stay clear (the
    truck's own flat side is the scene, not the lens)."""
    rng = np.random.default_rng(5)
    h, w = 400 // G, 800 // G
    blob = [(r, c) for r in (3, 4) for c in (3, 4)]
    truck = np.zeros((G, G), bool)
    truck[2:6, 2:6] = True  # the blob's cells and a ring of clear cells around them

    def run(with_blob):
        ch = CameraChecker("C")
        levels = []
        for i in range(70):
            im = textured_image(rng, 400, 800)
            flat = (blob if with_blob and i >= 20 else []) + (
                [(r, c) for r, c in zip(*np.nonzero(truck))] if i >= 45 else [])
            for r, c in flat:
                im[max(r * h - 12, 0):(r + 1) * h + 12, max(c * w - 20, 0):(c + 1) * w + 20] = 128
            ctx = context(near_cells=truck) if i >= 45 else context()
            levels.append(ch.update(im, ctx)["occlusion"].level)
        return levels

    blob_run = run(with_blob=True)
    assert max(blob_run[35:45]) >= Level.WARN  # the blob, before the truck
    assert min(blob_run[50:]) >= Level.WARN, blob_run[45:]  # still blocked while the truck explains its cells
    assert max(run(with_blob=False)) == Level.OK  # the truck alone is the scene
