"""The constant-table lift equals a per-camera grid_sample masked mean (pixel-centre convention)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from fusion_monitor.model.build import rig_cameras
from fusion_monitor.model.lift import LIFT_GRID, LIFT_LEVELS_Z_M, lift_tables
from fusion_monitor.model.network import CameraLift
from fusion_monitor.sensors.preprocess import InputSpec
from fusion_monitor.sensors.rig import load_rig


def test_lift_matches_grid_sample_masked_mean():
    spec = InputSpec()
    cams = rig_cameras(load_rig(), spec)
    index, weight = lift_tables(cams, spec)
    H, W = spec.image_hw
    Hf, Wf, C = H // 8, W // 8, 5
    torch.manual_seed(0)
    feats = torch.randn(1, 6, C, Hf, Wf, dtype=torch.float64)
    lift = CameraLift(torch.from_numpy(index), torch.from_numpy(weight).double(), len(LIFT_LEVELS_Z_M), LIFT_GRID)
    got = lift(feats)[0].reshape(len(LIFT_LEVELS_Z_M), C, LIFT_GRID, LIFT_GRID)
    # Reference: project voxel centres, grid_sample (align_corners=False, zeros), masked mean over cameras.
    cell = 2 * spec.range_m / LIFT_GRID
    c = -spec.range_m + (np.arange(LIFT_GRID) + 0.5) * cell
    X, Y = np.meshgrid(c, c, indexing="ij")
    total = torch.zeros(len(LIFT_LEVELS_Z_M), C, LIFT_GRID, LIFT_GRID, dtype=torch.float64)
    count = np.zeros((len(LIFT_LEVELS_Z_M), LIFT_GRID, LIFT_GRID))
    for k, cam in enumerate(cams):
        T = np.linalg.inv(cam.T_base_cam)
        for li, z in enumerate(LIFT_LEVELS_Z_M):
            p = np.stack([X, Y, np.full_like(X, z)], -1) @ T[:3, :3].T + T[:3, 3]
            d = p[..., 2]
            u = cam.K[0, 0] * p[..., 0] / d + cam.K[0, 2]
            v = cam.K[1, 1] * p[..., 1] / d + cam.K[1, 2]
            ok = (d > 0.1) & (u >= -0.5) & (u <= W - 0.5) & (v >= -0.5) & (v <= H - 0.5)
            gx = (u + 0.5) / W * 2 - 1
            gy = (v + 0.5) / H * 2 - 1
            grid = torch.from_numpy(np.stack([gx, gy], -1))[None]
            s = F.grid_sample(feats[:, k], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
            total[li] += s * torch.from_numpy(ok)
            count[li] += ok
    ref = total / torch.from_numpy(np.maximum(count, 1))[:, None]
    assert count.max() <= 2  # the nuScenes rig never has 3 cameras on one voxel
    # voxels two cameras see take the lift's extra-taps path (their taps beyond the first camera's four)
    assert (count == 2).any() and lift.extra_index.shape[1] > 0
    assert torch.allclose(got, ref, atol=1e-5)


def test_with_cameras_lifts_as_a_model_built_for_those_cameras():
    """Real samples with their own cameras (View-of-Delft: one front camera) get a copy of the detector whose lift
    uses those calibrations; it must lift exactly like a model built for them, and the original must keep its own."""
    from fusion_monitor.model.build import build_model, with_cameras

    spec = InputSpec()
    rig_cams = rig_cameras(load_rig(), spec)
    front_only = [rig_cams[0]] + [None] * (len(rig_cams) - 1)
    torch.manual_seed(0)
    model = build_model(spec=spec).eval()
    moved = with_cameras(model, front_only, spec)
    built = build_model(spec=spec, cameras=front_only).eval()
    H, W = spec.image_hw
    feats = torch.randn(1, len(rig_cams), 32, H // 8, W // 8)
    lifted = moved.camera_lift(feats)
    assert torch.equal(lifted, built.camera_lift(feats))
    assert not torch.equal(lifted, model.camera_lift(feats))  # the other five cameras still lift in the original
    assert lifted.abs().sum() > 0
    # one camera: no voxel has more than its four taps; the rig's six: the overlaps take the extra-taps path
    assert moved.camera_lift.extra_index.shape[1] == 0 < model.camera_lift.extra_index.shape[1]
