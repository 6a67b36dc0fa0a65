"""A tiny camera + LiDAR + radar fusion network for tests, benchmarks and export examples.

Not a detector: it has the shape of one (per-modality encoders, BEV fusion, a dense head with
a dict of outputs) so export, packages and backends can be exercised in seconds.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class TinyFusionNet(nn.Module):
    """Camera (B, N, 3, H, W) + LiDAR BEV (B, 4, S, S) + radar BEV (B, 2, S, S) -> heat map and boxes.

    ``calib`` (B, 4) scales the camera features (an input of no modality).
    """

    def __init__(self, bev: int = 16, width: int = 8, classes: int = 3):
        super().__init__()
        self.bev = bev
        self.camera_encoder = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.lidar_encoder = nn.Sequential(nn.Conv2d(4, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.radar_encoder = nn.Sequential(nn.Conv2d(2, width, 1), nn.ReLU())
        self.fuse = nn.Sequential(nn.Conv2d(3 * width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                                  nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.heatmap = nn.Conv2d(width, classes, 1)
        self.boxes = nn.Conv2d(width, 6, 1)

    def forward(self, camera, lidar, radar, calib):
        b, n, c, h, w = camera.shape
        cam = self.camera_encoder(camera.reshape(b * n, c, h, w)).reshape(b, n, -1, h, w).mean(dim=1)
        cam = nn.functional.adaptive_avg_pool2d(cam, self.bev) * calib[:, :1, None, None]
        fused = torch.cat([cam, self.lidar_encoder(lidar), self.radar_encoder(radar)], dim=1)
        x = self.fuse(fused)
        return {"heatmap": self.heatmap(x), "boxes": self.boxes(x)}


def tiny_fusion_net(seed: int = 0, bev: int = 16, width: int = 8, classes: int = 3):
    """A TinyFusionNet with seeded random weights and non-trivial BatchNorm statistics, in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    model = TinyFusionNet(bev=bev, width=width, classes=classes)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def tiny_example_inputs(seed: int = 0, bev: int = 16, cameras: int = 2, image_hw: tuple[int, int] = (24, 32)):
    """Example inputs of :func:`tiny_fusion_net` as float32 numpy arrays (batch 1)."""
    rng = np.random.default_rng(seed)
    h, w = image_hw
    return {
        "camera": rng.standard_normal((1, cameras, 3, h, w)).astype(np.float32),
        "lidar": rng.standard_normal((1, 4, bev, bev)).astype(np.float32),
        "radar": rng.standard_normal((1, 2, bev, bev)).astype(np.float32),
        "calib": (1.0 + 0.1 * rng.standard_normal((1, 4))).astype(np.float32),
    }


TINY_MODALITIES = {"camera": "camera", "lidar": "lidar", "radar": "radar", "calib": None}
"""Modality map of the tiny network (calib belongs to no modality)."""

TINY_FACTORY = "fusion_monitor.inference.toy:tiny_fusion_net"
"""Importable factory of the tiny network (for packages the PyTorch backend can rebuild)."""


def zoo_model(name: str = "simplebev", scale: int = 1, seed: int = 0):
    """A model of the LMD engine's zoo (fusion_monitor.lmd.zoo), as an importable factory.

    Usable as a package factory: ``factory="fusion_monitor.inference.toy:zoo_model"`` with
    ``factory_kwargs={"name": "simplebev", "scale": 4}``.
    """
    from fusion_monitor.lmd import zoo

    return zoo.get(name).build(scale=scale, seed=seed)


ZOO_FACTORY = "fusion_monitor.inference.toy:zoo_model"
