"""The perturbation protocol of lmd.md section 6: how well LMD separates modalities.

For a test sample t and partner samples p (another scene), record theta*_t, decompose t, then
replace modality m's inputs by p's and decompose again with theta*_t frozen (or with parts of the
operating point recomputed: the "baseline", "activations only" and "normalisation only"
variants); per stream compare the two decompositions with PCC, MSE and cosine similarity,
average over partners per sample, then over samples. Works on any decomposed model and any
indexable dataset of input dicts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.utils import _pytree as pytree

from .engine import FREEZE_PRESETS, DecomposedModel
from .result import Decomposition

__all__ = [
    "StreamMetrics",
    "pcc",
    "mse",
    "cosine",
    "compare_streams",
    "partner_schedule",
    "schedule",
    "PerturbationReport",
    "perturbation_protocol",
    "VARIANTS",
]

#: named variants of lmd.md section 6 -> the ``frozen`` argument of a replay
VARIANTS = {
    "lmd": "all",
    "baseline": "none",
    "activations": "activations",
    "norms": "norms",
}


def _flat64(x: Tensor) -> Tensor:
    return x.detach().reshape(-1).to(torch.float64)


def pcc(a: Tensor, b: Tensor) -> float:
    """Pearson correlation of two flattened tensors; 1.0 for identical tensors, NaN when exactly
    one of them is constant (correlation undefined) and they differ."""
    a, b = _flat64(a), _flat64(b)
    if torch.equal(a, b):
        return 1.0
    da, db = a - a.mean(), b - b.mean()
    na, nb = float(da.norm()), float(db.norm())
    if na == 0.0 or nb == 0.0:
        return math.nan
    return float((da @ db) / (na * nb))


def mse(a: Tensor, b: Tensor) -> float:
    """Mean squared difference of two tensors."""
    a, b = _flat64(a), _flat64(b)
    return float(((a - b) ** 2).mean()) if a.numel() else 0.0


def cosine(a: Tensor, b: Tensor) -> float:
    """Cosine similarity of two flattened tensors; 1.0 for identical tensors (also all-zero ones)."""
    a, b = _flat64(a), _flat64(b)
    if torch.equal(a, b):
        return 1.0
    na, nb = float(a.norm()), float(b.norm())
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float((a @ b) / (na * nb))


@dataclass(frozen=True)
class StreamMetrics:
    pcc: float
    mse: float
    cos: float

    def get(self, name: str) -> float:
        return {"pcc": self.pcc, "mse": self.mse, "cos": self.cos, "cosine": self.cos}[name]


def _default_select(output_streams) -> list[Tensor]:
    return [t for t in pytree.tree_leaves(output_streams) if torch.is_tensor(t)]


def compare_streams(
    ref: Decomposition, other: Decomposition, select: Callable[[Any], Any] | None = None
) -> dict[str, StreamMetrics]:
    """Per stream name: PCC / MSE / cosine between two decompositions of the same model.

    ``select(streams_pytree) -> tensor or pytree`` picks what is measured (default: every tensor
    output leaf, flattened and concatenated -- e.g. pass ``lambda s: s["heatmap"]`` to measure
    one logit map). The stream axis stays first.
    """
    sel = select or (lambda s: s)
    a = [t for t in pytree.tree_leaves(sel(ref.streams)) if torch.is_tensor(t)]
    b = [t for t in pytree.tree_leaves(sel(other.streams)) if torch.is_tensor(t)]
    out = {}
    for i, name in enumerate(ref.stream_names):
        xa = torch.cat([_flat64(t[i]) for t in a]) if a else torch.zeros(0, dtype=torch.float64)
        xb = torch.cat([_flat64(t[i]) for t in b]) if b else torch.zeros(0, dtype=torch.float64)
        out[name] = StreamMetrics(pcc(xa, xb), mse(xa, xb), cosine(xa, xb))
    return out


def partner_schedule(t: int, n: int, *, step: int = 500, count: int = 10) -> list[int]:
    """The paper's partner schedule: p_i = t - step*i if that index is valid, else t + step*i,
    for i = 1..count (indices valid on neither side are skipped)."""
    out = []
    for i in range(1, count + 1):
        p = t - step * i
        if not 0 <= p < n:
            p = t + step * i
        if 0 <= p < n and p != t:
            out.append(p)
    return out


def schedule(step: int = 500, count: int = 10) -> Callable[[int, int], list[int]]:
    """A partner schedule with other constants (three modalities in the paper: step 2000, count 2)."""
    return lambda t, n: partner_schedule(t, n, step=step, count=count)


def _label(name: str, names: Sequence[str]) -> str:
    first = [n[0].upper() for n in names]
    c = name[0].upper()
    return c if first.count(c) == 1 else name


@dataclass
class PerturbationReport:
    """Result of :func:`perturbation_protocol`.

    ``values[(perturbed, stream)]`` is the list over samples of partner-averaged
    StreamMetrics; ``perturbed`` is a tuple of modality names swapped together.
    """

    stream_names: tuple
    perturbations: list
    variant: str
    values: dict = field(default_factory=dict)
    n_pairs: int = 0

    def mean(self, perturbed: str | Iterable[str], stream: str, metric: str = "pcc") -> float:
        key = (perturbed,) if isinstance(perturbed, str) else tuple(perturbed)
        vals = [m.get(metric) for m in self.values[(key, stream)]]
        vals = [v for v in vals if not math.isnan(v)]
        return sum(vals) / len(vals) if vals else math.nan

    def label(self, perturbed: tuple, stream: str) -> str:
        """The paper's notation, e.g. "Rp/C" = radar perturbed, camera stream measured."""
        names = list(self.stream_names)
        p = "".join(_label(m, names) for m in perturbed)
        s = "B" if stream == "bias" else _label(stream, names)
        return f"{p}p/{s}"

    def as_dict(self, metric: str = "pcc") -> dict[str, float]:
        return {self.label(p, s): self.mean(p, s, metric) for p in self.perturbations for s in self.stream_names}

    def table(self, metrics: Sequence[str] = ("pcc", "mse", "cos")) -> str:
        rows = [f"variant: {self.variant}  ({self.n_pairs} sample/partner pairs)"]
        head = f"{'perturbed / measured':<22}" + "".join(f"{m:>12}" for m in metrics)
        rows.append(head)
        for p in self.perturbations:
            for s in self.stream_names:
                cells = "".join(f"{self.mean(p, s, m):>12.4g}" for m in metrics)
                rows.append(f"{self.label(p, s):<22}{cells}")
        return "\n".join(rows)

    def __str__(self) -> str:
        return self.table()


def perturbation_protocol(
    dm: DecomposedModel,
    samples: Sequence[Mapping[str, Any]],
    *,
    perturb: Iterable[str | Sequence[str]] | None = None,
    partners: Callable[[int, int], list[int]] | None = None,
    variant: str | Iterable[str] = "lmd",
    companions: Mapping[str, Sequence[str]] | None = None,
    select: Callable[[Any], Any] | None = None,
    indices: Iterable[int] | None = None,
) -> PerturbationReport:
    """Run the perturbation protocol of lmd.md section 6.

    Parameters
    ----------
    dm : DecomposedModel
    samples : sequence of dict
        Indexable dataset; ``samples[i]`` are keyword inputs of the model (same shapes as the
        decomposition's example).
    perturb : iterable of modality names or tuples of names
        What to swap with the partner's inputs; a tuple swaps several modalities at once (the
        paper's three-modality setting). Default: each modality alone.
    partners : callable (t, n) -> list of partner indices
        Default :func:`partner_schedule` with step 500 and 10 partners.
    variant : {"lmd", "baseline", "activations", "norms"} or set of state kinds
        Which part of theta*_t stays frozen in the perturbed decomposition ("baseline":
        nothing frozen, everything recomputed on the perturbed input).
    companions : dict, optional
        modality -> non-modality inputs swapped together with it (e.g. images with their
        calibration: ``{"camera": ["cam_to_bev"]}``).
    select : callable, optional
        Picks what is compared from the streams pytree (default: all output leaves).
    indices : iterable of int, optional
        Test samples t (default: all).

    Returns
    -------
    PerturbationReport
    """
    if not isinstance(dm, DecomposedModel):
        raise TypeError(f"dm must be a DecomposedModel, got {type(dm).__name__}")
    mods = list(dm.modality_names)
    groups = []
    for p in perturb if perturb is not None else mods:
        g = (p,) if isinstance(p, str) else tuple(p)
        bad = [m for m in g if m not in mods]
        if bad:
            raise ValueError(f"cannot perturb {bad}: modalities are {mods}")
        groups.append(g)
    frozen = VARIANTS.get(variant, variant) if isinstance(variant, str) else frozenset(variant)
    if isinstance(frozen, str) and frozen not in FREEZE_PRESETS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)} or a set of state kinds, got {variant!r}")
    args_of: dict[str, list[str]] = {m: [] for m in mods}
    for arg, m in dm.modalities.items():
        if m is not None:
            args_of[m].append(arg)
    for m, extra in (companions or {}).items():
        if m not in args_of:
            raise ValueError(f"companions key {m!r} is not a modality {mods}")
        for a in extra:
            if a not in dm.signature.order:
                raise ValueError(f"companion input {a!r} is not an input of the model {dm.signature.order}")
            args_of[m].append(a)
    n = len(samples)
    partners = partners or schedule()
    report = PerturbationReport(dm.stream_names, groups, variant if isinstance(variant, str) else "custom")
    for g in groups:
        for s in dm.stream_names:
            report.values[(g, s)] = []
    with torch.no_grad():
        for t in indices if indices is not None else range(n):
            xt = dict(samples[t])
            ps = partners(t, n)
            if not ps:
                continue
            state = dm.record(**xt)
            ref = dm(**xt, state=state)
            for g in groups:
                acc: dict[str, list[StreamMetrics]] = {s: [] for s in dm.stream_names}
                for p in ps:
                    xp = samples[p]
                    x = dict(xt)
                    for m in g:
                        for a in args_of[m]:
                            x[a] = xp[a]
                    out = dm(**x, state=state, frozen=frozen)
                    for s, v in compare_streams(ref, out, select).items():
                        acc[s].append(v)
                    report.n_pairs += 1
                for s, vals in acc.items():
                    report.values[(g, s)].append(_average(vals))
    return report


def _average(vals: list[StreamMetrics]) -> StreamMetrics:
    def avg(xs):
        xs = [x for x in xs if not math.isnan(x)]
        return sum(xs) / len(xs) if xs else math.nan

    return StreamMetrics(avg([v.pcc for v in vals]), avg([v.mse for v in vals]), avg([v.cos for v in vals]))
