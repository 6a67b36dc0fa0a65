"""The engine's cost-saving transforms keep the decomposition exact: a concat feeding a conv is
convolved part by part (pre-fusion parts once, then lifted), a fusion-point concat is lifted in one
pass, ReLU-family gates use ceil(clamp(z, 0, 1)), and the ONNX form of max pooling finds the same
argmax as the pooling indices."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from fusion_monitor.lmd import decompose
from fusion_monitor.lmd.layout import ComplementLayout, StreamLayout
from fusion_monitor.lmd.rules import Call, MaxPool, _iszero, _pos, aten

from .helpers import leaves, rel_err

DT = torch.float64


class CatConv(nn.Module):
    """Two pre-fusion branches and a calibration plane (no modality) concatenated into conv + BN +
    ReLU (split, pre-fusion parts once), a concat of two decomposed tensors into a conv with a bias
    (split, stacked parts), and a concat of a pre-fusion and a decomposed tensor into a conv with a
    bias (both kinds of parts at once)."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.ca = nn.Conv2d(3, 4, 3, padding=1)
        self.cb = nn.Conv2d(2, 3, 3, padding=1)
        self.fuse = nn.Conv2d(8, 6, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(6)
        self.mix = nn.Conv2d(12, 5, 1)
        self.late = nn.Conv2d(8, 2, 3, padding=1)
        with torch.no_grad():
            self.bn.running_mean.copy_(torch.rand(6, generator=g) - 0.5)
            self.bn.running_var.copy_(torch.rand(6, generator=g) + 0.5)
        self.to(DT).eval()

    def forward(self, a, b, calib):
        x = torch.relu(self.bn(self.fuse(torch.cat([torch.relu(self.ca(a)), torch.tanh(self.cb(b)), calib], 1))))
        y = self.mix(torch.cat([x, torch.sigmoid(x) * x], 1))
        return self.late(torch.cat([torch.tanh(self.cb(b)), y], 1))


def _cat_conv_case(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "a": torch.randn(1, 3, 6, 6, generator=g, dtype=DT),
        "b": torch.randn(1, 2, 6, 6, generator=g, dtype=DT),
        "calib": torch.rand(1, 1, 6, 6, generator=g, dtype=DT),
    }


def _without_split(dm):
    """The same decomposed model with the part-by-part conv switched off (the plain concat path)."""
    import copy

    ref = copy.copy(dm)
    ref._split_convs, ref._absorbed, ref._schedules = {}, set(), {}
    return ref


@pytest.mark.parametrize("bn_rule", ["identity", "uniform"])
def test_split_conv_equals_concat_then_conv(bn_rule):
    model = CatConv()
    x, y = _cat_conv_case(0), _cat_conv_case(1)
    dm = decompose(model, x, {"a": "camera", "b": "radar", "calib": None}, bn_rule=bn_rule)
    assert len(dm._split_convs) == 3  # every conv of a concat is computed part by part
    ref = _without_split(dm)
    with torch.no_grad():
        want = model(**x)
    out, out_ref = dm(**x), ref(**x)
    assert rel_err(out.output, want) <= 1e-12
    assert rel_err(out.streams, out_ref.streams) <= 1e-12
    assert out.conservation_error() <= 1e-12
    state = dm.record(**x)
    assert rel_err(dm(**y, state=state).streams, ref(**y, state=state).streams) <= 1e-12
    for node, streams in dm.trace(**x).items():  # the absorbed concat is still traced
        assert rel_err(streams.sum(0), dm.reference(**x)[node]) <= 1e-12, node


def test_split_conv_keeps_separation_bit_identical():
    model = CatConv()
    x, y = _cat_conv_case(0), _cat_conv_case(1)
    dm = decompose(model, x, {"a": "camera", "b": "radar", "calib": None})
    state = dm.record(**x)
    base = dm(**x, state=state).streams
    for arg, moved in (("a", 0), ("b", 1)):
        pert = dict(x, **{arg: y[arg]})
        got = dm(**pert, state=state).streams
        for j in range(len(dm.stream_names)):
            if j == moved:
                assert not torch.equal(got[j], base[j])
            else:
                assert torch.equal(got[j], base[j]), (arg, dm.stream_names[j])


def test_split_conv_matches_onnx_export(tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    pytest.importorskip("onnxscript", reason="the torch.export-based ONNX exporter needs onnxscript")
    from fusion_monitor.lmd import export_onnx

    model = CatConv().float()
    x = {k: v.float() for k, v in _cat_conv_case(0).items()}
    dm = decompose(model, x, {"a": "camera", "b": "radar", "calib": None})
    path = export_onnx(dm, x, tmp_path / "catconv.onnx")
    res = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {k: v.numpy() for k, v in x.items()})
    out = dm(**x)
    for got, want in zip(res, leaves(out.output) + leaves(out.streams), strict=True):
        assert rel_err(torch.from_numpy(got), want) <= 1e-4


@pytest.mark.parametrize("layout", [ComplementLayout, StreamLayout])
@pytest.mark.parametrize("M", [1, 3])
def test_lift_parts_and_lift_sum(layout, M):
    lay = layout(M)
    g = torch.Generator().manual_seed(M)
    mods = list(range(M)) + [None]
    parts = [torch.randn(2, n, 4, generator=g, dtype=DT) for n in (1, 3, 2, 2)][: M + 1]
    want = torch.cat([lay.lift(p, m) for p, m in zip(parts, mods)], 2)
    got = lay.lift_parts(torch.cat(parts, 1), [(p.shape[1], m) for p, m in zip(parts, mods)], 1)
    assert torch.equal(got, want)  # a 0/1 table: bit-identical
    same = [torch.randn(2, 5, generator=g, dtype=DT) for _ in mods]
    want = sum(lay.lift(v, m) for v, m in zip(same, mods))
    assert rel_err(lay.lift_sum(same, mods), want) <= 1e-15
    assert torch.equal(lay.lift_sum(same[:1], mods[:1]), lay.lift(same[0], mods[0]))


def test_relu_family_gate_is_an_exact_step():
    tiny = torch.finfo(DT).tiny
    z = torch.tensor([-1e300, -3.0, -tiny / 4, -0.0, 0.0, tiny / 4, tiny, 0.5, 1.0, 7.0, 1e300], dtype=DT)
    assert torch.equal(_pos(z), (z > 0).to(DT))
    assert torch.equal(_iszero(z), (z == 0).to(DT))
    z32 = z.float()
    assert torch.equal(_pos(z32), (z32 > 0).float())


def _window_cases():
    for nd, k, s, p, dil, ties in itertools.product((1, 2, 3), (1, 2, 3), (1, 2), (0, 1), (1, 2), (False, True)):
        if 2 * p <= k:
            yield nd, k, s, p, dil, ties


_POOL = {1: aten.max_pool1d_with_indices.default, 2: aten.max_pool2d_with_indices.default,
         3: aten.max_pool3d_with_indices.default}


@pytest.mark.parametrize("nd,k,s,p,dil,ties", list(_window_cases()))
def test_window_argmax_equals_pooling_indices(nd, k, s, p, dil, ties):
    """The separable (max, offset) fold picks the first maximum in scan order, like max_pool."""
    g = torch.Generator().manual_seed(nd * 100 + k * 10 + s)
    z = torch.randn([2, 3] + [7, 8, 6][:nd], generator=g, dtype=DT)
    if ties:  # many equal values (ReLU zeros, integers), where the tie-breaking matters
        z = torch.relu(torch.round(z))
    op = _POOL[nd]
    kw = dict(kernel_size=[k] * nd, stride=[s] * nd, padding=[p] * nd, dilation=[dil] * nd)
    try:
        ref = op(z, *kw.values())
    except RuntimeError:  # window larger than the padded input
        pytest.skip("invalid pooling configuration")
    call = Call(None, op, dict(self=z, **kw), None, (), {}, None, (ref[0], ref[1]))
    assert torch.equal(MaxPool()._window_argmax(call, z, nd), ref[1])


class Shuffle(nn.Module):
    def forward(self, a, b):
        return torch.pixel_shuffle(torch.relu(a + b), 2)


def assert_export_form_is_exact(model, x, monkeypatch):
    """The formulations rules pick under export_onnx give the same output and streams, bit for bit."""
    import fusion_monitor.lmd.rules as rules

    dm = decompose(model.eval(), x)
    native = dm(**x)
    monkeypatch.setattr(rules, "_exporting", lambda: True)  # as under export_onnx
    exported = dm(**x)
    assert torch.equal(native.streams, exported.streams) and torch.equal(native.output, exported.output)
    assert torch.equal(exported.output, model(**x))


def test_pixel_shuffle_export_form_is_the_same_permutation(monkeypatch):
    """Under export_onnx pixel_shuffle is two block transposes (faster in ONNX Runtime)."""
    g = torch.Generator().manual_seed(0)
    x = {"a": torch.randn(1, 12, 5, 7, generator=g, dtype=DT), "b": torch.randn(1, 12, 5, 7, generator=g, dtype=DT)}
    assert_export_form_is_exact(Shuffle(), x, monkeypatch)


class ReluPool(nn.Module):
    def forward(self, a, b):
        return torch.nn.functional.max_pool2d(torch.relu(a + b), 3, 2, 1)


def test_relu_gate_and_pool_offsets_export_forms_give_the_same_streams(monkeypatch):
    """Under export_onnx the ReLU step is Greater + Cast and window offsets are int32: same values, bit for bit."""
    g = torch.Generator().manual_seed(1)
    # integer inputs: exact zeros and ties in the sum, where the two forms could differ
    x = {k: torch.round(2 * torch.randn(1, 4, 9, 11, generator=g, dtype=DT)) for k in ("a", "b")}
    assert_export_form_is_exact(ReluPool(), x, monkeypatch)


class WhereBoth(nn.Module):
    def forward(self, a, b):
        x = a + b
        y = torch.where(x > 0, x, 0.1 * x)  # two streamed branches: a 0/1 blend in PyTorch, Where in ONNX
        return y.masked_fill(y < -0.5, -100.0)  # a constant branch: always a select


def test_where_blend_is_exact(monkeypatch):
    """PyTorch blends two streamed where branches with a 0/1 mask; same values as the Where of the export."""
    g = torch.Generator().manual_seed(2)
    x = {k: torch.round(2 * torch.randn(1, 3, 6, 7, generator=g, dtype=DT)) for k in ("a", "b")}
    assert (decompose(WhereBoth().eval(), x)(**x).output == -100.0).any()
    assert_export_form_is_exact(WhereBoth(), x, monkeypatch)


def test_concat_with_a_user_rule_is_not_split():
    from fusion_monitor.lmd import FreezeToBias, RuleMap

    model, x = CatConv(), _cat_conv_case(0)
    mods = {"a": "camera", "b": "radar", "calib": None}
    cats = sorted(c.name for c, _ in decompose(model, x, mods)._split_convs.values())
    dm = decompose(model, x, mods, rules=RuleMap().set_name(cats[0], FreezeToBias()))
    assert cats[0] not in {c.name for c, _ in dm._split_convs.values()} and len(dm._split_convs) == 2
    assert dm(**x).conservation_error() <= 1e-12
