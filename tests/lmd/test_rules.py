"""Every rule against a slow, obviously-correct reference (the "replicates" pattern).

Each case is a one-op model after the fusion point, ``op(a + b + c)`` (``c`` a constant buffer, so
the bias stream is non-zero at the fusion point: h_a = a, h_b = b, h_bias = c). With the operating
point theta* taken from z = a + b + c, the reference streams are the superposition of the frozen
affine map G(y) = L_z(y) + k_z written by hand here, independent of the engine:

    h'_m = L_z(h_m),  h'_bias = L_z(h_bias) + op(z) - L_z(z)

For ops whose frozen map is their Jacobian at z (linear ops, ReLU, max pooling, masks), L_z is
computed with torch.func.jvp instead. Rules whose bias/modality split is not a superposition
(identity / uniform variants) are checked against their own formulas.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fusion_monitor.lmd import Product, RuleMap, decompose

from .helpers import rel_err

DT = torch.float64

# torch.func.jvp (the reference, not the engine) registers TorchScript decompositions on first use
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


class OneOp(nn.Module):
    def __init__(self, fn, shape, params: dict | None = None):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.register_buffer("c", torch.randn(shape, generator=g, dtype=DT) * 0.5)
        self.p = nn.ParameterDict({k: nn.Parameter(v.to(DT)) for k, v in (params or {}).items()})
        self.fn = fn
        self.eval()

    def forward(self, a, b):
        return self.fn(self, a + b + self.c)


def _inputs(shape, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return {"a": torch.randn(shape, generator=g, dtype=DT) * scale, "b": torch.randn(shape, generator=g, dtype=DT) * scale}


def jvp_map(fn):
    def L(m, z, y):
        return torch.func.jvp(lambda t: fn(m, t), (z,), (y,))[1]

    return L


def affine_map(fn):
    """L(y) = op(y) - op(0) for an op that is affine in its input."""

    def L(m, z, y):
        return fn(m, y) - fn(m, torch.zeros_like(y))

    return L


def _check_superposition(model, inputs, L, tol=1e-12, rules=None, **kw):
    dm = decompose(model, inputs, rules=rules, **kw)
    a, b, c = inputs["a"], inputs["b"], model.c
    z = a + b + c
    with torch.no_grad():
        out = model(**inputs)
        ref = [L(model, z, a), L(model, z, b)]
        ref.append(L(model, z, c) + out - L(model, z, z))
    for got in (dm(**inputs).streams, dm(**inputs, state=dm.record(**inputs)).streams):
        for i, name in enumerate(dm.stream_names):
            assert rel_err(got[i], ref[i]) <= tol, f"stream {name}"
    return dm


# ------------------------------------------------------------------------------------------------
# Linear ops: the frozen map is the op's own Jacobian
# ------------------------------------------------------------------------------------------------

X4 = (2, 3, 6, 6)
LINEAR_CASES = {
    "conv2d": (lambda m, z: F.conv2d(z, m.p["w"], m.p["b"], padding=1), X4, {"w": torch.randn(4, 3, 3, 3), "b": torch.randn(4)}),
    "conv2d_stride_groups": (
        lambda m, z: F.conv2d(z, m.p["w"], m.p["b"], stride=2, groups=3),
        X4,
        {"w": torch.randn(6, 1, 3, 3), "b": torch.randn(6)},
    ),
    "conv1d": (lambda m, z: F.conv1d(z, m.p["w"], m.p["b"]), (2, 3, 9), {"w": torch.randn(4, 3, 3), "b": torch.randn(4)}),
    "conv_transpose2d": (
        lambda m, z: F.conv_transpose2d(z, m.p["w"], m.p["b"], stride=2),
        X4,
        {"w": torch.randn(3, 5, 2, 2), "b": torch.randn(5)},
    ),
    "linear": (lambda m, z: F.linear(z, m.p["w"], m.p["b"]), (2, 5, 7), {"w": torch.randn(4, 7), "b": torch.randn(4)}),
    "matmul_weight": (lambda m, z: z @ m.p["w"], (2, 5, 7), {"w": torch.randn(7, 3)}),
    "weight_matmul": (lambda m, z: m.p["w"] @ z, (2, 5, 7), {"w": torch.randn(4, 5)}),
    "einsum_weight": (lambda m, z: torch.einsum("bchw,cd->bdhw", z, m.p["w"]), X4, {"w": torch.randn(3, 2)}),
    "avg_pool": (lambda m, z: F.avg_pool2d(z, 2), X4, None),
    "adaptive_avg_pool": (lambda m, z: F.adaptive_avg_pool2d(z, (2, 3)), X4, None),
    "upsample_bilinear": (lambda m, z: F.interpolate(z, scale_factor=2, mode="bilinear", align_corners=False), X4, None),
    "upsample_bilinear_ac": (lambda m, z: F.interpolate(z, size=(9, 7), mode="bilinear", align_corners=True), X4, None),
    "upsample_nearest": (lambda m, z: F.interpolate(z, scale_factor=2, mode="nearest"), X4, None),
    "grid_sample_const_grid": (
        lambda m, z: F.grid_sample(z, m.grid, align_corners=False),
        X4,
        None,
    ),
    "pad_zero": (lambda m, z: F.pad(z, (1, 2, 0, 1)), X4, None),
    "pad_value": (lambda m, z: F.pad(z, (1, 1, 1, 1), value=0.7), X4, None),
    "pad_reflect": (lambda m, z: F.pad(z, (1, 1, 2, 0), mode="reflect"), X4, None),
    "cat_with_constant": (lambda m, z: torch.cat([z, m.c * 2.0, z[:, :1]], 1), X4, None),
    "stack": (lambda m, z: torch.stack([z, -z], 2), X4, None),
    "reshape_permute_slice": (lambda m, z: z.permute(0, 2, 3, 1).reshape(2, 36, 3)[:, 3:30:2, 1:], X4, None),
    "transpose_flatten_unflatten": (lambda m, z: z.flatten(2).transpose(1, 2).unflatten(1, (3, 12)), X4, None),
    "squeeze_unsqueeze_expand": (lambda m, z: z[:, :1].squeeze(1).unsqueeze(0).expand(3, 2, 6, 6), X4, None),
    "repeat_flip_roll": (lambda m, z: z.repeat(1, 2, 1, 1).flip(-1).roll(2, 2), X4, None),
    "select_index_gather": (
        lambda m, z: z[:, [2, 0]].gather(3, torch.tensor([[[[1, 0, 5]]]]).expand(2, 2, 6, 3)),
        X4,
        None,
    ),
    "sum_mean_cumsum": (lambda m, z: z.sum(1) + z.mean((1, 3), keepdim=True).squeeze(1) + z.cumsum(-1)[:, 0] + z.sum(), X4, None),
    "add_sub_scalar": (lambda m, z: 2.5 - (z * 3.0 + 1.0) / 4.0, X4, None),
    "split_chunk": (lambda m, z: torch.split(z, [1, 2], 1)[1] + torch.chunk(z, 3, 1)[0], X4, None),
    "dropout_eval": (lambda m, z: F.dropout(z, 0.5, training=False), X4, None),
    "pixel_shuffle": (lambda m, z: F.pixel_shuffle(z.repeat(1, 4, 1, 1), 2), X4, None),
}


@pytest.mark.parametrize("case", sorted(LINEAR_CASES))
def test_linear_ops_match_jacobian(case):
    fn, shape, params = LINEAR_CASES[case]
    m = OneOp(fn, shape, params)
    if case == "grid_sample_const_grid":
        g = torch.Generator().manual_seed(5)
        m.register_buffer("grid", (torch.rand(2, 4, 5, 2, generator=g, dtype=DT) * 2.2 - 1.1))
    L = affine_map(fn) if case.startswith("grid_sample") else jvp_map(fn)  # no forward AD for grid_sample
    _check_superposition(m, _inputs(shape), L)


# ------------------------------------------------------------------------------------------------
# Activations: secant gates (frozen map = g(z*) y, a(0) to the bias)
# ------------------------------------------------------------------------------------------------


def _secant(fn, a0=0.0):
    def L(m, z, y):
        g = torch.where(z == 0, torch.zeros_like(z), (fn(z) - a0) / torch.where(z == 0, torch.ones_like(z), z))
        return g * y

    return L


ACT_CASES = {
    "relu": (F.relu, jvp_map(lambda m, z: F.relu(z))),
    "leaky_relu": (lambda z: F.leaky_relu(z, 0.2), jvp_map(lambda m, z: F.leaky_relu(z, 0.2))),
    "gelu": (F.gelu, lambda m, z, y: 0.5 * (1 + torch.erf(z / math.sqrt(2))) * y),
    "gelu_tanh": (lambda z: F.gelu(z, approximate="tanh"), _secant(lambda z: F.gelu(z, approximate="tanh"))),
    "silu": (F.silu, lambda m, z, y: torch.sigmoid(z) * y),
    "sigmoid": (torch.sigmoid, _secant(torch.sigmoid, 0.5)),
    "tanh": (torch.tanh, _secant(torch.tanh)),
    "elu": (F.elu, _secant(F.elu)),
    "hardtanh": (lambda z: F.hardtanh(z, -0.5, 1.0), _secant(lambda z: F.hardtanh(z, -0.5, 1.0))),
    "clamp_offset": (lambda z: torch.clamp(z, 0.3, 1.0), _secant(lambda z: torch.clamp(z, 0.3, 1.0), 0.3)),
    "softplus": (F.softplus, _secant(F.softplus, math.log(2.0))),
    "hardswish": (F.hardswish, _secant(F.hardswish)),
    "hardsigmoid": (F.hardsigmoid, _secant(F.hardsigmoid, 0.5)),
    "mish": (F.mish, _secant(F.mish)),
    "abs": (torch.abs, _secant(torch.abs)),
    "relu6": (lambda z: F.relu6(3 * z), _secant(lambda z: F.relu6(3 * z))),
    "celu": (lambda z: F.celu(z, 0.7), _secant(lambda z: F.celu(z, 0.7))),
    "selu": (F.selu, _secant(F.selu)),
    "log_sigmoid": (F.logsigmoid, _secant(F.logsigmoid, -math.log(2.0))),
}


@pytest.mark.parametrize("case", sorted(ACT_CASES))
def test_activation_gates(case):
    act, L = ACT_CASES[case]
    shape = (2, 3, 5)
    m = OneOp(lambda m, z: act(z), shape)
    _check_superposition(m, _inputs(shape, scale=2.0), L, tol=1e-10)


def test_gate_at_exact_zero_is_finite():
    shape = (1, 4)
    m = OneOp(lambda m, z: torch.sigmoid(z) + torch.tanh(z) + F.gelu(z), shape)
    x = {"a": -m.c.clone(), "b": torch.zeros(shape, dtype=DT)}  # z == 0 exactly
    out = decompose(m, x)(**x)
    assert torch.isfinite(out.streams).all()
    assert rel_err(out.streams.sum(0), out.output) <= 1e-15


# ------------------------------------------------------------------------------------------------
# Selections: max pooling / amax / topk / maximum gather every stream at the frozen argmax
# ------------------------------------------------------------------------------------------------

SEL_CASES = {
    "max_pool2d": (lambda m, z: F.max_pool2d(z, 2), X4),
    "max_pool2d_pad_stride": (lambda m, z: F.max_pool2d(z, 3, 2, 1, ceil_mode=True), X4),
    "max_pool1d": (lambda m, z: F.max_pool1d(z, 3), (2, 3, 9)),
    "adaptive_max_pool": (lambda m, z: F.adaptive_max_pool2d(z, (2, 3)), X4),
    "amax": (lambda m, z: z.amax(dim=(1, 3), keepdim=True) + z.amin(-1, keepdim=True), X4),
    "max_dim": (lambda m, z: z.max(dim=2)[0], X4),
    "topk": (lambda m, z: torch.topk(z, 2, dim=1)[0], X4),
    "maximum": (lambda m, z: torch.maximum(z, z.flip(-1) * 0.5), X4),
    "where_mask": (lambda m, z: torch.where(z > 0.2, z, 0.3 * z - 1.0), X4),
    "masked_fill": (lambda m, z: z.masked_fill(z < -0.5, 2.0), X4),
}


@pytest.mark.parametrize("case", sorted(SEL_CASES))
def test_selections_match_jacobian(case):
    fn, shape = SEL_CASES[case]
    m = OneOp(fn, shape)
    _check_superposition(m, _inputs(shape), jvp_map(fn))


# ------------------------------------------------------------------------------------------------
# Normalisation
# ------------------------------------------------------------------------------------------------


def _bn(shape_c=3):
    bn = nn.BatchNorm2d(shape_c).to(DT).eval()
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    return bn


class NormModel(nn.Module):
    def __init__(self, norm, shape):
        super().__init__()
        self.norm = norm
        g = torch.Generator().manual_seed(4)
        self.register_buffer("c", torch.randn(shape, generator=g, dtype=DT) * 0.5)
        self.eval()

    def forward(self, a, b):
        return self.norm(a + b + self.c)


def _norm_module(kind):
    if kind == "layer_norm":
        m, shape, dims, aff = nn.LayerNorm(6), (2, 4, 6), (-1,), lambda t: t
    elif kind == "layer_norm_2d":
        m, shape, dims, aff = nn.LayerNorm((4, 6)), (2, 4, 6), (-2, -1), lambda t: t
    elif kind == "group_norm":
        m, shape, dims, aff = nn.GroupNorm(2, 4), (2, 4, 3, 3), None, lambda t: t.reshape(-1, 1, 1)
    else:
        m, shape, dims, aff = nn.InstanceNorm2d(4, affine=True), (2, 4, 3, 3), (2, 3), lambda t: t.reshape(-1, 1, 1)
    m = m.to(DT)
    with torch.no_grad():
        m.weight.uniform_(0.5, 1.5)
        m.bias.uniform_(-0.5, 0.5)
    return m, shape, dims, aff


def _groups(kind, t):
    if kind == "group_norm":  # (N, C, H, W) -> (N, G, C/G*H*W)
        return t.reshape(t.shape[0], 2, -1), (-1,)
    return t, None


@pytest.mark.parametrize("kind", ["layer_norm", "layer_norm_2d", "group_norm", "instance_norm"])
@pytest.mark.parametrize("variant", ["ratio", "identity", "uniform"])
def test_norm_rules_against_formulas(kind, variant):
    norm, shape, dims, aff = _norm_module(kind)
    model = NormModel(norm, shape)
    x = _inputs(shape, seed=1)
    dm = decompose(model, x, norm_rule=variant)
    h = [x["a"], x["b"], model.c]
    z = sum(h)
    S = 3

    def red(t):
        if kind == "group_norm":
            v = t.reshape(t.shape[0], 2, -1)
            return v, (-1,)
        return t, dims

    zv, rd = red(z)
    s = torch.sqrt(zv.var(dim=rd, unbiased=False, keepdim=True) + norm.eps)
    gamma, beta = aff(norm.weight.detach()), aff(norm.bias.detach())
    mz = zv.mean(dim=rd, keepdim=True)
    ref = []
    for i, hs in enumerate(h):
        v, _ = red(hs)
        if variant == "ratio":
            y = (v - v.mean(dim=rd, keepdim=True)) / s
        elif variant == "identity":
            y = (v - (mz if i == 2 else 0)) / s
        else:
            y = (v - mz / S) / s
        y = y.reshape(hs.shape) * gamma
        if variant == "uniform":
            y = y + beta / S
        elif i == 2:
            y = y + beta
        ref.append(y)
    for got in (dm(**x).streams, dm(**x, state=dm.record(**x)).streams):
        for i in range(3):
            assert rel_err(got[i], ref[i]) <= 1e-12, (variant, dm.stream_names[i])
    assert rel_err(dm(**x).output, norm(z).detach()) <= 1e-12


@pytest.mark.parametrize("variant", ["identity", "uniform"])
def test_batch_norm_rules(variant):
    bn = _bn()
    model = NormModel(bn, X4)
    x = _inputs(X4, seed=2)
    dm = decompose(model, x, bn_rule=variant)
    a = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().reshape(-1, 1, 1)
    d = (bn.bias.detach() - bn.running_mean.reshape(-1) * a.reshape(-1)).reshape(-1, 1, 1)
    h = [x["a"], x["b"], model.c]
    if variant == "identity":
        ref = [a * h[0], a * h[1], a * h[2] + d]
    else:
        ref = [a * t + d / 3 for t in h]
    for got in (dm(**x).streams, dm(**x, state=dm.record(**x)).streams):
        for i in range(3):
            assert rel_err(got[i], ref[i]) <= 1e-12


def test_batch_norm_identity_is_jacobian_superposition():
    bn = _bn()
    model = NormModel(bn, X4)
    _check_superposition(model, _inputs(X4), jvp_map(lambda m, z: m.norm(z)))


def test_hand_written_norm_freezes_the_divisor():
    def fn(m, z):
        mu = z.mean(-1, keepdim=True)
        return (z - mu) / torch.sqrt(((z - mu) ** 2).mean(-1, keepdim=True) + 1e-5)

    def L(m, z, y):  # ratio rule: centring per stream, scale frozen
        s = torch.sqrt(z.var(-1, unbiased=False, keepdim=True) + 1e-5)
        return (y - y.mean(-1, keepdim=True)) / s

    shape = (2, 3, 8)
    _check_superposition(OneOp(fn, shape), _inputs(shape), L)


# ------------------------------------------------------------------------------------------------
# Attention, gates and explicit product rules
# ------------------------------------------------------------------------------------------------


class AttnModel(nn.Module):
    def __init__(self, d=8, heads=2, need_weights=False, sdpa_fn=False):
        super().__init__()
        self.mha = nn.MultiheadAttention(d, heads, batch_first=True).to(DT)
        self.need_weights = need_weights
        self.sdpa_fn = sdpa_fn
        g = torch.Generator().manual_seed(6)
        self.register_buffer("c", torch.randn(1, 5, d, generator=g, dtype=DT))
        self.eval()

    def forward(self, a, b):
        z = a + b + self.c
        if self.sdpa_fn:
            q = z.unflatten(-1, (2, 4)).transpose(1, 2)
            mask = torch.ones(5, 5, dtype=torch.bool).tril()
            return F.scaled_dot_product_attention(q, q * 0.5, q + 1.0, attn_mask=mask).transpose(1, 2).flatten(2)
        return self.mha(z, z, z, need_weights=self.need_weights)[0]


def _attention_reference(model, z, h):
    """out_s = out_proj(A* (W_v h_s) + [b_v if bias]) (+ b_out for the bias stream)."""
    mha = model.mha
    d = z.shape[-1]
    W, bvec = mha.in_proj_weight.detach(), mha.in_proj_bias.detach()
    q = z @ W[:d].T + bvec[:d]
    k = z @ W[d : 2 * d].T + bvec[d : 2 * d]
    H = mha.num_heads

    def heads(t):
        return t.unflatten(-1, (H, d // H)).transpose(1, 2)

    A = torch.softmax(heads(q) @ heads(k).transpose(-2, -1) / math.sqrt(d // H), -1)
    out = []
    for i, hs in enumerate(h):
        v = hs @ W[2 * d :].T + (bvec[2 * d :] if i == len(h) - 1 else 0)
        o = (A @ heads(v)).transpose(1, 2).flatten(2) @ mha.out_proj.weight.detach().T
        if i == len(h) - 1:
            o = o + mha.out_proj.bias.detach()
        out.append(o)
    return out


@pytest.mark.parametrize("need_weights", [False, True], ids=["sdpa", "explicit_softmax"])
def test_attention_with_frozen_probabilities(need_weights):
    model = AttnModel(need_weights=need_weights)
    x = _inputs((1, 5, 8), seed=3)
    dm = decompose(model, x)
    kinds = set(dm.record(**x).kinds.values())
    assert "attention" in kinds
    ref = _attention_reference(model, x["a"] + x["b"] + model.c, [x["a"], x["b"], model.c])
    for got in (dm(**x).streams, dm(**x, state=dm.record(**x)).streams):
        for i in range(3):
            assert rel_err(got[i], ref[i]) <= 1e-12


def test_sdpa_functional_with_mask_matches_frozen_map():
    model = AttnModel(sdpa_fn=True)
    x = _inputs((1, 5, 8), seed=4)

    def L(m, z, y):  # value is an affine function of z: (q + 1); keys/queries frozen
        q = z.unflatten(-1, (2, 4)).transpose(1, 2)
        mask = torch.ones(5, 5, dtype=torch.bool).tril()
        logits = (q @ (q * 0.5).transpose(-2, -1)) / 2.0
        A = torch.softmax(logits.masked_fill(~mask, float("-inf")), -1)
        v = y.unflatten(-1, (2, 4)).transpose(1, 2)
        return (A @ v).transpose(1, 2).flatten(2)

    _check_superposition(model, x, L)


def test_routing_gate_is_frozen_automatically():
    def fn(m, z):
        return z * torch.sigmoid(z.flip(-1) * 2.0)

    def L(m, z, y):
        return y * torch.sigmoid(z.flip(-1) * 2.0)

    shape = (2, 7)
    _check_superposition(OneOp(fn, shape), _inputs(shape), L)


def test_explicit_product_rules():
    def fn(m, z):
        return z * (z.roll(1, -1) + 0.5)

    shape = (2, 6)
    x = _inputs(shape)
    with pytest.raises(TypeError, match="product of two decomposed tensors"):
        decompose(OneOp(fn, shape), x)
    # freeze the right operand: out_s = x_s * Y*
    rm = RuleMap().set_op("mul", Product("freeze_right"))
    _check_superposition(OneOp(fn, shape), x, lambda m, z, y: y * (z.roll(1, -1) + 0.5), rules=rm)
    # half/half: out_s = (x_s Y* + X* y_s) / 2, where y_s is x_s rolled (the 0.5 belongs to the bias)
    model = OneOp(fn, shape)
    dm = decompose(model, x, rules=RuleMap().set_op("mul", Product("half")))
    z = x["a"] + x["b"] + model.c
    Y = z.roll(1, -1) + 0.5
    h = [x["a"], x["b"], model.c]
    ys = [x["a"].roll(1, -1), x["b"].roll(1, -1), model.c.roll(1, -1) + 0.5]
    ref = [(h[i] * Y + z * ys[i]) / 2 for i in range(3)]
    for got in (dm(**x).streams, dm(**x, state=dm.record(**x)).streams):
        for i in range(3):
            assert rel_err(got[i], ref[i]) <= 1e-12


class DataGridModel(nn.Module):
    """grid_sample whose grid depends on the fused features: sampling locations are frozen."""

    def forward(self, a, b):
        z = a + b
        grid = torch.tanh(z[:, :2].permute(0, 2, 3, 1))
        return F.grid_sample(z, grid, align_corners=True)


def test_data_dependent_grid_is_frozen():
    x = _inputs((1, 3, 5, 5))
    model = DataGridModel().eval()
    dm = decompose(model, x)
    z = x["a"] + x["b"]
    grid = torch.tanh(z[:, :2].permute(0, 2, 3, 1))
    ref = [F.grid_sample(h, grid, align_corners=True) for h in (x["a"], x["b"], torch.zeros_like(z))]
    st = dm.record(**x)
    assert "sampling" in st.kinds.values()
    for got in (dm(**x).streams, dm(**x, state=st).streams):
        for i in range(3):
            assert rel_err(got[i], ref[i]) <= 1e-12


# ------------------------------------------------------------------------------------------------
# Fusion point: encoders run once, streams start as each branch's tensor
# ------------------------------------------------------------------------------------------------


class LateFusion(nn.Module):
    def __init__(self):
        super().__init__()
        self.ca = nn.Conv2d(2, 3, 3, padding=1).to(DT)
        self.cb = nn.Conv2d(1, 3, 1).to(DT)
        self.eval()

    def forward(self, a, b, calib):
        fa = torch.relu(self.ca(a)) * calib  # a only (calibration is no modality)
        fb = torch.tanh(self.cb(b))
        return torch.cat([fa, fb], 1)


def test_fusion_point_streams_hold_each_branch():
    g = torch.Generator().manual_seed(0)
    x = {
        "a": torch.randn(1, 2, 4, 4, generator=g, dtype=DT),
        "b": torch.randn(1, 1, 4, 4, generator=g, dtype=DT),
        "calib": torch.rand(1, 1, 4, 4, generator=g, dtype=DT),
    }
    model = LateFusion()
    dm = decompose(model, x, {"a": "camera", "b": "radar", "calib": None})
    assert dm.stream_names == ("camera", "radar", "bias")
    out = dm(**x, state=dm.record(**x))
    full = model(**x).detach()
    assert torch.equal(out.streams[0][:, :3], full[:, :3]) and torch.all(out.streams[0][:, 3:] == 0)
    assert torch.equal(out.streams[1][:, 3:], full[:, 3:]) and torch.all(out.streams[1][:, :3] == 0)
    assert torch.all(out.streams[2] == 0)
    assert rel_err(dm(**x).streams, out.streams) < 1e-15
    cov = dm.coverage()
    assert cov["aten.conv2d.default"] == "pre-fusion" and cov["aten.relu.default"] == "pre-fusion"
    assert len(dm.fusion_points) == 1 and "cat" in dm.fusion_points[0]


@pytest.mark.parametrize(
    "kw",
    [
        dict(kernel_size=2),
        dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
        dict(kernel_size=(2, 3), stride=(1, 2), dilation=2),
    ],
    ids=["k2", "k3s2p1ceil", "dilated"],
)
def test_max_pool_export_form_equals_pooling_indices(kw, monkeypatch):
    """Under torch.export the argmax comes from strided window views (no pooling indices)."""
    import fusion_monitor.lmd.rules as rules

    fn = lambda m, z: F.max_pool2d(z, **kw)  # noqa: E731
    model = OneOp(fn, (1, 3, 9, 11))
    x = _inputs((1, 3, 9, 11))
    dm = decompose(model, x)
    native = dm(**x)
    monkeypatch.setattr(rules, "_exporting", lambda: True)  # as under export_onnx
    windowed = dm(**x)
    assert torch.equal(native.streams, windowed.streams)
    assert rel_err(windowed.output, model(**x).detach()) == 0.0
