"""Camera checks against faults injected into real nuScenes CAM_FRONT frames (and synthetic images)."""

from __future__ import annotations

import numpy as np
import pytest
from health_synthetic import textured_image

from fusion_monitor.health import CameraChecker, DebounceConfig, Debouncer, Level
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


@pytest.mark.parametrize("sev", [3, 4, 5])
@pytest.mark.parametrize("center,word", [((0.3, 0.3), "top-left"), ((0.75, 0.7), "bottom-right")])
def test_lens_occlusion_reports_where(cam_front_sequence, sev, center, word):
    out = debounced_run(cam_front_sequence[:N_FRAMES], F.camera_occlusion, sev, center_xy=center)
    lv, r = out["occlusion"]
    assert lv >= Level.WARN, r.message
    vert, horiz = word.split("-")
    assert vert in r.values["region"] or horiz in r.values["region"], r.message
    assert "px" in r.message
    assert raised(out).keys() <= {"occlusion", "blur"}


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
