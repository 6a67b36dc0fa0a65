"""Stable names for the flattened outputs of a model (the ONNX output names of a package)."""

from __future__ import annotations

from typing import Any

STREAM_PREFIX = "streams."
"""Output name of a stream tensor = STREAM_PREFIX + the name of the model output it decomposes."""


def _key_text(key: Any) -> str:
    for attr in ("key", "idx", "name"):  # pytree MappingKey / SequenceKey / GetAttrKey
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key).strip(".[]'\"")


def flatten_named(tree: Any, root: str = "output") -> list[tuple[str, Any]]:
    """Flatten a pytree of tensors into (name, leaf) pairs in pytree order.

    Parameters
    ----------
    tree : tensor, tuple, list, dict or registered pytree
        A model's output.
    root : str
        Name of a lone tensor output.

    Returns
    -------
    list of (str, Tensor)
        Tensor leaves only (None and Python numbers are not graph outputs). Names join the
        path keys with dots: ``{"hm": t, "reg": (a, b)}`` gives
        ``hm``, ``reg.0``, ``reg.1``; a lone tensor is named ``root``.
    """
    import torch
    from torch.utils import _pytree as pytree

    pairs, _ = pytree.tree_flatten_with_path(tree)
    named = []
    for path, leaf in pairs:
        if not isinstance(leaf, torch.Tensor):  # None / numbers are not graph outputs
            continue
        name = ".".join(_key_text(k) for k in path) or root
        named.append((name, leaf))
    return named


def stream_output_name(output_name: str) -> str:
    """Name of the stream tensor of one model output."""
    return STREAM_PREFIX + output_name
