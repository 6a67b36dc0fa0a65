"""Which rule decomposes which op: the default registry (one rule per op, duplicates refused) and
``RuleMap``, the user's overrides with a documented priority: global < op type < name pattern <
exact name (like torch.ao.quantization.QConfigMapping and zennit composites)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

from .errors import DuplicateRuleError
from .rules import (
    AddMM,
    AddSub,
    Affine,
    Attention,
    BatchNorm,
    Divide,
    Gate,
    GridSample,
    MaxPool,
    Norm,
    PerStream,
    Product,
    ReduceSelect,
    Rule,
    Select2,
    TopK,
    Where,
    op_name,
)

aten = torch.ops.aten

__all__ = ["OneOf", "RuleRegistry", "RuleMap", "default_registry", "ROUTING_OPS", "VALUE_FREE_OPS", "STRUCTURAL_OPS"]


@dataclass(frozen=True)
class OneOf(Rule):
    """Registry entry for ops whose rule depends on their arguments (e.g. instance_norm with
    running statistics is an affine BatchNorm, with input statistics a Norm): the first rule
    that accepts the node is used."""

    choices: tuple = ()

    name = "one-of"

    def pick(self, node, target, args) -> Rule | None:
        for r in self.choices:
            if r.accepts(node, target, args):
                return r
        return None


class RuleRegistry:
    """Op -> rule. ``register`` refuses a second rule for the same op (use ``replace``)."""

    def __init__(self):
        self._rules: dict = {}

    def register(self, op, rule: Rule) -> RuleRegistry:
        if not isinstance(rule, Rule):
            raise TypeError(f"rule for {op} must be a Rule instance, got {type(rule).__name__}")
        if op in self._rules:
            raise DuplicateRuleError(
                f"{op_name(op)} already has a rule ({self._rules[op].describe()}); use replace() to change it"
            )
        self._rules[op] = rule
        return self

    def replace(self, op, rule: Rule) -> RuleRegistry:
        if op not in self._rules:
            raise KeyError(f"{op_name(op)} has no rule to replace")
        self._rules[op] = rule
        return self

    def get(self, op) -> Rule | None:
        return self._rules.get(op)

    def __contains__(self, op) -> bool:
        return op in self._rules

    def __iter__(self) -> Iterator:
        return iter(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def copy(self) -> RuleRegistry:
        r = RuleRegistry()
        r._rules = dict(self._rules)
        return r

    def table(self) -> str:
        """One line per op: op name and rule."""
        rows = sorted((op_name(op), _describe(rule)) for op, rule in self._rules.items())
        w = max(len(a) for a, _ in rows)
        return "\n".join(f"{a:<{w}}  {b}" for a, b in rows)


def _describe(rule: Rule) -> str:
    if isinstance(rule, OneOf):
        return " | ".join(r.describe() for r in rule.choices)
    return rule.describe()


# ------------------------------------------------------------------------------------------------
# Op classes the graph analysis needs
# ------------------------------------------------------------------------------------------------

#: ops whose output is a routing decision (frozen when it multiplies another decomposed tensor)
ROUTING_OPS = {
    aten.softmax.int: "softmax",
    aten._softmax.default: "softmax",
    aten._safe_softmax.default: "softmax",
    aten.log_softmax.int: "log_softmax",
    aten._log_softmax.default: "log_softmax",
    aten.sigmoid.default: "sigmoid",
    aten.hardsigmoid.default: "hardsigmoid",
    aten.gt.Tensor: "gt",
    aten.gt.Scalar: "gt",
    aten.ge.Tensor: "ge",
    aten.ge.Scalar: "ge",
    aten.lt.Tensor: "lt",
    aten.lt.Scalar: "lt",
    aten.le.Tensor: "le",
    aten.le.Scalar: "le",
    aten.eq.Tensor: "eq",
    aten.eq.Scalar: "eq",
    aten.ne.Tensor: "ne",
    aten.ne.Scalar: "ne",
    aten.logical_not.default: "logical_not",
    aten.logical_and.default: "logical_and",
    aten.logical_or.default: "logical_or",
    aten.bitwise_not.default: "bitwise_not",
    aten.isnan.default: "isnan",
    aten.sign.default: "sign",
}

#: ops whose value does not depend on their input's values (only on shape/dtype)
VALUE_FREE_OPS = {
    aten.zeros_like.default,
    aten.ones_like.default,
    aten.full_like.default,
    aten.empty_like.default,
    aten.new_zeros.default,
    aten.new_ones.default,
    aten.new_full.default,
    aten.new_empty.default,
    aten.sym_size.int,
    aten._assert_tensor_metadata.default,
}

#: ops the routing search walks through (reshapes, copies, slicing)
STRUCTURAL_OPS = set()


def _ps(reg: RuleRegistry, ops: Iterable, **kw):
    """Register one PerStream rule per op; the decomposed argument defaults to the op's first."""
    for op in ops:
        if op is None:
            continue
        args = dict(kw)
        if "stream" not in args:
            args["stream"] = op._schema.arguments[0].name
        reg.register(op, PerStream(**args))
        STRUCTURAL_OPS.add(op)


def _op(name: str):
    """An aten overload by dotted name, or None where this torch build lacks it."""
    pkt, _, ov = name.partition(".")
    packet = getattr(aten, pkt, None)
    if packet is None:
        return None
    return getattr(packet, ov or "default", None)


def default_registry() -> RuleRegistry:
    """The built-in rules for every op family of lmd.md section 4 (a fresh copy each call)."""
    return _DEFAULT.copy()


def _build_default() -> RuleRegistry:
    reg = RuleRegistry()
    # -- pass-through (per stream) ----------------------------------------------------------
    _ps(reg, [_op(n) for n in ("clone", "alias", "detach", "lift_fresh_copy", "contiguous", "neg", "tril", "triu",
                               "mul.Scalar", "div.Scalar", "pixel_unshuffle", "positive")], how="direct")
    _ps(reg, [_op("pixel_shuffle")], how="pixel_shuffle")
    _ps(reg, [_op("_to_copy")], how="to_copy", label="dtype/device")
    _ps(reg, [_op("t")], how="t")
    _ps(reg, [_op("pad"), _op("constant_pad_nd")], how="pad", label="pad (value to bias)")
    _ps(reg, [_op("dropout"), _op("native_dropout")], how="dropout", label="eval")
    for nd in (1, 2, 3):
        _ps(reg, [_op(f"avg_pool{nd}d"), _op(f"adaptive_avg_pool{nd}d"), _op(f"_adaptive_avg_pool{nd}d")],
            how="fold", batched_rank=nd + 2, label="pooling")
    _ps(reg, [_op("upsample_nearest1d.vec"), _op("upsample_nearest1d"), _op("upsample_linear1d.vec"),
              _op("upsample_linear1d"), _op("_upsample_nearest_exact1d.vec"), _op("_upsample_nearest_exact1d")],
        how="fold", batched_rank=3, label="upsample")
    _ps(reg, [_op("upsample_nearest2d.vec"), _op("upsample_nearest2d"), _op("upsample_bilinear2d.vec"),
              _op("upsample_bilinear2d"), _op("upsample_bicubic2d.vec"), _op("upsample_bicubic2d"),
              _op("_upsample_nearest_exact2d.vec"), _op("_upsample_nearest_exact2d"),
              _op("_upsample_bilinear2d_aa.vec"), _op("_upsample_bilinear2d_aa")],
        how="fold", batched_rank=4, label="upsample")
    _ps(reg, [_op("upsample_nearest3d.vec"), _op("upsample_nearest3d"), _op("upsample_trilinear3d.vec"),
              _op("upsample_trilinear3d"), _op("_upsample_nearest_exact3d.vec"), _op("_upsample_nearest_exact3d")],
        how="fold", batched_rank=5, label="upsample")
    _ps(reg, [_op("transpose.int")], how="dims", dims=("dim0", "dim1"))
    _ps(reg, [_op("select.int"), _op("narrow"), _op("unflatten.int"), _op("squeeze.dim"), _op("cumsum"),
              _op("index_select")], how="dims", dims=("dim",))
    _ps(reg, [_op("slice.Tensor"), _op("split.Tensor"), _op("split_with_sizes"), _op("chunk"), _op("unbind.int"),
              _op("tensor_split.sections"), _op("tensor_split.indices")],
        how="dims", dims=("dim",), dim_defaults={"dim": 0})
    _ps(reg, [_op("unsqueeze")], how="dims", dims=("dim",), rank_extra=1)
    _ps(reg, [_op("squeeze.dims")], how="dims", dim_lists=("dim",))
    _ps(reg, [_op("flatten.using_ints")], how="dims", dims=("start_dim", "end_dim"),
        dim_defaults={"start_dim": 0, "end_dim": -1})
    _ps(reg, [_op("movedim.int")], how="dims", dims=("source", "destination"))
    _ps(reg, [_op("movedim.intlist")], how="dims", dim_lists=("source", "destination"))
    _ps(reg, [_op("diagonal")], how="dims", dims=("dim1", "dim2"), dim_defaults={"dim1": 0, "dim2": 1})
    _ps(reg, [_op("flip")], how="dims", dim_lists=("dims",))
    _ps(reg, [_op("sum.dim_IntList"), _op("mean.dim")], how="dims", dim_lists=("dim",), empty_means_all=True,
        label="reduction")
    _ps(reg, [_op("sum.default"), _op("mean.default")], how="reduce_all", label="reduction")
    _ps(reg, [_op("view"), _op("_unsafe_view")], how="shape", shape="size")
    _ps(reg, [_op("reshape")], how="shape", shape="shape")
    _ps(reg, [_op("expand")], how="expand")
    _ps(reg, [_op("repeat")], how="repeat")
    _ps(reg, [_op("permute")], how="permute")
    _ps(reg, [_op("squeeze.default")], how="squeeze_all")
    _ps(reg, [_op("roll")], how="roll")
    _ps(reg, [_op("cat")], how="cat", stream="tensors")
    _ps(reg, [_op("stack")], how="stack", stream="tensors")
    _ps(reg, [_op("index.Tensor")], how="index")
    _ps(reg, [_op("index_put")], how="index_put", stream=("self", "values"))
    _ps(reg, [_op("gather")], how="gather")
    _ps(reg, [_op("scatter.src"), _op("scatter_add")], how="scatter", stream=("self", "src"))
    _ps(reg, [_op("index_add")], how="index_add", stream=("self", "source"))
    STRUCTURAL_OPS.discard(_op("cat"))
    STRUCTURAL_OPS.discard(_op("stack"))
    STRUCTURAL_OPS.discard(_op("index_put"))
    STRUCTURAL_OPS.discard(_op("scatter.src"))
    STRUCTURAL_OPS.discard(_op("scatter_add"))
    STRUCTURAL_OPS.discard(_op("index_add"))
    STRUCTURAL_OPS.discard(_op("sum.dim_IntList"))
    STRUCTURAL_OPS.discard(_op("mean.dim"))
    STRUCTURAL_OPS.discard(_op("sum.default"))
    STRUCTURAL_OPS.discard(_op("mean.default"))
    STRUCTURAL_OPS.discard(_op("cumsum"))
    STRUCTURAL_OPS.discard(_op("neg"))
    STRUCTURAL_OPS.discard(_op("pad"))
    STRUCTURAL_OPS.discard(_op("constant_pad_nd"))
    # -- add / subtract --------------------------------------------------------------------------
    add = AddSub()
    for n in ("add.Tensor", "add.Scalar", "sub.Tensor", "sub.Scalar", "rsub.Tensor", "rsub.Scalar"):
        if _op(n) is not None:
            reg.register(_op(n), add)
    # -- weights -------------------------------------------------------------------------------
    conv = Affine()
    for n in ("conv1d", "conv2d", "conv3d", "conv1d.padding", "conv2d.padding", "conv3d.padding",
              "conv_transpose1d", "conv_transpose2d.input", "conv_transpose3d.input", "convolution"):
        if _op(n) is not None:
            reg.register(_op(n), conv)
    reg.register(aten.linear.default, Affine(batched_rank_from_weight=False))
    reg.register(aten.addmm.default, AddMM())
    prod = Product()
    for op in (aten.mul.Tensor, aten.matmul.default, aten.mm.default, aten.bmm.default, aten.einsum.default):
        reg.register(op, prod)
    reg.register(aten.div.Tensor, Divide())
    # -- activations -----------------------------------------------------------------------------
    for n, act in (("relu", "relu"), ("leaky_relu", "leaky_relu"), ("gelu", "gelu"), ("silu", "silu"),
                   ("sigmoid", "sigmoid"), ("tanh", "tanh"), ("elu", "elu"), ("hardtanh", "hardtanh"),
                   ("clamp", "clamp"), ("clamp_min", "clamp_min"), ("clamp_max", "clamp_max"),
                   ("softplus", "softplus"), ("hardswish", "hardswish"), ("hardsigmoid", "hardsigmoid"),
                   ("mish", "mish"), ("abs", "abs"), ("prelu", "prelu"), ("_prelu_kernel", "prelu"),
                   ("relu6", "relu6"), ("celu", "celu"), ("selu", "selu"), ("log_sigmoid", "log_sigmoid")):
        op = _op(n)
        if op is not None:
            reg.register(op, Gate(act))
    # -- normalisation ---------------------------------------------------------------------------
    bn, norm = BatchNorm("identity"), Norm("ratio")
    reg.register(aten._native_batch_norm_legit_no_training.default, bn)
    for op in (aten.layer_norm.default, aten.native_layer_norm.default, aten.group_norm.default,
               aten.native_group_norm.default, aten._native_batch_norm_legit.no_stats, _op("rms_norm")):
        if op is not None:
            reg.register(op, norm)
    for op in (aten.instance_norm.default, aten._native_batch_norm_legit.default, aten.batch_norm.default,
               aten.native_batch_norm.default):
        reg.register(op, OneOf(choices=(bn, norm)))
    # -- selections, masks, attention, sampling --------------------------------------------------
    for op in MaxPool.ops:
        reg.register(op, MaxPool())
    for op in ReduceSelect.ops:
        reg.register(op, ReduceSelect())
    for op in TopK.ops:
        reg.register(op, TopK())
    for op in Select2.ops:
        reg.register(op, Select2())
    for op in Where.ops:
        reg.register(op, Where())
    reg.register(aten.scaled_dot_product_attention.default, Attention())
    for op in GridSample.ops:
        reg.register(op, GridSample())
    return reg


_DEFAULT = _build_default()


# ------------------------------------------------------------------------------------------------
# RuleMap: user overrides with priority global < op type < name pattern < exact name
# ------------------------------------------------------------------------------------------------


#: names that stand for every spelling an op takes in the captured IR
OP_ALIASES = {
    "aten.batch_norm": ("aten.batch_norm", "aten._native_batch_norm_legit_no_training", "aten._native_batch_norm_legit",
                        "aten.native_batch_norm"),
    "aten.layer_norm": ("aten.layer_norm", "aten.native_layer_norm"),
    "aten.group_norm": ("aten.group_norm", "aten.native_group_norm"),
    "aten.softmax": ("aten.softmax", "aten._softmax", "aten._safe_softmax"),
    "aten.dropout": ("aten.dropout", "aten.native_dropout"),
    "aten.max_pool2d": ("aten.max_pool2d", "aten.max_pool2d_with_indices"),
}


def _op_matcher(op):
    """Match spec for set_op: an OpOverload (exact), an OpOverloadPacket or a name like
    "aten.relu", "relu" or "aten.relu.default" ("batch_norm", "layer_norm", "group_norm",
    "softmax", "dropout", "max_pool2d" also match their other spellings in the captured IR)."""
    if isinstance(op, torch._ops.OpOverload):
        return lambda t: t is op
    if isinstance(op, torch._ops.OpOverloadPacket):
        return lambda t: getattr(t, "overloadpacket", None) is op
    if isinstance(op, str):
        s = op if op.startswith("aten.") else "aten." + op
        names = OP_ALIASES.get(s, (s,))
        return lambda t: op_name(t) in names or op_name(getattr(t, "overloadpacket", t)) in names
    raise TypeError(f"op must be an aten OpOverload, OpOverloadPacket or name, got {op!r}")


class RuleMap:
    """Which rule applies where. Priority (lowest to highest): the registry default for the op <
    ``set_global`` < ``set_op`` < ``set_pattern`` < ``set_name``. At each level only rules that
    accept the node count (a BatchNorm rule never applies to a conv); among several matching
    entries at one level the one set last wins.

    Module names are the qualified submodule paths (``"decoder.layer1.0.bn1"``); patterns use
    fnmatch (``"decoder.*"``). ``set_name`` and ``set_pattern`` also match the graph node name
    (``"relu_3"``), which is the handle for functional-style forwards.
    """

    def __init__(self, registry: RuleRegistry | None = None):
        self.registry = registry if registry is not None else default_registry()
        self._global: list[Rule] = []
        self._op: list[tuple] = []
        self._pattern: list[tuple] = []
        self._name: list[tuple] = []

    def copy(self) -> RuleMap:
        r = RuleMap(self.registry.copy())
        r._global, r._op, r._pattern, r._name = list(self._global), list(self._op), list(self._pattern), list(self._name)
        return r

    def set_global(self, rule: Rule) -> RuleMap:
        _check_rule(rule)
        if rule.ops is None:
            raise ValueError(f"{rule.describe()} does not declare the ops it applies to; use set_op/set_name")
        self._global.append(rule)
        return self

    def set_op(self, op, rule: Rule) -> RuleMap:
        _check_rule(rule)
        self._op.append((_op_matcher(op), rule, op))
        return self

    def set_pattern(self, pattern: str, rule: Rule) -> RuleMap:
        _check_rule(rule)
        self._pattern.append((pattern, rule))
        return self

    def set_name(self, name: str, rule: Rule) -> RuleMap:
        _check_rule(rule)
        self._name.append((name, rule))
        return self

    def resolve(self, node, target, args: dict, module: str) -> tuple[Rule | None, str]:
        """(rule, level) for one node; level is "name", "pattern", "op", "global" or "default"."""

        def ok(rule):
            if isinstance(rule, OneOf):
                return rule.pick(node, target, args)
            return rule if rule.accepts(node, target, args) else None

        def ok_bound(rule):  # rules bound explicitly (by op / name) need not declare ops
            if isinstance(rule, OneOf):
                return rule.pick(node, target, args)
            if rule.ops is None:
                return rule
            return rule if rule.accepts(node, target, args) else None

        for name, rule in reversed(self._name):
            if name == module or name == node.name:
                r = ok_bound(rule)
                if r is not None:
                    return r, "name"
        for pattern, rule in reversed(self._pattern):
            if (module and fnmatch.fnmatchcase(module, pattern)) or fnmatch.fnmatchcase(node.name, pattern):
                r = ok(rule) if rule.ops is not None else None
                if r is not None:
                    return r, "pattern"
        for match, rule, _ in reversed(self._op):
            if match(target):
                r = ok_bound(rule)
                if r is not None:
                    return r, "op"
        for rule in reversed(self._global):
            r = ok(rule)
            if r is not None:
                return r, "global"
        base = self.registry.get(target)
        if base is None:
            return None, "none"
        r = ok_bound(base)
        return r, ("default" if r is not None else "none")


def _check_rule(rule):
    if not isinstance(rule, Rule):
        raise TypeError(f"expected a Rule instance, got {type(rule).__name__}")
