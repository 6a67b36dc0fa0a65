"""Running the reference detector on the real samples (nuScenes keyframe, View-of-Delft frames).

The data stay in their folder (non-commercial licences); nothing here is copied into the repository.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fusion_monitor.model.build import with_cameras
from fusion_monitor.model.lift import CameraCalib
from fusion_monitor.sensors.preprocess import DEFAULT_SPEC, InputSpec, Preprocessed, preprocess_frame, scale_intrinsics

NUSCENES_CLASS_MAP = {"car": "car", "truck": "truck", "bus": "truck", "trailer": "truck",
                      "construction_vehicle": "truck", "pedestrian": "pedestrian", "bicycle": "cyclist",
                      "motorcycle": "cyclist"}


@dataclass
class RealSample:
    """One real frame prepared for the model: inputs, lift cameras (None = the nuScenes rig) and labels in base_link."""

    name: str
    pre: Preprocessed
    cameras: list | None
    gt_labels: list[str] = field(default_factory=list)
    gt_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))


def _img(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def nuscenes_sample(root: str | Path, spec: InputSpec = DEFAULT_SPEC) -> RealSample:
    """The nuScenes mini keyframe: 6 cameras + LIDAR_TOP (no radar was captured for it)."""
    folder = Path(root) / "nuscenes_mini_scene-0061_sample0"
    meta = json.loads((folder / "calib_and_gt.json").read_text())
    images, Ks = {}, {}
    for name, cam in meta["cameras"].items():
        images[name] = _img(folder / cam["file"])
        Ks[name] = np.asarray(cam["K_cam2img"], float)
    pts = np.fromfile(folder / meta["lidar"]["file"], np.float32).reshape(-1, 5)
    T_lidar = np.asarray(meta["lidar"]["lidar2ego"], float)
    pre = preprocess_frame(images, Ks, pts, T_lidar, None, {"camera": True, "lidar": True, "radar": False}, spec)
    labels, xy = [], []
    for b in meta["gt_boxes"]:
        c = NUSCENES_CLASS_MAP.get(b["label"])
        if c is None:
            continue
        p = T_lidar @ np.r_[b["bbox_3d_lidar_xyzlwh_yaw"][:3], 1.0]
        labels.append(c)
        xy.append(p[:2])
    return RealSample("nuScenes scene-0061 keyframe (6 cameras + LiDAR)", pre, None, labels, np.array(xy).reshape(-1, 2))


def _ground_height(points_xyz: np.ndarray) -> float:
    """Height of the ground below the sensor: the densest 10 cm z bin of points 4-25 m away, below the sensor."""
    r = np.hypot(points_xyz[:, 0], points_xyz[:, 1])
    z = points_xyz[(r > 4) & (r < 25) & (points_xyz[:, 2] < 0), 2]
    if len(z) < 100:
        raise ValueError("cannot find the ground in the LiDAR cloud")
    h, edges = np.histogram(z, bins=np.arange(z.min(), z.max() + 0.1, 0.1))
    return float(edges[np.argmax(h)] + 0.05)


VOD_CLASS_MAP = {"Car": "car", "Pedestrian": "pedestrian", "Cyclist": "cyclist", "truck": "truck"}


def vod_frame(root: str | Path, index: int = 0, spec: InputSpec = DEFAULT_SPEC) -> RealSample:
    """A View-of-Delft frame: one front camera (in the CAM_FRONT slot, other slots empty), HDL-64 LiDAR, 3+1D radar.

    base_link is taken as the LiDAR frame moved down to the ground (estimated from the cloud); VoD radar reports
    radial velocity only, so (vx_comp, vy_comp) = v_r_compensated along the line of sight.
    """
    folder = Path(root) / "vod_example_set"
    meta = json.loads((folder / "vod_frames.json").read_text())
    f = meta["frames"][index]
    lidar = np.fromfile(folder / f["lidar_file"], np.float32).reshape(-1, 4)
    radar = np.fromfile(folder / f["radar_file"], np.float32).reshape(-1, 7)
    ground = _ground_height(lidar[np.isfinite(lidar).all(1), :3])
    T_base_lidar = np.eye(4)
    T_base_lidar[2, 3] = -ground
    lidar2cam = np.asarray(f["lidar2cam"], float)
    radar2cam = np.asarray(f["radar2cam"], float)
    T_base_cam = T_base_lidar @ np.linalg.inv(lidar2cam)
    T_base_radar = T_base_cam @ radar2cam
    rr = np.maximum(np.linalg.norm(radar[:, :3], axis=1), 1e-3)
    r6 = np.c_[radar[:, :3], radar[:, 3], radar[:, 5] * radar[:, 0] / rr, radar[:, 5] * radar[:, 1] / rr,
               np.abs(radar[:, 6])]
    img = _img(folder / f["image"])
    K = np.asarray(f["K"], float)
    pre = preprocess_frame({"CAM_FRONT": img}, {"CAM_FRONT": K}, lidar, T_base_lidar, {"RADAR": (r6, T_base_radar)},
                           {"camera": True, "lidar": True, "radar": True}, spec)
    H, W = spec.image_hw
    cams = [CameraCalib(scale_intrinsics(K, W / img.shape[1], H / img.shape[0]), T_base_cam)] + [None] * 5
    labels, xy = [], []
    for lab in f["labels_kitti_camera_frame"]:
        c = VOD_CLASS_MAP.get(str(lab["class"]))
        if c is None:
            continue
        p = T_base_cam @ np.r_[np.asarray(lab["location_cam_bottom_centre"], float), 1.0]
        labels.append(c)
        xy.append(p[:2])
    return RealSample(f"View-of-Delft frame {f['frame']} (front camera + LiDAR + radar)", pre, cams, labels,
                      np.array(xy).reshape(-1, 2))


def model_for(sample: RealSample, model, spec: InputSpec = DEFAULT_SPEC):
    """The model itself for the nuScenes rig, or a copy with lift tables for the sample's own cameras."""
    return model if sample.cameras is None else with_cameras(model, sample.cameras, spec)


def input_summary(pre: Preprocessed) -> dict:
    """Sanity numbers of the model inputs (what a human checks: occupancy, value ranges)."""
    x = pre.inputs
    occ = (x["lidar"][0, :8].sum(0) > 0).mean()
    return {
        "camera_slots_nonzero": int((np.abs(x["camera"][0]).reshape(6, -1).max(1) > 0).sum()),
        "camera_mean": float(x["camera"].mean()),
        "lidar_occupied_cells_pct": round(100 * float(occ), 2),
        "radar_occupied_cells": int(x["radar"][0, 0].sum()),
        "present": x["present"][0].tolist(),
        "dropped_points": pre.dropped_points,
    }
