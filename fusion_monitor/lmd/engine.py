"""The decomposed model: one engine interpreting the captured graph with the rules, in three forms
-- single pass (full stream + modality streams, bias derived; deployment and ONNX), record (the
operating point theta*) and replay (streams with a frozen theta*; evaluation)."""

from __future__ import annotations

import operator
import uuid
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.fx import Node
from torch.fx.node import map_arg
from torch.utils import _pytree as pytree

from .compat import Compat
from .errors import LMDUnsupportedWarning, StateError, UnsupportedOpsError
from .graph import Analysis, Captured, Coverage, Signature, capture, lower
from .layout import ComplementLayout, StreamLayout
from .registry import RuleMap
from .result import Decomposition, State
from .rules import PARAM, STATE, STREAM, STREAM_STATE, Affine, BatchNorm, Call, Norm, Rule, op_name

__all__ = ["DecomposedModel", "decompose", "FREEZE_PRESETS", "ALL_KINDS"]

_PLAIN, _TOTAL, _STREAM = 0, 1, 2

ALL_KINDS = frozenset({"activation", "norm", "selection", "attention", "sampling", "mask", "divisor", "product", "frozen"})

#: replay variants of lmd.md section 6: which kinds of operating point stay frozen
FREEZE_PRESETS = {
    "all": ALL_KINDS,  # LMD
    "lmd": ALL_KINDS,
    "none": frozenset(),  # "baseline": everything recomputed on the perturbed input
    "baseline": frozenset(),
    "activations": ALL_KINDS - {"norm", "divisor"},  # "activation only"
    "norms": frozenset({"norm", "divisor"}),  # "normalisation only"
}


def _frozen_kinds(frozen) -> frozenset:
    if frozen is None:
        return ALL_KINDS
    if isinstance(frozen, str):
        try:
            return FREEZE_PRESETS[frozen]
        except KeyError:
            raise ValueError(f"frozen must be one of {sorted(FREEZE_PRESETS)} or a set of kinds, got {frozen!r}") from None
    kinds = frozenset(frozen)
    bad = kinds - ALL_KINDS
    if bad:
        raise ValueError(f"unknown state kinds {sorted(bad)}; kinds are {sorted(ALL_KINDS)}")
    return kinds


def decompose(
    model: nn.Module,
    example_inputs: Mapping[str, Any],
    modalities: Mapping[str, str | None] | None = None,
    *,
    bn_rule: str = "identity",
    norm_rule: str = "ratio",
    strict: bool = True,
    rules: RuleMap | None = None,
    compat: Compat | None = None,
) -> DecomposedModel:
    """Build the Layer-Wise Modality Decomposition of a PyTorch fusion model (lmd.md).

    Parameters
    ----------
    model : torch.nn.Module
        Any fusion model; never modified (a private eval-mode copy is captured with torch.export).
        A model in training mode is decomposed with eval-mode semantics, with a warning.
    example_inputs : dict
        Keyword arguments of ``model.forward`` (tensors or pytrees of tensors). Shapes, dtypes
        and devices are fixed by this example.
    modalities : dict, optional
        Forward argument name -> modality name, or None for inputs of no modality (calibration
        matrices). Several arguments may share one modality. Default: every tensor argument is
        its own modality. Stream order follows the first appearance in forward's argument order.
    bn_rule : {"identity", "uniform"}
        BatchNorm (eval) rule, lmd.md 4.3.
    norm_rule : {"ratio", "identity", "uniform"}
        LayerNorm / GroupNorm / InstanceNorm rule, lmd.md 4.4.
    strict : bool
        Raise :class:`UnsupportedOpsError` naming every op after the fusion point without a rule
        (with module and source line). ``False`` freezes such ops into the bias stream instead
        (exact, but no content is attributed through them) and warns.
    rules : RuleMap, optional
        Overrides by op type, module-name pattern or exact name (priority global < op < pattern
        < name); ``bn_rule``/``norm_rule`` are its global level.
    compat : Compat, optional
        Reproduce quirks of the authors' code (lmd.md section 7); all off by default.

    Returns
    -------
    DecomposedModel
    """
    if bn_rule not in ("identity", "uniform"):
        raise ValueError(f"bn_rule must be 'identity' or 'uniform', got {bn_rule!r}")
    if norm_rule not in ("ratio", "identity", "uniform"):
        raise ValueError(f"norm_rule must be 'ratio', 'identity' or 'uniform', got {norm_rule!r}")
    if rules is not None and not isinstance(rules, RuleMap):
        raise TypeError(f"rules must be a RuleMap, got {type(rules).__name__}")
    compat = compat or Compat()
    if not isinstance(compat, Compat):
        raise TypeError(f"compat must be a Compat, got {type(compat).__name__}")
    signature = Signature(model, example_inputs, modalities)
    if compat.fold_bias_into is not None and compat.fold_bias_into not in signature.modality_names:
        raise ValueError(f"Compat.fold_bias_into={compat.fold_bias_into!r} is not a modality {signature.modality_names}")
    rm = rules.copy() if rules is not None else RuleMap()
    # bn_rule / norm_rule are the global level: put them first so later set_global calls win
    rm._global = [BatchNorm(bn_rule), Norm(norm_rule)] + list(rm._global)
    cap = capture(model, example_inputs, signature)
    analysis = Analysis(cap, rm, strict)
    lowered_ops: list = []
    for _ in range(3):  # lower only the ops without a rule (and only where that helps), then retry
        if not analysis.errors:
            break
        ops = {getattr(e, "target", None) for e in analysis.errors} - {None}
        cap2 = lower(cap, ops)
        if cap2 is None:
            break
        analysis2 = Analysis(cap2, rm, strict)
        still = {getattr(e, "origin", e.op) for e in analysis2.errors}
        fixed = {op for op in ops if op_name(op) not in still}
        if not fixed:
            break
        if fixed != ops:
            cap2 = lower(cap, fixed)
            if cap2 is None:  # pragma: no cover
                break
            analysis2 = Analysis(cap2, rm, strict)
        lowered_ops += sorted(op_name(op) for op in fixed)
        cap, analysis = cap2, analysis2
    if analysis.errors:
        raise analysis.errors[0] if len(analysis.errors) == 1 else UnsupportedOpsError(analysis.errors)
    fallback = [
        p for p in analysis.plans.values() if p.unsupported is not None and p.rule is not None and p.node in analysis.need_stream
    ]
    if fallback:
        names = ", ".join(f"{op_name(p.target)} ({p.node.name})" for p in fallback)
        warnings.warn(
            f"strict=False: {len(fallback)} op(s) without a rule are frozen into the bias stream: {names}",
            LMDUnsupportedWarning,
            stacklevel=2,
        )
    cap.exported = None  # only needed for lowering; frees the exporter's copy of the weights
    return DecomposedModel(cap, analysis, compat, lowered_ops, dict(bn_rule=bn_rule, norm_rule=norm_rule, strict=strict))


class DecomposedModel(nn.Module):
    """A fusion model with its Layer-Wise Modality Decomposition (built by :func:`decompose`).

    Call it with the model's keyword inputs: ``dm(**inputs)`` gives a :class:`Decomposition`
    in the single-pass form (the output from the full stream, the bias stream derived).
    ``dm(**inputs, state=dm.record(**other))`` replays with a frozen operating point; the
    optional ``frozen`` keyword ("all" default, "none", "activations", "norms" or a set of state
    kinds) chooses which parts of the operating point stay frozen (lmd.md section 6 variants).
    """

    def __init__(self, cap: Captured, analysis: Analysis, compat: Compat, lowered: list, options: dict):
        super().__init__()
        self._cap = cap
        self._an = analysis
        self.compat = compat
        self.options = dict(options)
        self.lowered_ops = list(lowered)
        self.signature: Signature = cap.signature
        self.stream_names: tuple = tuple(analysis.modality_names) + ("bias",)
        self.modalities: dict = dict(cap.signature.modalities)
        self._owner = uuid.uuid4().hex
        self._params = nn.Module()
        for name, t in cap.params.items():
            self._params.register_buffer(name, t, persistent=True)
        self._param_nodes = [(n.name, n) for n in analysis.nodes if n.op == "placeholder" and n.name in cap.params]
        self._schedules: dict = {}
        self._mod_index = {}
        for n in analysis.nodes:
            d = analysis.dep.get(n)
            if d is not None and len(d) == 1:
                self._mod_index[n] = analysis.mod_index[next(iter(d))]
        floats = [leaf.dtype for leaf in self.signature.tensor_leaves if leaf.dtype.is_floating_point]
        self._dtype = floats[0] if floats else torch.get_default_dtype()
        self._split_convs = self._find_split_convs()
        self._absorbed = {cat for cat, _dim in self._split_convs.values()}
        self._lift_cats = self._find_lift_cats()
        self._fold_into = analysis.mod_index[compat.fold_bias_into] if compat.fold_bias_into else None
        self._final_bias = self._find_final_biases() if compat.final_bias_to_all_streams else {}
        self.eval()

    # -- public API -------------------------------------------------------------------------------
    @property
    def modality_names(self) -> list[str]:
        return list(self._an.modality_names)

    @property
    def fusion_points(self) -> list[str]:
        """The first cross-modal operations (node name, op, module and source line)."""
        return self._an.coverage().fusion_points

    def coverage(self) -> Coverage:
        """Op -> rule | "pass-through" | "unsupported" (and "pre-fusion", "frozen state", ...);
        ``print()`` it for the table."""
        return self._an.coverage()

    def rules_used(self) -> dict[str, tuple[str, str]]:
        """Decomposed node name -> (rule, level it was chosen at: "name", "pattern", "op",
        "global", "default" or "fallback")."""
        out = {}
        for n in self._an.nodes:
            if n in self._an.need_stream:
                p = self._an.plans[n]
                if p.alias_of is not None:
                    p = self._an.plans[p.alias_of].fold_bn  # BatchNorm folded into the conv before it
                if p.rule is not None:
                    out[n.name] = (p.rule.describe(), p.level)
        return out

    def forward(self, *, state: State | None = None, frozen=None, **inputs) -> Decomposition:
        flat = self._flatten(inputs)
        if state is None:
            if frozen is not None:
                raise ValueError("frozen= only applies to a replay (pass state=dm.record(...))")
            outs, sts = self._run(flat, "single")
            return self._result(outs, sts, False)
        kinds = _frozen_kinds(frozen)
        self._check_state(state, flat)
        outs, sts = self._run(flat, "replay", state=state, frozen=kinds)
        return self._result(outs, sts, True)

    def record(self, **inputs) -> State:
        """The operating point theta* of these inputs (one plain forward pass)."""
        flat = self._flatten(inputs)
        rec: dict = {}
        self._run(flat, "record", record=rec)
        kinds = {name: self._an.plans[n].kind for n in self._an.need_stream for name in [n.name] if name in rec}
        dev = flat[0].device if flat else None
        return State(rec, kinds, self._owner, self._dtype, dev)

    def trace(self, *, state: State | None = None, frozen=None, **inputs) -> dict[str, torch.Tensor]:
        """Streams ``(S, ...)`` in public order ``[*modalities, bias]`` at every decomposed node
        (node name -> tensor); the single-pass form, or the replay when ``state`` is given."""
        flat = self._flatten(inputs)
        tr: dict = {}
        if state is None:
            self._run(flat, "single", trace=tr)
        else:
            self._check_state(state, flat)
            self._run(flat, "replay", state=state, frozen=_frozen_kinds(frozen), trace=tr)
        return tr

    def reference(self, **inputs) -> dict[str, Any]:
        """The plain network's value at every node (node name -> value), for checks."""
        flat = self._flatten(inputs)
        tr: dict = {}
        self._run(flat, "plain", trace=tr)
        return tr

    def plain(self, **inputs) -> Any:
        """The captured network's plain output (no decomposition)."""
        flat = self._flatten(inputs)
        outs, _ = self._run(flat, "plain")
        return pytree.tree_unflatten(outs, self._cap.out_spec)

    def region_flops(self, **inputs) -> dict[str, int]:
        """FLOPs (torch.utils.flop_counter) of the pre-fusion region (runs once) and of the
        decomposed region (runs on M+1 stacked streams), for the cost floor of lmd.md section 5."""
        from torch.utils.flop_counter import FlopCounterMode

        flat = self._flatten(inputs)
        counts = {"pre_fusion": 0, "post_fusion": 0}
        mode = FlopCounterMode(display=False)

        def hook(node, fn):
            before = mode.get_total_flops()
            res = fn()
            key = "post_fusion" if node in self._an.fused else "pre_fusion"
            counts[key] += int(mode.get_total_flops() - before)
            return res

        with mode, torch.no_grad():
            self._run(flat, "plain", hook=hook)
        return counts

    def compile(self, **example_inputs) -> CompiledDecomposition:
        """The single-pass form as a generated ``torch.fx.GraphModule`` (torch.export), without
        the interpreter's Python overhead: ``compiled(**inputs) -> Decomposition``."""
        from .export import compile_single_pass

        return compile_single_pass(self, example_inputs or None)

    def extra_repr(self) -> str:
        return (
            f"streams={list(self.stream_names)}, modalities={self.modalities}, "
            f"decomposed_nodes={len(self._an.need_stream)}, bn_rule={self.options['bn_rule']!r}, "
            f"norm_rule={self.options['norm_rule']!r}"
        )

    def train(self, mode: bool = True):  # the decomposition is always eval-mode
        return super().train(False)

    # -- internals --------------------------------------------------------------------------------
    def _device(self):
        for b in self._params.buffers():
            return b.device
        return None

    def _flatten(self, inputs, scan: bool = True) -> list:
        return self.signature.flatten(inputs, check=True, scan=scan, device=self._device())

    def _check_state(self, state: State, flat) -> None:
        if not isinstance(state, State):
            raise TypeError(f"state must be a State from dm.record(...), got {type(state).__name__}")
        if state.owner != self._owner:
            raise StateError("this State was recorded by another decomposed model")
        dev = flat[0].device if flat else None
        if state.device is not None and dev is not None and torch.device(state.device) != dev:
            raise StateError(f"State is on {state.device}, inputs on {dev} (use state.to(device))")

    def _result(self, outs, sts, replayed) -> Decomposition:
        spec = self._cap.out_spec
        return Decomposition(pytree.tree_unflatten(outs, spec), pytree.tree_unflatten(sts, spec), self.stream_names, replayed)

    def _schedule(self, mode: str, frozen: frozenset | None):
        key = (mode, frozen)
        sched = self._schedules.get(key)
        if sched is not None:
            return sched
        an = self._an
        steps = []
        if mode in ("plain", "record"):
            for n in an.nodes:
                if n.op == "call_function" and n in an.live:
                    steps.append((_PLAIN, n))
        else:
            need_total: set = set()

            def derived(x):
                if x not in an.need_stream:
                    return False
                return not isinstance(x.meta.get("val"), (tuple, list))

            def want(n):
                stack = [n]
                while stack:
                    x = stack.pop()
                    if x not in an.fused or x in need_total or derived(x):
                        continue
                    need_total.add(x)
                    stack.extend(a for a in x.all_input_nodes if a in an.fused)

            for n in an.need_stream:
                plan = an.plans[n]
                if plan.kind is None:
                    continue
                if mode == "single" or not plan.stateful or plan.kind not in frozen:
                    for _k, _i, src, role in plan.subs:
                        if role in (STATE, STREAM_STATE) and src in an.fused:
                            want(src)
            for n in an.nodes:
                if n.op != "call_function" or n not in an.live:
                    continue
                if n not in an.fused:
                    steps.append((_PLAIN, n))
                    continue
                if n in need_total:
                    steps.append((_TOTAL, n))
                if n in an.need_stream:
                    steps.append((_STREAM, n))
        self._schedules[key] = steps
        return steps

    def _run(self, flat, mode: str, state: State | None = None, frozen=None, trace=None, record=None, hook=None):
        an = self._an
        M = len(an.modality_names)
        lay = ComplementLayout(M) if mode == "single" else StreamLayout(M)
        plain: dict = {}
        for node, t in zip(self._cap.input_nodes, flat):
            plain[node] = t
        bufs = self._params._buffers
        for name, node in self._param_nodes:
            plain[node] = bufs[name]
        streams: dict = {}
        totals: dict = {}
        lifted: dict = {}
        fused = an.fused
        plans = an.plans
        compat = self.compat

        def total_of(src):
            if src not in fused:
                return plain[src]
            v = totals.get(src)
            if v is not None:
                return v
            X = streams[src]
            v = lay.total(X)
            totals[src] = v
            return v

        def stream_of(src):
            if src in fused:
                return streams[src]
            v = lifted.get(src)
            if v is None:
                v = lay.lift(plain[src], self._mod_index.get(src))
                lifted[src] = v
            return v

        absorbed = self._absorbed
        steps = self._schedule(mode, frozen)
        for kind, node in steps:
            if kind == _PLAIN:
                args = map_arg(node.args, plain.__getitem__)
                kwargs = map_arg(node.kwargs, plain.__getitem__)
                if hook is not None:
                    val = hook(node, lambda n=node, a=args, k=kwargs: n.target(*a, **k))
                else:
                    val = node.target(*args, **kwargs)
                plain[node] = val
                if trace is not None and mode == "plain":
                    trace[node.name] = val
                if record is not None and node in an.need_stream:
                    plan = plans[node]
                    if plan.stateful and plan.rule is not None:
                        sargs = _fill(plan, lambda s, r: plain[s])
                        call = Call(node, node.target, sargs, lay, (), plan.roles, compat, node.meta.get("val"))
                        record[node.name] = tuple(plan.rule.state(call))
                continue
            plan = plans[node]
            if kind == _TOTAL:
                args = map_arg(node.args, total_of)
                kwargs = map_arg(node.kwargs, total_of)
                totals[node] = node.target(*args, **kwargs)
                continue
            # -- stream step -------------------------------------------------------------------
            if plan.target is operator.getitem:
                parent = streams[node.args[0]]
                Y = parent[node.args[1]]
                streams[node] = Y
                if trace is not None and torch.is_tensor(Y):
                    trace[node.name] = lay.streams(Y)
                continue
            if plan.alias_of is not None:  # BatchNorm folded into the conv before it
                Y = streams[plan.alias_of]
                if plan.stream_outputs is not None:
                    Y = (Y, None, None)
                streams[node] = Y
                if trace is not None and torch.is_tensor(Y):
                    trace[node.name] = lay.streams(Y)
                continue
            if node in self._absorbed and trace is None:  # concat consumed part by part by its conv
                continue
            cat = self._lift_cats.get(node)
            if cat is not None:  # a fusion-point concat: concatenate once, then lift (one pass)
                parts = [(int(t.meta["val"].shape[cat]), self._mod_index.get(t)) for t in node.args[0]]
                Y = lay.lift_parts(torch.cat([plain[t] for t in node.args[0]], cat), parts, cat)
                streams[node] = Y
                if trace is not None:
                    trace[node.name] = lay.streams(Y)
                continue
            rule: Rule = plan.rule
            args = _fill(plan, lambda s, r: stream_of(s) if r in (STREAM, STREAM_STATE) and s not in absorbed
                         else (plain[s] if r is PARAM else None))
            shift = None
            if plan.fold_bn is not None:
                bn = plan.fold_bn
                bargs = _fill(bn, lambda s, r: plain[s] if r is PARAM else None)
                args["weight"], shift = bn.rule.fold(bargs, args["weight"], args.get("bias"))
                args["bias"] = None
                if lay.bias_broadcast:  # the bias-stream shift rides in the conv's own bias
                    args["bias"], shift = shift[0], (None, shift[1], shift[2])
                    if shift[1] is None:
                        shift = None
            st: tuple = ()
            if plan.kind is not None:
                if mode == "replay" and plan.stateful and plan.kind in frozen:
                    try:
                        st = state.values[node.name]
                    except KeyError:
                        raise StateError(f"State has no entry for node {node.name!r}") from None
                else:
                    sargs = _fill(
                        plan, lambda s, r: total_of(s) if r in (STATE, STREAM_STATE) else (plain[s] if r is PARAM else None)
                    )
                    st = tuple(rule.state(Call(node, node.target, sargs, lay, (), plan.roles, compat, node.meta.get("val"))))
            try:
                if node in self._split_convs:
                    Y = self._split_conv(node, args, lay, plain, streams)
                else:
                    Y = rule.apply(Call(node, node.target, args, lay, st, plan.roles, compat, node.meta.get("val")))
            except Exception as e:
                from .graph import where

                raise RuntimeError(
                    f"LMD rule {rule.describe()} failed on node {node.name!r} ({op_name(node.target)}) at {where(node)}: "
                    f"{type(e).__name__}: {e}"
                ) from e
            if shift is not None:
                Y = plan.fold_bn.rule.add_shift(lay, Y, *shift)  # (fused into the conv when the layout allows)
            if self._fold_into is not None and not rule.passthrough:
                Y = _map_tensors(Y, lambda t: lay.fold_bias_into(t, self._fold_into))
            streams[node] = Y
            if trace is not None and torch.is_tensor(Y) and plan.fold_bn is None:
                trace[node.name] = lay.streams(Y)
        # -- outputs ------------------------------------------------------------------------------
        outs, sts = [], []
        public = StreamLayout(M)
        for o in self._cap.outputs:
            if not isinstance(o, Node):
                outs.append(o)
                sts.append(o)
                continue
            if mode in ("plain", "record"):
                outs.append(plain[o])
                sts.append(None)
                continue
            if o in fused:
                X = streams[o]
                outs.append(lay.total(X))
                H = lay.streams(X)
                fb = self._final_bias.get(o)
                if fb is not None:
                    H = _add_final_bias(H, plain[fb[0]], fb[1], M)
                sts.append(H)
            else:
                v = plain[o]
                outs.append(v)
                sts.append(public.lift(v, self._mod_index.get(o)) if torch.is_tensor(v) and v.is_floating_point() else v)
        return outs, sts

    def _find_split_convs(self) -> dict:
        """Plain convs (groups 1) whose input is a channel concat used by nothing else: conv node ->
        (concat node, dim). conv(cat([a, b]), W) = conv(a, W_a) + conv(b, W_b), so the concat of the
        stacked streams is never built, and a pre-fusion part (one modality, or none) is convolved
        once and lifted afterwards instead of being convolved on all S streams."""
        from .graph import _is_plain_conv
        from .rules import Affine, PerStream, bind

        an = self._an
        outputs = {o for o in self._cap.outputs if isinstance(o, Node)}
        out = {}
        for n in an.need_stream:
            plan = an.plans[n]
            if type(plan.rule) is not Affine or plan.unsupported or not _is_plain_conv(n):
                continue
            args = bind(n.target, n.args, n.kwargs)
            cat = args.get("input")
            if int(args.get("groups", 1)) != 1 or not isinstance(cat, Node) or cat.target is not torch.ops.aten.cat.default:
                continue
            if cat in outputs or len(cat.users) != 1 or cat not in an.fused or not isinstance(an.plans[cat].rule, PerStream):
                continue  # (a concat with a rule of the user's choosing keeps it)
            ts = cat.args[0]
            rank = cat.meta["val"].dim()
            dim = cat.args[1] if len(cat.args) > 1 else cat.kwargs.get("dim", 0)
            if int(dim) % rank != 1 or rank != n.meta["val"].dim():
                continue
            if not all(isinstance(t, Node) and torch.is_tensor(t.meta.get("val")) and t.meta["val"].dim() == rank for t in ts):
                continue
            out[n] = (cat, 1)
        return out

    def _split_conv(self, node, args: dict, lay, plain: dict, streams: dict):
        """The conv of a channel concat, part by part (see :meth:`_find_split_convs`). Decomposed
        parts are convolved on their stacked streams (folded into the batch axis, summed there so
        backends can accumulate into the conv), pre-fusion parts once, then lifted together."""
        from .rules import _fold, _unfold, invoke

        cat, _dim = self._split_convs[node]
        W, b = args["weight"], args.get("bias")
        S, fused = lay.S, self._an.fused
        total = None
        groups: dict = {}  # modality index (or None) -> sum of the convs of its pre-fusion parts
        if lay.bias_broadcast and all(t in fused for t in cat.args[0]):
            b_in, b = b, None  # the bias goes to every slot: the first conv adds it
        else:
            b_in = None
        off = 0
        for t in cat.args[0]:
            n = int(t.meta["val"].shape[1])
            w = W.narrow(1, off, n)
            off += n
            if t in fused:
                y = invoke(node.target, {**args, "input": _fold(streams[t]), "weight": w, "bias": b_in})
                b_in = None
                total = y if total is None else total + y
            else:
                y = invoke(node.target, {**args, "input": plain[t], "weight": w, "bias": None})
                m = self._mod_index.get(t)
                groups[m] = y if m not in groups else groups[m] + y
        bshape = [-1] + [1] * (W.dim() - 2)
        if b is not None and groups:  # the conv bias is a constant: the bias stream's part
            like = next(iter(groups.values()))
            groups[None] = groups[None] + b.reshape(bshape) if None in groups else b.reshape(bshape).expand_as(like)
            b = None
        Y = None if total is None else _unfold(total, S)
        if groups:
            lifted = lay.lift_sum(list(groups.values()), list(groups.keys()))
            Y = lifted if Y is None else Y + lifted
        if b is not None:
            Y = lay.add_bias(Y, b.reshape(bshape))
        return Y

    def _find_lift_cats(self) -> dict:
        """Concats after the fusion point whose inputs are all pre-fusion (a fusion point such as
        ``cat([camera_feat, radar_feat])``): node -> cat dim. They are computed as one plain concat
        lifted by a 0/1 table instead of lifting every input and concatenating the stacks."""
        from .rules import PerStream

        an = self._an
        out = {}
        for n in an.need_stream:
            plan = an.plans[n]
            if n.target is not torch.ops.aten.cat.default or not isinstance(plan.rule, PerStream) or plan.fold_bn:
                continue
            ts = n.args[0]
            metas = [t.meta.get("val") if isinstance(t, Node) else None for t in ts]
            if not all(isinstance(t, Node) and t not in an.fused for t in ts):
                continue
            if not all(torch.is_tensor(m) and m.is_floating_point() and m.dim() == metas[0].dim() >= 1 for m in metas):
                continue
            dim = n.args[1] if len(n.args) > 1 else n.kwargs.get("dim", 0)
            out[n] = int(dim) % metas[0].dim()
        return out

    def _find_final_biases(self) -> dict:
        """Outputs produced directly by a conv/linear with a bias: output node -> (bias node, rank)."""
        out = {}
        an = self._an
        for o in self._cap.outputs:
            if not isinstance(o, Node) or o not in an.fused:
                continue
            n = o
            while n.op == "call_function" and n.target is not operator.getitem and isinstance(an.plans[n].rule, Affine) is False:
                plan = an.plans[n]
                if plan.rule is not None and plan.rule.passthrough and plan.target in (
                    torch.ops.aten.clone.default,
                    torch.ops.aten.alias.default,
                ):
                    n = n.args[0]
                    continue
                break
            plan = an.plans.get(n)
            if plan is not None and isinstance(plan.rule, Affine):
                bias_name = "self" if plan.target is torch.ops.aten.addmm.default else plan.rule.bias
                for k, _i, src, _role in plan.subs:
                    if k == bias_name:
                        w = next((s for kk, ii, s, rr in plan.subs if kk == plan.rule.weight), None)
                        nsp = (w.meta["val"].dim() - 2) if (w is not None and plan.rule.batched_rank_from_weight) else 0
                        out[o] = (src, nsp)
        return out


def _fill(plan, value_of) -> dict:
    args = {k: (list(v) if isinstance(v, list) else v) for k, v in plan.base.items()}
    for k, i, src, role in plan.subs:
        v = value_of(src, role)
        if i is None:
            args[k] = v
        else:
            args[k][i] = v
    return args


def _map_tensors(Y, fn):
    if isinstance(Y, (tuple, list)):
        return type(Y)(fn(t) if torch.is_tensor(t) else t for t in Y)
    return fn(Y)


def _add_final_bias(H, bias, nsp: int, M: int):
    b = bias.reshape([-1] + [1] * nsp)
    add = torch.zeros_like(H)
    add[:M] = b
    return H + add


class CompiledDecomposition:
    """The single-pass decomposition as a generated GraphModule; ``compiled(**inputs)``."""

    def __init__(self, graph_module, dm: DecomposedModel):
        self.graph_module = graph_module
        self.signature = dm.signature
        self.stream_names = dm.stream_names
        self._out_spec = dm._cap.out_spec
        self._n_out = len(dm._cap.outputs)

    def __call__(self, **inputs) -> Decomposition:
        flat = self.signature.flatten(inputs, check=True, scan=False)  # shapes/dtypes checked, no NaN scan
        res = self.graph_module(*flat)
        outs, sts = list(res[: self._n_out]), list(res[self._n_out :])
        return Decomposition(
            pytree.tree_unflatten(outs, self._out_spec), pytree.tree_unflatten(sts, self._out_spec), self.stream_names
        )

    def flat(self, *flat_inputs):
        """Positional flat inputs -> flat outputs (outputs then streams), no checks."""
        return self.graph_module(*flat_inputs)
