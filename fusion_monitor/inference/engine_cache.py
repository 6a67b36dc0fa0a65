"""TensorRT engine cache: engines keyed by ONNX sha256, TensorRT version, GPU and precision.

Each cached engine is two files in the cache directory: ``<key>.engine`` (the serialized
engine) and ``<key>.json`` (the key fields it was built for, plus build settings). A lookup
for another TensorRT version, GPU or precision finds nothing and says what *is* cached, so the
caller can refuse with a precise message or rebuild when its parameters allow it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from fusion_monitor.inference.errors import EngineCacheError

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class EngineKey:
    """What an engine depends on. Two engines are interchangeable exactly when their keys are equal.

    Attributes
    ----------
    onnx_sha256 : str
        Hash of the ONNX graph the engine was built from.
    tensorrt_version : str
        TensorRT version (engines are not portable across versions).
    gpu_name : str
        GPU model name, e.g. "NVIDIA GeForce RTX 4090", "Orin".
    compute_capability : str
        "major.minor", e.g. "8.7" (engines are not portable across architectures).
    precision : {"fp32", "fp16", "int8"}
        Builder precision flags.
    """

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {self.precision!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"engine key field {f.name} must be a non-empty string, got {value!r}")

    @property
    def digest(self) -> str:
        """24 hex digits identifying this key (the cache file stem)."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def differences(self, other: EngineKey) -> list[str]:
        """Human-readable fields where ``other`` differs from this key ("TensorRT 10.0 (this is 10.3)")."""
        labels = {"onnx_sha256": "ONNX sha256", "tensorrt_version": "TensorRT", "gpu_name": "GPU",
                  "compute_capability": "compute capability", "precision": "precision"}
        out = []
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if mine != theirs:
                if f.name == "onnx_sha256":
                    mine, theirs = mine[:12] + "...", theirs[:12] + "..."
                out.append(f"{labels[f.name]} {theirs} (this is {mine})")
        return out


class EngineCache:
    """A directory of serialized engines with their key sidecars.

    Parameters
    ----------
    directory : str or Path
        Cache directory (created on first store).
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def engine_path(self, key: EngineKey) -> Path:
        """Where the engine for ``key`` lives (whether or not it exists)."""
        return self.directory / f"{key.digest}.engine"

    def sidecar_path(self, key: EngineKey) -> Path:
        """Where the key sidecar of ``key``'s engine lives."""
        return self.directory / f"{key.digest}.json"

    def entries(self) -> list[tuple[Path, EngineKey | None]]:
        """Every cached engine with its key (None when the sidecar is missing or unreadable)."""
        if not self.directory.is_dir():
            return []
        out = []
        for engine in sorted(self.directory.glob("*.engine")):
            out.append((engine, read_sidecar(engine.with_suffix(".json"))))
        return out

    def lookup(self, key: EngineKey) -> Path | None:
        """The cached engine for exactly ``key``, or None.

        Raises
        ------
        EngineCacheError
            When the engine file exists but its sidecar is missing or records another key
            (a renamed or tampered cache entry).
        """
        path = self.engine_path(key)
        if not path.is_file():
            return None
        recorded = read_sidecar(self.sidecar_path(key))
        if recorded is None:
            raise EngineCacheError(path, f"engine has no readable key file {self.sidecar_path(key).name}")
        if recorded != key:
            raise EngineCacheError(path, "engine was built for " + ", ".join(key.differences(recorded)))
        return path

    def explain_miss(self, key: EngineKey) -> str:
        """Why no engine fits ``key``: what the cache holds instead, in words."""
        entries = self.entries()
        if not entries:
            return f"no TensorRT engine cached in {self.directory}"
        lines = []
        for engine, recorded in entries:
            if recorded is None:
                lines.append(f"{engine.name}: no readable key file")
            else:
                lines.append(f"{engine.name}: built for " + ", ".join(key.differences(recorded)))
        return f"no engine in {self.directory} fits; cached: " + "; ".join(lines)

    def store(self, key: EngineKey, engine_bytes: bytes, build_info: dict | None = None) -> Path:
        """Write an engine and its sidecar atomically; return the engine path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.engine_path(key)
        side = self.sidecar_path(key)
        tmp_engine = path.with_suffix(f".engine.tmp{os.getpid()}")
        tmp_side = side.with_suffix(f".json.tmp{os.getpid()}")
        tmp_engine.write_bytes(bytes(engine_bytes))
        tmp_side.write_text(json.dumps({"key": asdict(key), "build": build_info or {}}, indent=2) + "\n")
        os.replace(tmp_engine, path)
        os.replace(tmp_side, side)
        return path


def read_sidecar(path: str | Path) -> EngineKey | None:
    """The key recorded in an engine's sidecar, or None when missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text())
        return EngineKey(**data["key"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
