"""Stream layouts: how the S = M + 1 streams of one activation are stacked along a leading axis.

Both layouts carry the same information (one is a fixed linear change of basis of the other):

* ``ComplementLayout`` (single pass, deployment; the default): slot 0 is the *full* activation F
  (the real network, which defines every gate), slot m is F - h_m, the activation without modality
  m's contribution. A constant for the bias stream is then added to *every* slot, so conv biases
  and folded BatchNorm shifts stay inside the convolution (no extra pass over the streams).
  Streams are recovered at the outputs: h_m = F - u_m, h_b = sum_m u_m - (M - 1) F.
* ``StreamLayout`` (record/replay, evaluation): slots 0..M-1 are h_m, slot M is the bias stream h_b;
  the total is their sum. Every stream is computed from its own inputs only, which is what makes
  separation bit-exact.

Rules never index slots directly: they apply the same (frozen) linear map to every slot and put
constants through :meth:`add_bias` (constant to the bias stream) or :meth:`add_uniform` (constant
split evenly over the S streams). Both are affine in the streams, so both layouts stay consistent.
"""

from __future__ import annotations

import torch
from torch import Tensor


class _Layout:
    full: bool = False  # slot 0 is the full activation F
    bias_broadcast: bool = False  # a bias-stream constant is added to every slot (conv bias can be fused)

    def __init__(self, n_modalities: int):
        if n_modalities < 1:
            raise ValueError(f"need at least one modality, got {n_modalities}")
        self.M = int(n_modalities)
        self.S = self.M + 1

    # -- coefficient vectors -------------------------------------------------------------------
    def _coef(self, values: list[float], like: Tensor, ndim: int) -> Tensor:
        dtype = like.dtype if like.is_floating_point() else torch.get_default_dtype()
        c = torch.tensor(values, dtype=dtype, device=like.device)
        return c.reshape([self.S] + [1] * ndim)

    def _lift_coef(self, slot: int | None) -> list[float]:
        raise NotImplementedError

    def _bias_coef(self) -> list[float]:
        raise NotImplementedError

    def _uniform_coef(self) -> list[float]:
        raise NotImplementedError

    # -- public helpers used by rules --------------------------------------------------------------
    def total(self, X: Tensor) -> Tensor:
        """The activation the streams add up to (the full tensor z)."""
        raise NotImplementedError

    def lift(self, value: Tensor, modality: int | None, rank: int | None = None) -> Tensor:
        """Stack a tensor that depends on one modality (index) or on none (``None``: bias stream).

        ``rank`` left-pads the shape with singleton dims first (for broadcasting operands).
        """
        if not torch.is_tensor(value):
            value = torch.as_tensor(value)
        if rank is not None and value.dim() < rank:
            value = value.reshape([1] * (rank - value.dim()) + list(value.shape))
        c = self._coef(self._lift_coef(modality), value, value.dim())
        if not value.is_floating_point():
            value = value.to(c.dtype)
        return c * value.unsqueeze(0)

    def lift_parts(self, value: Tensor, parts: list[tuple[int, int | None]], dim: int) -> Tensor:
        """Stack a tensor made of consecutive parts along ``dim``, each of one modality (index) or of
        none: ``parts`` lists (size along dim, modality). Equal to lifting each part and
        concatenating, in one multiplication by a 0/1 coefficient table (exact)."""
        cols = [torch.tensor(self._lift_coef(m), dtype=value.dtype, device=value.device).unsqueeze(1).expand(self.S, n)
                for n, m in parts]
        c = torch.cat(cols, 1)
        d = dim % value.dim()
        c = c.reshape([self.S] + [1] * d + [value.shape[d]] + [1] * (value.dim() - d - 1))
        return c * value.unsqueeze(0)

    def lift_sum(self, values: list[Tensor], modalities: list[int | None]) -> Tensor:
        """``sum_i lift(values[i], modalities[i])`` for tensors of one shape, as one (S x P) @ (P x n)
        product with a 0/1 matrix (every stream sums only its own terms; the zeros add exactly 0)."""
        if len(values) == 1:
            return self.lift(values[0], modalities[0])
        v0 = values[0]
        c = torch.tensor([self._lift_coef(m) for m in modalities], dtype=v0.dtype, device=v0.device).t()
        flat = torch.stack(values, 0).reshape(len(values), -1)
        return torch.matmul(c, flat).reshape([self.S] + list(v0.shape))

    def bias_term(self, t: Tensor, like: Tensor) -> Tensor:
        """The stacked tensor that adds ``t`` to the bias stream only (broadcastable to ``like``)."""
        return self._coef(self._bias_coef(), like, like.dim() - 1) * t.to(like.dtype)

    def uniform_term(self, t: Tensor, like: Tensor) -> Tensor:
        """The stacked tensor that adds ``t / S`` to each stream (broadcastable to ``like``)."""
        return self._coef(self._uniform_coef(), like, like.dim() - 1) * t.to(like.dtype)

    def add_bias(self, X: Tensor, t) -> Tensor:
        """Add a constant (w.r.t. the streams) to the bias stream only."""
        if isinstance(t, (int, float)):
            if t == 0:
                return X
            t = torch.tensor(t, dtype=X.dtype, device=X.device)
        return X + self.bias_term(t, X)

    def add_uniform(self, X: Tensor, t) -> Tensor:
        """Add a constant split evenly, t/S to each of the S streams."""
        if isinstance(t, (int, float)):
            if t == 0:
                return X
            t = torch.tensor(t, dtype=X.dtype, device=X.device)
        return X + self.uniform_term(t, X)

    def streams(self, X: Tensor) -> Tensor:
        """The streams in public order ``[*modalities, bias]`` (leading axis S)."""
        raise NotImplementedError

    def from_streams(self, H: Tensor) -> Tensor:
        """Inverse of :meth:`streams`."""
        raise NotImplementedError

    def fold_bias_into(self, X: Tensor, modality: int) -> Tensor:
        """Move the whole bias stream into one modality stream (authors' quirk, compat only)."""
        raise NotImplementedError


class ComplementLayout(_Layout):
    """Slot 0 = full activation F, slot m = F - h_m; a bias-stream constant goes to every slot."""

    full = True
    bias_broadcast = True

    def _lift_coef(self, slot):
        c = [1.0] * self.S
        if slot is not None:
            c[1 + slot] = 0.0
        return c

    def _bias_coef(self):
        return [1.0] * self.S

    def _uniform_coef(self):
        return [1.0] + [1.0 - 1.0 / self.S] * self.M

    def bias_term(self, t: Tensor, like: Tensor) -> Tensor:
        return t.to(like.dtype)  # broadcasts over the stream axis

    def add_bias(self, X: Tensor, t) -> Tensor:
        if isinstance(t, (int, float)):
            return X + t if t != 0 else X
        return X + t.to(X.dtype)

    def total(self, X: Tensor) -> Tensor:
        return X[0]

    def streams(self, X: Tensor) -> Tensor:
        # h_m = F - u_m, h_b = sum_m u_m - (M - 1) F: one (S x S) @ (S x n) product with an integer
        # matrix (one pass over the streams instead of a subtraction, a sum and a concat)
        M = self.M
        rows = [[1.0] + [-1.0 if j == m else 0.0 for j in range(M)] for m in range(M)] + [[1.0 - M] + [1.0] * M]
        A = torch.tensor(rows, dtype=X.dtype, device=X.device)
        return torch.matmul(A, X.reshape(self.S, -1)).reshape(X.shape)

    def from_streams(self, H: Tensor) -> Tensor:
        F = H.sum(0, keepdim=True)
        return torch.cat([F, F - H[:-1]], 0)

    def fold_bias_into(self, X: Tensor, modality: int) -> Tensor:
        H = self.streams(X)
        new_m = H[modality] + H[self.M]
        H = torch.cat([H[:modality], new_m.unsqueeze(0), H[modality + 1 : self.M], torch.zeros_like(H[self.M :])], 0)
        return self.from_streams(H)


class StreamLayout(_Layout):
    """Slots 0..M-1 = modality streams, slot M = bias stream; total = sum of slots."""

    def _lift_coef(self, slot):
        c = [0.0] * self.S
        c[self.M if slot is None else slot] = 1.0
        return c

    def _bias_coef(self):
        return [0.0] * self.M + [1.0]

    def _uniform_coef(self):
        return [1.0 / self.S] * self.S

    def total(self, X: Tensor) -> Tensor:
        return X.sum(0)

    def streams(self, X: Tensor) -> Tensor:
        return X

    def from_streams(self, H: Tensor) -> Tensor:
        return H

    def fold_bias_into(self, X: Tensor, modality: int) -> Tensor:
        new_m = X[modality] + X[self.M]
        parts = [X[:modality], new_m.unsqueeze(0), X[modality + 1 : self.M], torch.zeros_like(X[self.M :])]
        return torch.cat(parts, 0)
