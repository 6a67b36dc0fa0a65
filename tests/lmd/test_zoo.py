"""Invariants of lmd.md section 8 on a zoo of fusion architectures: equality at every node (single
pass and replay), function preservation, separation, float32 tolerance, no side effects."""

from __future__ import annotations

import copy

import pytest
import torch

from fusion_monitor.lmd import decompose
from fusion_monitor.lmd.zoo import ZOO

from .helpers import leaves, modality_args, model_output, rel_err, zoo_case

NAMES = sorted(ZOO)


@pytest.mark.parametrize("name", NAMES)
def test_output_is_the_models_output(name):
    model, ex, _, dm = zoo_case(name)
    out = dm(**ex)
    for got, want in zip(leaves(out.output), leaves(model_output(model, ex)), strict=True):
        assert got.shape == want.shape
        assert rel_err(got, want) <= 1e-12
    for s, o in zip(leaves(out.streams), leaves(out.output), strict=True):
        assert s.shape == (len(dm.stream_names),) + tuple(o.shape)
    assert out.conservation_error() <= 1e-12


@pytest.mark.parametrize("name", NAMES)
def test_equality_at_every_node_float64(name):
    model, ex, _, dm = zoo_case(name)
    ref = dm.reference(**ex)
    single = dm.trace(**ex)
    replay = dm.trace(state=dm.record(**ex), **ex)
    assert single and set(single) == set(replay)
    for node, streams in single.items():
        assert streams.shape[0] == len(dm.stream_names)
        assert rel_err(streams.sum(0), ref[node]) <= 1e-9, node
        assert rel_err(replay[node].sum(0), ref[node]) <= 1e-9, node
    # the two forms give the same streams (same decomposition, two layouts)
    for node in single:
        assert rel_err(single[node], replay[node]) <= 1e-9, node


@pytest.mark.parametrize("name", NAMES)
def test_separation_bit_identical_float64(name):
    model, ex, other, dm = zoo_case(name)
    state = dm.record(**ex)
    base = dm(**ex, state=state)
    for modality, args in modality_args(name, dm).items():
        pert = dict(ex)
        for a in args:
            pert[a] = other[a]
        out = dm(**pert, state=state)
        i = dm.stream_names.index(modality)
        moved = False
        for s0, s1 in zip(leaves(base.streams), leaves(out.streams), strict=True):
            for j, stream in enumerate(dm.stream_names):
                if j != i:
                    assert torch.equal(s0[j], s1[j]), f"{stream} changed when {modality} was perturbed"
            moved |= not torch.equal(s0[i], s1[i])
        assert moved, f"perturbing {modality} left its own stream unchanged"


@pytest.mark.parametrize("name", NAMES)
def test_float32_within_1e4(name):
    model, ex, _, dm = zoo_case(name, torch.float32)
    out = dm(**ex)
    for got, want in zip(leaves(out.output), leaves(model_output(model, ex)), strict=True):
        assert rel_err(got, want) <= 1e-4
    assert out.conservation_error() <= 1e-4
    ref = dm.reference(**ex)
    for tr in (dm.trace(**ex), dm.trace(state=dm.record(**ex), **ex)):
        for node, streams in tr.items():
            assert rel_err(streams.sum(0), ref[node]) <= 1e-4, node


def _snapshot(model):
    return (
        {k: (v, v.detach().clone(), v.requires_grad) for k, v in model.state_dict(keep_vars=True).items()},
        model.training,
        [m.training for m in model.modules()],
        {id(m): (dict(m._forward_hooks), dict(m._forward_pre_hooks)) for m in model.modules()},
    )


@pytest.mark.parametrize("name", ["resnet_bn", "transformer"])
def test_users_model_untouched(name):
    e = ZOO[name]
    model = e.build().double()
    model.train()  # training mode must survive, and BN statistics must not move
    calls = []
    handle = model.register_forward_hook(lambda m, i, o: calls.append(1))
    before = _snapshot(model)
    ex = e.inputs(0, torch.float64)
    with pytest.warns(UserWarning, match="training mode"):
        dm = decompose(model, ex, e.modalities)
    dm(**ex)
    dm(**ex, state=dm.record(**ex))
    after = _snapshot(model)
    assert before[1] is True and after[1] is True
    assert before[2] == after[2]
    for k, (obj, val, grad) in before[0].items():
        obj2, _, grad2 = after[0][k]
        assert obj2 is obj, f"{k} was replaced"
        assert torch.equal(obj2.detach(), val), f"{k} was modified"
        assert grad2 == grad, f"{k}.requires_grad changed"
    assert before[3] == after[3]
    handle.remove()
    # the decomposition uses eval semantics although the model is in training mode
    ref = model_output(copy.deepcopy(model).eval(), ex)
    for got, want in zip(leaves(dm(**ex).output), leaves(ref), strict=True):
        assert rel_err(got, want) <= 1e-12


def test_decomposition_does_not_alias_model_weights():
    model, ex, _, dm = zoo_case("gn_silu3")
    m2 = copy.deepcopy(model)
    dm2 = decompose(m2, ex)
    before = dm2(**ex).output
    with torch.no_grad():
        for p in m2.parameters():
            p.add_(1.0)
    after = dm2(**ex).output
    for a, b in zip(leaves(before), leaves(after), strict=True):
        assert torch.equal(a, b)
