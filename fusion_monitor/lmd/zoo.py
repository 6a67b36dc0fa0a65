"""A zoo of small multimodal fusion architectures that exercise every LMD rule family (used by the
tests and by benchmarks/lmd_overhead.py). Each entry builds a model with non-trivial statistics and
seeded example inputs of a chosen size."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ZooEntry", "ZOO", "get", "randomize_norm_stats"]


def randomize_norm_stats(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give BatchNorm running statistics and every norm's affine parameters non-trivial values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats and m.running_mean is not None:
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 1.5 + 0.5)
            w = getattr(m, "weight", None)
            b = getattr(m, "bias", None)
            if isinstance(m, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)):
                if w is not None:
                    w.copy_(torch.rand(w.shape, generator=g) + 0.5)
                if b is not None:
                    b.copy_(torch.rand(b.shape, generator=g) * 0.4 - 0.2)
    return model


def _cbr(cin, cout, k=3, s=1, norm="bn"):
    layers = [nn.Conv2d(cin, cout, k, s, k // 2, bias=norm != "bn")]
    if norm == "bn":
        layers.append(nn.BatchNorm2d(cout))
    elif norm == "in":
        layers.append(nn.InstanceNorm2d(cout, affine=True))
    elif norm == "gn":
        layers.append(nn.GroupNorm(2, cout))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


# ------------------------------------------------------------------------------------------------
# 1. Camera + radar, conv + BatchNorm + ReLU ResNet blocks, max pooling, sigmoid/dict heads
# ------------------------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(x + y)


class ResNetFusion(nn.Module):
    """Early-encoder camera / radar, concat + 1x1 conv fusion, ResNet trunk, CenterPoint-like heads."""

    def __init__(self, w: int = 8):
        super().__init__()
        self.camera_enc = nn.Sequential(_cbr(3, w), _cbr(w, 2 * w, s=2))
        self.radar_enc = nn.Sequential(_cbr(2, w, s=2))
        self.fuse = _cbr(3 * w, 2 * w, k=1)
        self.layer1 = nn.Sequential(BasicBlock(2 * w), BasicBlock(2 * w))
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.neck = _cbr(2 * w, 2 * w)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.heatmap = nn.Conv2d(2 * w, 2, 1)
        self.reg = nn.Conv2d(2 * w, 4, 3, 1, 1)

    def forward(self, camera, radar):
        x = torch.cat([self.camera_enc(camera), self.radar_enc(radar)], 1)
        x = self.layer1(self.fuse(x))
        x = self.up(self.neck(self.pool(x)))
        return {"heatmap": torch.sigmoid(self.heatmap(x)), "reg": self.reg(x)}


# ------------------------------------------------------------------------------------------------
# 2. Camera + LiDAR U-Net with bilinear upsampling and skip concatenations
# ------------------------------------------------------------------------------------------------


class UNetFusion(nn.Module):
    def __init__(self, w: int = 8):
        super().__init__()
        self.camera_enc = _cbr(3, w)
        self.lidar_enc = _cbr(4, w)
        self.down1 = _cbr(2 * w, 2 * w)
        self.down2 = _cbr(2 * w, 4 * w)
        self.bott = _cbr(4 * w, 4 * w)
        self.up2 = _cbr(8 * w, 2 * w)
        self.up1 = _cbr(4 * w, w)
        self.head = nn.Conv2d(w, 3, 1)

    def forward(self, camera, lidar):
        x0 = torch.cat([self.camera_enc(camera), self.lidar_enc(lidar)], 1)
        d1 = self.down1(x0)
        d2 = self.down2(F.max_pool2d(d1, 2))
        b = self.bott(F.max_pool2d(d2, 2))
        u2 = F.interpolate(b, scale_factor=2, mode="bilinear", align_corners=False)
        u2 = self.up2(torch.cat([u2, d2], 1))
        u1 = F.interpolate(u2, size=d1.shape[-2:], mode="bilinear", align_corners=True)
        u1 = self.up1(torch.cat([u1, d1], 1))
        return self.head(u1)


# ------------------------------------------------------------------------------------------------
# 3. SimpleBEV-like: camera lifted by grid_sample with calibration-only grid, radar BEV grid,
#    InstanceNorm + GELU compressor, IN decoder with upsample + skip add, center/offset heads
# ------------------------------------------------------------------------------------------------


class SimpleBEVFusion(nn.Module):
    def __init__(self, w: int = 8, bev: int = 16):
        super().__init__()
        self.bev = bev
        self.camera_enc = nn.Sequential(_cbr(3, w, norm="in"), _cbr(w, w, s=2, norm="in"))
        self.radar_enc = nn.Conv2d(3, w, 1)
        self.compressor = nn.Sequential(nn.Conv2d(2 * w, 2 * w, 3, 1, 1), nn.InstanceNorm2d(2 * w, affine=True), nn.GELU())
        self.dec_down = nn.Sequential(nn.Conv2d(2 * w, 2 * w, 3, 2, 1), nn.InstanceNorm2d(2 * w, affine=True), nn.ReLU())
        self.dec_up = nn.Sequential(nn.Conv2d(2 * w, 2 * w, 1), nn.InstanceNorm2d(2 * w, affine=True))
        self.center = nn.Sequential(_cbr(2 * w, w, norm="in"), nn.Conv2d(w, 1, 1))
        self.offset = nn.Sequential(_cbr(2 * w, w, norm="in"), nn.Conv2d(w, 2, 1))

    def forward(self, images, radar, cam_to_bev):
        # images (B, N, 3, H, W), cam_to_bev (B, N, 2, 3): calibration-only affine sampling grids
        B, N = images.shape[:2]
        feats = self.camera_enc(images.flatten(0, 1))
        grid = F.affine_grid(cam_to_bev.flatten(0, 1), [B * N, feats.shape[1], self.bev, self.bev], align_corners=False)
        lifted = F.grid_sample(feats, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        lifted = lifted.unflatten(0, (B, N))
        valid = (lifted.abs().sum(2, keepdim=True) > 0).to(lifted.dtype)
        cam_bev = (lifted * valid).sum(1) / valid.sum(1).clamp(min=1.0)  # masked mean over cameras
        x = self.compressor(torch.cat([cam_bev, self.radar_enc(radar)], 1))
        y = self.dec_down(x)
        y = self.dec_up(F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)) + x
        return {"center": torch.sigmoid(self.center(y)), "offset": self.offset(y)}


# ------------------------------------------------------------------------------------------------
# 4. Three modalities, GroupNorm + SiLU, average pooling, a classification-like head
# ------------------------------------------------------------------------------------------------


class GNSiLUFusion(nn.Module):
    def __init__(self, w: int = 8):
        super().__init__()
        self.camera_enc = nn.Sequential(nn.Conv2d(3, w, 3, 2, 1), nn.GroupNorm(2, w), nn.SiLU())
        self.radar_enc = nn.Sequential(nn.Conv2d(2, w, 3, 2, 1), nn.GroupNorm(2, w), nn.SiLU())
        self.lidar_enc = nn.Sequential(nn.Conv2d(4, w, 3, 2, 1), nn.GroupNorm(2, w), nn.SiLU())
        self.trunk = nn.Sequential(
            nn.Conv2d(3 * w, 2 * w, 3, 1, 1), nn.GroupNorm(4, 2 * w), nn.SiLU(),
            nn.Conv2d(2 * w, 2 * w, 3, 1, 1), nn.GroupNorm(4, 2 * w), nn.SiLU(),
        )
        self.head = nn.Linear(2 * w, 5)

    def forward(self, camera, radar, lidar):
        x = torch.cat([self.camera_enc(camera), self.radar_enc(radar), self.lidar_enc(lidar)], 1)
        x = self.trunk(x)
        dense = F.avg_pool2d(x, 2)
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1)), dense


# ------------------------------------------------------------------------------------------------
# 5. Token fusion transformer: LayerNorm, multi-head attention (SDPA and explicit softmax paths),
#    GELU MLP, a learned positional embedding (goes to the bias stream), dict output
# ------------------------------------------------------------------------------------------------


class Block(nn.Module):
    def __init__(self, d, heads, need_weights):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.need_weights = need_weights

    def forward(self, x):
        h = self.ln1(x)
        a, _ = self.attn(h, h, h, need_weights=self.need_weights)
        x = x + a
        return x + self.mlp(self.ln2(x))


class TransformerFusion(nn.Module):
    def __init__(self, d: int = 16, heads: int = 2, tokens: int = 8):
        super().__init__()
        self.camera_embed = nn.Linear(12, d)
        self.lidar_embed = nn.Linear(6, d)
        self.pos = nn.Parameter(torch.randn(1, 2 * tokens, d) * 0.1)
        self.blocks = nn.ModuleList([Block(d, heads, False), Block(d, heads, True)])
        self.norm = nn.LayerNorm(d)
        self.cls = nn.Linear(d, 3)

    def forward(self, camera, lidar):
        x = torch.cat([self.camera_embed(camera), self.lidar_embed(lidar)], 1) + self.pos
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        return {"logits": self.cls(x.mean(1)), "tokens": x}


# ------------------------------------------------------------------------------------------------
# 6. Functional-style forward: F.conv2d with raw parameters, a hand-written normalisation (frozen
#    divisor), where / clamp / tanh / leaky_relu / reflect pad / amax / einsum / matmul / gating
# ------------------------------------------------------------------------------------------------


class FunctionalFusion(nn.Module):
    def __init__(self, w: int = 8):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.w_cam = nn.Parameter(torch.randn(w, 3, 3, 3, generator=g) * 0.3)
        self.w_rad = nn.Parameter(torch.randn(w, 2, 3, 3, generator=g) * 0.3)
        self.w_fuse = nn.Parameter(torch.randn(w, 2 * w, 3, 3, generator=g) * 0.2)
        self.b_fuse = nn.Parameter(torch.randn(w, generator=g) * 0.1)
        self.gate_w = nn.Parameter(torch.randn(w, w, 1, 1, generator=g) * 0.3)
        self.mix = nn.Parameter(torch.randn(w, w, generator=g) * 0.3)
        self.proj = nn.Parameter(torch.randn(w, 4, generator=g) * 0.3)
        self.register_buffer("offset", torch.randn(1, w, 1, 1, generator=g) * 0.1)

    def forward(self, camera, radar):
        c = F.leaky_relu(F.conv2d(camera, self.w_cam, padding=1), 0.2)
        r = torch.tanh(F.conv2d(radar, self.w_rad, padding=1))
        x = F.conv2d(F.pad(torch.cat([c, r], 1), (1, 1, 1, 1), mode="reflect"), self.w_fuse, self.b_fuse)
        mu = x.mean(dim=(2, 3), keepdim=True)
        var = ((x - mu) ** 2).mean(dim=(2, 3), keepdim=True)
        x = (x - mu) / torch.sqrt(var + 1e-5) + self.offset
        x = torch.where(x > 0, x, 0.1 * x)
        x = x * torch.sigmoid(F.conv2d(x, self.gate_w))
        x = torch.clamp(x, -2.0, 3.0)
        x = F.avg_pool2d(x, 2)
        t = torch.einsum("bchw,cd->bdhw", x, self.mix)
        peak = t.amax(dim=1, keepdim=True)
        feat = t.flatten(2).transpose(1, 2) @ self.proj  # (B, HW, 4)
        return peak, feat


# ------------------------------------------------------------------------------------------------
# 7. Radar-guided camera lifting: the first cross-modal op is a product (sigmoid radar gate)
# ------------------------------------------------------------------------------------------------


class RadarGatedFusion(nn.Module):
    def __init__(self, w: int = 8):
        super().__init__()
        self.camera_enc = _cbr(3, w)
        self.radar_enc = _cbr(2, w)
        self.radar_gate = nn.Conv2d(2, w, 3, 1, 1)
        self.fuse = _cbr(2 * w, w)
        self.head = nn.Conv2d(w, 2, 1)

    def forward(self, camera, radar):
        gate = torch.sigmoid(self.radar_gate(radar))
        cam = self.camera_enc(camera) * gate  # radar-guided camera features (routing: the gate)
        x = self.fuse(torch.cat([cam, self.radar_enc(radar)], 1))
        return self.head(x)


# ------------------------------------------------------------------------------------------------
# Registry of zoo entries
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZooEntry:
    """One zoo architecture: ``build(scale)`` -> model, ``inputs(seed, dtype, scale)`` -> dict."""

    name: str
    build: Callable
    inputs: Callable
    modalities: dict | None
    description: str


def _img(g, c, h, w, dtype):
    return torch.randn(1, c, h, w, generator=g).to(dtype)


def _sparse(g, c, h, w, dtype, p=0.2):
    occ = (torch.rand(1, 1, h, w, generator=g) < p).float()
    return (torch.rand(1, c, h, w, generator=g) * occ).to(dtype)


def _resnet_inputs(seed=0, dtype=torch.float32, scale=1):
    g = torch.Generator().manual_seed(seed)
    s = 16 * scale
    return {"camera": _img(g, 3, s, s, dtype), "radar": _sparse(g, 2, s, s, dtype)}


def _unet_inputs(seed=0, dtype=torch.float32, scale=1):
    g = torch.Generator().manual_seed(seed)
    s = 16 * scale
    return {"camera": _img(g, 3, s, s, dtype), "lidar": _sparse(g, 4, s, s, dtype, 0.3)}


def _bev_inputs(seed=0, dtype=torch.float32, scale=1):
    g = torch.Generator().manual_seed(seed)
    s = 16 * scale
    n = 2
    theta = []
    for i in range(n):
        a = (i - 0.5) * 0.6 + 0.05 * seed
        c, sn = math.cos(a), math.sin(a)
        theta.append([[c * 0.9, -sn, 0.1 * i], [sn, c * 0.9, -0.05]])
    return {
        "images": torch.randn(1, n, 3, 2 * s, 2 * s, generator=g).to(dtype),
        "radar": _sparse(g, 3, s, s, dtype),
        "cam_to_bev": torch.tensor([theta], dtype=dtype),
    }


def _gn_inputs(seed=0, dtype=torch.float32, scale=1):
    g = torch.Generator().manual_seed(seed)
    s = 16 * scale
    return {"camera": _img(g, 3, s, s, dtype), "radar": _sparse(g, 2, s, s, dtype), "lidar": _sparse(g, 4, s, s, dtype)}


def _tr_inputs(seed=0, dtype=torch.float32, scale=1):
    g = torch.Generator().manual_seed(seed)
    t = 8 * scale
    return {"camera": torch.randn(1, t, 12, generator=g).to(dtype), "lidar": torch.randn(1, t, 6, generator=g).to(dtype)}


def _fn_inputs(seed=0, dtype=torch.float32, scale=1):
    g = torch.Generator().manual_seed(seed)
    s = 12 * scale
    return {"camera": _img(g, 3, s, s, dtype), "radar": _img(g, 2, s, s, dtype)}


def _build(cls, **kw):
    def b(scale=1, seed=0):
        torch.manual_seed(seed)
        args = {k: (v * scale if k == "w" else v) for k, v in kw.items()}
        if cls is SimpleBEVFusion:
            args["bev"] = 16 * scale
        if cls is TransformerFusion:
            args = dict(d=16 * scale, heads=2, tokens=8 * scale)
        return randomize_norm_stats(cls(**args), seed).eval()

    return b


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in [
        ZooEntry("resnet_bn", _build(ResNetFusion, w=8), _resnet_inputs, None,
                 "camera+radar, conv+BN+ReLU ResNet blocks, max pooling, nearest upsampling, sigmoid + dict heads"),
        ZooEntry("unet", _build(UNetFusion, w=8), _unet_inputs, None,
                 "camera+LiDAR U-Net, bilinear upsampling (both align_corners), skip concatenations"),
        ZooEntry("simplebev", _build(SimpleBEVFusion, w=8), _bev_inputs,
                 {"images": "camera", "radar": "radar", "cam_to_bev": None},
                 "SimpleBEV-like: grid_sample lifting with a calibration-only grid, masked camera mean, "
                 "InstanceNorm+GELU compressor, IN decoder with skip add"),
        ZooEntry("gn_silu3", _build(GNSiLUFusion, w=8), _gn_inputs, None,
                 "three modalities, GroupNorm+SiLU, average pooling, linear head, tuple output"),
        ZooEntry("transformer", _build(TransformerFusion), _tr_inputs, None,
                 "token fusion: LayerNorm, MHA (SDPA and explicit softmax/bmm), GELU MLP, positional embedding"),
        ZooEntry("functional", _build(FunctionalFusion, w=8), _fn_inputs, None,
                 "functional forward: hand-written norm (frozen divisor), where, sigmoid gating, clamp, reflect pad, "
                 "amax, einsum, matmul"),
        ZooEntry("radar_gated", _build(RadarGatedFusion, w=8), _resnet_inputs, None,
                 "radar-gated camera features: the first cross-modal op is a product with a routing gate"),
    ]
}


def get(name: str) -> ZooEntry:
    try:
        return ZOO[name]
    except KeyError:
        raise KeyError(f"no zoo entry {name!r}; entries: {sorted(ZOO)}") from None
