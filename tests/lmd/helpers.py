"""Shared helpers for the LMD tests: relative errors, cached decompositions of the zoo."""

from __future__ import annotations

import functools
import warnings

import torch
from torch.utils import _pytree as pytree

from fusion_monitor.lmd import decompose
from fusion_monitor.lmd.zoo import ZOO


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b| (absolute where b is all zero)."""
    a, b = a.detach(), b.detach()
    den = float(b.abs().max()) if b.numel() else 0.0
    num = float((a - b).abs().max()) if b.numel() else 0.0
    return num / den if den > 0 else num


def leaves(x):
    return [t for t in pytree.tree_leaves(x) if torch.is_tensor(t)]


def model_output(model, inputs):
    with torch.no_grad():
        return model(**inputs)


@functools.cache
def zoo_case(name: str, dtype: torch.dtype = torch.float64):
    """(model, example inputs, other inputs, decomposed model) for a zoo entry, built once."""
    e = ZOO[name]
    model = e.build().to(dtype)
    ex = e.inputs(0, dtype)
    other = e.inputs(1, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dm = decompose(model, ex, e.modalities)
    return model, ex, other, dm


def modality_args(name: str, dm) -> dict[str, list[str]]:
    """modality -> forward arguments carrying it."""
    e = ZOO[name]
    mods = e.modalities or {k: k for k in zoo_case(name)[1]}
    out: dict[str, list[str]] = {}
    for arg, m in mods.items():
        if m is not None:
            out.setdefault(m, []).append(arg)
    return out
