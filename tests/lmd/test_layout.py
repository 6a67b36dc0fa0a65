"""The two stream layouts are one decomposition in two bases: round trips, lifting and constants."""

from __future__ import annotations

import pytest
import torch

from fusion_monitor.lmd.layout import ComplementLayout, StreamLayout

from .helpers import rel_err


@pytest.mark.parametrize("layout", [ComplementLayout, StreamLayout])
@pytest.mark.parametrize("M", [1, 2, 3])
def test_layout_semantics(layout, M):
    lay = layout(M)
    g = torch.Generator().manual_seed(M)
    H = torch.randn(M + 1, 2, 5, generator=g, dtype=torch.float64)  # public order [*modalities, bias]
    X = lay.from_streams(H)
    assert rel_err(lay.streams(X), H) < 1e-15
    assert rel_err(lay.total(X), H.sum(0)) < 1e-15
    c = torch.randn(5, generator=g, dtype=torch.float64)
    want = H.clone()
    want[M] += c  # a bias-stream constant
    assert rel_err(lay.streams(lay.add_bias(X, c)), want) < 1e-14
    want = H + c / (M + 1)  # split uniformly
    assert rel_err(lay.streams(lay.add_uniform(X, c)), want) < 1e-14
    v = torch.randn(2, 5, generator=g, dtype=torch.float64)
    for m in list(range(M)) + [None]:  # one modality's tensor (or a constant) enters its own stream
        lifted = lay.streams(lay.lift(v, m))
        i = M if m is None else m
        assert rel_err(lifted[i], v) < 1e-15
        assert torch.cat([lifted[:i], lifted[i + 1 :]]).abs().max() < 1e-15
    folded = lay.streams(lay.fold_bias_into(X, 0))
    assert rel_err(folded[0], H[0] + H[M]) < 1e-14 and folded[M].abs().max() < 1e-14
    with pytest.raises(ValueError):
        layout(0)
