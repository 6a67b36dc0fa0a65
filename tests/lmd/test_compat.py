"""Compatibility flags for the LMD authors' code quirks (lmd.md section 7): all off by default,
each reproducing its documented effect when switched on."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fusion_monitor.lmd import Compat, Norm, authors_three_modality_rules, decompose

from .helpers import leaves, rel_err, zoo_case


def test_defaults_are_the_clean_behaviour():
    c = Compat()
    assert not c.any and c.fold_bias_into is None and not c.final_bias_to_all_streams and c.decompose_norm_eps is None
    model, ex, _, dm = zoo_case("resnet_bn")
    dm2 = decompose(model, ex, compat=Compat())
    for a, b in zip(leaves(dm(**ex).streams), leaves(dm2(**ex).streams), strict=True):
        assert torch.equal(a, b)


def test_fold_bias_into_camera():
    model, ex, _, dm = zoo_case("resnet_bn")
    q = decompose(model, ex, compat=Compat(fold_bias_into="camera"))
    for out in (q(**ex), q(**ex, state=q.record(**ex))):
        assert out.conservation_error() < 1e-12  # equality kept
        for s, o in zip(leaves(out.streams), leaves(out.output), strict=True):
            assert s[2].abs().max() <= 1e-12 * o.abs().max()  # bias stream emptied into camera
    clean = dm(**ex)
    assert any(rel_err(a[0], b[0]) > 1e-3 for a, b in zip(leaves(q(**ex).streams), leaves(clean.streams)))
    with pytest.raises(ValueError, match="lidar"):
        decompose(model, ex, compat=Compat(fold_bias_into="lidar"))


def test_final_bias_added_to_every_stream():
    model, ex, _, dm = zoo_case("resnet_bn")
    q = decompose(model, ex, compat=Compat(final_bias_to_all_streams=True))
    out, clean = q(**ex), dm(**ex)
    b = model.reg.bias.detach().reshape(-1, 1, 1)
    # reg is produced by a conv with bias: each of the 2 modality streams got +bias
    assert rel_err(out.streams["reg"].sum(0) - out.output["reg"], (2 * b).expand_as(out.output["reg"])) < 1e-12
    assert rel_err(out.streams["reg"][0] - clean.streams["reg"][0], b.expand_as(out.output["reg"])) < 1e-12
    assert torch.equal(out.streams["reg"][2], clean.streams["reg"][2])
    # heatmap goes through a sigmoid after its conv: not a conv output, unchanged
    assert torch.equal(out.streams["heatmap"], clean.streams["heatmap"])


def test_decompose_norm_eps_quirk():
    model, ex, _, dm = zoo_case("simplebev")
    q = decompose(model, ex, compat=Compat(decompose_norm_eps=1e-7))
    single = q(**ex)
    for a, b in zip(leaves(single.output), leaves(dm(**ex).output), strict=True):
        assert rel_err(a, b) < 1e-12  # detections come from the real network
    replay = q(**ex, state=q.record(**ex))
    err = replay.conservation_error()
    ref = [rel_err(a, b) for a, b in zip(leaves(replay.output), leaves(dm(**ex).output))]
    assert 1e-9 < max(ref) < 1e-1, "replay with the other epsilon is off by the epsilon mismatch"
    assert err < 1e-12  # its streams still add up to its own (frozen-network) output
    with pytest.raises(ValueError):
        Compat(decompose_norm_eps=0.0)


class ThreeMod(nn.Module):
    def __init__(self):
        super().__init__()
        self.bev_compressor = nn.Sequential(nn.Conv2d(6, 4, 1), nn.InstanceNorm2d(4, affine=True))
        self.decoder = nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1), nn.InstanceNorm2d(4, affine=True))
        self.eval()

    def forward(self, c, r, l):
        return self.decoder(self.bev_compressor(torch.cat([c, r, l], 1)))


def test_authors_three_modality_rule_mix():
    x = {k: torch.randn(1, 2, 4, 4, dtype=torch.float64) for k in "crl"}
    model = ThreeMod().double()
    dm = decompose(model, x, rules=authors_three_modality_rules(decoder="decoder*", fusion="bev_compressor*"))
    used = {k: v[0] for k, v in dm.rules_used().items() if "norm" in v[0]}
    assert sorted(used.values()) == ["batch_norm:uniform", "norm:identity", "norm:ratio"]
    assert dm(**x).conservation_error() < 1e-12
    assert isinstance(Norm("ratio"), Norm)
