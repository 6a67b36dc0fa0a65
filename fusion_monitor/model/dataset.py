"""Pre-generated synthetic training/evaluation frames on disk (one .npz per frame) and their loading."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fusion_monitor.sensors.preprocess import InputSpec, lidar_raster, normalise_images, radar_raster
from fusion_monitor.sensors.rig import Rig, load_rig
from fusion_monitor.sim.drive import Frame, render_frame
from fusion_monitor.sim.world import make_world

FRAMES_PER_WORLD = 6
WORLD_DURATION_S = 6.0


def frame_to_arrays(frame: Frame) -> dict[str, np.ndarray]:
    """Compact storage of a rendered frame: uint8 images, float16 LiDAR, float32 radar, ground truth."""
    rig = frame.rig
    radar_names = [r.name for r in rig.of("radar")]
    rad = []
    for k, name in enumerate(radar_names):
        p = frame.radars[name]
        rad.append(np.stack([p["x"], p["y"], p["z"], p["rcs"], p["vx_comp"], p["vy_comp"],
                             np.full(len(p), k, np.float32)], 1).astype(np.float32))
    return {
        "images": frame.images,
        "K": frame.K.astype(np.float32),
        "lidar": frame.lidar[:, :4].astype(np.float16),
        "radar": np.concatenate(rad) if rad else np.zeros((0, 7), np.float32),
        "gt_cls": frame.gt.cls.astype(np.int8),
        "gt_boxes": frame.gt.boxes.astype(np.float32),
        "gt_vel": frame.gt.velocity.astype(np.float32),
        "gt_lidar_pts": frame.gt.num_lidar_pts.astype(np.int32),
        "gt_radar_pts": frame.gt.num_radar_pts.astype(np.int32),
    }


def generate(out_dir: str | Path, seeds: list[int], image_hw=(96, 176), frames_per_world: int = FRAMES_PER_WORLD,
             rig: Rig | None = None) -> int:
    """Render ``frames_per_world`` frames of every world seed into ``out_dir`` (skips existing files)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rig = rig or load_rig()
    n = 0
    for seed in seeds:
        world = None
        for k in range(frames_per_world):
            path = out / f"w{seed:06d}_f{k}.npz"
            if path.exists():
                continue
            world = world or make_world(seed, WORLD_DURATION_S)
            t = 0.4 + k * (WORLD_DURATION_S - 0.8) / max(frames_per_world - 1, 1)
            f = render_frame(world, t, rig, image_hw)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, **frame_to_arrays(f))
            os.replace(tmp, path)
            n += 1
    return n


def load_frame(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def arrays_to_inputs(d: dict[str, np.ndarray], spec: InputSpec, rig: Rig | None = None,
                     lidar_keep: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Stored frame -> unbatched model inputs (camera (6,3,H,W), lidar (10,G,G), radar (6,G,G))."""
    rig = rig or load_rig()
    lidar_T = rig.of("lidar")[0].T_base_sensor
    pts = d["lidar"].astype(np.float32)
    if lidar_keep is not None:
        pts = pts[lidar_keep]
    lid, _ = lidar_raster(pts, lidar_T, spec)
    radars = {}
    r = d["radar"]
    for k, spec_r in enumerate(rig.of("radar")):
        radars[spec_r.name] = (r[r[:, 6] == k, :6], spec_r.T_base_sensor)
    rad, _ = radar_raster(radars, spec)
    cam = normalise_images(d["images"], spec)
    return {"camera": cam, "lidar": lid, "radar": rad}


def _main() -> None:  # python -m fusion_monitor.model.dataset OUT FIRST_SEED N_WORLDS
    import sys

    out, first, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    print(generate(out, list(range(first, first + n))), "frames written", flush=True)


if __name__ == "__main__":
    _main()
