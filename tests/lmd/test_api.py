"""The public contract of fusion_monitor.lmd: result types, record/replay, coverage, the rule
registry and RuleMap priorities, lowering of unruled ops, and a specific error for every bad input."""

from __future__ import annotations

import re
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fusion_monitor.lmd import (
    BatchNorm,
    DecomposedModel,
    Decomposition,
    DuplicateRuleError,
    FreezeToBias,
    Gate,
    InputShapeError,
    LMDUnsupportedWarning,
    NonFiniteInputError,
    Norm,
    RuleMap,
    State,
    StateError,
    UnsupportedOpError,
    decompose,
    default_registry,
)

from .helpers import leaves, rel_err, zoo_case

DT = torch.float64


def _x(*shapes, seed=0, names=("a", "b", "c")):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(s, generator=g, dtype=DT) for n, s in zip(names, shapes)}


class Softmaxed(nn.Module):
    def forward(self, a, b):
        z = a + b
        return torch.softmax(z, -1)  # a routing op as the output: no stream rule


class Squared(nn.Module):
    def forward(self, a, b):
        z = a + b
        return z * z  # product of two decomposed tensors, neither routing


class Chain(nn.Module):
    """Two BN modules and a LayerNorm after the fusion point (names for RuleMap tests)."""

    def __init__(self):
        super().__init__()
        self.enc = nn.ModuleDict({"bn": nn.BatchNorm1d(4)})
        self.dec = nn.ModuleDict({"bn": nn.BatchNorm1d(4), "ln": nn.LayerNorm(4)})
        self.to(DT).eval()
        with torch.no_grad():
            for bn in (self.enc["bn"], self.dec["bn"]):
                bn.running_mean.uniform_(-1, 1)
                bn.running_var.uniform_(0.5, 2)

    def forward(self, a, b):
        z = self.enc["bn"](a + b)
        z = torch.relu(self.dec["bn"](z))
        return self.dec["ln"](z)


# ------------------------------------------------------------------------------------------------
# Results, record/replay
# ------------------------------------------------------------------------------------------------


def test_result_types_and_helpers():
    model, ex, _, dm = zoo_case("resnet_bn")
    assert isinstance(dm, DecomposedModel)
    assert dm.stream_names == ("camera", "radar", "bias")
    out = dm(**ex)
    assert isinstance(out, Decomposition) and not out.replayed
    assert set(out.output) == {"heatmap", "reg"} and set(out.streams) == {"heatmap", "reg"}
    cam = out.stream("camera")
    assert torch.equal(cam["reg"], out.streams["reg"][0])
    assert set(out.as_dict()) == set(dm.stream_names)
    with pytest.raises(KeyError, match="lidar"):
        out.stream("lidar")
    sh = out.shares()
    assert torch.allclose(sh["reg"].sum(0), torch.ones((), dtype=DT))
    sh_px = out.shares(dims=(0, 1))  # per pixel
    assert sh_px["reg"].shape == (3,) + tuple(out.output["reg"].shape[2:])
    assert out.conservation_error() < 1e-12
    for t, s in zip(leaves(out.total()), leaves(out.output), strict=True):
        assert rel_err(t, s) < 1e-12


def test_record_replay_and_frozen_variants():
    model, ex, other, dm = zoo_case("simplebev")
    st = dm.record(**ex)
    assert isinstance(st, State) and st.nodes and st.nbytes > 0
    assert set(st.kinds.values()) >= {"norm", "activation"}
    assert "State(" in repr(st)
    same = dm(**ex, state=st)
    assert same.replayed
    for a, b in zip(leaves(same.output), leaves(dm(**ex).output), strict=True):
        assert rel_err(a, b) < 1e-12
    # frozen="none" recomputes the whole operating point: equals the single pass on those inputs
    rec = dm(**other, state=st, frozen="none")
    for a, b in zip(leaves(rec.streams), leaves(dm(**other).streams), strict=True):
        assert rel_err(a, b) < 1e-9
    # frozen operating point != recomputed one on other inputs
    froz = dm(**other, state=st)
    assert any(rel_err(a, b) > 1e-6 for a, b in zip(leaves(froz.streams), leaves(rec.streams)))
    for preset in ("activations", "norms", {"norm"}):
        dm(**other, state=st, frozen=preset)
    with pytest.raises(ValueError, match="unknown state kinds"):
        dm(**other, state=st, frozen={"gates"})
    with pytest.raises(ValueError, match="only applies to a replay"):
        dm(**ex, frozen="all")


def test_state_of_another_model_is_refused():
    _, ex, _, dm = zoo_case("resnet_bn")
    m2, ex2, _, dm2 = zoo_case("unet")
    with pytest.raises(StateError, match="another decomposed model"):
        dm(**ex, state=dm2.record(**ex2))
    with pytest.raises(TypeError, match="State"):
        dm(**ex, state={"x": 1})


def test_modalities_mapping_groups_and_none():
    class M(nn.Module):
        def forward(self, img_front, img_back, pts, calib):
            return torch.cat([img_front * calib, img_back], 1) + pts

    x = _x((1, 2, 3), (1, 2, 3), (1, 4, 3), (1, 1, 3), names=("img_front", "img_back", "pts", "calib"))
    dm = decompose(M().eval(), x, {"pts": "lidar", "img_front": "camera", "img_back": "camera", "calib": None})
    assert dm.stream_names == ("camera", "lidar", "bias")  # order of first appearance in forward
    out = dm(**x, state=dm.record(**x))  # replay: every stream from its own inputs, bit-exact
    assert torch.equal(out.streams[1], x["pts"].expand(1, 4, 3))
    assert torch.all(out.streams[2] == 0)
    single = dm(**x)  # single pass: the same up to rounding (streams recovered from the full tensor)
    assert rel_err(single.streams, out.streams) < 1e-15


def test_pytree_and_constant_inputs():
    class M(nn.Module):
        def forward(self, cams, radar, scale: float = 1.0):
            return torch.stack(cams, 0).sum(0) * scale + radar

    g = torch.Generator().manual_seed(0)
    x = {"cams": [torch.randn(2, 3, generator=g, dtype=DT) for _ in range(3)], "radar": torch.randn(2, 3, dtype=DT), "scale": 2.0}
    dm = decompose(M().eval(), x)
    out = dm(**x)
    assert torch.allclose(out.streams[0], 2.0 * sum(x["cams"]))
    with pytest.raises(ValueError, match="scale"):
        dm(**{**x, "scale": 3.0})


# ------------------------------------------------------------------------------------------------
# Bad inputs: a specific error each
# ------------------------------------------------------------------------------------------------


def test_unsupported_op_names_op_and_source_line():
    x = _x((2, 5), (2, 5))
    with pytest.raises(UnsupportedOpError) as e:
        decompose(Softmaxed().eval(), x)
    msg = str(e.value)
    assert "aten.softmax" in msg and "test_api.py" in msg and "torch.softmax(z, -1)" in msg
    assert e.value.op.startswith("aten.softmax") and "test_api.py:" in e.value.where
    with pytest.raises(UnsupportedOpError, match=r"aten\.mul\.Tensor.*return z \* z"):
        decompose(Squared().eval(), x)


def test_non_strict_freezes_unsupported_ops_to_bias():
    x = _x((2, 5), (2, 5))
    with pytest.warns(LMDUnsupportedWarning, match="softmax"):
        dm = decompose(Softmaxed().eval(), x, strict=False)
    assert dm.coverage()["aten.softmax.int"] == "unsupported"
    assert any(r.status == "unsupported (frozen to bias)" for r in dm.coverage().rows)
    out = dm(**x)
    assert torch.all(out.streams[:2] == 0) and rel_err(out.streams[2], out.output) < 1e-15
    x2 = dict(x, a=x["a"] + 1)
    st = dm.record(**x)
    assert torch.equal(dm(**x2, state=st).streams, dm(**x, state=st).streams)


def test_modality_that_is_not_an_input():
    x = _x((2, 5), (2, 5))
    with pytest.raises(ValueError, match=r"\['lidar'\].*not an input of forward"):
        decompose(Squared().eval(), x, {"a": "camera", "b": "radar", "lidar": "lidar"})
    with pytest.raises(ValueError, match=r"tensor inputs \['b'\] are not in modalities"):
        decompose(Squared().eval(), x, {"a": "camera"})
    with pytest.raises(ValueError, match="no input is mapped"):
        decompose(Squared().eval(), x, {"a": None, "b": None})
    with pytest.raises(TypeError, match="not arguments of forward"):
        decompose(Squared().eval(), {**x, "c": x["a"]})
    with pytest.raises(TypeError, match="lacks required forward arguments"):
        decompose(Squared().eval(), {"a": x["a"]})


def test_inputs_that_differ_from_the_example():
    _, ex, _, dm = zoo_case("resnet_bn")
    with pytest.raises(InputShapeError, match=r"input 'camera' has shape \(1, 3, 8, 8\).*\(1, 3, 16, 16\)"):
        dm(**{**ex, "camera": ex["camera"][..., :8, :8]})
    with pytest.raises(InputShapeError, match="dtype torch.float32"):
        dm(**{**ex, "radar": ex["radar"].float()})
    with pytest.raises(TypeError, match=r"missing inputs \['radar'\]"):
        dm(camera=ex["camera"])
    with pytest.raises(TypeError, match=r"unexpected inputs \['lidar'\]"):
        dm(**ex, lidar=ex["radar"])
    with pytest.raises(InputShapeError):
        dm.record(**{**ex, "camera": ex["camera"][..., :8, :8]})


def test_nan_and_inf_inputs():
    _, ex, _, dm = zoo_case("resnet_bn")
    bad = ex["radar"].clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteInputError, match="'radar' contains NaN"):
        dm(**{**ex, "radar": bad})
    with pytest.raises(NonFiniteInputError, match="NaN"):
        dm.record(**{**ex, "radar": bad})
    bad[0, 0, 0, 0] = float("inf")
    with pytest.raises(NonFiniteInputError, match="inf"):
        dm(**{**ex, "radar": bad})
    m, _, _, _ = zoo_case("resnet_bn")
    with pytest.raises(NonFiniteInputError):
        decompose(m, {**ex, "radar": bad})


def test_training_mode_warns_and_uses_eval_semantics():
    model = Chain().train()
    x = _x((3, 4), (3, 4))
    with pytest.warns(UserWarning, match="training mode"):
        dm = decompose(model, x)
    assert model.training
    want = Chain.forward(model.eval(), **x)
    assert rel_err(dm(**x).output, want.detach()) < 1e-12


def test_bad_options():
    x = _x((3, 4), (3, 4))
    with pytest.raises(ValueError, match="bn_rule"):
        decompose(Chain(), x, bn_rule="ratio")
    with pytest.raises(ValueError, match="norm_rule"):
        decompose(Chain(), x, norm_rule="batch")
    with pytest.raises(TypeError, match="RuleMap"):
        decompose(Chain(), x, rules={"relu": "x"})

    class Reserved(nn.Module):
        def forward(self, a, state):
            return a + state

    with pytest.raises(ValueError, match="reserves"):
        decompose(Reserved(), _x((2,), (2,), names=("a", "state")))


# ------------------------------------------------------------------------------------------------
# Coverage, registry, rule priorities, lowering
# ------------------------------------------------------------------------------------------------


def test_coverage_report():
    _, ex, _, dm = zoo_case("resnet_bn")
    cov = dm.coverage()
    assert cov["aten.cat.default"] == "pass-through"
    assert cov["aten.relu.default"] == "gate:relu"
    assert cov["aten.max_pool2d.default"] == "max_pool"
    assert cov["aten.sigmoid.default"] == "gate:sigmoid"
    assert not cov.unsupported
    text = str(cov)
    assert "fusion starts at: cat" in text and "pre-fusion" in text and "gate:relu" in text
    assert dm.fusion_points and "torch.cat" in dm.fusion_points[0]


def test_registry_refuses_duplicates():
    reg = default_registry()
    with pytest.raises(DuplicateRuleError, match=r"aten\.relu\.default already has a rule"):
        reg.register(torch.ops.aten.relu.default, Gate("relu"))
    reg.replace(torch.ops.aten.relu.default, Gate("leaky_relu"))
    assert default_registry().get(torch.ops.aten.relu.default).activation == "relu"  # copies
    assert "aten.conv2d.default" in default_registry().table()
    with pytest.raises(TypeError):
        reg.register(torch.ops.aten.erf.default, "gate")


def test_rule_priority_global_op_pattern_name():
    x = _x((3, 4), (3, 4))
    bn = "batch_norm"  # matches every spelling of batch norm in the captured graph

    def used(dm):
        r = dm.rules_used()
        bns = {k: v for k, v in r.items() if "batch_norm" in v[0]}
        return sorted(bns.values()), next(v for v in r.values() if v[0].startswith("norm"))

    # default registry < global (bn_rule)
    dm = decompose(Chain(), x)
    assert used(dm)[0] == [("batch_norm:identity", "global")] * 2
    dm = decompose(Chain(), x, bn_rule="uniform")
    assert used(dm)[0] == [("batch_norm:uniform", "global")] * 2
    # op type beats global
    rm = RuleMap().set_op(bn, BatchNorm("uniform"))
    assert used(decompose(Chain(), x, rules=rm))[0] == [("batch_norm:uniform", "op")] * 2
    # pattern beats op type
    rm = RuleMap().set_op(bn, BatchNorm("uniform")).set_pattern("enc.*", BatchNorm("identity"))
    assert used(decompose(Chain(), x, rules=rm))[0] == [("batch_norm:identity", "pattern"), ("batch_norm:uniform", "op")]
    # exact name beats pattern
    rm = rm.set_pattern("dec.*", Norm("identity")).set_name("enc.bn", BatchNorm("uniform"))
    bns, ln = used(decompose(Chain(), x, rules=rm))
    assert bns == [("batch_norm:uniform", "name"), ("batch_norm:uniform", "op")]
    assert ln == ("norm:identity", "pattern")
    # a rule of another family never applies (a BatchNorm rule set on the LayerNorm's name)
    rm = RuleMap().set_name("dec.ln", BatchNorm("uniform"))
    assert used(decompose(Chain(), x, rules=rm))[1] == ("norm:ratio", "global")
    # node names work for functional code; FreezeToBias can be chosen explicitly
    rm = RuleMap().set_name("relu", FreezeToBias())
    dm = decompose(Chain(), x, rules=rm)
    assert dm.rules_used()["relu"] == ("freeze-to-bias", "name")
    assert rel_err(dm(**x).streams.sum(0), dm(**x).output) < 1e-12


def test_unruled_ops_are_lowered():
    class G(nn.Module):
        def forward(self, a, b):
            z = a + b
            return F.glu(z, -1) + F.hardshrink(z[..., :2], 0.3) + F.selu(z[..., 2:])

    x = _x((2, 4), (2, 4))
    dm = decompose(G().eval(), x)
    assert set(dm.lowered_ops) == {"aten.glu.default", "aten.hardshrink.default"}  # selu has its own gate
    assert rel_err(dm(**x).output, G()(**x)) < 1e-12
    st = dm.record(**x)
    base = dm(**x, state=st)
    pert = dm(**dict(x, b=x["b"] * 2), state=st)
    assert torch.equal(base.streams[0], pert.streams[0]) and torch.equal(base.streams[2], pert.streams[2])


def test_lowering_keeps_the_users_op_name_when_it_does_not_help():
    class S(nn.Module):
        def forward(self, a, b):
            z = a + b
            return F.glu(z, -1).repeat(1, 2) + torch.log_softmax(z, -1)

    x = _x((2, 4), (2, 4))
    with pytest.raises(UnsupportedOpError) as e:
        decompose(S().eval(), x)
    assert e.value.op == "aten.log_softmax.int"  # not the name of a lowered piece


def test_custom_gate_rule_for_a_new_op():
    class E(nn.Module):
        def forward(self, a, b):
            return torch.erf(a + b)

    x = _x((3,), (3,))
    with pytest.raises(UnsupportedOpError, match="aten.erf"):
        decompose(E().eval(), x)
    def erf_gate(z, args):  # secant erf(z)/z, 2/sqrt(pi) at 0; erf(0) = 0
        safe = torch.where(z == 0, torch.ones_like(z), z)
        return torch.where(z == 0, torch.full_like(z, 2 / torch.pi**0.5), torch.erf(z) / safe), 0.0

    rm = RuleMap().set_op("erf", Gate(fn=erf_gate))
    dm = decompose(E().eval(), x, rules=rm)
    out = dm(**x)
    z = x["a"] + x["b"]
    assert rel_err(out.streams[0], torch.erf(z) / z * x["a"]) < 1e-12


def test_no_warnings_on_a_clean_model():
    _, ex, _, _ = zoo_case("unet")
    m, _, _, _ = zoo_case("unet")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dm = decompose(m, ex)
        dm(**ex)
    assert re.search(r"streams=\['camera', 'lidar', 'bias'\]", repr(dm))
