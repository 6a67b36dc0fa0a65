"""The shipped reference detector: loading weights + metadata, ONNX export, one-call inference."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from fusion_monitor.model.build import build_model
from fusion_monitor.model.decode import NMS_RADIUS_M, Detections, decode
from fusion_monitor.model.lift import LIFT_GRID, LIFT_LEVELS_Z_M
from fusion_monitor.model.network import REFERENCE_ARCHITECTURE, REG_CHANNELS, ReferenceDetector
from fusion_monitor.sensors.preprocess import DEFAULT_SPEC, MODALITY_ORDER, InputSpec
from fusion_monitor.sim.world import CLASSES

INPUT_NAMES = ("camera", "lidar", "radar", "present")
OUTPUT_NAMES = ("heatmap", "regression")
#: LMD modality map: input name -> modality (``present`` is not a modality input).
MODALITIES = {"camera": "camera", "lidar": "lidar", "radar": "radar", "present": None}
REGRESSION_CHANNELS = ("dx", "dy", "z", "log_l", "log_w", "log_h", "sin_yaw", "cos_yaw", "vx", "vy")


def default_model_dir() -> Path:
    """models/reference of the source tree, or $FUSION_MONITOR_MODEL_DIR."""
    env = os.environ.get("FUSION_MONITOR_MODEL_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "models" / "reference"


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def example_inputs(spec: InputSpec = DEFAULT_SPEC, batch: int = 1, seed: int = 0) -> dict[str, torch.Tensor]:
    """Deterministic random inputs of the right shapes (all modalities present)."""
    g = torch.Generator().manual_seed(seed)
    H, W = spec.image_hw
    G = spec.grid
    return {
        "camera": torch.randn(batch, len(spec.camera_names), 3, H, W, generator=g),
        "lidar": torch.rand(batch, 10, G, G, generator=g) * (torch.rand(batch, 10, G, G, generator=g) < 0.05),
        "radar": torch.rand(batch, 6, G, G, generator=g) * (torch.rand(batch, 6, G, G, generator=g) < 0.01),
        "present": torch.ones(batch, 3),
    }


def metadata(spec: InputSpec = DEFAULT_SPEC, extra: dict | None = None) -> dict:
    """Metadata JSON of the reference model (input/output names and shapes, classes, grids, preprocessing)."""
    H, W = spec.image_hw
    G = spec.grid
    md = {
        "name": "fusion_monitor reference detector (R0-lite, 32/64-channel trunk)",
        "architecture": dict(REFERENCE_ARCHITECTURE),
        "format_version": 1,
        "classes": list(CLASSES),
        "modality_order": list(MODALITY_ORDER),
        "modalities": MODALITIES,
        "inputs": {
            "camera": {"shape": [1, len(spec.camera_names), 3, H, W], "dtype": "float32",
                       "layout": "B, camera slot (camera_names), RGB, H, W; (x/255 - mean)/std"},
            "lidar": {"shape": [1, 10, G, G], "dtype": "float32", "layout": "fusion_monitor.sensors.preprocess.lidar_raster"},
            "radar": {"shape": [1, 6, G, G], "dtype": "float32", "layout": "fusion_monitor.sensors.preprocess.radar_raster"},
            "present": {"shape": [1, 3], "dtype": "float32",
                        "layout": "1/0 per modality in modality_order; 0 zeroes that modality's pre-fusion BEV feature"},
        },
        "outputs": {
            "heatmap": {"shape": [1, len(CLASSES), G, G], "meaning": "class heat-map logits (sigmoid -> score)"},
            "regression": {"shape": [1, REG_CHANNELS, G, G], "channels": list(REGRESSION_CHANNELS)},
        },
        "input_spec": spec.to_dict(),
        "bev": {"range_m": spec.range_m, "cell_m": spec.cell_m, "grid": G, "frame": "base_link",
                "row_axis": "+x (forward)", "col_axis": "+y (left)"},
        "lift": {"levels_z_m": list(LIFT_LEVELS_Z_M), "grid": LIFT_GRID, "stride": 8, "max_cameras": 2, "rig": "nuscenes"},
        "decode": {"score_threshold": 0.1, "top_k": 200, "max_boxes": 500, "nms_radius_m": NMS_RADIUS_M},
    }
    if extra:
        md.update(extra)
    return md


#: Trunk of releases whose metadata predates the "architecture" key (the 48/96-channel, 2-block trunk).
LEGACY_ARCHITECTURE = {"width": 48, "trunk_blocks": 2}


def architecture(md: dict) -> dict:
    """``build_model`` keyword arguments for the trunk a release's metadata describes."""
    return dict(md.get("architecture", LEGACY_ARCHITECTURE))


def load_reference(device: str = "cpu", model_dir: str | Path | None = None, verify: bool = True
                   ) -> tuple[ReferenceDetector, dict]:
    """The shipped reference detector in eval mode and its metadata.

    Raises FileNotFoundError when the weights are missing, ValueError when their sha256 does not match the metadata.
    """
    d = Path(model_dir) if model_dir is not None else default_model_dir()
    md_path, w_path = d / "metadata.json", d / "weights.pt"
    for p in (md_path, w_path):
        if not p.is_file():
            raise FileNotFoundError(f"reference model file {p} is missing")
    md = json.loads(md_path.read_text())
    if verify and "files" in md and "weights.pt" in md["files"]:
        got = sha256(w_path)
        if got != md["files"]["weights.pt"]["sha256"]:
            raise ValueError(f"{w_path}: sha256 {got} does not match metadata {md['files']['weights.pt']['sha256']}")
    spec = InputSpec.from_dict(md["input_spec"])
    model = build_model(spec=spec, num_classes=len(md["classes"]), **architecture(md))
    state = torch.load(w_path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval(), md


def export_onnx(model: ReferenceDetector, path: str | Path, spec: InputSpec = DEFAULT_SPEC, opset: int = 17) -> Path:
    """Export the plain detector (no decode) to ONNX with inputs camera, lidar, radar, present."""
    path = Path(path)
    model = model.eval()
    ex = example_inputs(spec)
    torch.onnx.export(model, (), str(path), kwargs=ex, input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                      opset_version=opset, dynamo=False)
    return path


def infer(model: ReferenceDetector, inputs: dict[str, np.ndarray], spec: InputSpec = DEFAULT_SPEC,
          score_threshold: float = 0.1) -> Detections:
    """Run the model on one preprocessed frame (fusion_monitor.sensors.preprocess.preprocess_frame().inputs)."""
    missing = [n for n in INPUT_NAMES if n not in inputs]
    if missing:
        raise ValueError(f"model inputs lack {missing}")
    H, W = spec.image_hw
    G = spec.grid
    want = {"camera": (1, len(spec.camera_names), 3, H, W), "lidar": (1, 10, G, G), "radar": (1, 6, G, G),
            "present": (1, 3)}
    for k, shape in want.items():
        got = tuple(np.shape(inputs[k]))
        if got != shape:
            raise ValueError(f"input {k!r} has shape {got}, the model expects {shape}")
    with torch.no_grad():
        out = model(**{k: torch.as_tensor(np.asarray(inputs[k], np.float32)) for k in INPUT_NAMES})
    return decode(out["heatmap"][0].numpy(), out["regression"][0].numpy(), spec, score_threshold=score_threshold)
