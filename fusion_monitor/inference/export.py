"""Export a PyTorch model (plain, or decomposed by LMD) to a verified model package."""

from __future__ import annotations

import inspect
import logging
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fusion_monitor.inference.errors import ExportError, ParityError
from fusion_monitor.inference.factory import build_model, state_dict_sha256
from fusion_monitor.inference.naming import flatten_named, stream_output_name
from fusion_monitor.inference.package import (
    CHECKPOINT_FILE,
    METADATA_FILE,
    ONNX_FILE,
    SUPPORTED_DTYPES,
    InputSpec,
    ModelPackage,
    OutputSpec,
    PackageMetadata,
    file_sha256,
    load_package,
    write_metadata,
)

log = logging.getLogger(__name__)

DEFAULT_TOLERANCE = 1e-4
"""Largest accepted relative disagreement between ONNX Runtime and PyTorch at export."""

DEFAULT_OPSET = 18
TYPED_EXTRAS = ("classes", "decoding", "bev_grid", "preprocessing")
_TWO_GB = 2**31 - 1


def relative_error(actual: np.ndarray, reference: np.ndarray) -> float:
    """max |actual - reference| / max |reference| (absolute error when the reference is all zero).

    Integer and bool outputs must match exactly: the result is the fraction of differing elements.
    """
    a, r = np.asarray(actual), np.asarray(reference)
    if a.shape != r.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    if not np.issubdtype(r.dtype, np.floating):
        return float(np.mean(a != r))
    a64, r64 = a.astype(np.float64), r.astype(np.float64)
    if not (np.isfinite(a64).all() and np.isfinite(r64).all()):
        same = np.array_equal(np.isnan(a64), np.isnan(r64)) and np.array_equal(a64[~np.isfinite(a64)],
                                                                                 r64[~np.isfinite(r64)])
        if not same:
            return float("inf")
        mask = np.isfinite(r64)
        a64, r64 = a64[mask], r64[mask]
        if a64.size == 0:
            return 0.0
    scale = float(np.max(np.abs(r64)))
    err = float(np.max(np.abs(a64 - r64)))
    return err / scale if scale > 0 else err


def compare_outputs(actual: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Relative error (see :func:`relative_error`) per output name of ``reference``."""
    return {name: relative_error(actual[name], ref) for name, ref in reference.items()}


def _to_tensors(example_inputs: Mapping[str, Any]) -> dict:
    import torch

    if not isinstance(example_inputs, Mapping) or not example_inputs:
        raise ExportError("example_inputs must be a non-empty dict of input name -> tensor or array")
    out = {}
    for name, value in example_inputs.items():
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(np.ascontiguousarray(value))
        if not isinstance(value, torch.Tensor):
            raise ExportError(f"example input {name!r} is a {type(value).__name__}, not a tensor or numpy array")
        dtype = str(value.dtype).removeprefix("torch.")
        if dtype not in SUPPORTED_DTYPES:
            raise ExportError(f"example input {name!r} has dtype {dtype}, not one of {list(SUPPORTED_DTYPES)}")
        out[name] = value.detach().cpu().contiguous()
    return out


def _order_by_signature(model, inputs: dict) -> dict:
    """Check the inputs bind to forward's parameters; return them in signature order."""
    try:
        sig = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return inputs
    params = sig.parameters
    has_var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [n for n in inputs if n not in params]
    if unknown and not has_var_kw:
        raise ExportError(f"example inputs {unknown} are not arguments of {type(model).__name__}.forward"
                          f"{sig} (inputs are named like forward's arguments)")
    missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty
               and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in inputs]
    if missing:
        raise ExportError(f"example inputs lack required arguments {missing} of {type(model).__name__}.forward{sig}")
    ordered = {n: inputs[n] for n in params if n in inputs}
    ordered.update({n: v for n, v in inputs.items() if n not in ordered})
    return ordered


def _np_dtype_name(t) -> str:
    return str(t.dtype).removeprefix("torch.")


def _rename_value(graph, old: str, new: str) -> None:
    """Rename one intermediate value everywhere in ``graph`` (node inputs/outputs, outputs, value_info)."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
    for vi in (*graph.output, *graph.value_info):
        if vi.name == old:
            vi.name = new


def _rename_outputs(proto, names: list[str], onnx_path: Path) -> None:
    """Give the graph outputs the package's names (an Identity per renamed output)."""
    import onnx

    graph = proto.graph
    if len(graph.output) != len(names):
        raise ExportError(f"{onnx_path}: the exported graph has {len(graph.output)} outputs "
                          f"{[o.name for o in graph.output]}, expected {len(names)} ({names})")
    if [o.name for o in graph.output] == names:
        return
    inputs = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    clash = [n for n in names if n in inputs]
    if clash:
        raise ExportError(f"{onnx_path}: output names {clash} are also graph input or initializer names")
    produced = {n for node in graph.node for n in node.output}
    for name in names:  # move intermediate values out of the way of the final names
        if name in produced:
            _rename_value(graph, name, f"{name}__value")
    for out, name in zip(graph.output, names):
        graph.node.append(onnx.helper.make_node("Identity", [out.name], [name], name=f"output_{name}"))
        out.name = name


def _save_onnx(proto, path: Path) -> None:
    import onnx

    if proto.ByteSize() > _TWO_GB:
        onnx.save(proto, str(path), save_as_external_data=True, location=path.name + ".data")
    else:
        onnx.save(proto, str(path))


def _run_ort(onnx_path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.inter_op_num_threads = 1
    try:
        sess = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ExportError(f"{onnx_path}: ONNX Runtime cannot load the exported graph: {e}") from e
    names = [i.name for i in sess.get_inputs()]
    values = sess.run(None, {n: feeds[n] for n in names})
    return {o.name: v for o, v in zip(sess.get_outputs(), values)}


def _prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ExportError(f"{out_dir}: exists and is not a directory")
        if any(out_dir.iterdir()):
            if not overwrite:
                raise ExportError(f"{out_dir}: directory exists and is not empty (pass overwrite=True / --force)")
            if not (out_dir / METADATA_FILE).is_file():
                raise ExportError(f"{out_dir}: refusing to overwrite a non-empty directory that is not a model package")
    out_dir.parent.mkdir(parents=True, exist_ok=True)


def write_package(out_dir: str | Path, model, example_inputs: Mapping[str, Any],
                  modalities: Mapping[str, str | None] | None = None, *, decomposed: bool = True,
                  extra_metadata: Mapping[str, Any] | None = None, factory: str | None = None,
                  factory_kwargs: Mapping[str, Any] | None = None, opset: int = DEFAULT_OPSET,
                  tolerance: float = DEFAULT_TOLERANCE, lmd_options: Mapping[str, Any] | None = None,
                  overwrite: bool = False) -> ModelPackage:
    """Export ``model`` to ONNX, verify ONNX Runtime against PyTorch, and write a model package.

    Parameters
    ----------
    out_dir : str or Path
        Package directory to create (written atomically: a failed export leaves nothing).
    model : torch.nn.Module
        The model; its forward takes the inputs as keyword arguments. It is not modified
        (its training flag is restored).
    example_inputs : dict of str to Tensor or numpy.ndarray
        One example per forward argument; fixes the static input shapes and dtypes.
    modalities : dict of str to str or None, optional
        Input name -> modality (None: no modality, e.g. calibration). Default: every input is
        its own modality.
    decomposed : bool
        True: export the LMD-decomposed model (fusion_monitor.lmd), outputs followed by one
        stream tensor per output. False: export the plain model.
    extra_metadata : dict, optional
        ``classes``, ``decoding``, ``bev_grid`` and ``preprocessing`` go to their metadata
        fields; every other key goes to ``metadata.extra``.
    factory : str, optional
        ``"module:callable"`` that rebuilds the model (for the PyTorch backend). When given,
        the state dict is saved as checkpoint.pt in the package and the factory is checked
        to load it.
    factory_kwargs : dict, optional
        Keyword arguments of the factory (JSON-serialisable).
    opset : int
        ONNX opset of the export.
    tolerance : float
        Largest accepted relative error between ONNX Runtime and PyTorch, per output.
    lmd_options : dict, optional
        Keyword options of ``fusion_monitor.lmd.decompose`` (bn_rule, norm_rule, strict).
    overwrite : bool
        Replace an existing package at ``out_dir``.

    Returns
    -------
    ModelPackage
        The written package, loaded back and validated.

    Raises
    ------
    ExportError
        Bad arguments, export failure, or (ParityError) ONNX Runtime disagreeing with PyTorch
        beyond ``tolerance``; no package is written in either case.
    """
    import onnx
    import onnxruntime as ort
    import torch

    import fusion_monitor

    out_dir = Path(out_dir)
    if not isinstance(model, torch.nn.Module):
        raise ExportError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not (0 < tolerance < 1):
        raise ExportError(f"tolerance must be in (0, 1), got {tolerance}")
    extra = dict(extra_metadata or {})
    unknown_typed = [k for k in ("stream_names", "inputs", "outputs") if k in extra]
    if unknown_typed:
        raise ExportError(f"extra_metadata may not set {unknown_typed}: they are derived from the model")
    ex = _order_by_signature(model, _to_tensors(example_inputs))
    mods = {n: n for n in ex} if modalities is None else dict(modalities)
    unknown_mod = [n for n in mods if n not in ex]
    if unknown_mod:
        raise ExportError(f"modalities name {unknown_mod}, which are not example inputs {list(ex)}")
    missing_mod = [n for n in ex if n not in mods]
    if missing_mod:
        raise ExportError(f"modalities do not say which modality inputs {missing_mod} belong to (use NAME=none)")
    lmd_opts = dict(lmd_options or {})
    _prepare_out_dir(out_dir, overwrite)

    was_training = model.training
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        model.eval()
        raw = tmp / "raw" / ONNX_FILE
        raw.parent.mkdir()
        stream_names: tuple[str, ...] = ()
        with torch.no_grad():
            if decomposed:
                try:
                    from fusion_monitor.lmd import decompose, export_onnx
                except ImportError as e:
                    raise ExportError(f"decomposed export needs fusion_monitor.lmd (decompose, export_onnx): {e}") from e
                lmd_opts = {**_lmd_defaults(decompose), **lmd_opts}
                try:
                    dm = decompose(model, ex, mods, **lmd_opts)
                    result = dm(**ex)
                except Exception as e:  # the LMD engine's own error types name the op / input
                    raise ExportError(f"LMD decomposition of {type(model).__name__} failed: "
                                      f"{type(e).__name__}: {e}") from e
                stream_names = tuple(dm.stream_names)
                named = flatten_named(result.output)
                streamed = flatten_named(result.streams)
                if [n for n, _ in streamed] != [n for n, _ in named]:
                    raise ExportError(f"LMD streams {[n for n, _ in streamed]} do not mirror the outputs "
                                      f"{[n for n, _ in named]}")
                specs = [OutputSpec(n, tuple(t.shape), _np_dtype_name(t)) for n, t in named]
                specs += [OutputSpec(stream_output_name(n), tuple(t.shape), _np_dtype_name(t), n) for n, t in streamed]
                reference = {s.name: t.numpy() for s, (_, t) in zip(specs, named + streamed)}
                try:
                    params = inspect.signature(export_onnx).parameters
                    export_onnx(dm, ex, raw, **({"opset": opset} if "opset" in params else {}))
                except Exception as e:
                    raise ExportError(f"ONNX export of the decomposed {type(model).__name__} failed: "
                                      f"{type(e).__name__}: {e}") from e
                exporter_name = "fusion_monitor.lmd.export_onnx"
            else:
                named = flatten_named(model(**ex))
                specs = [OutputSpec(n, tuple(t.shape), _np_dtype_name(t)) for n, t in named]
                reference = {n: t.numpy() for n, t in named}
                try:
                    with warnings.catch_warnings():
                        warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
                        torch.onnx.export(model, (), str(raw), kwargs=ex, input_names=list(ex),
                                          output_names=[s.name for s in specs], opset_version=opset,
                                          external_data=False, dynamo=True, verbose=False)
                except Exception as e:
                    raise ExportError(f"torch.onnx.export of {type(model).__name__} failed: {e}") from e
                exporter_name = "torch.onnx.export(dynamo=True)"
        for s in specs:
            if s.dtype not in SUPPORTED_DTYPES:
                raise ExportError(f"output {s.name!r} has dtype {s.dtype}, not one of {list(SUPPORTED_DTYPES)}")
        if not raw.is_file():
            raise ExportError(f"{raw}: the exporter wrote no ONNX file")
        proto = onnx.load(str(raw))
        _rename_outputs(proto, [s.name for s in specs], raw)
        initializers = {t.name for t in proto.graph.initializer}
        graph_inputs = [i.name for i in proto.graph.input if i.name not in initializers]
        strange = [n for n in graph_inputs if n not in ex]
        if strange:
            raise ExportError(f"{raw}: graph inputs {strange} are not example inputs {list(ex)}")
        unused = [n for n in ex if n not in graph_inputs]
        if unused:
            log.warning("inputs %s do not reach the outputs; the exporter dropped them from the graph", unused)
            extra["unused_inputs"] = [{"name": n, "shape": list(ex[n].shape), "dtype": _np_dtype_name(ex[n])}
                                      for n in unused]
        opset_used = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), opset)
        onnx_path = tmp / ONNX_FILE
        _save_onnx(proto, onnx_path)
        del proto

        feeds = {n: t.numpy() for n, t in ex.items()}
        got = _run_ort(onnx_path, feeds)
        errors = compare_outputs(got, reference)
        worst = max(errors.values())
        bad = {n: e for n, e in errors.items() if not e <= tolerance}
        if bad:
            detail = ", ".join(f"{n}: {e:.3g}" for n, e in bad.items())
            raise ParityError(f"{out_dir}: ONNX Runtime disagrees with PyTorch beyond {tolerance:g} relative "
                              f"({detail}); package not written")

        source: dict[str, Any] = {"model_sha256": state_dict_sha256(model), "model_class":
                                  f"{type(model).__module__}.{type(model).__qualname__}"}
        if factory is not None:
            torch.save(model.state_dict(), tmp / CHECKPOINT_FILE)
            build_model(factory, tmp / CHECKPOINT_FILE, dict(factory_kwargs or {}))  # proves it reloads
            source.update(factory=factory, factory_kwargs=dict(factory_kwargs or {}), checkpoint=CHECKPOINT_FILE)
        typed = {k: extra.pop(k) for k in TYPED_EXTRAS if k in extra}
        metadata = PackageMetadata(
            inputs=tuple(InputSpec(n, tuple(ex[n].shape), _np_dtype_name(ex[n]), mods[n]) for n in graph_inputs),
            output_specs=tuple(specs),
            stream_names=stream_names,
            decomposed=decomposed,
            classes=tuple(typed.get("classes", ())),
            decoding=dict(typed.get("decoding", {})),
            bev_grid=dict(typed.get("bev_grid", {})),
            preprocessing=dict(typed.get("preprocessing", {})),
            source=source,
            exporter={"fusion_monitor": fusion_monitor.__version__, "exporter": exporter_name,
                      "torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__,
                      "opset": int(opset_used)},
            lmd={"modalities": mods, **{k: v for k, v in lmd_opts.items()}} if decomposed else {"modalities": mods},
            verification={"reference": "pytorch-cpu", "backend": "onnxruntime-cpu", "tolerance": tolerance,
                          "max_relative_error": worst, "relative_error": errors},
            onnx_file=ONNX_FILE,
            onnx_sha256=file_sha256(onnx_path),
            extra=extra,
        )
        # Round-trip through JSON validation before anything becomes visible.
        PackageMetadata.from_dict(_json_roundtrip(metadata.to_dict()), tmp / METADATA_FILE)
        write_metadata(tmp / METADATA_FILE, metadata)
        shutil.rmtree(tmp / "raw")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        model.train(was_training)
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("wrote model package %s (max relative error vs PyTorch %.3g)", out_dir, worst)
    return load_package(out_dir)


def _lmd_defaults(decompose) -> dict[str, Any]:
    """JSON-able keyword defaults of decompose (bn_rule, norm_rule, strict), recorded in the metadata."""
    try:
        params = inspect.signature(decompose).parameters
    except (TypeError, ValueError):
        return {}
    return {k: p.default for k, p in params.items() if k in ("bn_rule", "norm_rule", "strict")
            and p.default is not inspect.Parameter.empty}


def _json_roundtrip(data: dict) -> dict:
    import json

    try:
        return json.loads(json.dumps(data))
    except (TypeError, ValueError) as e:
        raise ExportError(f"metadata is not JSON-serialisable: {e}") from e
