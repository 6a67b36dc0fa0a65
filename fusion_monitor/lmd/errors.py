"""Exceptions and warnings raised by the LMD engine (each names the bad value and where it came from)."""

from __future__ import annotations


class LMDError(Exception):
    """Base class of every error raised by fusion_monitor.lmd."""


class CaptureError(LMDError, RuntimeError):
    """The model could not be captured with torch.export (the message carries the exporter's reason)."""


class UnsupportedOpError(LMDError, TypeError):
    """An operation after the fusion point has no decomposition rule (strict mode).

    Attributes
    ----------
    op : str
        The ATen op, e.g. ``"aten.softmax.int"``.
    node : str
        The graph node name.
    where : str
        Module path and source line the node came from.
    reason : str
        Why no rule applies.
    """

    def __init__(self, op: str, node: str, where: str, reason: str):
        self.op, self.node, self.where, self.reason = op, node, where, reason
        super().__init__(f"no LMD rule for {op} (node {node!r}) at {where}: {reason}")


class UnsupportedOpsError(UnsupportedOpError):
    """Several unsupported operations at once; ``errors`` lists each one."""

    def __init__(self, errors: list[UnsupportedOpError]):
        self.errors = list(errors)
        first = self.errors[0]
        self.op, self.node, self.where, self.reason = first.op, first.node, first.where, first.reason
        lines = "\n".join(f"  - {e}" for e in self.errors)
        Exception.__init__(self, f"{len(self.errors)} operation(s) after the fusion point have no LMD rule:\n{lines}")


class DuplicateRuleError(LMDError, KeyError):
    """A rule registry already holds a rule for this op."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class InputError(LMDError, ValueError):
    """Inputs that do not match what the decomposition was built for."""


class InputShapeError(InputError):
    """An input's shape, dtype or device differs from the example it was captured with."""


class NonFiniteInputError(InputError):
    """An input contains NaN (or, for modality inputs, +-inf)."""


class StateError(LMDError, ValueError):
    """A recorded State that does not belong to this decomposed model (or to these inputs' dtype/device)."""


class LMDTrainingModeWarning(UserWarning):
    """The model was in training mode; it is decomposed with eval-mode semantics (the model is not changed)."""


class LMDUnsupportedWarning(UserWarning):
    """Non-strict mode froze an unsupported op to the bias stream (content through it is not attributed)."""
