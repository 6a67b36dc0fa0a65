"""Result types of the LMD engine: ``Decomposition`` (one call's output and streams) and ``State``
(a recorded operating point theta*, replayed on other inputs)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.utils import _pytree as pytree

__all__ = ["Decomposition", "State"]


@dataclass(frozen=True)
class Decomposition:
    """What ``dm(**inputs)`` returns.

    Attributes
    ----------
    output : pytree
        The model's output (same structure as ``model(**inputs)``): from the full stream in the
        single-pass form, the sum of the streams (the frozen network's output) in replay.
    streams : pytree
        Same structure; every tensor has a leading axis of length ``len(stream_names)``:
        ``streams[..][i]`` is the contribution of ``stream_names[i]``. Non-tensor leaves are
        passed through unchanged.
    stream_names : tuple of str
        ``(*modalities in the order given, "bias")``.
    replayed : bool
        True when computed with a recorded State (record/replay form).
    """

    output: Any
    streams: Any
    stream_names: tuple
    replayed: bool = False

    def stream(self, name: str) -> Any:
        """The pytree of one stream's contribution (``name`` is a modality or ``"bias"``)."""
        try:
            i = self.stream_names.index(name)
        except ValueError:
            raise KeyError(f"no stream {name!r}; streams are {list(self.stream_names)}") from None
        return pytree.tree_map(lambda t: t[i] if torch.is_tensor(t) else t, self.streams)

    def as_dict(self) -> dict:
        """{stream name: pytree of that stream}."""
        return {n: self.stream(n) for n in self.stream_names}

    def total(self) -> Any:
        """Sum of the streams (equals ``output`` up to float rounding)."""
        return pytree.tree_map(lambda t: t.sum(0) if torch.is_tensor(t) else t, self.streams)

    def conservation_error(self) -> float:
        """max |sum_s h_s - output| / max |output| over all tensor leaves (relative, 0 = exact)."""
        num, den = 0.0, 0.0
        for s, o in zip(pytree.tree_leaves(self.streams), pytree.tree_leaves(self.output)):
            if not torch.is_tensor(s) or not s.is_floating_point():
                continue
            num = max(num, float((s.sum(0) - o).abs().max()) if o.numel() else 0.0)
            den = max(den, float(o.abs().max()) if o.numel() else 0.0)
        return num / den if den > 0 else num

    def shares(self, dims: Any = None, eps: float = 0.0) -> Any:
        """Per-stream share of the absolute contribution, |h_s| / sum_t |h_t|.

        Parameters
        ----------
        dims : int or sequence of int, optional
            Dimensions (of the model output, without the stream axis) summed over before
            normalising; ``None`` gives one share per stream and tensor leaf.
        eps : float
            Added to the denominator (0: shares of an all-zero element are NaN-free 0).

        Returns
        -------
        pytree of tensors with a leading stream axis; shares sum to 1 along it (where any
        contribution is non-zero).
        """

        def one(t):
            if not torch.is_tensor(t) or not t.is_floating_point():
                return t
            a = t.abs()
            if dims is None:
                a = a.reshape(a.shape[0], -1).sum(1)
            else:
                d = [dims] if isinstance(dims, int) else list(dims)
                a = a.sum(dim=[x + 1 if x >= 0 else x for x in d])
            den = a.sum(0, keepdim=True) + eps
            return torch.where(den > 0, a / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(a))

        return pytree.tree_map(one, self.streams)


@dataclass(frozen=True)
class State:
    """A recorded operating point theta* (lmd.md section 3): per decomposed node, the frozen
    gates, norm scales, argmax indices, attention probabilities, masks, sampling grids.

    Attributes
    ----------
    values : dict
        node name -> tuple of tensors.
    kinds : dict
        node name -> kind ("activation", "norm", "selection", "attention", "sampling", "mask",
        "divisor", "product", "frozen").
    owner : str
        Identifier of the decomposed model that recorded it (replay checks it).
    dtype, device
        Of the recorded tensors.
    """

    values: Mapping = field(repr=False)
    kinds: Mapping
    owner: str
    dtype: torch.dtype | None = None
    device: torch.device | None = None

    @property
    def nodes(self) -> list[str]:
        return list(self.values)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for v in self.values.values() for t in v if torch.is_tensor(t))

    def to(self, device) -> State:
        vals = {k: tuple(t.to(device) if torch.is_tensor(t) else t for t in v) for k, v in self.values.items()}
        return State(vals, dict(self.kinds), self.owner, self.dtype, torch.device(device))

    def __repr__(self) -> str:
        kinds: dict[str, int] = {}
        for k in self.kinds.values():
            kinds[k] = kinds.get(k, 0) + 1
        return f"State({len(self.values)} nodes, {kinds}, {self.nbytes / 1e6:.2f} MB)"


def _tensor_leaves(x) -> list[Tensor]:
    return [t for t in pytree.tree_leaves(x) if torch.is_tensor(t)]
