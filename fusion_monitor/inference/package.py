"""The model package: a directory holding the ONNX graph, its metadata and an engine cache.

Layout of a package directory::

    metadata.json      PackageMetadata (format_version, inputs, outputs, streams, classes, ...)
    model.onnx         the (decomposed) graph; inputs named like the model's forward arguments
    checkpoint.pt      optional: state dict for the PyTorch backend (with metadata source.factory)
    engines/           optional: TensorRT engine cache (never committed; see engine_cache.py)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from fusion_monitor.inference.errors import PackageError

FORMAT_VERSION = 1
"""Version of the package layout and metadata schema this code reads and writes."""

METADATA_FILE = "metadata.json"
ONNX_FILE = "model.onnx"
CHECKPOINT_FILE = "checkpoint.pt"
ENGINE_DIR = "engines"

SUPPORTED_DTYPES = ("float32", "float16", "float64", "int64", "int32", "int8", "uint8", "bool")


class InputSpec(NamedTuple):
    """One graph input: name (= forward argument), static shape, numpy dtype name, modality or None."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    modality: str | None


class OutputSpec(NamedTuple):
    """One graph output: name, static shape, numpy dtype name.

    ``stream_of`` is the name of the output this tensor decomposes (its leading axis runs over
    the package's stream names), or None for an output of the model itself.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    stream_of: str | None = None


@dataclass(frozen=True)
class PackageMetadata:
    """Everything a consumer needs to feed the graph and interpret its outputs.

    Attributes
    ----------
    inputs : tuple of InputSpec
        Graph inputs in graph order.
    output_specs : tuple of OutputSpec
        Graph outputs in graph order: the model's outputs, then (decomposed packages) one
        stream tensor per model output, shaped ``(len(stream_names), *output_shape)``.
    stream_names : tuple of str
        Modality stream names then ``"bias"``; empty for a plain (not decomposed) package.
    decomposed : bool
        Whether the graph carries LMD streams.
    classes : tuple of str
        Class names of the detector, index order.
    decoding : dict
        Output decoding specification (free-form, owned by the model: heads, strides, ...).
    bev_grid : dict
        BEV grid (ranges in metres, cell size in metres, shape).
    preprocessing : dict
        Preprocessing parameters (image mean/std, raster settings, ...).
    source : dict
        ``model_sha256`` (hash of the exported state dict), ``factory`` ("module:callable",
        optional), ``factory_kwargs``, ``checkpoint`` (file name inside the package, optional).
    exporter : dict
        Versions at export time: fusion_monitor, torch, onnx, onnxruntime, opset.
    lmd : dict
        LMD options used (bn_rule, norm_rule) for decomposed packages.
    verification : dict
        Parity check at export: reference, backend, max relative error, tolerance.
    onnx_file : str
        File name of the graph inside the package.
    onnx_sha256 : str
        sha256 of the graph file (checked on load; the engine cache key is built from it).
    extra : dict
        Any other metadata given at export.
    format_version : int
        Package format version (see FORMAT_VERSION).
    """

    inputs: tuple[InputSpec, ...]
    output_specs: tuple[OutputSpec, ...]
    stream_names: tuple[str, ...] = ()
    decomposed: bool = False
    classes: tuple[str, ...] = ()
    decoding: dict = field(default_factory=dict)
    bev_grid: dict = field(default_factory=dict)
    preprocessing: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)
    exporter: dict = field(default_factory=dict)
    lmd: dict = field(default_factory=dict)
    verification: dict = field(default_factory=dict)
    onnx_file: str = ONNX_FILE
    onnx_sha256: str = ""
    extra: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def attribution_sha256(self) -> str:
        """What a package's attribution depends on: the source model's weights (``source.model_sha256``),
        the stream names and the LMD rule choices, hashed. An equivalent re-export (a faster graph, another
        opset) keeps it, so calibrations fitted on the model (attribution baselines) stay valid; without a
        source hash it is the ONNX file's sha256."""
        model_sha = self.source.get("model_sha256")
        if not model_sha:
            return self.onnx_sha256
        ident = {"model_sha256": model_sha, "stream_names": list(self.stream_names), "lmd": self.lmd}
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()

    @property
    def outputs(self) -> tuple[str, ...]:
        """Output names in graph order."""
        return tuple(o.name for o in self.output_specs)

    @property
    def input_names(self) -> tuple[str, ...]:
        """Input names in graph order."""
        return tuple(i.name for i in self.inputs)

    @property
    def modalities(self) -> dict[str, str | None]:
        """Input name -> modality name (None for inputs of no modality, e.g. calibration)."""
        return {i.name: i.modality for i in self.inputs}

    @property
    def model_outputs(self) -> tuple[str, ...]:
        """Names of the model's own outputs (not the stream tensors)."""
        return tuple(o.name for o in self.output_specs if o.stream_of is None)

    @property
    def stream_outputs(self) -> dict[str, str]:
        """Model output name -> name of the output holding its streams."""
        return {o.stream_of: o.name for o in self.output_specs if o.stream_of is not None}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (the content of metadata.json)."""
        return {
            "format_version": self.format_version,
            "inputs": [{"name": i.name, "shape": list(i.shape), "dtype": i.dtype, "modality": i.modality}
                       for i in self.inputs],
            "outputs": [{"name": o.name, "shape": list(o.shape), "dtype": o.dtype, "stream_of": o.stream_of}
                        for o in self.output_specs],
            "stream_names": list(self.stream_names),
            "decomposed": self.decomposed,
            "classes": list(self.classes),
            "decoding": self.decoding,
            "bev_grid": self.bev_grid,
            "preprocessing": self.preprocessing,
            "source": self.source,
            "exporter": self.exporter,
            "lmd": self.lmd,
            "verification": self.verification,
            "onnx_file": self.onnx_file,
            "onnx_sha256": self.onnx_sha256,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: Any, path: str | Path = METADATA_FILE) -> PackageMetadata:
        """Parse and validate metadata; raise PackageError naming ``path`` on any problem."""
        if not isinstance(data, dict):
            raise PackageError(path, f"metadata must be a JSON object, got {type(data).__name__}")
        version = data.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise PackageError(path, f"format_version must be an integer, got {version!r}")
        if version > FORMAT_VERSION:
            raise PackageError(path, f"package format version {version} is newer than the supported version "
                                     f"{FORMAT_VERSION}: upgrade fusion_monitor to read it")
        if version < 1:
            raise PackageError(path, f"format_version {version} is invalid (versions start at 1)")
        known = {"format_version", "inputs", "outputs", "stream_names", "decomposed", "classes", "decoding",
                 "bev_grid", "preprocessing", "source", "exporter", "lmd", "verification", "onnx_file",
                 "onnx_sha256", "extra"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PackageError(path, f"unknown metadata keys {unknown} (known: {sorted(known)})")
        inputs = tuple(_parse_input(x, k, path) for k, x in enumerate(_list(data, "inputs", path)))
        outputs = tuple(_parse_output(x, k, path) for k, x in enumerate(_list(data, "outputs", path)))
        if not inputs:
            raise PackageError(path, "metadata lists no inputs")
        if not outputs:
            raise PackageError(path, "metadata lists no outputs")
        for what, names in (("input", [i.name for i in inputs]), ("output", [o.name for o in outputs])):
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise PackageError(path, f"duplicate {what} names {dup}")
        streams = tuple(_str_list(data.get("stream_names", []), "stream_names", path))
        decomposed = data.get("decomposed", False)
        if not isinstance(decomposed, bool):
            raise PackageError(path, f"decomposed must be true or false, got {decomposed!r}")
        if decomposed and not streams:
            raise PackageError(path, "decomposed package lists no stream_names")
        names = {o.name for o in outputs}
        for o in outputs:
            if o.stream_of is None:
                continue
            if not decomposed:
                raise PackageError(path, f"output {o.name!r} is a stream tensor but the package is not decomposed")
            if o.stream_of not in names:
                raise PackageError(path, f"output {o.name!r} decomposes unknown output {o.stream_of!r}")
            if not o.shape or o.shape[0] != len(streams):
                raise PackageError(path, f"stream output {o.name!r} has shape {list(o.shape)}; its leading axis must "
                                         f"be len(stream_names) = {len(streams)}")
        kwargs: dict[str, Any] = {}
        for key in ("decoding", "bev_grid", "preprocessing", "source", "exporter", "lmd", "verification", "extra"):
            value = data.get(key, {})
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise PackageError(path, f"{key} must be a JSON object, got {type(value).__name__}")
            kwargs[key] = value
        onnx_file = data.get("onnx_file", ONNX_FILE)
        if not isinstance(onnx_file, str) or not onnx_file or Path(onnx_file).name != onnx_file:
            raise PackageError(path, f"onnx_file must be a plain file name inside the package, got {onnx_file!r}")
        sha = data.get("onnx_sha256", "")
        if not isinstance(sha, str):
            raise PackageError(path, f"onnx_sha256 must be a string, got {sha!r}")
        return cls(inputs=inputs, output_specs=outputs, stream_names=streams, decomposed=decomposed,
                   classes=tuple(_str_list(data.get("classes", []), "classes", path)),
                   onnx_file=onnx_file, onnx_sha256=sha, format_version=version, **kwargs)


def _list(data: dict, key: str, path) -> list:
    value = data.get(key)
    if not isinstance(value, list):
        raise PackageError(path, f"{key} must be a list, got {type(value).__name__}")
    return value


def _str_list(value: Any, key: str, path) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PackageError(path, f"{key} must be a list of strings, got {value!r}")
    return value


def _shape(value: Any, where: str, path) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value):
        raise PackageError(path, f"{where}: shape must be a list of non-negative integers, got {value!r}")
    return tuple(value)


def _dtype(value: Any, where: str, path) -> str:
    if value not in SUPPORTED_DTYPES:
        raise PackageError(path, f"{where}: dtype {value!r} is not one of {list(SUPPORTED_DTYPES)}")
    return value


def _parse_input(x: Any, k: int, path) -> InputSpec:
    if not isinstance(x, dict) or not isinstance(x.get("name"), str):
        raise PackageError(path, f"inputs[{k}] must be an object with a string name, got {x!r}")
    where = f"input {x['name']!r}"
    modality = x.get("modality")
    if modality is not None and not isinstance(modality, str):
        raise PackageError(path, f"{where}: modality must be a string or null, got {modality!r}")
    return InputSpec(x["name"], _shape(x.get("shape"), where, path), _dtype(x.get("dtype"), where, path), modality)


def _parse_output(x: Any, k: int, path) -> OutputSpec:
    if not isinstance(x, dict) or not isinstance(x.get("name"), str):
        raise PackageError(path, f"outputs[{k}] must be an object with a string name, got {x!r}")
    where = f"output {x['name']!r}"
    stream_of = x.get("stream_of")
    if stream_of is not None and not isinstance(stream_of, str):
        raise PackageError(path, f"{where}: stream_of must be a string or null, got {stream_of!r}")
    return OutputSpec(x["name"], _shape(x.get("shape"), where, path), _dtype(x.get("dtype"), where, path), stream_of)


@dataclass(frozen=True)
class ModelPackage:
    """A loaded, validated model package.

    Attributes
    ----------
    path : Path
        The package directory.
    metadata : PackageMetadata
        Its parsed metadata.
    """

    path: Path
    metadata: PackageMetadata

    @property
    def onnx_path(self) -> Path:
        """The ONNX graph file."""
        return self.path / self.metadata.onnx_file

    @property
    def metadata_path(self) -> Path:
        """The metadata file."""
        return self.path / METADATA_FILE

    @property
    def checkpoint_path(self) -> Path | None:
        """The PyTorch checkpoint inside the package, or None when the package has none."""
        name = self.metadata.source.get("checkpoint")
        return self.path / name if name else None

    @property
    def engine_dir(self) -> Path:
        """Default TensorRT engine cache directory of this package."""
        return self.path / ENGINE_DIR


def file_sha256(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            h.update(chunk)
    return h.hexdigest()


def read_metadata(path: str | Path) -> PackageMetadata:
    """Read and validate a metadata.json file (raises PackageError naming it)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PackageError(path, "metadata file is missing") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PackageError(path, f"cannot read metadata: {e}") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise PackageError(path, f"metadata is not valid JSON: {e}") from e
    return PackageMetadata.from_dict(data, path)


def write_metadata(path: str | Path, metadata: PackageMetadata) -> None:
    """Write metadata.json (sorted, indented, UTF-8)."""
    Path(path).write_text(json.dumps(metadata.to_dict(), indent=2, sort_keys=False) + "\n", encoding="utf-8")


def _onnx_dtype_name(elem_type: int) -> str:
    import onnx

    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).name
    except (KeyError, TypeError, ValueError):
        return f"onnx-type-{elem_type}"


def _graph_io(vi) -> tuple[str, tuple[int | str, ...], str]:
    t = vi.type.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim)
    return vi.name, dims, _onnx_dtype_name(t.elem_type)


def _shape_matches(graph_dims: tuple, shape: tuple[int, ...]) -> bool:
    if len(graph_dims) != len(shape):
        return False
    return all(isinstance(g, str) or g == s for g, s in zip(graph_dims, shape))


def check_graph_matches(onnx_path: str | Path, metadata: PackageMetadata) -> None:
    """Parse the ONNX file and check its inputs and outputs against the metadata.

    Raises
    ------
    PackageError
        Naming the ONNX file when it is unreadable (corrupt, truncated, not ONNX) or when an
        input/output name, order, rank, dimension or dtype differs from the metadata.
    """
    import onnx
    from google.protobuf.message import DecodeError

    onnx_path = Path(onnx_path)
    try:
        proto = onnx.load(str(onnx_path), load_external_data=False)
    except FileNotFoundError:
        raise PackageError(onnx_path, "ONNX file is missing") from None
    except (DecodeError, OSError, ValueError, RuntimeError) as e:
        raise PackageError(onnx_path, f"not a readable ONNX model (corrupt or truncated?): {e}") from e
    if not proto.graph.node:
        raise PackageError(onnx_path, "ONNX graph has no nodes (corrupt, truncated or empty file)")
    initializers = {t.name for t in proto.graph.initializer}
    graph_inputs = [_graph_io(v) for v in proto.graph.input if v.name not in initializers]
    graph_outputs = [_graph_io(v) for v in proto.graph.output]
    md_in = [i.name for i in metadata.inputs]
    if [g[0] for g in graph_inputs] != md_in:
        raise PackageError(onnx_path, f"graph inputs {[g[0] for g in graph_inputs]} do not match the metadata "
                                      f"inputs {md_in}")
    md_out = list(metadata.outputs)
    if [g[0] for g in graph_outputs] != md_out:
        raise PackageError(onnx_path, f"graph outputs {[g[0] for g in graph_outputs]} do not match the metadata "
                                      f"outputs {md_out}")
    pairs = list(zip(graph_inputs, metadata.inputs)) + list(zip(graph_outputs, metadata.output_specs))
    for (name, dims, dtype), spec in pairs:
        kind = "input" if isinstance(spec, InputSpec) else "output"
        if dims and not _shape_matches(dims, spec.shape):
            raise PackageError(onnx_path, f"{kind} {name!r}: graph shape {list(dims)} does not match the metadata "
                                          f"shape {list(spec.shape)}")
        if dtype != spec.dtype:
            raise PackageError(onnx_path, f"{kind} {name!r}: graph dtype {dtype} does not match the metadata "
                                          f"dtype {spec.dtype}")


def load_package(path: str | Path, *, verify_hash: bool = True) -> ModelPackage:
    """Load and validate a model package directory.

    Parameters
    ----------
    path : str or Path
        The package directory (containing metadata.json).
    verify_hash : bool
        Check the ONNX file's sha256 against the metadata (catches truncated or swapped graphs).

    Returns
    -------
    ModelPackage

    Raises
    ------
    PackageError
        Naming the offending file and the mismatch: missing directory or files, invalid or
        newer-format metadata, corrupt/truncated ONNX, hash or graph I/O mismatch.
    """
    path = Path(path)
    if not path.is_dir():
        raise PackageError(path, "model package directory does not exist" if not path.exists()
                           else "a model package is a directory, not a file")
    metadata = read_metadata(path / METADATA_FILE)
    package = ModelPackage(path=path, metadata=metadata)
    onnx_path = package.onnx_path
    if not onnx_path.is_file():
        raise PackageError(onnx_path, "ONNX file named by the metadata is missing")
    if verify_hash and metadata.onnx_sha256:
        actual = file_sha256(onnx_path)
        if actual != metadata.onnx_sha256:
            raise PackageError(onnx_path, f"sha256 {actual[:16]}... does not match the metadata's "
                                          f"{metadata.onnx_sha256[:16]}... (file modified, truncated or swapped)")
    check_graph_matches(onnx_path, metadata)
    ckpt = package.checkpoint_path
    if ckpt is not None and not ckpt.is_file():
        raise PackageError(ckpt, "checkpoint named by the metadata (source.checkpoint) is missing")
    return package
