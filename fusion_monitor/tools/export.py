"""`fusion-monitor export`: a PyTorch model (+ LMD streams) to a verified model package, optionally a TensorRT engine."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXAMPLE_HELP = ("example inputs: NAME=DIMS[:DTYPE],... (e.g. camera=1x6x3x96x176,lidar=1x10x128x128:float32; "
                "dtype defaults to float32; values are seeded random) or a .npz / .pt file of tensors by input name")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("source (one of --model or --package)")
    src.add_argument("--model", metavar="MODULE:CALLABLE", help="importable factory returning a torch.nn.Module")
    src.add_argument("--model-kwargs", metavar="JSON", default=None, help="keyword arguments of the factory, as JSON")
    src.add_argument("--checkpoint", metavar="FILE", help="weights: a state dict (or a dict with 'state_dict'/'model')")
    src.add_argument("--package", metavar="DIR", help="an existing package (with --engine: build its engine only)")
    parser.add_argument("--example", metavar="SPEC", help=EXAMPLE_HELP)
    parser.add_argument("--seed", type=int, default=0, help="seed of random example values (default 0)")
    parser.add_argument("--modalities", metavar="SPEC", default=None,
                        help="input=modality,... with 'none' for inputs of no modality (e.g. camera=camera,"
                             "lidar=lidar,calib=none); default: each input is its own modality")
    parser.add_argument("--plain", action="store_true", help="export the plain model, without LMD streams")
    parser.add_argument("--out", metavar="DIR", help="package directory to write")
    parser.add_argument("--force", action="store_true", help="replace an existing package at --out")
    parser.add_argument("--metadata", metavar="FILE", default=None,
                        help="JSON or YAML object of extra metadata (classes, decoding, bev_grid, preprocessing, ...)")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    parser.add_argument("--bn-rule", default=None, help="LMD BatchNorm rule (default: the LMD engine's)")
    parser.add_argument("--norm-rule", default=None, help="LMD normalisation rule (default: the LMD engine's)")
    eng = parser.add_argument_group("TensorRT engine (build-only: build, validate against ONNX Runtime, exit)")
    eng.add_argument("--engine", action="store_true", help="build the TensorRT engine into the package's engine cache")
    eng.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32", help="engine precision")
    eng.add_argument("--workspace-mib", type=int, default=1024, help="builder workspace limit in MiB (default 1024)")
    eng.add_argument("--device-id", type=int, default=0, help="CUDA device index (default 0)")


def _fail(message: str, code: int = 2) -> int:
    print(f"fusion-monitor export: error: {message}", file=sys.stderr)
    return code


def _read_metadata_file(path: str) -> dict:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"{p}: cannot read metadata file: {e}") from e
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as e:  # json / yaml parse errors
        raise ValueError(f"{p}: cannot parse metadata file: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"{p}: metadata file must hold an object (mapping), got {type(data).__name__}")
    return data


def run(args: argparse.Namespace) -> int:
    from fusion_monitor.inference import ExportError, InferenceError, ParityError, load_package, write_package
    from fusion_monitor.inference.examples import parse_example_spec, parse_modalities
    from fusion_monitor.inference.factory import build_model

    if bool(args.model) == bool(args.package):
        return _fail("give exactly one of --model MODULE:CALLABLE (export) or --package DIR (engine only)")
    example = None
    try:
        if args.example:
            example = parse_example_spec(args.example, seed=args.seed)
        modalities = parse_modalities(args.modalities)
        extra = _read_metadata_file(args.metadata) if args.metadata else {}
        kwargs = json.loads(args.model_kwargs) if args.model_kwargs else {}
        if not isinstance(kwargs, dict):
            raise ValueError(f"--model-kwargs must be a JSON object, got {args.model_kwargs!r}")
    except (ValueError, json.JSONDecodeError) as e:
        return _fail(str(e))

    try:
        if args.model:
            if not args.out:
                return _fail("--out DIR is required with --model")
            if example is None:
                return _fail("--example SPEC is required with --model")
            model = build_model(args.model, args.checkpoint, kwargs)
            lmd_options = {k: v for k, v in (("bn_rule", args.bn_rule), ("norm_rule", args.norm_rule)) if v}
            package = write_package(args.out, model, example, modalities, decomposed=not args.plain,
                                    extra_metadata=extra, factory=args.model, factory_kwargs=kwargs, opset=args.opset,
                                    lmd_options=lmd_options, overwrite=args.force)
            md = package.metadata
            print(f"wrote {package.path}: {'decomposed' if md.decomposed else 'plain'}, inputs "
                  f"{[f'{i.name}{list(i.shape)}' for i in md.inputs]}, outputs {list(md.outputs)}, "
                  f"ONNX Runtime vs PyTorch max relative error {md.verification['max_relative_error']:.2e}")
        else:
            package = load_package(args.package)
            if not args.engine:
                return _fail("--package only makes sense with --engine (build the engine of an existing package)")
        if args.engine:
            from fusion_monitor.inference.tensorrt_backend import build_and_validate

            if example is not None:
                names = set(package.metadata.input_names)
                example = {k: v for k, v in example.items() if k in names}
            backend, errors = build_and_validate(package, example, precision=args.precision,
                                                 workspace_mib=args.workspace_mib, device_id=args.device_id)
            worst = max(errors.values())
            print(f"built {backend.engine_path} ({args.precision}, TensorRT {backend.key.tensorrt_version}, "
                  f"{backend.key.gpu_name} sm {backend.key.compute_capability}); max relative error vs "
                  f"ONNX Runtime {worst:.2e}")
            backend.close()
    except ParityError as e:
        return _fail(str(e), code=1)
    except (ExportError, InferenceError, ValueError) as e:
        return _fail(str(e))
    return 0
