"""Capture the user's model with torch.export and analyse its graph: which modalities each node
depends on, where fusion starts, which rule decomposes each node after it and what every node
must provide (decomposed streams, or only its full value as frozen state)."""

from __future__ import annotations

import copy
import inspect
import operator
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.fx import Node
from torch.utils import _pytree as pytree

from .errors import CaptureError, InputError, InputShapeError, LMDTrainingModeWarning, NonFiniteInputError
from .registry import ROUTING_OPS, STRUCTURAL_OPS, VALUE_FREE_OPS, RuleMap
from .rules import PARAM, STATE, STREAM, STREAM_STATE, FreezeToBias, NodeView, NoRule, Rule, bind, op_name

RESERVED_ARGS = ("state", "frozen")

# ------------------------------------------------------------------------------------------------
# Inputs: names, modalities, flattening and validation
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputLeaf:
    """One flattened leaf of the forward's inputs."""

    arg: str  # forward argument name
    name: str  # flat name (ONNX input name): the argument name, plus "_<key>" per pytree level
    modality: str | None
    tensor: bool
    shape: tuple | None = None
    dtype: torch.dtype | None = None
    device: torch.device | None = None
    value: Any = None  # example value of a non-tensor leaf (must be the same at every call)


def _leaf_name(arg: str, path) -> str:
    parts = [arg]
    for k in path:
        key = getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))
        parts.append(str(key))
    return re.sub(r"[^0-9A-Za-z_]", "_", "_".join(parts))


class Signature:
    """The forward's argument order, pytree structure, per-leaf example metadata and modalities."""

    def __init__(self, model: nn.Module, example_inputs: Mapping, modalities: Mapping | None):
        if not isinstance(example_inputs, Mapping):
            raise TypeError(
                f"example_inputs must be a dict keyed by {type(model).__name__}.forward's argument names, "
                f"got {type(example_inputs).__name__}"
            )
        params = _forward_params(model)
        names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY, p.POSITIONAL_ONLY)]
        var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
        for r in RESERVED_ARGS:
            if r in names or r in example_inputs:
                raise ValueError(
                    f"{type(model).__name__}.forward has an argument named {r!r}, which the decomposed model "
                    "reserves for its own keyword; rename it in a thin wrapper module"
                )
        unknown = [k for k in example_inputs if k not in names and not var_kw]
        if unknown:
            raise TypeError(f"example_inputs has keys that are not arguments of forward: {unknown} (arguments: {names})")
        missing = [
            p.name
            for p in params
            if p.name not in example_inputs
            and p.default is inspect.Parameter.empty
            and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        ]
        if missing:
            raise TypeError(f"example_inputs lacks required forward arguments: {missing}")
        # keep forward's own order (ONNX inputs follow it)
        order = [n for n in names if n in example_inputs] + [k for k in example_inputs if k not in names]
        tensor_args = []
        for k in order:
            leaves = pytree.tree_leaves(example_inputs[k])
            if any(torch.is_tensor(x) for x in leaves):
                tensor_args.append(k)
        if modalities is None:
            modalities = {k: k for k in tensor_args}
        if not isinstance(modalities, Mapping):
            raise TypeError(
                f"modalities must be a dict (argument name -> modality name or None), got {type(modalities).__name__}"
            )
        bad = [k for k in modalities if k not in example_inputs]
        if bad:
            raise ValueError(
                f"modalities names {bad}, which {'is' if len(bad) == 1 else 'are'} not an input of forward "
                f"(inputs given: {order})"
            )
        unmapped = [k for k in tensor_args if k not in modalities]
        if unmapped:
            raise ValueError(
                f"tensor inputs {unmapped} are not in modalities; map each to a modality name, or to None for "
                "inputs that belong to no modality (calibration, masks)"
            )
        for k, m in modalities.items():
            if m is not None and (not isinstance(m, str) or not m):
                raise TypeError(f"modality of input {k!r} must be a non-empty string or None, got {m!r}")
            if m == "bias":
                raise ValueError("'bias' is the name of the bias stream; choose another modality name")
        mod_names: list[str] = []
        for k in order:
            m = modalities.get(k)
            if m is not None and m not in mod_names:
                mod_names.append(m)
        if not mod_names:
            raise ValueError("no input is mapped to a modality; at least one modality is needed")
        self.model_name = type(model).__name__
        self.order = order
        self.modalities = dict(modalities)
        self.modality_names = mod_names
        self.specs = {}
        self.leaves: list[InputLeaf] = []
        for k in order:
            flat, spec = pytree.tree_flatten_with_path(example_inputs[k])
            self.specs[k] = pytree.tree_structure(example_inputs[k])
            for path, x in flat:
                name = _leaf_name(k, path)
                if torch.is_tensor(x):
                    self.leaves.append(InputLeaf(k, name, modalities.get(k), True, tuple(x.shape), x.dtype, x.device))
                else:
                    self.leaves.append(InputLeaf(k, name, modalities.get(k), False, value=x))
        self.tensor_leaves = [leaf for leaf in self.leaves if leaf.tensor]
        for leaf in self.tensor_leaves:
            if leaf.modality is not None and not (leaf.dtype.is_floating_point or leaf.dtype.is_complex):
                warnings.warn(
                    f"modality input {leaf.name!r} has dtype {leaf.dtype}; it is treated as data of modality "
                    f"{leaf.modality!r} (integer inputs usually are indices: map them to None if they are not data)",
                    stacklevel=4,
                )

    def ordered(self, inputs: Mapping) -> dict:
        """Inputs in the captured order; missing or extra keys raise TypeError naming them."""
        if not isinstance(inputs, Mapping):
            raise TypeError(f"inputs must be keyword arguments of {self.model_name}.forward")
        missing = [k for k in self.order if k not in inputs]
        extra = [k for k in inputs if k not in self.order]
        if missing or extra:
            msg = []
            if missing:
                msg.append(f"missing inputs {missing}")
            if extra:
                msg.append(f"unexpected inputs {extra}")
            raise TypeError(f"{self.model_name}: " + ", ".join(msg) + f" (decomposed with inputs {self.order})")
        return {k: inputs[k] for k in self.order}

    def flatten(self, inputs: Mapping, check: bool = True, scan: bool = True, device=None) -> list:
        """Tensor leaves in placeholder order, validated against the example (shape, dtype, device,
        structure, non-tensor values; ``scan``: NaN / inf values). ``device`` overrides the
        example's device (after ``dm.to(device)``)."""
        ordered = self.ordered(inputs)
        out = []
        it = iter(self.leaves)
        for k in self.order:
            flat, spec = pytree.tree_flatten(ordered[k])
            if spec != self.specs[k]:
                raise InputError(f"input {k!r} has structure {spec}, expected {self.specs[k]} (as in the example)")
            for x in flat:
                leaf = next(it)
                if leaf.tensor:
                    if not torch.is_tensor(x):
                        raise TypeError(f"input {leaf.name!r} must be a tensor, got {type(x).__name__}")
                    if check:
                        self._check_tensor(leaf, x, scan, device)
                    out.append(x)
                else:
                    if torch.is_tensor(x) or x != leaf.value:
                        raise InputError(
                            f"non-tensor input {leaf.name!r} = {x!r} differs from the example value {leaf.value!r}, "
                            "which was specialised into the captured graph"
                        )
        return out

    def _check_tensor(self, leaf: InputLeaf, x: torch.Tensor, scan: bool = True, device=None) -> None:
        if tuple(x.shape) != leaf.shape:
            raise InputShapeError(
                f"input {leaf.name!r} has shape {tuple(x.shape)}, but the model was decomposed for shape {leaf.shape}; "
                "decompose again with an example of the new shape"
            )
        if x.dtype != leaf.dtype:
            raise InputShapeError(f"input {leaf.name!r} has dtype {x.dtype}, expected {leaf.dtype} (as in the example)")
        want = leaf.device if device is None else torch.device(device)
        if x.device != want:
            raise InputShapeError(f"input {leaf.name!r} is on {x.device}, expected {want}")
        if not scan or _is_tracing(x):
            return
        if x.is_floating_point() or x.is_complex():
            if bool(torch.isnan(x).any()):
                raise NonFiniteInputError(f"input {leaf.name!r} contains NaN")
            if leaf.modality is not None and bool(torch.isinf(x).any()):
                raise NonFiniteInputError(f"modality input {leaf.name!r} ({leaf.modality}) contains +-inf")


def _is_tracing(x) -> bool:
    try:
        if torch.compiler.is_compiling():
            return True
    except Exception:  # pragma: no cover
        pass
    from torch._subclasses.fake_tensor import FakeTensor

    return isinstance(x, FakeTensor)


def _forward_params(model: nn.Module) -> list[inspect.Parameter]:
    try:
        return list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError) as e:  # pragma: no cover - builtins
        raise TypeError(f"cannot read the signature of {type(model).__name__}.forward: {e}") from e


# ------------------------------------------------------------------------------------------------
# Capture
# ------------------------------------------------------------------------------------------------


@dataclass
class Captured:
    graph_module: torch.fx.GraphModule
    signature: Signature
    params: dict  # placeholder name -> tensor (parameters, buffers, constants)
    input_nodes: list  # placeholder Nodes of tensor leaves, in leaf order
    leaf_of: dict  # placeholder Node -> InputLeaf
    outputs: list  # flattened user outputs: Node or constant
    out_spec: Any
    exported: Any = None  # the ExportedProgram (inference IR)
    model_name: str = ""


def capture(model: nn.Module, example_inputs: Mapping, signature: Signature) -> Captured:
    """Export a private eval-mode copy of ``model`` (the model itself is never modified)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if model.training:
        warnings.warn(
            f"{type(model).__name__} is in training mode; decomposing it with eval-mode semantics "
            "(frozen BatchNorm statistics, no dropout). The model itself is left in training mode.",
            LMDTrainingModeWarning,
            stacklevel=3,
        )
    inputs = signature.ordered(example_inputs)
    signature.flatten(inputs, check=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            work = copy.deepcopy(model)
        except Exception as e:
            raise CaptureError(f"could not copy {type(model).__name__} (needed to leave it untouched): {e}") from e
    work.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ep = torch.export.export(work, (), kwargs=inputs, strict=False)
            if _needs_functionalization(ep.graph_module.graph):
                ep = ep.run_decompositions({})  # functional inference IR; high-level ops kept
    except Exception as e:
        raise CaptureError(f"torch.export could not capture {type(model).__name__}: {type(e).__name__}: {e}") from e
    return extract(ep, signature, type(model).__name__)


def _needs_functionalization(graph) -> bool:
    """In-place / mutating ops or higher-order wrappers (e.g. no_grad regions) in the training IR."""
    for n in graph.nodes:
        if n.op in ("get_attr", "call_module"):
            return True
        if n.op != "call_function":
            continue
        t = n.target
        if isinstance(t, torch._ops.HigherOrderOperator):
            return True
        schema = getattr(t, "_schema", None)
        if schema is not None and schema.is_mutable:
            return True
    return False


def lower(cap: Captured, ops) -> Captured | None:
    """Lower only the given ops (those without a rule) with torch's decompositions; None if none can be."""
    table = torch.export.default_decompositions()
    chosen = {op: table[op] for op in ops if op in table}
    if not chosen:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ep = cap.exported.run_decompositions(chosen)
    except Exception:  # pragma: no cover - lowering is best effort
        return None
    return extract(ep, cap.signature, cap.model_name)


def extract(ep, signature: Signature, model_name: str) -> Captured:
    gm = ep.graph_module
    sig = ep.graph_signature
    nodes = {n.name: n for n in gm.graph.nodes if n.op == "placeholder"}
    params: dict = {}
    input_nodes = []
    leaf_of = {}
    user_leaves = iter(signature.leaves)
    from torch.export.graph_signature import InputKind, OutputKind

    for spec in sig.input_specs:
        kind = spec.kind
        if kind in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR):
            t = ep.state_dict.get(spec.target) if spec.target in ep.state_dict else ep.constants.get(spec.target)
            if not torch.is_tensor(t):
                raise CaptureError(f"unsupported captured constant {spec.target!r} of type {type(t).__name__}")
            params[spec.arg.name] = t.detach().clone()
        elif kind == InputKind.USER_INPUT:
            leaf = next(user_leaves)
            if hasattr(spec.arg, "value") and not hasattr(spec.arg, "as_tensor"):
                if leaf.tensor:  # pragma: no cover
                    raise CaptureError(f"input {leaf.name!r} was captured as a constant")
                continue
            if not leaf.tensor:
                raise CaptureError(f"non-tensor input {leaf.name!r} was captured as a tensor")
            node = nodes[spec.arg.name]
            input_nodes.append(node)
            leaf_of[node] = leaf
        else:
            raise CaptureError(f"unsupported graph input kind {kind} ({spec.arg.name}): custom objects/tokens")
    out_node = next(n for n in gm.graph.nodes if n.op == "output")
    flat_out = list(out_node.args[0])
    outputs = []
    for spec, val in zip(sig.output_specs, flat_out):
        if spec.kind == OutputKind.USER_OUTPUT:
            outputs.append(val)
        elif spec.kind in (OutputKind.BUFFER_MUTATION, OutputKind.USER_INPUT_MUTATION):
            warnings.warn(
                f"{model_name}.forward mutates {spec.target!r}; the decomposition never writes to the model, "
                "the mutation is ignored",
                stacklevel=3,
            )
        else:
            raise CaptureError(f"unsupported graph output kind {spec.kind}")
    for n in gm.graph.nodes:
        if n.op in ("call_module", "get_attr"):
            raise CaptureError(
                f"captured graph still has a {n.op} node {n.name!r} ({n.target}); control flow / higher-order ops "
                "after capture are not supported"
            )
    return Captured(gm, signature, params, input_nodes, leaf_of, outputs, ep.call_spec.out_spec, ep, model_name)


# ------------------------------------------------------------------------------------------------
# Where a node came from
# ------------------------------------------------------------------------------------------------

_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<fn>\S+)')


def module_path(node: Node) -> str:
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return ""
    path = list(stack.values())[-1][0]
    return re.sub(r"^L\['self'\]\.?", "", str(path))


def module_type(node: Node) -> str:
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return ""
    t = list(stack.values())[-1][1]
    t = getattr(t, "__name__", str(t))
    return t.rsplit(".", 1)[-1]


def source_line(node: Node) -> str:
    """'file.py:123 in fn: code' of the innermost frame outside torch (else the innermost frame)."""
    trace = node.meta.get("stack_trace") or ""
    lines = trace.splitlines()
    frames = []
    for i, ln in enumerate(lines):
        m = _FRAME.search(ln)
        if m:
            code = lines[i + 1].strip() if i + 1 < len(lines) and not _FRAME.search(lines[i + 1]) else ""
            frames.append((m["file"], m["line"], m["fn"], code))
    if not frames:
        return "unknown source line"
    user = [f for f in frames if "/torch/" not in f[0].replace("\\", "/")]
    f = (user or frames)[-1]
    short = f[0].replace("\\", "/")
    return f"{short}:{f[1]} in {f[2]}" + (f": {f[3]}" if f[3] else "")


def where(node: Node) -> str:
    mod = module_path(node)
    typ = module_type(node)
    loc = source_line(node)
    head = f"module {mod!r} ({typ})" if mod else (f"{typ}.forward" if typ else "forward")
    return f"{head}, {loc}"


# ------------------------------------------------------------------------------------------------
# Analysis
# ------------------------------------------------------------------------------------------------


@dataclass
class NodePlan:
    """How one node after the fusion point is decomposed."""

    node: Node
    target: Any
    rule: Rule | None
    level: str
    roles: dict
    kind: str | None
    stateful: bool  # the state depends on modalities: recorded by record(), frozen by replay
    subs: list  # (key, index | None, source node, role)
    base: dict  # bound args with nodes replaced by None
    stream_outputs: set | None
    unsupported: str | None = None  # reason when strict=False froze the op
    fold_bn: NodePlan | None = None  # conv whose following eval BatchNorm is folded into its weights
    alias_of: Node | None = None  # BatchNorm folded into the conv before it: its output is the conv's


@dataclass
class CoverageRow:
    op: str
    status: str  # rule description | "pass-through" | "unsupported" | "pre-fusion" | "frozen state" | ...
    count: int
    nodes: list = field(default_factory=list)
    where: str = ""


class Coverage(Mapping):
    """Op -> status of every op in the captured graph (rule name, "pass-through", "unsupported",
    or, for ops outside the decomposed region, "pre-fusion" / "constant" / "frozen state").

    ``rows`` holds one row per (op, status) with counts, node names and a source example;
    ``str(coverage)`` prints the table.
    """

    def __init__(self, rows: list[CoverageRow], fusion_points: list[str], modality_names: list[str]):
        self.rows = rows
        self.fusion_points = fusion_points
        self.modality_names = modality_names
        status: dict[str, str] = {}
        for r in rows:
            base = r.status.split(" ")[0] if r.status.startswith("unsupported") else r.status
            prev = status.get(r.op)
            if prev is None or _status_rank(base) > _status_rank(prev):
                status[r.op] = base
        self._status = status

    def __getitem__(self, op: str) -> str:
        return self._status[op]

    def __iter__(self):
        return iter(self._status)

    def __len__(self) -> int:
        return len(self._status)

    @property
    def unsupported(self) -> list[CoverageRow]:
        return [r for r in self.rows if r.status.startswith("unsupported")]

    def __str__(self) -> str:
        lines = [f"LMD coverage (modalities: {', '.join(self.modality_names)}; streams + bias)"]
        if self.fusion_points:
            lines.append("fusion starts at: " + "; ".join(self.fusion_points))
        w1 = max([len(r.op) for r in self.rows] + [2])
        w2 = max([len(r.status) for r in self.rows] + [6])
        lines.append(f"{'op':<{w1}}  {'status':<{w2}}  count  example")
        for r in self.rows:
            lines.append(f"{r.op:<{w1}}  {r.status:<{w2}}  {r.count:>5}  {r.where}")
        return "\n".join(lines)

    __repr__ = __str__


def _status_rank(s: str) -> int:
    if s.startswith("unsupported"):
        return 5
    if s in ("pre-fusion", "constant", "unused"):
        return 0
    if s == "frozen state":
        return 1
    if s == "pass-through":
        return 2
    return 3


class Analysis:
    """Dependence, regions, rules, roles and demands of a captured graph."""

    def __init__(self, cap: Captured, rule_map: RuleMap, strict: bool):
        self.cap = cap
        self.graph = cap.graph_module.graph
        self.nodes = list(self.graph.nodes)
        self.rule_map = rule_map
        self.strict = strict
        self.modality_names = cap.signature.modality_names
        self.mod_index = {m: i for i, m in enumerate(self.modality_names)}
        self.dep: dict[Node, frozenset] = {}
        self._dependence()
        self.fused = {n for n in self.nodes if n.op == "call_function" and len(self.dep[n]) >= 2}
        self.plans: dict[Node, NodePlan] = {}
        self.errors = []
        self._plan()
        self.need_stream = self._stream_demand()
        self._check()
        self.live = self._liveness()
        if not self.errors:
            self._fold_conv_bn()
        self.fusion_points = [
            n for n in self.nodes if n in self.fused and not any(a in self.fused for a in n.all_input_nodes)
        ]

    # -- dependence -------------------------------------------------------------------------------
    def _dependence(self):
        empty = frozenset()
        for n in self.nodes:
            if n.op == "placeholder":
                leaf = self.cap.leaf_of.get(n)
                self.dep[n] = frozenset([leaf.modality]) if (leaf is not None and leaf.modality) else empty
            elif n.op == "call_function":
                if n.target in VALUE_FREE_OPS:
                    self.dep[n] = empty
                else:
                    d = set()
                    for a in n.all_input_nodes:
                        d |= self.dep.get(a, empty)
                    self.dep[n] = frozenset(d)
            else:
                self.dep[n] = empty

    def dep_of(self, value) -> frozenset:
        if isinstance(value, Node):
            return self.dep.get(value, frozenset())
        if isinstance(value, (list, tuple)):
            out = set()
            for v in value:
                out |= self.dep_of(v)
            return frozenset(out)
        return frozenset()

    def routing_of(self, value) -> str | None:
        n = value
        seen = 0
        while isinstance(n, Node) and n.op == "call_function" and seen < 64:
            if n.target in ROUTING_OPS:
                return ROUTING_OPS[n.target]
            if n.target in STRUCTURAL_OPS or n.target is operator.getitem:
                n = n.args[0]
                seen += 1
                continue
            return None
        return None

    # -- rules and roles --------------------------------------------------------------------------
    def _plan(self):
        for n in self.nodes:
            if n not in self.fused:
                continue
            args = bind(n.target, n.args, n.kwargs)
            module = module_path(n)
            if n.target is operator.getitem:
                self.plans[n] = NodePlan(n, n.target, None, "getitem", {"self": STREAM}, None, False,
                                         [("self", None, n.args[0], STREAM)], {"self": None, "index": n.args[1]}, None)
                continue
            view = NodeView(n, n.target, args, module, self.dep_of, self.routing_of)
            rule, level = self.rule_map.resolve(n, n.target, args, module)
            reason = None
            roles = None
            kind = None
            if rule is None:
                reason = _no_rule_reason(n)
            else:
                try:
                    r = rule.roles(view)
                    roles, kind = dict(r.by_arg), r.kind
                except NoRule as e:
                    reason = str(e)
                except NotImplementedError as e:  # pragma: no cover
                    reason = f"not implemented: {e}"
            if reason is not None:
                self.plans[n] = NodePlan(n, n.target, None, "none", {}, None, False, [], {}, None, unsupported=reason)
                continue
            self.plans[n] = self._make_plan(n, view, rule, level, roles, kind)

    def _make_plan(self, n, view, rule, level, roles, kind) -> NodePlan:
        args = view.args
        subs = []
        base = {}
        for k, a in args.items():
            if isinstance(a, Node):
                role = roles.get(k, PARAM)
                if isinstance(role, list):  # pragma: no cover
                    role = role[0]
                subs.append((k, None, a, role))
                base[k] = None
            elif isinstance(a, (list, tuple)) and any(isinstance(x, Node) for x in a):
                role = roles.get(k, PARAM)
                rl = role if isinstance(role, list) else [role] * len(a)
                lst = []
                for i, x in enumerate(a):
                    if isinstance(x, Node):
                        subs.append((k, i, x, rl[i]))
                        lst.append(None)
                    else:
                        lst.append(x)
                base[k] = lst
            else:
                base[k] = a
        for k, _i, src, role in subs:
            if role is PARAM and self.dep_of(src):
                raise_reason = (
                    f"argument {k!r} depends on modalities {sorted(self.dep_of(src))} but is used as a parameter"
                )
                return NodePlan(n, n.target, None, "none", {}, None, False, [], {}, None, unsupported=raise_reason)
        state_src = [s for s in subs if s[3] in (STATE, STREAM_STATE)]
        stateful = kind is not None and any(self.dep_of(s[2]) for s in state_src)
        if kind is not None and not stateful and not state_src:
            kind = kind  # state computed from parameters only (fresh each call)
        so = rule.stream_outputs(view)
        return NodePlan(n, n.target, rule, level, roles, kind, stateful, subs, base, so)

    # -- demand -----------------------------------------------------------------------------------
    def _stream_demand(self) -> set:
        need = set()
        for o in self.cap.outputs:
            if isinstance(o, Node) and o in self.fused:
                need.add(o)
        for n in reversed(self.nodes):
            if n not in need:
                continue
            plan = self.plans[n]
            if plan.unsupported is not None and plan.rule is None and not self.strict:
                self._fallback(plan)
                plan = self.plans[n]
            for _k, _i, src, role in plan.subs:
                if role in (STREAM, STREAM_STATE) and src in self.fused:
                    need.add(src)
        return need

    def _fallback(self, plan: NodePlan):
        """strict=False: freeze an unsupported op's output into the bias stream."""
        n = plan.node
        args = bind(n.target, n.args, n.kwargs)
        view = NodeView(n, n.target, args, module_path(n), self.dep_of, self.routing_of)
        rule = FreezeToBias()
        r = rule.roles(view)
        new = self._make_plan(n, view, rule, "fallback", dict(r.by_arg), r.kind)
        new.unsupported = plan.unsupported
        self.plans[n] = new

    def _check(self):
        errors = []
        from .errors import UnsupportedOpError

        for n in self.nodes:
            if n not in self.need_stream:
                continue
            plan = self.plans[n]
            if plan.rule is None and plan.target is not operator.getitem:
                err = UnsupportedOpError(op_name(n.target), n.name, where(n), plan.unsupported or "no rule")
                err.target = n.target
                err.origin = _origin(n)
                errors.append(err)
            if plan.target is operator.getitem:
                parent = n.args[0]
                pplan = self.plans.get(parent)
                if pplan is not None and pplan.rule is not None and pplan.stream_outputs is not None:
                    if n.args[1] not in pplan.stream_outputs:
                        errors.append(
                            UnsupportedOpError(
                                op_name(parent.target), n.name, where(n),
                                f"output {n.args[1]} of {op_name(parent.target)} is not decomposable (indices/statistics)",
                            )
                        )
        self.errors = errors

    def _liveness(self) -> set:
        live = set()
        stack = [o for o in self.cap.outputs if isinstance(o, Node)]
        while stack:
            n = stack.pop()
            if n in live:
                continue
            live.add(n)
            stack.extend(n.all_input_nodes)
        return live

    # -- conv + BatchNorm folding ----------------------------------------------------------------
    def _fold_conv_bn(self):
        """Fold an eval BatchNorm into the conv feeding it (exact for both BatchNorm rules: the
        scale goes into the conv weight, the shift to the bias stream or split uniformly). Saves
        two elementwise passes over the stacked streams per conv + BN pair."""
        from .rules import Affine, BatchNorm

        outputs = {o for o in self.cap.outputs if isinstance(o, Node)}
        for n in self.nodes:
            plan = self.plans.get(n)
            if n not in self.need_stream or plan is None or not isinstance(plan.rule, BatchNorm) or plan.unsupported:
                continue
            src = next((s for k, i, s, r in plan.subs if k == "input"), None)
            p = self.plans.get(src)
            if (
                src is None
                or src not in self.need_stream
                or src in outputs
                or len(src.users) != 1
                or p is None
                or p.unsupported
                or type(p.rule) is not Affine
                or not _is_plain_conv(src)
                or p.fold_bn is not None
            ):
                continue
            p.fold_bn = plan
            tuple_out = isinstance(n.meta.get("val"), (tuple, list))
            self.plans[n] = NodePlan(n, n.target, None, "folded", {"input": STREAM}, None, False,
                                     [("input", None, src, STREAM)], {}, {0} if tuple_out else None, alias_of=src)

    # -- reporting --------------------------------------------------------------------------------
    def coverage(self) -> Coverage:
        groups: dict[tuple, CoverageRow] = {}
        for n in self.nodes:
            if n.op != "call_function":
                continue
            op = op_name(n.target)
            if n not in self.live:
                status = "unused"
            elif n not in self.fused:
                status = "pre-fusion" if self.dep[n] else "constant"
            elif n in self.need_stream:
                plan = self.plans[n]
                if plan.target is operator.getitem:
                    status = "pass-through"
                elif plan.alias_of is not None:
                    status = self.plans[plan.alias_of].fold_bn.rule.describe() + " (folded into conv)"
                elif plan.unsupported is not None:
                    status = "unsupported" if plan.rule is None else "unsupported (frozen to bias)"
                elif plan.rule.passthrough:
                    status = "pass-through"
                else:
                    status = plan.rule.describe()
            else:
                status = "frozen state"
            key = (op, status)
            row = groups.get(key)
            if row is None:
                row = groups[key] = CoverageRow(op, status, 0, [], where(n) if status != "unused" else "")
            row.count += 1
            row.nodes.append(n.name)
        rows = sorted(groups.values(), key=lambda r: (-_status_rank(r.status), r.op))
        fps = [f"{n.name} ({op_name(n.target)}) at {where(n)}" for n in self.fusion_points]
        return Coverage(rows, fps, self.modality_names)


_CONV_OPS = {
    torch.ops.aten.conv1d.default,
    torch.ops.aten.conv2d.default,
    torch.ops.aten.conv3d.default,
    torch.ops.aten.conv1d.padding,
    torch.ops.aten.conv2d.padding,
    torch.ops.aten.conv3d.padding,
}


def _is_plain_conv(n: Node) -> bool:
    if n.target in _CONV_OPS:
        return True
    if n.target is torch.ops.aten.convolution.default:
        args = bind(n.target, n.args, n.kwargs)
        return not bool(args.get("transposed", False))
    return False


def _origin(n: Node) -> str:
    """Name of the op this node came from before lowering (its own op if it was not lowered)."""
    src = n.meta.get("from_node") or []
    for s in src:
        t = getattr(s, "target", None)
        if t is not None:
            return str(t)
    return op_name(n.target)


def _no_rule_reason(n: Node) -> str:
    t = n.target
    if t in ROUTING_OPS:
        return (
            f"{ROUTING_OPS[t]} has no stream rule (its output is routing: it can be frozen as the operand of a "
            "product, or decompose the model at the logits and apply it per stream for display)"
        )
    return "no rule registered for this op (register one, or use strict=False to freeze it to the bias stream)"
