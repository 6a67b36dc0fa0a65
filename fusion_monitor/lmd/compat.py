"""Compatibility flags reproducing quirks of the LMD authors' research code (lmd.md section 7).

All default off: the clean behaviour (bias stream kept, final bias to the bias stream, one
epsilon) is what ``decompose`` does unless a flag is set. Each flag reproduces the *effect*
described in lmd.md, written from that description (never from the authors' code).
"""

from __future__ import annotations

from dataclasses import dataclass

from .registry import RuleMap, RuleRegistry
from .rules import BatchNorm, Norm

__all__ = ["Compat", "authors_three_modality_rules"]


@dataclass(frozen=True)
class Compat:
    """Quirk switches (all off by default).

    Parameters
    ----------
    fold_bias_into : str, optional
        Modality name. After every decomposed layer that is not a pass-through op (affine,
        normalisation, activation, pooling, attention, ...), the whole bias stream is added into
        this modality's stream and the bias stream is zeroed -- the effect of the authors'
        sign-based "splitting" step, which folds the bias stream into the camera stream after
        most layers. Equality still holds; the bias stream ends (almost) empty.
    final_bias_to_all_streams : bool
        The bias of the conv/linear producing a model output is added to every stream (each
        modality stream *and* the bias stream) instead of the bias stream only. Breaks equality
        by ``M * bias`` at those outputs, as in the authors' code.
    decompose_norm_eps : float, optional
        Epsilon used for the frozen norm scale s* in the decomposition (the authors: 1e-7) while
        the network itself runs with the module's own epsilon (1e-5). In the single-pass form the
        full stream keeps the real epsilon (detections unchanged) and the difference lands in the
        derived bias stream; in replay every stream uses it, so equality is off by the epsilon
        mismatch, as in the authors' code.
    """

    fold_bias_into: str | None = None
    final_bias_to_all_streams: bool = False
    decompose_norm_eps: float | None = None

    def __post_init__(self):
        if self.fold_bias_into is not None and not isinstance(self.fold_bias_into, str):
            raise TypeError(f"fold_bias_into must be a modality name, got {self.fold_bias_into!r}")
        if self.decompose_norm_eps is not None and not float(self.decompose_norm_eps) > 0:
            raise ValueError(f"decompose_norm_eps must be > 0, got {self.decompose_norm_eps!r}")

    @property
    def any(self) -> bool:
        return bool(self.fold_bias_into or self.final_bias_to_all_streams or self.decompose_norm_eps is not None)


def authors_three_modality_rules(
    decoder: str = "decoder*", fusion: str = "*compress*", registry: RuleRegistry | None = None
) -> RuleMap:
    """The rule mix of the authors' three-modality script: decoder BatchNorm uniform, decoder
    InstanceNorm identity, fusion (BEV compressor) InstanceNorm ratio.

    Parameters
    ----------
    decoder, fusion : str
        fnmatch patterns of the decoder's and the fusion block's module paths in *your* model.
    """
    rm = RuleMap(registry)
    rm.set_pattern(decoder, BatchNorm("uniform"))
    rm.set_pattern(decoder, Norm("identity"))
    rm.set_pattern(fusion, Norm("ratio"))
    return rm
