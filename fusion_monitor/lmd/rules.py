"""Decomposition rules: tiny declarative objects that configure the one shared LMD engine.

A rule says, for one ATen op after the fusion point (docs lmd.md section 4):

* ``roles``: what each tensor argument is -- a decomposed operand (``STREAM``), a decomposed
  operand whose full value also defines the frozen operating point (``STREAM_STATE``), a tensor
  whose full value only defines the operating point (``STATE``: attention probabilities, masks,
  frozen divisors), or a parameter that must not depend on any modality (``PARAM``: weights,
  calibration-only sampling grids);
* ``state``: the operating point theta* computed from full values (gates, norm scales, argmax
  indices, attention probabilities, ...);
* ``apply``: the frozen affine map applied to stacked streams (leading axis S), constants sent
  to the bias stream through the layout (:mod:`fusion_monitor.lmd.layout`).

Every ``apply`` is affine in the streams for a fixed state, so the same code serves the
single-pass layout (full tensor + modality streams) and the record/replay layout (modality
streams + bias stream).
"""

from __future__ import annotations

import enum
import math
import operator
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

aten = torch.ops.aten

__all__ = [
    "Role",
    "Roles",
    "NoRule",
    "Rule",
    "PerStream",
    "Affine",
    "Gate",
    "BatchNorm",
    "Norm",
    "Product",
    "Divide",
    "Attention",
    "GridSample",
    "MaxPool",
    "ReduceSelect",
    "TopK",
    "Select2",
    "Where",
    "AddSub",
    "FreezeToBias",
]


class Role(enum.Enum):
    """What a tensor argument of an op is, for the decomposition."""

    STREAM = "stream"  # decomposed operand (constants are lifted into the bias stream)
    STREAM_STATE = "stream+state"  # decomposed operand whose full value also defines the state
    STATE = "state"  # only its full value is used, frozen as operating point
    PARAM = "param"  # must not depend on any modality (weights, calibration)


STREAM, STREAM_STATE, STATE, PARAM = Role.STREAM, Role.STREAM_STATE, Role.STATE, Role.PARAM


class NoRule(Exception):
    """Raised by ``Rule.roles`` when the rule cannot decompose this particular node."""


@dataclass(frozen=True)
class Roles:
    """Result of ``Rule.roles``: role per argument name (a list for list arguments) and state kind."""

    by_arg: dict
    kind: str | None = None


# ------------------------------------------------------------------------------------------------
# Schema binding: ATen ops called by argument name, exactly as the captured graph calls them.
# ------------------------------------------------------------------------------------------------


def bind(target, args: Sequence, kwargs: dict) -> dict:
    """Bound arguments of one call, keyed by schema argument name (only those given)."""
    if target is operator.getitem:
        return {"self": args[0], "index": args[1]}
    schema = target._schema
    out = {}
    for a, v in zip(schema.arguments, args):
        out[a.name] = v
    out.update(kwargs)
    return out


def invoke(target, bound: dict):
    """Call ``target`` with schema-named arguments (defaults filled where a later one is given)."""
    if target is operator.getitem:
        return bound["self"][bound["index"]]
    schema = target._schema
    pos, kw = [], {}
    positional = [a for a in schema.arguments if not a.kwarg_only]
    last = -1
    for i, a in enumerate(positional):
        if a.name in bound:
            last = i
    for a in positional[: last + 1]:
        if a.name in bound:
            pos.append(bound[a.name])
        elif a.has_default_value():
            pos.append(a.default_value)
        else:  # pragma: no cover - the captured call always has required args
            raise TypeError(f"{target}: missing argument {a.name!r}")
    for a in schema.arguments:
        if a.kwarg_only and a.name in bound:
            kw[a.name] = bound[a.name]
    return target(*pos, **kw)


def op_name(target) -> str:
    if target is operator.getitem:
        return "getitem"
    return str(target)


# ------------------------------------------------------------------------------------------------
# What a rule sees when choosing roles (build time) and when running (call time).
# ------------------------------------------------------------------------------------------------


class NodeView:
    """Build-time view of one node for ``Rule.roles``: bound args, modality dependence, routing."""

    def __init__(self, node, target, args: dict, module: str, dep_of: Callable, routing_of: Callable):
        self.node, self.target, self.args, self.module = node, target, args, module
        self._dep, self._routing = dep_of, routing_of

    def dep(self, value) -> frozenset:
        """Modalities a value depends on (empty for parameters, constants and Python numbers)."""
        return self._dep(value)

    def depends(self, value) -> bool:
        return bool(self._dep(value))

    def routing(self, value) -> str | None:
        """Name of the routing op (softmax, sigmoid, comparison, ...) producing ``value``, if any."""
        return self._routing(value)

    def rank(self, value) -> int:
        meta = getattr(value, "meta", {}).get("val") if hasattr(value, "meta") else None
        if meta is not None and hasattr(meta, "dim"):
            return meta.dim()
        if torch.is_tensor(value):
            return value.dim()
        return 0

    def out_meta(self):
        return self.node.meta.get("val")


class Call:
    """Call-time context of one node: bound args (streams stacked on axis 0), layout, state."""

    __slots__ = ("node", "target", "args", "lay", "state", "roles", "compat", "out_meta")

    def __init__(self, node, target, args, lay, state, roles, compat, out_meta):
        self.node, self.target, self.args, self.lay = node, target, args, lay
        self.state, self.roles, self.compat, self.out_meta = state, roles, compat, out_meta

    @property
    def S(self) -> int:
        return self.lay.S

    def op(_c, **overrides):  # noqa: N805 - "self" is an ATen argument name
        bound = dict(_c.args)
        bound.update(overrides)
        return invoke(_c.target, bound)

    def out_shape(self, index: int | None = None) -> list[int]:
        m = self.out_meta if index is None else self.out_meta[index]
        return list(m.shape)


# ------------------------------------------------------------------------------------------------
# Stacked-tensor helpers (X has shape (S, *original_shape)).
# ------------------------------------------------------------------------------------------------


def _rank(X: Tensor) -> int:
    return X.dim() - 1


def _align(X: Tensor, rank: int) -> Tensor:
    """Insert singleton dims after the stream axis so the original rank becomes ``rank``."""
    r = X.dim() - 1
    if r >= rank:
        return X
    return X.reshape([X.shape[0]] + [1] * (rank - r) + list(X.shape[1:]))


def _sdim(d: int, rank: int) -> int:
    """Original dim (possibly negative) -> dim of the stacked tensor."""
    if d < 0:
        d += rank
    if not 0 <= d < max(rank, 1):
        raise IndexError(f"dim {d} out of range for rank {rank}")
    return d + 1


def _fold(X: Tensor) -> Tensor:
    return X.reshape([X.shape[0] * X.shape[1]] + list(X.shape[2:]))


def _unfold(Y: Tensor, S: int) -> Tensor:
    return Y.reshape([S, Y.shape[0] // S] + list(Y.shape[1:]))


def _batched_call(c: Call, name: str, batched_rank: int | None, **overrides):
    """Run the op on every stream by folding the stream axis into the batch axis."""
    X = c.args[name]
    r = _rank(X)
    if batched_rank is None or r == batched_rank:
        return _unfold(c.op(**{name: _fold(X)}, **overrides), c.S)
    if r == batched_rank - 1:  # unbatched input: the stream axis is the batch
        return c.op(**{name: X}, **overrides)
    raise ValueError(f"{op_name(c.target)}: unexpected input rank {r}")


def _const(c: Call, value, rank: int, like: Tensor | None) -> Tensor:
    """A Python number or modality-free tensor lifted into the bias stream, aligned to ``rank``."""
    if like is None:
        meta = c.out_meta
        dtype = meta.dtype if meta is not None else torch.get_default_dtype()
        device = value.device if torch.is_tensor(value) else None
    else:
        dtype, device = like.dtype, like.device
    t = torch.as_tensor(value, dtype=dtype, device=device)
    return c.lay.lift(t, None, rank)


# ------------------------------------------------------------------------------------------------
# Base rule
# ------------------------------------------------------------------------------------------------


class Rule:
    """Base class. Subclasses are small frozen dataclasses; see module docstring.

    Class attributes
    ----------------
    name : str
        Shown in the coverage report.
    family : str
        Configuration family ("structural", "affine", "activation", "batch_norm", "norm",
        "product", "attention", "sampling", "selection", "mask", "divisor", "frozen").
    ops : frozenset or None
        Ops this rule can handle when set globally or by module pattern (None: only where
        bound explicitly by op).
    passthrough : bool
        Per-stream op with no state and no constant ("pass-through" in the coverage report).
    """

    name: str = "rule"
    family: str = "structural"
    kind: str | None = None
    ops: frozenset | None = None
    passthrough: bool = False

    def accepts(self, node, target, args: dict) -> bool:
        return self.ops is None or target in self.ops

    def roles(self, v: NodeView) -> Roles:
        return Roles({k: STREAM for k, a in v.args.items() if _has_node(a)}, self.kind)

    def stream_outputs(self, v: NodeView) -> set[int] | None:
        """For tuple-returning ops: indices of outputs that are decomposed (None: single output)."""
        return None

    def state(self, c: Call) -> tuple:
        return ()

    def apply(self, c: Call):  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


def _has_node(a) -> bool:
    from torch.fx import Node

    if isinstance(a, Node):
        return True
    if isinstance(a, (list, tuple)):
        return any(isinstance(x, Node) for x in a)
    return False


# ------------------------------------------------------------------------------------------------
# Per-stream (pass-through) ops
# ------------------------------------------------------------------------------------------------


def _ps_direct(c: Call, p: PerStream):
    return c.op()


def _ps_pixel_shuffle(c: Call, p: PerStream):
    """pixel_shuffle; under ONNX export as two transposes that move blocks (a 3-d transpose, then
    a swap of contiguous rows): the same permutation, ~5x faster than ONNX Runtime's DepthToSpace
    on the stacked streams."""
    if not _exporting():
        return c.op()
    X, r = c.args["self"], int(c.args["upscale_factor"])
    *lead, crr, H, W = X.shape
    L = math.prod(lead) * (crr // (r * r))
    Y = X.reshape(L * r, r, H * W).transpose(1, 2)  # (L, i, h, w, j)
    Y = Y.reshape(L, r, H, W * r).transpose(1, 2)  # (L, h, i, w, j)
    return Y.reshape(list(lead) + [crr // (r * r), H * r, W * r])


def _ps_fold(c: Call, p: PerStream):
    return _batched_call(c, p.stream, p.batched_rank)


def _ps_dims(c: Call, p: PerStream):
    X = c.args[p.stream] if p.stream != "tensors" else c.args["tensors"][0]
    rank = _rank(X) + p.rank_extra
    over = {}
    for name in p.dims:
        if name in c.args and c.args[name] is not None:
            over[name] = _sdim(int(c.args[name]), rank)
        elif name in p.dim_defaults:
            over[name] = _sdim(p.dim_defaults[name], rank)
    for name in p.dim_lists:
        d = c.args.get(name)
        if d is None or (isinstance(d, (list, tuple)) and len(d) == 0 and p.empty_means_all):
            over[name] = list(range(1, _rank(X) + 1))
        elif isinstance(d, int):
            over[name] = _sdim(d, rank)
        else:
            over[name] = [_sdim(int(x), rank) for x in d]
    return c.op(**over)


def _ps_shape(c: Call, p: PerStream):
    X = c.args[p.stream]
    size = list(c.args[p.shape])
    return X.reshape([c.S] + size)  # a view of the stacked tensor may not exist: reshape (same values)


def _ps_expand(c: Call, p: PerStream):
    X = c.args["self"]
    size = list(c.args["size"])
    X = _align(X, len(size))
    return X.expand([c.S] + size)


def _ps_repeat(c: Call, p: PerStream):
    X = c.args["self"]
    reps = list(c.args["repeats"])
    X = _align(X, len(reps))
    return X.repeat([1] + reps)


def _ps_permute(c: Call, p: PerStream):
    X = c.args["self"]
    r = _rank(X)
    return X.permute([0] + [_sdim(int(d), r) for d in c.args["dims"]])


def _ps_squeeze_all(c: Call, p: PerStream):
    X = c.args["self"]
    dims = [i + 1 for i, s in enumerate(X.shape[1:]) if s == 1]
    return X.squeeze(dims) if dims else X


def _ps_reduce_all(c: Call, p: PerStream):
    X = c.args["self"]
    fn = torch.sum if c.target in (aten.sum.default,) else torch.mean
    dtype = c.args.get("dtype")
    if _rank(X) == 0:
        return X if dtype is None else X.to(dtype)
    return fn(X, dim=list(range(1, X.dim())), dtype=dtype)


def _ps_roll(c: Call, p: PerStream):
    X = c.args["self"]
    dims = list(c.args.get("dims", []) or [])
    shifts = c.args["shifts"]
    if not dims:
        flat = X.reshape(c.S, -1)
        return flat.roll(shifts, 1).reshape(X.shape)
    r = _rank(X)
    return X.roll(shifts, [_sdim(int(d), r) for d in dims])


def _ps_index(c: Call, p: PerStream):
    X = c.args["self"]
    idx = list(c.args["indices"])
    Y = aten.index.Tensor(X, [None] + idx)
    pos = [i for i, t in enumerate(idx) if t is not None]
    if pos and pos != list(range(pos[0], pos[-1] + 1)):  # separated advanced indices: broadcast dims first
        k = max(t.dim() for t in idx if t is not None)
        Y = Y.movedim(k, 0)
    return Y


def _ps_index_put(c: Call, p: PerStream):
    X = c.args["self"]
    idx = list(c.args["indices"])
    pos = [i for i, t in enumerate(idx) if t is not None]
    if pos and pos != list(range(pos[0], pos[-1] + 1)):
        raise NotImplementedError("index_put with separated advanced indices")
    V = c.args["values"]
    k = max(t.dim() for t in idx if t is not None) if pos else 0
    res_rank = _rank(X) - len(idx) + k
    V = _align(V, res_rank)
    return aten.index_put.default(X, [None] + idx, V, c.args.get("accumulate", False))


def _ps_gather(c: Call, p: PerStream):
    X = c.args["self"]
    r = _rank(X)
    index = c.args["index"]
    d = _sdim(int(c.args["dim"]), r)
    return torch.gather(X, d, index.unsqueeze(0).expand([c.S] + list(index.shape)))


def _ps_scatter(c: Call, p: PerStream):
    X = c.args["self"]
    r = _rank(X)
    index = c.args["index"]
    d = _sdim(int(c.args["dim"]), r)
    idx = index.unsqueeze(0).expand([c.S] + list(index.shape))
    src = c.args.get("src", c.args.get("value"))
    if torch.is_tensor(src):
        src = _align(src, r)
        return c.op(self=X, dim=d, index=idx, src=src) if "src" in c.args else c.op(self=X, dim=d, index=idx, value=src)
    raise NotImplementedError("scatter of a number")


def _ps_index_add(c: Call, p: PerStream):
    X = c.args["self"]
    r = _rank(X)
    d = _sdim(int(c.args["dim"]), r)
    return c.op(self=X, dim=d, source=_align(c.args["source"], r))


def _ps_pad(c: Call, p: PerStream):
    X = c.args["self"]
    mode = c.args.get("mode", "constant")
    value = c.args.get("value")
    if c.target is aten.constant_pad_nd.default:
        mode = "constant"
    if mode != "constant":  # reflect / replicate / circular: index maps, per stream on a batched view
        n = len(c.args["pad"]) // 2
        r = _rank(X)
        if r == n + 2:
            return _unfold(c.op(self=_fold(X)), c.S)
        return c.op(self=X)
    pad = list(c.args["pad"])
    Y = aten.constant_pad_nd.default(X, pad, 0.0)
    if value is not None and float(value) != 0.0:
        ones = torch.zeros(list(X.shape[1:]), dtype=X.dtype, device=X.device)
        const = aten.constant_pad_nd.default(ones, pad, float(value))
        Y = c.lay.add_bias(Y, const)
    return Y


def _einsum_stream(equation: str, operands: list, roles: list):
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    ins = lhs.split(",")
    if not arrow:  # implicit output: ellipsis then letters seen once, sorted
        letters = [ch for ch in lhs if ch.isalpha()]
        once = sorted(ch for ch in set(letters) if letters.count(ch) == 1)
        rhs = ("..." if "..." in lhs else "") + "".join(once)
    free = [ch for ch in string.ascii_letters if ch not in eq]
    z = free[0]
    new_ins = [(z + s) if r in (STREAM, STREAM_STATE) else s for s, r in zip(ins, roles)]
    return torch.einsum(",".join(new_ins) + "->" + z + rhs, *operands)


def _ps_cat(c: Call, p: PerStream):
    ts = list(c.args["tensors"])
    ranks = [_rank(t) for t in ts if t.dim() > 1 or t.numel() > 0]
    r = max(ranks) if ranks else 1
    ts = [t for t in ts if not (_rank(t) == 1 and t.shape[1] == 0 and r > 1)]  # legacy empty tensors
    d = _sdim(int(c.args.get("dim", 0)), r)
    return torch.cat(ts, d)


def _ps_stack(c: Call, p: PerStream):
    ts = list(c.args["tensors"])
    r = _rank(ts[0]) + 1
    d = _sdim(int(c.args.get("dim", 0)), r)
    return torch.stack(ts, d)


def _ps_dropout(c: Call, p: PerStream):
    if c.args.get("train", False):
        raise NotImplementedError("dropout in training mode")
    X = c.args[p.stream]
    if c.target is aten.native_dropout.default:
        return (X, None)
    return X


def _ps_to_copy(c: Call, p: PerStream):
    return c.op()


def _ps_t(c: Call, p: PerStream):
    X = c.args["self"]
    return X if _rank(X) < 2 else X.transpose(-2, -1)


@dataclass(frozen=True)
class PerStream(Rule):
    """A linear, state-free op applied to every stream (reshape, slice, cat, upsample, ...).

    Parameters
    ----------
    how : str
        One of the shared implementations: ``direct`` (op acts on trailing dims), ``fold``
        (stream axis folded into the batch axis; ``batched_rank`` = rank of a batched input),
        ``dims`` (dim arguments shifted past the stream axis), ``shape`` (size argument gets the
        stream axis prepended), or a special one (``expand``, ``repeat``, ``permute``, ...).
    stream : str
        Name of the decomposed argument.
    """

    how: str = "direct"
    stream: str | tuple = "self"
    dims: tuple = ()
    dim_lists: tuple = ()
    dim_defaults: dict = field(default_factory=dict)
    empty_means_all: bool = False
    rank_extra: int = 0
    shape: str = "size"
    batched_rank: int | None = None
    label: str = ""
    tuple_out: int | None = None  # number of outputs for list/tuple-returning ops (all decomposed)

    name = "pass-through"
    family = "structural"
    passthrough = True

    def __hash__(self):
        return hash((self.how, self.stream, self.dims, self.dim_lists, self.label))

    def _streams(self) -> tuple:
        return (self.stream,) if isinstance(self.stream, str) else tuple(self.stream)

    def roles(self, v: NodeView) -> Roles:
        from torch.fx import Node

        streams = self._streams()
        out = {}
        for k, a in v.args.items():
            if not _has_node(a):
                continue
            if k in streams:
                out[k] = [STREAM] * len(a) if isinstance(a, (list, tuple)) else STREAM
            elif isinstance(a, (list, tuple)):
                out[k] = [(STATE if v.depends(x) else PARAM) if isinstance(x, Node) else PARAM for x in a]
            else:
                out[k] = STATE if v.depends(a) else PARAM
        if self.how == "to_copy":
            meta = v.out_meta()
            if meta is not None and not meta.is_floating_point():
                raise NoRule(f"conversion of a decomposed tensor to {meta.dtype} is not linear")
        has_state = any((isinstance(r, list) and STATE in r) or r is STATE for r in out.values())
        return Roles(out, "selection" if has_state else None)

    def stream_outputs(self, v):
        if self.how == "dropout" and v.target is aten.native_dropout.default:
            return {0}
        return None

    def state(self, c: Call) -> tuple:
        # modality-dependent index tensors (data-dependent gathers) are frozen at their value
        vals = []
        for k, r in c.roles.items():
            if isinstance(r, list):
                vals += [c.args[k][i] for i, ri in enumerate(r) if ri is STATE]
            elif r is STATE:
                vals.append(c.args[k])
        return tuple(vals)

    def apply(self, c: Call):
        if c.state:
            it = iter(c.state)
            for k, r in c.roles.items():
                if isinstance(r, list):
                    if STATE in r:
                        c.args[k] = [next(it) if ri is STATE else x for x, ri in zip(c.args[k], r)]
                elif r is STATE:
                    c.args[k] = next(it)
        return _PS_IMPL[self.how](c, self)

    def describe(self) -> str:
        return "pass-through" + (f" ({self.label})" if self.label else "")


_PS_IMPL = {
    "direct": _ps_direct,
    "fold": _ps_fold,
    "pixel_shuffle": _ps_pixel_shuffle,
    "dims": _ps_dims,
    "shape": _ps_shape,
    "expand": _ps_expand,
    "repeat": _ps_repeat,
    "permute": _ps_permute,
    "squeeze_all": _ps_squeeze_all,
    "reduce_all": _ps_reduce_all,
    "roll": _ps_roll,
    "index": _ps_index,
    "index_put": _ps_index_put,
    "gather": _ps_gather,
    "scatter": _ps_scatter,
    "index_add": _ps_index_add,
    "pad": _ps_pad,
    "cat": _ps_cat,
    "stack": _ps_stack,
    "dropout": _ps_dropout,
    "to_copy": _ps_to_copy,
    "t": _ps_t,
}


# ------------------------------------------------------------------------------------------------
# Add / subtract: per stream, constants (numbers, modality-free tensors) to the bias stream
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddSub(Rule):
    """``add``/``sub``/``rsub``: streams add per stream; a constant term goes to the bias stream."""

    name = "add"
    family = "structural"
    passthrough = True

    def apply(self, c: Call):
        a, b = c.args["self"], c.args["other"]
        alpha = c.args.get("alpha", 1)
        t = c.target
        sign_a, sign_b = 1.0, float(alpha)
        if t in (aten.sub.Tensor, aten.sub.Scalar):
            sign_b = -float(alpha)
        elif t in (aten.rsub.Tensor, aten.rsub.Scalar):  # other - alpha * self
            sign_a, sign_b = -float(alpha), 1.0
        rank = max(_rank(a) if torch.is_tensor(a) else 0, _rank(b) if torch.is_tensor(b) else 0)
        if torch.is_tensor(a) and torch.is_tensor(b):
            A, B = _align(a, rank), _align(b, rank)
            out = A * sign_a if sign_a != 1.0 else A
            return out + B * sign_b if sign_b != 1.0 else out + B
        if torch.is_tensor(a):  # b is a number
            out = a * sign_a if sign_a != 1.0 else a
            return c.lay.add_bias(out, sign_b * b)
        out = b * sign_b if sign_b != 1.0 else b
        return c.lay.add_bias(out, sign_a * a)


# ------------------------------------------------------------------------------------------------
# Affine ops with a weight: conv, conv-transpose, linear, addmm (4.1)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Affine(Rule):
    """W h_s for every stream; the bias beta goes to the bias stream only (lmd.md 4.1)."""

    stream: str = "input"
    bias: str = "bias"
    weight: str = "weight"
    batched_rank_from_weight: bool = True  # conv: batched rank = weight rank; linear: any leading dims

    name = "affine"
    family = "affine"

    def roles(self, v: NodeView) -> Roles:
        out = {}
        for k, a in v.args.items():
            if not _has_node(a):
                continue
            if k == self.stream:
                out[k] = STREAM
            elif v.depends(a):
                raise NoRule(
                    f"argument {k!r} depends on modalities {sorted(v.dep(a))}: a modality-dependent weight is a "
                    "product of two decomposed tensors (configure a Product rule or FreezeToBias)"
                )
            else:
                out[k] = PARAM
        return Roles(out, None)

    def apply(self, c: Call):
        b = c.args.get(self.bias)
        if c.target is aten.addmm.default:
            return self._addmm(c)
        fuse = c.lay.bias_broadcast  # the bias goes to every slot: let the op add it (fused in the kernel)
        if self.batched_rank_from_weight:
            W = c.args[self.weight]
            if fuse:
                return _batched_call(c, self.stream, W.dim())
            Y = _batched_call(c, self.stream, W.dim(), **{self.bias: None})
            if b is not None:
                Y = c.lay.add_bias(Y, b.reshape([-1] + [1] * (W.dim() - 2)))
            return Y
        if fuse:
            return c.op()
        Y = c.op(**{self.bias: None})
        if b is not None:
            Y = c.lay.add_bias(Y, b)
        return Y

    def _addmm(self, c: Call):
        beta, alpha = c.args.get("beta", 1), c.args.get("alpha", 1)
        Y = torch.matmul(c.args["mat1"], c.args["mat2"])  # the stacked operand broadcasts
        if alpha != 1:
            Y = Y * alpha
        return c.lay.add_bias(Y, c.args["self"] * beta)


@dataclass(frozen=True)
class AddMM(Affine):
    stream: str = "mat1"
    bias: str = "self"

    def roles(self, v: NodeView) -> Roles:
        d1, d2 = v.depends(v.args["mat1"]), v.depends(v.args["mat2"])
        if d1 and d2:
            raise NoRule("addmm of two decomposed matrices (configure a Product rule)")
        if v.depends(v.args["self"]):
            raise NoRule("addmm with a modality-dependent bias")
        out = {"mat1": STREAM if d1 else PARAM, "mat2": STREAM if d2 else PARAM}
        if _has_node(v.args["self"]):
            out["self"] = PARAM
        return Roles(out, None)

    def apply(self, c: Call):
        return self._addmm(c)


# ------------------------------------------------------------------------------------------------
# Elementwise activations: frozen gate, a(z) = a(0) + g(z*) z  (lmd.md 3, 4.2)
# ------------------------------------------------------------------------------------------------


# Gates are built with arithmetic, not torch.where / comparisons (several times slower on CPU and
# in ONNX Runtime): pos = ceil(clamp(z, 0, 1)) is exactly 1 where z > 0 (clamp gives a value in
# (0, 1], subnormals included) and 0 elsewhere, iszero = 1 - pos(|z|) exactly 1 at z == 0 and 0
# elsewhere; blends with them are exact for finite values. (Clip + Ceil is ~2x cheaper than
# Sign(Relu) in ONNX Runtime, whose Sign kernel is not vectorised, and as cheap in PyTorch.)


def _pos(z: Tensor) -> Tensor:
    if _exporting():  # Greater + Cast: one pass fewer than Clip + Ceil in ONNX Runtime (same values)
        return (z > 0).to(z.dtype)
    return torch.ceil(torch.clamp(z, 0.0, 1.0))


def _iszero(z: Tensor) -> Tensor:
    return 1.0 - _pos(torch.abs(z))


def _neg_part(z: Tensor) -> Tensor:
    return -torch.relu(-z)  # min(z, 0): keeps exp-type branches finite where they are not used


def _safe_div(num: Tensor, z: Tensor, at_zero) -> Tensor:
    """num / z, and ``at_zero`` (the slope a'(0)) where z == 0."""
    iz = _iszero(z)
    return num / (z + iz) + iz * at_zero


def _g_relu(z, a):
    return _pos(z), 0.0


def _g_leaky(z, a):
    s = float(a.get("negative_slope", 0.01))
    return s + (1.0 - s) * _pos(z), 0.0


def _g_gelu(z, a):
    if a.get("approximate", "none") == "tanh":
        k = math.sqrt(2.0 / math.pi)
        return 0.5 * (1.0 + torch.tanh(k * (z + 0.044715 * z * z * z))), 0.0
    return 0.5 * (1.0 + torch.erf(z * (1.0 / math.sqrt(2.0)))), 0.0


def _g_silu(z, a):
    return torch.sigmoid(z), 0.0


def _g_sigmoid(z, a):  # sigmoid(z) = 1/2 + tanh(z/2)/2, gate = tanh(z/2)/(2z), 1/4 at 0
    return _safe_div(0.5 * torch.tanh(0.5 * z), z, 0.25), 0.5


def _g_tanh(z, a):
    return _safe_div(torch.tanh(z), z, 1.0), 0.0


def _g_elu(z, a):
    alpha, scale, iscale = float(a.get("alpha", 1)), float(a.get("scale", 1)), float(a.get("input_scale", 1))
    zn = _neg_part(z)
    neg = _safe_div(scale * alpha * torch.expm1(iscale * zn), zn, scale * alpha * iscale)
    p = _pos(z)
    return p * scale + (1.0 - p) * neg, 0.0


def _clamp_bounds(a, lo_name, hi_name, lo_def=None, hi_def=None):
    lo = a.get(lo_name, lo_def)
    hi = a.get(hi_name, hi_def)
    return (None if lo is None else float(lo)), (None if hi is None else float(hi))


def _g_clamp_generic(z, lo, hi):
    a0 = 0.0
    if lo is not None:
        a0 = max(a0, lo)
    if hi is not None:
        a0 = min(a0, hi)
    y = torch.clamp(z, lo, hi)
    inside0 = (lo is None or lo < 0) and (hi is None or hi > 0)
    return _safe_div(y - a0, z, 1.0 if inside0 else 0.0), a0


def _g_hardtanh(z, a):
    lo, hi = _clamp_bounds(a, "min_val", "max_val", -1.0, 1.0)
    return _g_clamp_generic(z, lo, hi)


def _g_clamp(z, a):
    lo, hi = _clamp_bounds(a, "min", "max")
    return _g_clamp_generic(z, lo, hi)


def _g_clamp_min(z, a):
    return _g_clamp_generic(z, float(a["min"]), None)


def _g_clamp_max(z, a):
    return _g_clamp_generic(z, None, float(a["max"]))


def _g_relu6(z, a):
    return _g_clamp_generic(z, 0.0, 6.0)


def _g_celu(z, a):
    alpha = float(a.get("alpha", 1.0))
    zn = _neg_part(z)
    neg = _safe_div(alpha * torch.expm1(zn / alpha), zn, 1.0)
    p = _pos(z)
    return p + (1.0 - p) * neg, 0.0


_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772, 1.0507009873554805


def _g_selu(z, a):
    zn = _neg_part(z)
    neg = _safe_div(_SELU_SCALE * _SELU_ALPHA * torch.expm1(zn), zn, _SELU_SCALE * _SELU_ALPHA)
    p = _pos(z)
    return p * _SELU_SCALE + (1.0 - p) * neg, 0.0


def _g_log_sigmoid(z, a):  # log_sigmoid(z) = -log 2 + secant * z, slope 1/2 at 0
    a0 = -math.log(2.0)
    return _safe_div(torch.nn.functional.logsigmoid(z) - a0, z, 0.5), a0


def _g_softplus(z, a):
    beta, thr = float(a.get("beta", 1)), float(a.get("threshold", 20))
    a0 = math.log(2.0) / beta
    y = torch.nn.functional.softplus(z, beta, thr)
    return _safe_div(y - a0, z, 0.5), a0


def _g_hardswish(z, a):
    return torch.clamp(z + 3.0, 0.0, 6.0) / 6.0, 0.0


def _g_hardsigmoid(z, a):
    y = torch.nn.functional.hardsigmoid(z)
    return _safe_div(y - 0.5, z, 1.0 / 6.0), 0.5


def _g_mish(z, a):
    return torch.tanh(torch.nn.functional.softplus(z)), 0.0


def _g_abs(z, a):
    return torch.sign(z), 0.0


def _g_prelu(z, a):
    w = a["weight"]
    if w.numel() > 1 and z.dim() >= 2:
        w = w.reshape([-1] + [1] * (z.dim() - 2))
    p = _pos(z)
    return p + (1.0 - p) * w.to(z.dtype), 0.0


GATES: dict[str, Callable] = {
    "relu": _g_relu,
    "leaky_relu": _g_leaky,
    "gelu": _g_gelu,
    "silu": _g_silu,
    "sigmoid": _g_sigmoid,
    "tanh": _g_tanh,
    "elu": _g_elu,
    "hardtanh": _g_hardtanh,
    "clamp": _g_clamp,
    "clamp_min": _g_clamp_min,
    "clamp_max": _g_clamp_max,
    "softplus": _g_softplus,
    "relu6": _g_relu6,
    "celu": _g_celu,
    "selu": _g_selu,
    "log_sigmoid": _g_log_sigmoid,
    "hardswish": _g_hardswish,
    "hardsigmoid": _g_hardsigmoid,
    "mish": _g_mish,
    "abs": _g_abs,
    "prelu": _g_prelu,
}


@dataclass(frozen=True)
class Gate(Rule):
    """Elementwise activation frozen at its operating point: h'_s = g(z*) h_s, a(0) to the bias.

    ``g`` is the secant (a(z*) - a(0)) / z* (exact closed forms: 1[z>0] for ReLU, Phi(z) for
    GELU, sigmoid(z) for SiLU, tanh(z/2)/(2z) for sigmoid, ...), with a'(0) where z* = 0.

    Parameters
    ----------
    activation : str
        Key of ``GATES`` (or pass ``fn``: ``fn(z, args) -> (gate, a0)``).
    """

    activation: str = "relu"
    fn: Callable | None = None
    input: str = "self"

    name = "gate"
    family = "activation"
    kind = "activation"

    def __hash__(self):
        return hash((self.activation, self.fn, self.input))

    def roles(self, v: NodeView) -> Roles:
        out = {}
        for k, a in v.args.items():
            if not _has_node(a):
                continue
            if k == self.input:
                out[k] = STREAM_STATE
            elif v.depends(a):
                raise NoRule(f"activation parameter {k!r} depends on modalities {sorted(v.dep(a))}")
            else:
                out[k] = PARAM
        return Roles(out, self.kind)

    def _gate(self, c: Call):
        z = c.args[self.input]
        fn = self.fn or GATES[self.activation]
        return fn(z, c.args)

    def state(self, c: Call) -> tuple:
        g, a0 = self._gate(c)
        return (g,)

    def apply(self, c: Call):
        X = c.args[self.input]
        (g,) = c.state
        Y = X * g
        a0 = self._offset(c)
        if a0:
            Y = c.lay.add_bias(Y, a0)
        return Y

    def _offset(self, c: Call) -> float:
        # a(0) is a number fixed by the op's own arguments (never by data)
        if self.fn is not None:
            z0 = torch.zeros((), dtype=torch.float64)
            return float(self.fn(z0, {k: v for k, v in c.args.items() if k != self.input})[1])
        act = self.activation
        if act == "sigmoid" or act == "hardsigmoid":
            return 0.5
        if act == "log_sigmoid":
            return -math.log(2.0)
        if act == "softplus":
            return math.log(2.0) / float(c.args.get("beta", 1))
        if act in ("hardtanh", "clamp", "clamp_min", "clamp_max"):
            if act == "hardtanh":
                lo, hi = _clamp_bounds(c.args, "min_val", "max_val", -1.0, 1.0)
            elif act == "clamp":
                lo, hi = _clamp_bounds(c.args, "min", "max")
            elif act == "clamp_min":
                lo, hi = float(c.args["min"]), None
            else:
                lo, hi = None, float(c.args["max"])
            a0 = 0.0
            if lo is not None:
                a0 = max(a0, lo)
            if hi is not None:
                a0 = min(a0, hi)
            return a0
        return 0.0

    def describe(self) -> str:
        return f"gate:{self.activation if self.fn is None else getattr(self.fn, '__name__', 'custom')}"


# ------------------------------------------------------------------------------------------------
# Normalisation: BatchNorm (eval, affine) and LayerNorm / GroupNorm / InstanceNorm (4.3, 4.4)
# ------------------------------------------------------------------------------------------------

BN_STAT_OPS = {
    aten._native_batch_norm_legit_no_training.default: dict(training=None),
    aten._native_batch_norm_legit.default: dict(training="training"),
    aten.batch_norm.default: dict(training="training"),
    aten.native_batch_norm.default: dict(training="training"),
    aten.instance_norm.default: dict(use_input_stats="use_input_stats"),
    aten._native_batch_norm_legit.no_stats: dict(always_batch=True),
}
TUPLE_NORM_OPS = {
    aten._native_batch_norm_legit_no_training.default,
    aten._native_batch_norm_legit.default,
    aten._native_batch_norm_legit.no_stats,
    aten.native_batch_norm.default,
    aten.native_group_norm.default,
    aten.native_layer_norm.default,
}


def _uses_running_stats(target, args: dict) -> bool:
    """True when a batch-norm-like op normalises with running statistics (an affine map)."""
    if target is aten._native_batch_norm_legit_no_training.default:
        return True
    if target is aten._native_batch_norm_legit.no_stats:
        return False
    if target is aten.instance_norm.default:
        return not bool(args.get("use_input_stats", True)) and args.get("running_mean") is not None
    if target in (aten._native_batch_norm_legit.default, aten.batch_norm.default, aten.native_batch_norm.default):
        return not bool(args.get("training", False)) and args.get("running_mean") is not None
    return False


@dataclass(frozen=True)
class BatchNorm(Rule):
    """BatchNorm in eval mode, y = a z + d (lmd.md 4.3).

    ``variant="identity"`` (default): h'_m = a h_m, h'_b = a h_b + d.
    ``variant="uniform"``: h'_s = a h_s + d / |S|.
    """

    variant: str = "identity"

    name = "batch_norm"
    family = "batch_norm"
    ops = frozenset(BN_STAT_OPS)

    def __post_init__(self):
        if self.variant not in ("identity", "uniform"):
            raise ValueError(f"BatchNorm variant must be 'identity' or 'uniform', got {self.variant!r}")

    def accepts(self, node, target, args) -> bool:
        return target in BN_STAT_OPS and _uses_running_stats(target, args)

    def roles(self, v: NodeView) -> Roles:
        out = {}
        for k, a in v.args.items():
            if not _has_node(a):
                continue
            if k == "input":
                out[k] = STREAM
            elif v.depends(a):
                raise NoRule(f"batch-norm parameter {k!r} depends on modalities")
            else:
                out[k] = PARAM
        return Roles(out, None)

    def stream_outputs(self, v):
        return {0} if v.target in TUPLE_NORM_OPS else None

    @staticmethod
    def _scale_shift(args: dict, dtype):
        w, b = args.get("weight"), args.get("bias")
        rm, rv = args["running_mean"], args["running_var"]
        a = torch.rsqrt(rv.to(dtype) + float(args.get("eps", 1e-5)))
        if w is not None:
            a = a * w
        d = -rm.to(dtype) * a
        if b is not None:
            d = d + b
        return a, d

    def fold(self, bn_args: dict, weight: Tensor, conv_bias):
        """Fold into the conv before it: (scaled conv weight, (bias-stream shift, uniform shift))."""
        a, d = self._scale_shift(bn_args, weight.dtype)
        w2 = weight * a.reshape([-1] + [1] * (weight.dim() - 1))
        cb = conv_bias * a if conv_bias is not None else None
        if self.variant == "identity":
            return w2, ((d if cb is None else d + cb), None, weight.dim() - 2)
        return w2, (cb, d, weight.dim() - 2)

    @staticmethod
    def add_shift(lay, Y, to_bias, to_uniform, nsp: int):
        shape = [-1] + [1] * nsp
        if to_bias is not None:
            Y = lay.add_bias(Y, to_bias.reshape(shape))
        if to_uniform is not None:
            Y = lay.add_uniform(Y, to_uniform.reshape(shape))
        return Y

    def apply(self, c: Call):
        X = c.args["input"]
        a, d = self._scale_shift(c.args, X.dtype)
        r = _rank(X)
        shape = [-1] + [1] * (r - 2) if r >= 2 else [-1]
        d = d.reshape(shape)
        shift = c.lay.bias_term(d, X) if self.variant == "identity" else c.lay.uniform_term(d, X)
        Y = torch.addcmul(shift, X, a.reshape(shape))  # a h_s + shift, one pass
        if c.target in TUPLE_NORM_OPS:
            return (Y, None, None)
        return Y

    def describe(self) -> str:
        return f"batch_norm:{self.variant}"


NORM_OPS = frozenset(
    {
        aten.layer_norm.default,
        aten.native_layer_norm.default,
        aten.group_norm.default,
        aten.native_group_norm.default,
        aten.instance_norm.default,
        aten.rms_norm.default,
        aten._native_batch_norm_legit.no_stats,
        aten._native_batch_norm_legit.default,
        aten.batch_norm.default,
        aten.native_batch_norm.default,
    }
)


def _norm_spec(target, args: dict, shape: Sequence[int]):
    """(view_shape, reduce_dims, affine_shape, eps, weight, bias, centred) for a normalisation op."""
    shape = list(shape)
    r = len(shape)
    if target in (aten.layer_norm.default, aten.native_layer_norm.default, aten.rms_norm.default):
        k = len(args["normalized_shape"])
        view = shape[: r - k] + [-1]
        eps = args.get("eps")
        if eps is None:
            eps = 1e-5 if target is not aten.rms_norm.default else None
        return view, (len(view) - 1,), None, eps, args.get("weight"), args.get("bias"), target is not aten.rms_norm.default
    if target is aten.group_norm.default:
        g = int(args["num_groups"])
        view = [shape[0], g, -1]
        return view, (2,), [-1] + [1] * (r - 2), float(args.get("eps", 1e-5)), args.get("weight"), args.get("bias"), True
    if target is aten.native_group_norm.default:
        g = int(args["group"])
        view = [shape[0], g, -1]
        return view, (2,), [-1] + [1] * (r - 2), float(args["eps"]), args.get("weight"), args.get("bias"), True
    if target is aten.instance_norm.default:
        view = [shape[0], shape[1], -1]
        return view, (2,), [-1] + [1] * (r - 2), float(args.get("eps", 1e-5)), args.get("weight"), args.get("bias"), True
    # batch statistics: per channel over (N, *spatial)
    view = [shape[0], shape[1], -1]
    return view, (0, 2), [-1] + [1] * (r - 2), float(args.get("eps", 1e-5)), args.get("weight"), args.get("bias"), True


@dataclass(frozen=True)
class Norm(Rule):
    """LayerNorm / GroupNorm / InstanceNorm / batch-statistics norm with the scale s* frozen (4.4).

    ``variant="ratio"`` (default): h'_s = gamma (h_s - mean(h_s)) / s*, beta to the bias stream.
    ``variant="identity"``: h'_m = gamma h_m / s*, h'_b = gamma (h_b - mean(z)) / s* + beta.
    ``variant="uniform"``: h'_s = gamma (h_s - mean(z)/|S|) / s* + beta/|S| (breaks separation).
    """

    variant: str = "ratio"

    name = "norm"
    family = "norm"
    kind = "norm"
    ops = NORM_OPS

    def __post_init__(self):
        if self.variant not in ("ratio", "identity", "uniform"):
            raise ValueError(f"Norm variant must be 'ratio', 'identity' or 'uniform', got {self.variant!r}")

    def accepts(self, node, target, args) -> bool:
        if target not in NORM_OPS:
            return False
        if target in BN_STAT_OPS:
            return not _uses_running_stats(target, args)
        return True

    def roles(self, v: NodeView) -> Roles:
        out = {}
        for k, a in v.args.items():
            if not _has_node(a):
                continue
            if k == "input":
                out[k] = STREAM_STATE
            elif v.depends(a):
                raise NoRule(f"normalisation parameter {k!r} depends on modalities")
            else:
                out[k] = PARAM
        return Roles(out, self.kind)

    def stream_outputs(self, v):
        return {0} if v.target in TUPLE_NORM_OPS else None

    def _scale(self, z: Tensor, view, rd, eps) -> Tensor:
        vz = z.reshape(view)
        var = vz.var(dim=rd, unbiased=False, keepdim=True) if self._centred else (vz * vz).mean(dim=rd, keepdim=True)
        return torch.sqrt(var + eps)

    _centred = True

    def state(self, c: Call) -> tuple:
        z = c.args["input"]
        view, rd, _, eps, _, _, centred = _norm_spec(c.target, c.args, z.shape)
        if eps is None:
            eps = torch.finfo(z.dtype).eps
        vz = z.reshape(view)
        var = vz.var(dim=rd, unbiased=False, keepdim=True) if centred else (vz * vz).mean(dim=rd, keepdim=True)
        return (torch.sqrt(var + eps),)

    def apply(self, c: Call):
        X = c.args["input"]
        S = c.S
        view, rd, aff, eps, w, b, centred = _norm_spec(c.target, c.args, X.shape[1:])
        (s,) = c.state
        q_eps = getattr(c.compat, "decompose_norm_eps", None) if c.compat is not None else None
        s_dec = s
        if q_eps is not None:  # authors' quirk: another epsilon in the decomposition pass
            if eps is None:
                eps = torch.finfo(X.dtype).eps
            s_dec = torch.sqrt(s * s - eps + q_eps)
        V = X.reshape([S] + view)
        srd = tuple(d + 1 for d in rd)
        if centred and self.variant == "ratio":
            Y = (V - V.mean(dim=srd, keepdim=True)) / s_dec
        else:
            Y = V / s_dec
            if centred:
                mz = c.lay.total(V).mean(dim=rd, keepdim=True) / s_dec
                Y = c.lay.add_bias(Y, -mz) if self.variant == "identity" else c.lay.add_uniform(Y, -mz)
        if q_eps is not None and c.lay.full:  # the full stream keeps the real network's epsilon:
            total = c.lay.total(Y)  # the difference goes to the (derived) bias stream
            Y = c.lay.add_bias(Y, total * (s_dec / s) - total)
        Y = Y.reshape(X.shape)
        if w is not None:
            Y = Y * (w if aff is None else w.reshape(aff))
        if b is not None:
            bb = b if aff is None else b.reshape(aff)
            Y = c.lay.add_uniform(Y, bb) if self.variant == "uniform" else c.lay.add_bias(Y, bb)
        if c.target in TUPLE_NORM_OPS:
            return (Y, None, None)
        return Y

    def describe(self) -> str:
        return f"norm:{self.variant}"


# ------------------------------------------------------------------------------------------------
# Products of two tensors: matmul / bmm / mm / einsum / mul (4.1 with weights, 4.7 otherwise)
# ------------------------------------------------------------------------------------------------

PRODUCT_OPERANDS = {
    aten.mul.Tensor: ("self", "other"),
    aten.matmul.default: ("self", "other"),
    aten.mm.default: ("self", "mat2"),
    aten.bmm.default: ("self", "mat2"),
    aten.einsum.default: (("tensors", 0), ("tensors", 1)),
}


def _get(args: dict, key):
    if isinstance(key, tuple):
        return args[key[0]][key[1]]
    return args[key]


def _kind_for_routing(r: str | None) -> str:
    if r is None:
        return "product"
    if "softmax" in r:
        return "attention"
    if r in ("sigmoid", "hardsigmoid", "tanh"):
        return "activation"
    return "mask"


def _mm(a: Tensor, b: Tensor, a_stacked: bool, b_stacked: bool, ra: int, rb: int) -> Tensor:
    """matmul where one or both operands carry a leading stream axis (broadcast semantics kept)."""
    if a_stacked and b_stacked:
        r = max(ra, rb)
        return torch.matmul(_align(a, r), _align(b, r))
    if a_stacked:
        if ra >= 2 and rb > ra:
            a = _align(a, rb)
        return torch.matmul(a, b)
    # b stacked
    if rb == 1:
        return torch.matmul(a, b.unsqueeze(-1)).squeeze(-1)
    if ra > rb:
        b = _align(b, ra)
    return torch.matmul(a, b)


@dataclass(frozen=True)
class Product(Rule):
    """Product of two tensors (mul, matmul, bmm, mm, einsum).

    With one modality-free operand it is linear (weights). With two decomposed operands the cross
    terms are genuine interactions (lmd.md 4.7) and the mode decides:

    * ``"auto"`` (default): freeze the operand produced by a routing op (softmax, sigmoid gate,
      comparison mask) and decompose the other; refuse when neither or both are routing.
    * ``"freeze_left"`` / ``"freeze_right"``: freeze that operand at its operating point.
    * ``"half"``: split each cross term half/half, out_s = (a_s B* + A* b_s) / 2 (A*, B* frozen).
    * ``"refuse"``: always refuse a product of two decomposed tensors.
    """

    mode: str = "auto"

    name = "product"
    family = "product"
    ops = frozenset(PRODUCT_OPERANDS)

    def __post_init__(self):
        if self.mode not in ("auto", "freeze_left", "freeze_right", "half", "refuse"):
            raise ValueError(f"Product mode must be auto|freeze_left|freeze_right|half|refuse, got {self.mode!r}")

    def accepts(self, node, target, args) -> bool:
        if target not in PRODUCT_OPERANDS:
            return False
        if target is aten.einsum.default:
            return len(args["tensors"]) == 2 or sum(1 for _ in args["tensors"]) >= 1
        return True

    def _operands(self, v_or_c):
        return PRODUCT_OPERANDS[v_or_c.target]

    def roles(self, v: NodeView) -> Roles:
        keys = self._operands(v)
        if v.target is aten.einsum.default and len(v.args["tensors"]) != 2:
            deps = [v.depends(t) for t in v.args["tensors"]]
            if sum(deps) > 1:
                raise NoRule("einsum with more than one decomposed operand among 3+ operands")
            return Roles({"tensors": [STREAM if d else PARAM for d in deps]}, None)
        a, b = (_get(v.args, k) for k in keys)
        da, db = v.depends(a), v.depends(b)
        if not (da and db):
            return self._pack(v, keys, [STREAM if da else PARAM, STREAM if db else PARAM], None)
        mode = self.mode
        if mode == "refuse":
            raise NoRule("product of two decomposed tensors refused (Product('refuse'))")
        if mode == "half":
            return self._pack(v, keys, [STREAM_STATE, STREAM_STATE], "product")
        if mode == "auto":
            ra, rb = v.routing(a), v.routing(b)
            if bool(ra) == bool(rb):
                why = "neither operand" if not ra else f"both operands ({ra}, {rb})"
                raise NoRule(
                    f"product of two decomposed tensors where {why} comes from a routing op (softmax, sigmoid "
                    "gate, mask); choose Product('freeze_left'|'freeze_right'|'half') for this op or module"
                )
            frozen = 0 if ra else 1
            kind = _kind_for_routing(ra or rb)
        else:
            frozen = 0 if mode == "freeze_left" else 1
            kind = "product"
        roles = [STREAM, STREAM]
        roles[frozen] = STATE
        return self._pack(v, keys, roles, kind)

    @staticmethod
    def _pack(v, keys, roles, kind):
        out = {}
        for k, r in zip(keys, roles):
            if isinstance(k, tuple):
                lst = out.setdefault(k[0], [PARAM] * len(v.args[k[0]]))
                lst[k[1]] = r
            elif _has_node(v.args[k]):
                out[k] = r
        return Roles(out, kind)

    def _role(self, c: Call, k):
        if isinstance(k, tuple):
            lst = c.roles.get(k[0])
            return lst[k[1]] if lst else PARAM
        return c.roles.get(k, PARAM)

    def state(self, c: Call) -> tuple:
        keys = self._operands(c)
        if c.target is aten.einsum.default and len(c.args["tensors"]) != 2:
            return ()
        out = []
        for k in keys:
            if self._role(c, k) in (STATE, STREAM_STATE):
                out.append(_get(c.args, k))
        return tuple(out)

    def apply(self, c: Call):
        t = c.target
        keys = self._operands(c)
        if t is aten.einsum.default and len(c.args["tensors"]) != 2:
            return _einsum_stream(c.args["equation"], list(c.args["tensors"]), list(c.roles["tensors"]))
        ra_, rb_ = self._role(c, keys[0]), self._role(c, keys[1])
        a, b = _get(c.args, keys[0]), _get(c.args, keys[1])
        it = iter(c.state)
        if ra_ is STATE:
            a = next(it)
        if rb_ is STATE:
            b = next(it)
        if ra_ is STREAM_STATE and rb_ is STREAM_STATE:  # half/half split of the cross terms
            A, B = next(it), next(it)
            return (self._one(c, a, B, True, False) + self._one(c, A, b, False, True)) * 0.5
        a_st, b_st = ra_ in (STREAM, STREAM_STATE), rb_ in (STREAM, STREAM_STATE)
        return self._one(c, a, b, a_st, b_st)

    def _one(self, c: Call, a, b, a_st: bool, b_st: bool) -> Tensor:
        t = c.target
        ra = (a.dim() - 1 if a_st else a.dim()) if torch.is_tensor(a) else 0
        rb = (b.dim() - 1 if b_st else b.dim()) if torch.is_tensor(b) else 0
        if t is aten.mul.Tensor:
            r = max(ra, rb)
            if a_st:
                a = _align(a, r)
            if b_st:
                b = _align(b, r)
            return a * b
        if t is aten.einsum.default:
            roles = [STREAM if a_st else PARAM, STREAM if b_st else PARAM]
            return _einsum_stream(c.args["equation"], [a, b], roles)
        return _mm(a, b, a_st, b_st, ra, rb)

    def describe(self) -> str:
        return f"product:{self.mode}"


@dataclass(frozen=True)
class Divide(Rule):
    """``a / b``: per stream when b is modality-free; a modality-dependent divisor is frozen at b*
    (the normalisation-scale pattern of lmd.md section 3: counts of a masked mean, hand-written
    norms). A decomposed tensor in the divisor only is refused."""

    freeze_divisor: bool = True

    name = "divide"
    family = "divisor"
    ops = frozenset({aten.div.Tensor})

    def roles(self, v: NodeView) -> Roles:
        a, b = v.args["self"], v.args["other"]
        da, db = v.depends(a), v.depends(b)
        out = {}
        if not da:
            raise NoRule("division of a modality-free value by a decomposed tensor is not affine")
        out["self"] = STREAM
        if _has_node(b):
            if db:
                if not self.freeze_divisor:
                    raise NoRule("division by a decomposed tensor (Divide(freeze_divisor=False))")
                out["other"] = STATE
                return Roles(out, "divisor")
            out["other"] = PARAM
        return Roles(out, None)

    def state(self, c: Call) -> tuple:
        if c.roles.get("other") is STATE:
            return (c.args["other"],)
        return ()

    def apply(self, c: Call):
        X = c.args["self"]
        b = c.state[0] if c.state else c.args["other"]
        if torch.is_tensor(b):
            r = max(_rank(X), b.dim())
            X = _align(X, r)
        return X / b

    def describe(self) -> str:
        return "divide:frozen-divisor" if self.freeze_divisor else "divide"


# ------------------------------------------------------------------------------------------------
# Attention with frozen probabilities (4.7)
# ------------------------------------------------------------------------------------------------


def _attention_probs(q: Tensor, k: Tensor, mask, is_causal: bool, scale, enable_gqa: bool) -> Tensor:
    E = q.shape[-1]
    sc = (1.0 / math.sqrt(E)) if scale is None else float(scale)
    if enable_gqa and k.dim() >= 3 and k.shape[-3] != q.shape[-3]:
        k = k.repeat_interleave(q.shape[-3] // k.shape[-3], dim=-3)
    logits = torch.matmul(q, k.transpose(-2, -1)) * sc
    L, Lk = q.shape[-2], k.shape[-2]
    if is_causal:
        keep = torch.ones(L, Lk, dtype=torch.bool, device=q.device).tril()
        logits = logits.masked_fill(~keep, float("-inf"))
    if mask is not None:
        if mask.dtype == torch.bool:
            logits = logits.masked_fill(~mask, float("-inf"))
        else:
            logits = logits + mask
    return torch.softmax(logits, dim=-1)


@dataclass(frozen=True)
class Attention(Rule):
    """scaled_dot_product_attention: probabilities A* = softmax(Q*K*^T/sqrt(d) + mask) frozen,
    out_s = A* V_s (lmd.md 4.7)."""

    name = "attention"
    family = "attention"
    kind = "attention"
    ops = frozenset({aten.scaled_dot_product_attention.default})

    def roles(self, v: NodeView) -> Roles:
        out = {}
        if float(v.args.get("dropout_p", 0.0) or 0.0) != 0.0:
            raise NoRule("attention dropout must be 0 in eval mode")
        for k, a in v.args.items():
            if not _has_node(a):
                continue
            out[k] = STREAM if k == "value" else (STATE if v.depends(a) else PARAM)
        return Roles(out, self.kind)

    def state(self, c: Call) -> tuple:
        a = c.args
        probs = _attention_probs(
            a["query"],
            a["key"],
            a.get("attn_mask"),
            bool(a.get("is_causal", False)),
            a.get("scale"),
            bool(a.get("enable_gqa", False)),
        )
        return (probs,)

    def apply(self, c: Call):
        (P,) = c.state
        V = c.args["value"]
        if c.args.get("enable_gqa", False) and V.dim() >= 4 and V.shape[-3] != P.shape[-3]:
            V = V.repeat_interleave(P.shape[-3] // V.shape[-3], dim=-3)
        return torch.matmul(P, V)


# ------------------------------------------------------------------------------------------------
# Sampling: grid_sample (linear per stream; a data-dependent grid is frozen) (3, 4.8)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GridSample(Rule):
    """grid_sample: linear in the input for a fixed grid; a modality-dependent grid is frozen."""

    name = "grid_sample"
    family = "sampling"
    kind = "sampling"
    ops = frozenset({aten.grid_sampler.default, aten.grid_sampler_2d.default, aten.grid_sampler_3d.default})

    def roles(self, v: NodeView) -> Roles:
        out = {"input": STREAM}
        g = v.args["grid"]
        if _has_node(g):
            out["grid"] = STATE if v.depends(g) else PARAM
        return Roles(out, "sampling" if out.get("grid") is STATE else None)

    def state(self, c: Call) -> tuple:
        return (c.args["grid"],) if c.roles.get("grid") is STATE else ()

    def apply(self, c: Call):
        X = c.args["input"]
        grid = c.state[0] if c.state else c.args["grid"]
        G = grid.unsqueeze(0).expand([c.S] + list(grid.shape)).reshape([c.S * grid.shape[0]] + list(grid.shape[1:]))
        return _unfold(c.op(input=_fold(X), grid=G), c.S)


# ------------------------------------------------------------------------------------------------
# Max-type selections: gather every stream at the frozen argmax of z* (4.5)
# ------------------------------------------------------------------------------------------------

_MAXPOOL = {
    aten.max_pool1d.default: (1, aten.max_pool1d_with_indices.default, False),
    aten.max_pool2d.default: (2, aten.max_pool2d_with_indices.default, False),
    aten.max_pool3d.default: (3, aten.max_pool3d_with_indices.default, False),
    aten.max_pool1d_with_indices.default: (1, aten.max_pool1d_with_indices.default, True),
    aten.max_pool2d_with_indices.default: (2, aten.max_pool2d_with_indices.default, True),
    aten.max_pool3d_with_indices.default: (3, aten.max_pool3d_with_indices.default, True),
    aten.adaptive_max_pool1d.default: (1, aten.adaptive_max_pool1d.default, True),
    aten.adaptive_max_pool2d.default: (2, aten.adaptive_max_pool2d.default, True),
    aten.adaptive_max_pool3d.default: (3, aten.adaptive_max_pool3d.default, True),
}


_ONNX_EXPORT = [False]


class onnx_export_mode:  # noqa: N801 - a context manager used like a function
    """While active, rules pick ONNX-friendly formulations (set by export_onnx)."""

    def __enter__(self):
        self._prev = _ONNX_EXPORT[0]
        _ONNX_EXPORT[0] = True
        return self

    def __exit__(self, *exc):
        _ONNX_EXPORT[0] = self._prev
        return False


def _exporting() -> bool:
    """True while tracing for ONNX (pooling indices are slow in ONNX Runtime, fast in PyTorch)."""
    if not _ONNX_EXPORT[0]:
        return False
    try:
        return bool(torch.compiler.is_exporting())
    except Exception:  # pragma: no cover
        return False


_ADAPTIVE_MAXPOOL = {aten.adaptive_max_pool1d.default, aten.adaptive_max_pool2d.default, aten.adaptive_max_pool3d.default}


@dataclass(frozen=True)
class MaxPool(Rule):
    """Max pooling: every stream gathered at the frozen argmax of z* (never a per-stream max)."""

    name = "max_pool"
    family = "selection"
    kind = "selection"
    ops = frozenset(_MAXPOOL)

    def roles(self, v: NodeView) -> Roles:
        return Roles({"self": STREAM_STATE}, self.kind)

    def stream_outputs(self, v):
        return {0} if _MAXPOOL[v.target][2] else None

    # The state is the argmax of z* as a flat index per (sample, channel) plane, the format of
    # max_pool*_with_indices. PyTorch computes it with that op; when exporting to ONNX, fixed
    # windows use the window-offset form (k^nd strided views of the one full tensor, argmax,
    # index arithmetic), because pooling indices are slow in ONNX Runtime. Any tie-breaking is exact.

    def state(self, c: Call) -> tuple:
        nd, with_idx, _ = _MAXPOOL[c.target]
        if c.target in _ADAPTIVE_MAXPOOL or not _exporting():
            return (invoke(with_idx, c.args)[1],)
        return (self._window_argmax(c, c.args["self"], nd),)

    def apply(self, c: Call):
        nd, _, is_tuple = _MAXPOOL[c.target]
        (idx,) = c.state
        X = c.args["self"]
        Xf = X.flatten(-nd)
        idf = idx.flatten(-nd)
        Y = torch.gather(Xf, -1, idf.unsqueeze(0).expand([c.S] + list(idf.shape)))
        Y = Y.reshape([c.S] + list(idx.shape))
        return (Y, None) if is_tuple else Y

    @staticmethod
    def _params(c: Call, nd: int):
        def tup(v, default):
            if v is None or (isinstance(v, (list, tuple)) and len(v) == 0):
                v = default
            if isinstance(v, int):
                v = [v]
            v = list(v)
            return v * nd if len(v) == 1 else v

        k = tup(c.args["kernel_size"], None)
        s = tup(c.args.get("stride"), k)
        p = tup(c.args.get("padding", 0), [0])
        d = tup(c.args.get("dilation", 1), [1])
        return k, s, p, d

    def _window_argmax(self, c: Call, z: Tensor, nd: int) -> Tensor:
        """Flat per-plane index of each window's maximum, from strided views of z (no pooling op).

        Separable: the window is reduced one dim at a time, last dim first, by a running
        (max, offset) fold over the window positions along that dim. A position replaces the best
        so far only when strictly greater, so ties keep the first one in row-major scan order, as
        max_pool does. Each step is three small ops (ArgMax over a stacked axis and table lookups
        are several times slower in ONNX Runtime), k_1 + ... + k_nd views instead of k_1 * ... * k_nd.
        """
        k, s, p, d = self._params(c, nd)
        out = list(c.out_shape(0) if _MAXPOOL[c.target][2] else c.out_shape())[-nd:]
        in_sizes = list(z.shape[-nd:])
        strides = [1] * nd
        for i in range(nd - 2, -1, -1):
            strides[i] = strides[i + 1] * in_sizes[i + 1]
        vals, offs = self._padded(z, out, k, s, p, d, float("-inf")), None
        for i in reversed(range(nd)):
            dim, span = z.dim() - nd + i, (out[i] - 1) * s[i] + 1

            def view(t, a, dim=dim, span=span, i=i):
                return aten.slice.Tensor(t, dim, a * d[i], a * d[i] + span, s[i])

            best_v = view(vals, 0)
            best_o = torch.zeros(best_v.shape, dtype=torch.int32, device=z.device) if offs is None else view(offs, 0)
            for a in range(1, k[i]):
                v = view(vals, a)
                step = torch.full((), a * d[i] * strides[i], dtype=torch.int32, device=z.device)
                gt = v > best_v
                best_v = torch.maximum(best_v, v)
                best_o = torch.where(gt, step if offs is None else view(offs, a) + step, best_o)
            vals, offs = best_v, best_o
        # flat index = window origin (a constant grid) + offset of the chosen window element
        base = torch.zeros(out, dtype=torch.long, device=z.device)
        for i in range(nd):
            b = (torch.arange(out[i], device=z.device) * s[i] - p[i]) * strides[i]
            base = base + b.reshape([-1] + [1] * (nd - 1 - i))
        return base + offs.long()  # offsets within a window fit int32 (half the bytes of the Where chain)

    @staticmethod
    def _padded(t: Tensor, out, k, s, p, d, fill: float) -> Tensor:
        """``t`` padded with ``fill`` so every window of every output position lies inside it."""
        nd = len(out)
        pads = []
        for i in reversed(range(nd)):  # F.pad order: last dim first
            size = t.shape[t.dim() - nd + i]
            need = (out[i] - 1) * s[i] + (k[i] - 1) * d[i] + 1
            pads += [p[i], max(0, need - size - p[i])]
        return torch.nn.functional.pad(t, pads, value=fill) if any(pads) else t


_REDUCE_SELECT = {
    aten.amax.default: ("max", "dim", False),
    aten.amin.default: ("min", "dim", False),
    aten.max.dim: ("max", "dim", True),
    aten.min.dim: ("min", "dim", True),
    aten.max.default: ("max", None, False),
    aten.min.default: ("min", None, False),
}


@dataclass(frozen=True)
class ReduceSelect(Rule):
    """amax / amin / max.dim / min.dim / max / min: gather at the frozen argmax (argmin)."""

    name = "reduce_select"
    family = "selection"
    kind = "selection"
    ops = frozenset(_REDUCE_SELECT)

    def roles(self, v: NodeView) -> Roles:
        return Roles({"self": STREAM_STATE}, self.kind)

    def stream_outputs(self, v):
        return {0} if _REDUCE_SELECT[v.target][2] else None

    @staticmethod
    def _dims(c: Call, r: int) -> list[int]:
        which, dimarg, _ = _REDUCE_SELECT[c.target]
        if dimarg is None:
            return list(range(r))
        d = c.args.get(dimarg, [])
        if isinstance(d, int):
            d = [d]
        d = list(d) if d else list(range(r))
        return sorted({x % r if r else 0 for x in d})

    def state(self, c: Call) -> tuple:
        z = c.args["self"]
        r = z.dim()
        if r == 0:
            return (torch.zeros((), dtype=torch.long, device=z.device),)
        red = self._dims(c, r)
        keep = [i for i in range(r) if i not in red]
        zp = z.permute(keep + red).reshape([z.shape[i] for i in keep] + [-1])
        which = _REDUCE_SELECT[c.target][0]
        idx = zp.argmax(-1, keepdim=True) if which == "max" else zp.argmin(-1, keepdim=True)
        return (idx,)

    def apply(self, c: Call):
        X = c.args["self"]
        r = _rank(X)
        out_shape = [c.S] + (c.out_shape(0) if _REDUCE_SELECT[c.target][2] else c.out_shape())
        if r == 0:
            Y = X
        else:
            (idx,) = c.state
            red = self._dims(c, r)
            keep = [i for i in range(r) if i not in red]
            Xp = X.permute([0] + [i + 1 for i in keep + red]).reshape([c.S] + [X.shape[i + 1] for i in keep] + [-1])
            Y = torch.gather(Xp, -1, idx.unsqueeze(0).expand([c.S] + list(idx.shape)))
        Y = Y.reshape(out_shape)
        return (Y, None) if _REDUCE_SELECT[c.target][2] else Y


@dataclass(frozen=True)
class TopK(Rule):
    """topk / sort: values gathered at the frozen indices of z*."""

    name = "topk"
    family = "selection"
    kind = "selection"
    ops = frozenset({aten.topk.default, aten.sort.default})

    def roles(self, v: NodeView) -> Roles:
        return Roles({"self": STREAM_STATE}, self.kind)

    def stream_outputs(self, v):
        return {0}

    def state(self, c: Call) -> tuple:
        return (invoke(c.target, c.args)[1],)

    def apply(self, c: Call):
        X = c.args["self"]
        (idx,) = c.state
        r = _rank(X)
        default_dim = -1
        d = _sdim(int(c.args.get("dim", default_dim)), r)
        return (torch.gather(X, d, idx.unsqueeze(0).expand([c.S] + list(idx.shape))), None)


@dataclass(frozen=True)
class Select2(Rule):
    """maximum / minimum / fmax / fmin of two tensors: per-element frozen choice of operand."""

    name = "select2"
    family = "selection"
    kind = "selection"
    ops = frozenset({aten.maximum.default, aten.minimum.default, aten.fmax.default, aten.fmin.default})

    def roles(self, v: NodeView) -> Roles:
        return Roles({k: STREAM_STATE for k in ("self", "other") if _has_node(v.args[k])}, self.kind)

    def state(self, c: Call) -> tuple:
        a, b = c.args["self"], c.args["other"]
        if c.target in (aten.maximum.default, aten.fmax.default):
            return (a >= b,)
        return (a <= b,)

    def apply(self, c: Call):
        (mask,) = c.state
        r = mask.dim()
        a, b = c.args["self"], c.args["other"]
        like = a if c.roles.get("self") else b
        A = _align(a, r) if c.roles.get("self") else _const(c, a, r, like)
        B = _align(b, r) if c.roles.get("other") else _const(c, b, r, like)
        return torch.where(mask, A, B)


# ------------------------------------------------------------------------------------------------
# where / masked_fill with a frozen (data-dependent) mask
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Where(Rule):
    """where(cond, a, b) and masked_fill: a modality-dependent condition is frozen; values per
    stream; numbers and modality-free tensors go to the bias stream."""

    name = "where"
    family = "mask"
    ops = frozenset(
        {
            aten.where.self,
            aten.where.ScalarSelf,
            aten.where.ScalarOther,
            aten.where.Scalar,
            aten.masked_fill.Scalar,
            aten.masked_fill.Tensor,
        }
    )

    def _names(self, target):
        if target in (aten.masked_fill.Scalar, aten.masked_fill.Tensor):
            return "mask", "value", "self"  # out = where(mask, value, self)
        return "condition", "self", "other"

    def roles(self, v: NodeView) -> Roles:
        cn, an, bn = self._names(v.target)
        out = {}
        cond = v.args[cn]
        kind = None
        if _has_node(cond):
            out[cn] = STATE if v.depends(cond) else PARAM
            kind = "mask" if out[cn] is STATE else None
        for k in (an, bn):
            if _has_node(v.args.get(k)):
                out[k] = STREAM
        return Roles(out, kind)

    def state(self, c: Call) -> tuple:
        cn, _, _ = self._names(c.target)
        return (c.args[cn],) if c.roles.get(cn) is STATE else ()

    def apply(self, c: Call):
        cn, an, bn = self._names(c.target)
        cond = c.state[0] if c.state else c.args[cn]
        a, b = c.args[an], c.args[bn]
        ranks = [cond.dim()]
        like = None
        for k, x in ((an, a), (bn, b)):
            if c.roles.get(k) is STREAM:
                ranks.append(_rank(x))
                like = x
        r = max(ranks)
        A = _align(a, r) if c.roles.get(an) is STREAM else _const(c, a, r, like)
        B = _align(b, r) if c.roles.get(bn) is STREAM else _const(c, b, r, like)
        both = c.roles.get(an) is STREAM and c.roles.get(bn) is STREAM
        if _exporting() or not both or not A.is_floating_point():
            return torch.where(cond, A, B)  # constants may be infinite (masked_fill with -inf): select, never blend
        # PyTorch, two streamed branches: a 0/1 blend, exact for finite values (A*1 + B*0 == A), about 3x faster
        # than a where that broadcasts the frozen condition over the stream axis (mask built once, full shape)
        m = cond.to(A.dtype)
        return A * m + B * (1.0 - m)


# ------------------------------------------------------------------------------------------------
# Explicit freeze: the op's whole output is frozen at its operating point and sent to the bias
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FreezeToBias(Rule):
    """Freeze the op's output at its operating point and put all of it in the bias stream.

    Exact (equality holds) but attributes no content through this op. Used where the user asks
    for it, and by ``strict=False`` for ops without a rule (reported as such in the coverage).
    """

    name = "freeze-to-bias"
    family = "frozen"
    kind = "frozen"

    def roles(self, v: NodeView) -> Roles:
        out = {}
        for k, a in v.args.items():
            if _has_node(a):
                out[k] = [STATE] * len(a) if isinstance(a, (list, tuple)) else STATE
        return Roles(out, self.kind)

    def state(self, c: Call) -> tuple:
        res = invoke(c.target, c.args)
        return tuple(res) if isinstance(res, (tuple, list)) else (res,)

    def stream_outputs(self, v):
        meta = v.out_meta()
        if isinstance(meta, (tuple, list)):
            return {i for i, m in enumerate(meta) if torch.is_tensor(m) and m.is_floating_point()}
        return None

    def apply(self, c: Call):
        vals = c.state
        res = [c.lay.lift(v, None) if (torch.is_tensor(v) and v.is_floating_point()) else None for v in vals]
        if isinstance(c.out_meta, (tuple, list)):
            return tuple(res)
        return res[0]
