"""Build a PyTorch model from an importable factory ("module:callable") and a checkpoint file."""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path
from typing import Any

from fusion_monitor.inference.errors import ExportError


def import_factory(spec: str):
    """Resolve ``"package.module:callable"`` (the callable may be dotted: ``mod:Class.make``).

    Raises
    ------
    ExportError
        When the spec is malformed, the module cannot be imported or the attribute is missing.
    """
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ExportError(f"model factory {spec!r} must look like 'package.module:callable'")
    module_name, attr = spec.split(":")
    if not module_name or not attr:
        raise ExportError(f"model factory {spec!r} must look like 'package.module:callable'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise ExportError(f"model factory {spec!r}: cannot import module {module_name!r}: {e}") from e
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ExportError(f"model factory {spec!r}: module {module_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise ExportError(f"model factory {spec!r} is not callable")
    return obj


def load_state_dict(path: str | Path) -> dict:
    """Tensors of a checkpoint: a state dict, or a dict with a ``state_dict`` / ``model`` entry."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: checkpoint file does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several unpickling error types
        raise ExportError(f"{path}: cannot read checkpoint (weights-only load): {e}") from e
    for key in ("state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
            break
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ExportError(f"{path}: checkpoint is not a state dict of tensors")
    return data


def build_model(factory: str, checkpoint: str | Path | None = None, factory_kwargs: dict | None = None,
                device: str = "cpu"):
    """Instantiate ``factory(**factory_kwargs)``, load ``checkpoint`` strictly, eval mode, on ``device``.

    Raises
    ------
    ExportError
        Naming the factory or checkpoint when the model cannot be built or the weights do not fit.
    """
    import torch

    make = import_factory(factory)
    try:
        model = make(**(factory_kwargs or {}))
    except Exception as e:
        raise ExportError(f"model factory {factory!r} failed: {type(e).__name__}: {e}") from e
    if not isinstance(model, torch.nn.Module):
        raise ExportError(f"model factory {factory!r} returned {type(model).__name__}, not a torch.nn.Module")
    if checkpoint is not None:
        state = load_state_dict(checkpoint)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ExportError(f"{checkpoint}: weights do not fit the model from {factory!r}: {e}") from e
    return model.to(device).eval()


def state_dict_sha256(model) -> str:
    """Hex sha256 of a module's state dict (names, dtypes, shapes and raw bytes, sorted by name)."""
    import torch

    h = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        t = value.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
