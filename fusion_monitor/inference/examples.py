"""Example inputs and modality maps from command-line specs (``name=1x3x8x8:float32,...`` or a file)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from fusion_monitor.inference.package import SUPPORTED_DTYPES

_ITEM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*([0-9]+(?:x[0-9]+)*)\s*(?::\s*([a-z0-9]+))?\s*$")


def parse_example_spec(spec: str, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Example inputs from a spec string or a file.

    Parameters
    ----------
    spec : str
        Either ``NAME=DIMS[:DTYPE],...`` with DIMS like ``1x6x3x96x176`` and DTYPE one of
        float32 (default), float16, float64, int64, int32, int8, uint8, bool; e.g.
        ``camera=1x6x3x96x176,lidar=1x10x128x128:float32``. Floating inputs are standard
        normal, integer inputs uniform in [0, 10), bool inputs random, all from ``seed``.
        Or the path of a ``.npz`` file (arrays by input name) or a ``.pt`` / ``.pth`` file
        holding a dict of tensors.
    seed : int
        Seed of the random example values.

    Returns
    -------
    dict of str to numpy.ndarray
        Example arrays by input name, in spec order.

    Raises
    ------
    ValueError
        Naming the malformed item or file.
    """
    text = spec.strip()
    if not text:
        raise ValueError("example spec is empty")
    suffix = Path(text).suffix.lower()
    if suffix in (".npz", ".pt", ".pth"):
        return load_example_file(text)
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for item in text.split(","):
        m = _ITEM.match(item)
        if not m:
            raise ValueError(f"example spec item {item.strip()!r} is not NAME=DIMS[:DTYPE] (e.g. lidar=1x10x128x128:float32)")
        name, dims, dtype = m.group(1), tuple(int(d) for d in m.group(2).split("x")), m.group(3) or "float32"
        if dtype not in SUPPORTED_DTYPES:
            raise ValueError(f"example spec item {item.strip()!r}: dtype {dtype!r} is not one of {list(SUPPORTED_DTYPES)}")
        if name in out:
            raise ValueError(f"example spec names input {name!r} twice")
        if dtype == "bool":
            arr = rng.random(dims) < 0.5
        elif np.issubdtype(np.dtype(dtype), np.integer):
            arr = rng.integers(0, 10, size=dims).astype(dtype)
        else:
            arr = rng.standard_normal(dims).astype(dtype)
        out[name] = arr
    return out


def load_example_file(path: str | Path) -> dict[str, np.ndarray]:
    """Example arrays from a .npz file or a .pt/.pth file holding a dict of tensors."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: example file does not exist")
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                out = {k: np.asarray(data[k]) for k in data.files}
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: cannot read example arrays: {e}") from e
    else:
        import torch

        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises several unpickling error types
            raise ValueError(f"{path}: cannot read example tensors: {e}") from e
        if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
            raise ValueError(f"{path}: must hold a dict of input name -> tensor, got {type(data).__name__}")
        out = {str(k): v.detach().cpu().numpy() for k, v in data.items()}
    if not out:
        raise ValueError(f"{path}: holds no example arrays")
    for name, arr in out.items():
        if arr.dtype.name not in SUPPORTED_DTYPES:
            raise ValueError(f"{path}: input {name!r} has dtype {arr.dtype}, not one of {list(SUPPORTED_DTYPES)}")
    return out


def parse_modalities(spec: str | None) -> dict[str, str | None] | None:
    """Modality map from ``input=modality,...``; ``none`` (any case) or empty maps to None.

    ``camera=camera,lidar=lidar,calib=none`` gives ``{"camera": "camera", "lidar": "lidar",
    "calib": None}``. None or an empty string gives None (every input is its own modality).
    """
    if spec is None or not spec.strip():
        return None
    out: dict[str, str | None] = {}
    for item in spec.split(","):
        name, sep, modality = item.partition("=")
        name, modality = name.strip(), modality.strip()
        if not sep or not name.isidentifier():
            raise ValueError(f"modalities item {item.strip()!r} is not INPUT=MODALITY (e.g. calib=none)")
        if name in out:
            raise ValueError(f"modalities names input {name!r} twice")
        out[name] = None if modality.lower() in ("", "none", "null") else modality
    return out
