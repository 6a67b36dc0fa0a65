"""The perturbation protocol of lmd.md section 6 (PCC, MSE, cosine; partner schedule; frozen vs
recomputed variants) on a decomposed model and a small dataset."""

from __future__ import annotations

import math

import pytest
import torch

from fusion_monitor.lmd.metrics import (
    compare_streams,
    cosine,
    mse,
    partner_schedule,
    pcc,
    perturbation_protocol,
    schedule,
)
from fusion_monitor.lmd.zoo import ZOO

from .helpers import zoo_case


def test_partner_schedule():
    assert partner_schedule(0, 6019) == [500 * i for i in range(1, 11)]
    assert partner_schedule(5000, 6019) == [4500, 4000, 3500, 3000, 2500, 2000, 1500, 1000, 500, 0]
    assert partner_schedule(700, 6019, count=3) == [200, 1700, 2200]
    assert partner_schedule(1, 3, step=2000, count=2) == []
    assert schedule(2000, 2)(4500, 8000) == [2500, 500]


def test_similarity_measures():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    assert pcc(a, a) == 1.0 and mse(a, a) == 0.0 and cosine(a, a) == 1.0
    assert pcc(a, 2 * a + 1) == pytest.approx(1.0)
    assert pcc(a, -a) == pytest.approx(-1.0)
    assert mse(a, a + 2) == pytest.approx(4.0)
    assert cosine(a, -a) == pytest.approx(-1.0)
    z = torch.zeros(4, dtype=torch.float64)
    assert pcc(z, z) == 1.0 and cosine(z, z) == 1.0 and math.isnan(pcc(z, a))


def test_protocol_lmd_separates_baseline_does_not():
    e = ZOO["gn_silu3"]
    model, ex, _, dm = zoo_case("gn_silu3")
    samples = [e.inputs(i, torch.float64) for i in range(4)]
    lmd = perturbation_protocol(dm, samples, partners=schedule(step=1, count=2))
    assert lmd.n_pairs == 4 * 3 * 2
    for p in dm.modality_names:
        for s in dm.stream_names:
            if s == p:
                assert lmd.mean(p, s, "pcc") < 0.999, f"{p} perturbed but its stream did not move"
            else:
                assert lmd.mean(p, s, "pcc") == 1.0 and lmd.mean(p, s, "mse") == 0.0 and lmd.mean(p, s, "cos") == 1.0
    assert lmd.label(("radar",), "camera") == "Rp/C" and lmd.label(("camera", "lidar"), "bias") == "CLp/B"
    assert "Rp/C" in lmd.table() and lmd.as_dict()["Rp/C"] == 1.0
    base = perturbation_protocol(dm, samples, partners=schedule(step=1, count=2), variant="baseline")
    assert min(base.mean("radar", s) for s in ("camera", "lidar")) < 1.0
    # two modalities swapped at once (the paper's three-modality setting)
    two = perturbation_protocol(dm, samples, perturb=[("camera", "radar")], partners=schedule(step=2, count=1))
    assert two.mean(("camera", "radar"), "lidar") == 1.0 and two.mean(("camera", "radar"), "bias") == 1.0
    for variant in ("activations", "norms"):
        perturbation_protocol(dm, samples[:2], partners=schedule(step=1, count=1), variant=variant)


def test_protocol_with_companion_inputs_and_selection():
    e = ZOO["simplebev"]
    model, ex, _, dm = zoo_case("simplebev")
    samples = [e.inputs(i, torch.float64) for i in range(3)]
    rep = perturbation_protocol(
        dm,
        samples,
        perturb=["camera"],
        companions={"camera": ["cam_to_bev"]},
        partners=schedule(1, 1),
        select=lambda s: s["center"],
    )
    assert rep.mean("camera", "radar") == 1.0 and rep.mean("camera", "camera") < 1.0
    out = dm(**samples[0])
    assert set(compare_streams(out, out)) == set(dm.stream_names)
    with pytest.raises(ValueError, match="lidar"):
        perturbation_protocol(dm, samples, perturb=["lidar"])
    with pytest.raises(ValueError, match="calib"):
        perturbation_protocol(dm, samples, companions={"camera": ["calib"]})
    with pytest.raises(ValueError, match="variant"):
        perturbation_protocol(dm, samples, variant="half")
