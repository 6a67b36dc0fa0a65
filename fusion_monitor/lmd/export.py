"""Export the single-pass decomposition (detector + LMD streams in one graph) to a generated
GraphModule (torch.export) or to ONNX."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree

from .engine import CompiledDecomposition, DecomposedModel

__all__ = ["export_onnx", "compile_single_pass", "onnx_names"]


class _SinglePass(nn.Module):
    """forward(*flat tensor inputs) -> (*flat outputs, *flat streams): the deployable form."""

    def __init__(self, dm: DecomposedModel):
        super().__init__()
        self.dm = dm

    def forward(self, *flat):
        outs, sts = self.dm._run(list(flat), "single")
        return tuple(o for o in outs if torch.is_tensor(o)) + tuple(s for s in sts if torch.is_tensor(s))


def _flat_example(dm: DecomposedModel, example_inputs: Mapping | None) -> list:
    if example_inputs is None:
        raise ValueError("pass the example inputs (same shapes as at decompose time)")
    return dm.signature.flatten(example_inputs, check=True)


def onnx_names(dm: DecomposedModel) -> tuple[list[str], list[str]]:
    """(input names, output names) used by :func:`export_onnx`.

    Inputs are forward's argument names (``<arg>_<key>`` for leaves of nested inputs); outputs are
    ``output`` / ``streams`` followed by the pytree path of each tensor output leaf (e.g.
    ``output_heatmap``, ``streams_heatmap``; a single tensor output gives ``output``/``streams``).
    """
    inputs = [leaf.name for leaf in dm.signature.tensor_leaves]
    paths = _output_paths(dm)
    outs = ["output" + p for p in paths] + ["streams" + p for p in paths]
    return inputs, outs


def _output_paths(dm: DecomposedModel) -> list[str]:
    spec = dm._cap.out_spec
    dummy = pytree.tree_unflatten(list(range(len(dm._cap.outputs))), spec)
    flat = pytree.tree_flatten_with_path(dummy)[0]
    paths = []
    for path, i in flat:
        if not _is_tensor_output(dm, i):
            continue
        parts = []
        for k in path:
            key = getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))
            parts.append(str(key))
        s = "_".join(parts)
        paths.append(("_" + s) if s else "")
    if len(paths) == 1 and paths[0] in ("_0", ""):
        return [""]
    return paths


def _is_tensor_output(dm, i) -> bool:
    o = dm._cap.outputs[i]
    from torch.fx import Node

    return isinstance(o, Node) or torch.is_tensor(o)


def compile_single_pass(dm: DecomposedModel, example_inputs: Mapping | None = None) -> CompiledDecomposition:
    """torch.export the single-pass form into a GraphModule (no interpreter overhead)."""
    if example_inputs is None:
        example_inputs = _example_from_signature(dm)
    flat = _flat_example(dm, example_inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ep = torch.export.export(_SinglePass(dm), tuple(flat), strict=False)
    return CompiledDecomposition(ep.module(), dm)


def _example_from_signature(dm: DecomposedModel) -> dict:
    """Zero inputs of the captured shapes (only for tracing; values never matter to the graph)."""
    sig = dm.signature
    vals = []
    for leaf in sig.leaves:
        vals.append(torch.zeros(leaf.shape, dtype=leaf.dtype, device=leaf.device) if leaf.tensor else leaf.value)
    it = iter(vals)
    out = {}
    for k in sig.order:
        spec = sig.specs[k]
        n = spec.num_leaves
        out[k] = pytree.tree_unflatten([next(it) for _ in range(n)], spec)
    return out


def export_onnx(
    dm: DecomposedModel,
    example_inputs: Mapping[str, Any],
    path: str | os.PathLike,
    *,
    opset: int = 18,
    external_data: bool = False,
    dynamo: bool = True,
) -> Path:
    """Write one ONNX graph computing the model's output and its LMD streams.

    Parameters
    ----------
    dm : DecomposedModel
    example_inputs : dict
        Keyword inputs of the model's forward, same shapes as at decompose time.
    path : path-like
        Output ``.onnx`` file.
    opset : int
        ONNX opset (18 by default; the torch.export-based exporter produces 18 natively).
    external_data : bool
        Write weights to ``<path>.data`` (needed above 2 GB) instead of inside the file.
    dynamo : bool
        Use torch's torch.export-based exporter (default); False uses the legacy TorchScript one.

    Returns
    -------
    pathlib.Path
        The written file. Inputs are named like forward's arguments, outputs are the flattened
        model output then the flattened streams (see :func:`onnx_names`).
    """
    if not isinstance(dm, DecomposedModel):
        raise TypeError(f"dm must be a DecomposedModel from decompose(), got {type(dm).__name__}")
    path = Path(path)
    flat = _flat_example(dm, example_inputs)
    in_names, out_names = onnx_names(dm)
    module = _SinglePass(dm).eval()
    kwargs: dict = dict(input_names=in_names, output_names=out_names, opset_version=opset, dynamo=dynamo)
    if dynamo:
        kwargs["external_data"] = external_data
    from .rules import onnx_export_mode

    with warnings.catch_warnings(), onnx_export_mode():
        warnings.simplefilter("ignore")
        res = torch.onnx.export(module, tuple(flat), str(path), **kwargs)
    del res
    return path
