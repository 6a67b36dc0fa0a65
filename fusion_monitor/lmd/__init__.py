"""Layer-Wise Modality Decomposition (LMD): exact, model-agnostic per-modality contributions of a
PyTorch fusion model, as a graph transform that exports with the detector (docs lmd.md).

    from fusion_monitor.lmd import decompose, export_onnx
    dm = decompose(model, example_inputs, modalities=None, bn_rule="identity", norm_rule="ratio", strict=True)
    out = dm(**inputs)                         # Decomposition: out.output, out.streams
    state = dm.record(**inputs); out = dm(**other_inputs, state=state)
    print(dm.coverage())
    export_onnx(dm, example_inputs, "model_lmd.onnx")
"""

from .compat import Compat, authors_three_modality_rules
from .engine import ALL_KINDS, FREEZE_PRESETS, CompiledDecomposition, DecomposedModel, decompose
from .errors import (
    CaptureError,
    DuplicateRuleError,
    InputError,
    InputShapeError,
    LMDError,
    LMDTrainingModeWarning,
    LMDUnsupportedWarning,
    NonFiniteInputError,
    StateError,
    UnsupportedOpError,
    UnsupportedOpsError,
)
from .export import export_onnx, onnx_names
from .graph import Coverage
from .registry import OneOf, RuleMap, RuleRegistry, default_registry
from .result import Decomposition, State
from .rules import (
    AddSub,
    Affine,
    Attention,
    BatchNorm,
    Divide,
    FreezeToBias,
    Gate,
    GridSample,
    MaxPool,
    Norm,
    PerStream,
    Product,
    ReduceSelect,
    Role,
    Roles,
    Rule,
    Select2,
    TopK,
    Where,
)

__all__ = [
    "decompose",
    "export_onnx",
    "onnx_names",
    "Decomposition",
    "DecomposedModel",
    "CompiledDecomposition",
    "State",
    "Coverage",
    "Compat",
    "authors_three_modality_rules",
    "RuleMap",
    "RuleRegistry",
    "OneOf",
    "default_registry",
    "Rule",
    "Role",
    "Roles",
    "PerStream",
    "AddSub",
    "Affine",
    "Gate",
    "BatchNorm",
    "Norm",
    "Product",
    "Divide",
    "Attention",
    "GridSample",
    "MaxPool",
    "ReduceSelect",
    "TopK",
    "Select2",
    "Where",
    "FreezeToBias",
    "ALL_KINDS",
    "FREEZE_PRESETS",
    "LMDError",
    "CaptureError",
    "UnsupportedOpError",
    "UnsupportedOpsError",
    "DuplicateRuleError",
    "InputError",
    "InputShapeError",
    "NonFiniteInputError",
    "StateError",
    "LMDTrainingModeWarning",
    "LMDUnsupportedWarning",
]
