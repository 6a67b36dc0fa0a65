"""Build the shipped model packages from the trained reference detector (models/reference).

    ./run.sh exec python scripts/build_reference_package.py

Writes models/reference/package (the decomposed detector: outputs + LMD streams in one ONNX graph,
verified against PyTorch by ONNX Runtime) and models/reference/package_plain (the plain detector,
used when lmd.enabled is false). Both carry the checkpoint and factory, so the PyTorch backend runs
either. After rebuilding `package`, refit the attribution baselines keyed by its ONNX hash.
"""

import argparse
from pathlib import Path

from fusion_monitor.inference.export import write_package
from fusion_monitor.model import MODALITIES, example_inputs, load_reference
from fusion_monitor.model.reference import architecture
from fusion_monitor.sensors.preprocess import InputSpec

OUT = Path(__file__).resolve().parents[1] / "models" / "reference"


def main() -> None:
    ap = argparse.ArgumentParser(description="build the shipped model packages")
    ap.add_argument("--only", choices=("package", "package_plain"), help="build one of the two packages")
    args = ap.parse_args()
    model, md = load_reference()
    spec = InputSpec.from_dict(md["input_spec"])
    extra = {
        "classes": md["classes"],
        "preprocessing": {"input_spec": md["input_spec"]},
        "decoding": {"heatmap_output": "heatmap", "regression_output": "regression", **md.get("decode", {})},
        "bev_grid": md.get("bev", {}),
        "model_card": "models/README.md",
        "name": md.get("name", "reference detector"),
    }
    for name, decomposed in (("package", True), ("package_plain", False)):
        if args.only and name != args.only:
            continue
        pkg = write_package(OUT / name, model, example_inputs(spec), MODALITIES, decomposed=decomposed,
                            extra_metadata=extra, overwrite=True,
                            factory="fusion_monitor.model.build:build_model",
                            factory_kwargs=architecture(md))
        ver = pkg.metadata.verification
        print(f"{OUT / name}: outputs {list(pkg.metadata.outputs)}, ONNX Runtime vs PyTorch max relative error "
              f"{ver.get('max_relative_error'):.2e}")


if __name__ == "__main__":
    main()
