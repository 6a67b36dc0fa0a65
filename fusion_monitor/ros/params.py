"""Every parameter of the fusion_monitor node, declared once: type, default, description, range.

The table ``PARAMETERS`` is the single source of truth. The node declares it (ParameterDescriptor
with description, range, read_only), config/fusion_monitor.param.yaml holds its defaults and
config/fusion_monitor.param.schema.json its JSON schema; both files are generated from it:

    python -m fusion_monitor.ros.params --write-config config/

Parameters that are not ``read_only`` are tunable at runtime (``ros2 param set``); new values
are validated by range/choices here, then by the pipeline (``Pipeline.set_thresholds``).

This module imports no ROS package, so the offline tools and tests can read the table.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NODE_NAME = "fusion_monitor"

# Parameters read by the node itself (not thresholds of the pipeline); every other parameter is
# passed to fusion_monitor.pipeline.PipelineConfig.from_params (which may ignore these prefixes).
NODE_ONLY_PREFIXES = ("qos.", "output.", "trigger.")


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter.

    ``default`` fixes the type (bool, int, float, str). ``min_value``/``max_value`` bound numbers
    (inclusive), ``choices`` bounds strings. ``read_only`` parameters are structural (set at start
    from the params file or ``--ros-args -p``), the others are runtime-tunable thresholds.
    """

    name: str
    default: bool | int | float | str
    description: str
    min_value: float | None = None
    max_value: float | None = None
    choices: tuple[str, ...] | None = None
    read_only: bool = False

    @property
    def type_name(self) -> str:
        """'bool', 'int', 'double' or 'string'."""
        if isinstance(self.default, bool):
            return "bool"
        if isinstance(self.default, int):
            return "int"
        if isinstance(self.default, float):
            return "double"
        return "string"

    @property
    def for_pipeline(self) -> bool:
        return not self.name.startswith(NODE_ONLY_PREFIXES)

    def validate(self, value: Any) -> str | None:
        """None when ``value`` is acceptable, else a sentence naming the parameter and the bound."""
        t = self.type_name
        ok_type = {
            "bool": isinstance(value, bool),
            "int": isinstance(value, int) and not isinstance(value, bool),
            "double": isinstance(value, float),
            "string": isinstance(value, str),
        }[t]
        if not ok_type:
            return f"{self.name}: expected a {t}, got {value!r} ({type(value).__name__})"
        if t in ("int", "double"):
            if t == "double" and not math.isfinite(value):
                return f"{self.name}: {value!r} is not finite"
            if self.min_value is not None and value < self.min_value:
                return f"{self.name}: {value!r} is below the minimum {self.min_value!r}"
            if self.max_value is not None and value > self.max_value:
                return f"{self.name}: {value!r} is above the maximum {self.max_value!r}"
        if self.choices is not None and value not in self.choices:
            return f"{self.name}: {value!r} is not one of {list(self.choices)}"
        return None


PARAMETERS: tuple[ParamSpec, ...] = (
    # --- structural: model, rig, inputs (read-only) ---
    ParamSpec("model.package", "", "model package folder (model.onnx + manifest); empty = the shipped "
              "reference model in models/", read_only=True),
    ParamSpec("model.backend", "auto", "inference backend for the decomposed detector (auto: TensorRT when "
              "usable, else ONNX Runtime)", choices=("auto", "onnxruntime", "pytorch", "torch", "tensorrt"),
              read_only=True),
    ParamSpec("model.num_threads", 0, "CPU threads for the backend (0 = backend default)",
              min_value=0, max_value=256, read_only=True),
    ParamSpec("model.thread_spinning", False, "ONNX Runtime: idle inference threads busy-wait between operators. "
              "Off in the node: its executor, JPEG decode and health work need the cores that spinning threads "
              "burn (node benchmark, full rig at real rates, 2 cores: 8.2-8.5 fps at 133 % CPU off vs 7.2-7.9 fps "
              "at 165 % on); ONNX Runtime's default (on) is up to 1.5x faster for inference alone (replay keeps it)",
              read_only=True),
    ParamSpec("pipeline.parallel_checks", True, "run a frame's raw-signal checks on their own thread beside "
              "inference: shorter frames when a core is free (node benchmark, 2 cores: latency p99 129-163 ms, no "
              "dropped trigger vs 192-234 ms and 2-13 dropped); replay keeps them serial (a fleet worker owns one "
              "core)", read_only=True),
    ParamSpec("pipeline.overlap_frames", False, "two frames in flight: the next frame's preprocessing and "
              "inference run while the previous one is decoded, checked and published (a worker and a finish "
              "thread). For machines with cores to spare: on the 2-core benchmark machine it was not better "
              "(three interleaved 45 s pairs, LMD on: latency p99 231 / 186 / 226 ms on vs 152 / 126 / 150 ms off)",
              read_only=True),
    ParamSpec("rig.profile", "", "rig profile YAML (sensor names, topics, calibration); empty = the shipped "
              "nuScenes rig", read_only=True),
    ParamSpec("lmd.enabled", True, "compute Layer-Wise Modality Decomposition (per-modality shares and BEV "
              "contribution maps); off = plain detector", read_only=True),
    ParamSpec("qos.sensor.reliability", "best_effort", "reliability of the sensor subscriptions "
              "(sensor-data QoS is best_effort)", choices=("best_effort", "reliable"), read_only=True),
    ParamSpec("qos.sensor.depth", 5, "history depth (keep last) of the sensor subscriptions",
              min_value=1, max_value=1000, read_only=True),
    ParamSpec("trigger.sensor", "", "LiDAR whose messages trigger processing; empty = the rig's first LiDAR",
              read_only=True),
    ParamSpec("output.diagnostics_rate_hz", 5.0, "rate of the /diagnostics timer (wall clock cadence, node-clock "
              "ages), published even when every input is silent", min_value=0.2, max_value=100.0,
              read_only=True),
    ParamSpec("output.bev_maps", True, "publish per-modality BEV contribution maps on ~/attribution/<modality>",
              read_only=True),
    # --- runtime-tunable ---
    ParamSpec("trigger.rate_hz", 10.0, "processing rate: LiDAR sweeps closer than 1/rate to the last trigger are "
              "skipped (10 Hz = every other sweep of a 20 Hz LiDAR)", min_value=0.1, max_value=100.0),
    ParamSpec("model.score_threshold", 0.3, "minimum detection score kept by decode", min_value=0.0, max_value=1.0),
    ParamSpec("sync.max_camera_age_ms", 120.0, "a camera older than this at the trigger is masked and reported "
              "stale (about one camera period plus margin)", min_value=1.0, max_value=10000.0, read_only=True),
    ParamSpec("sync.max_radar_age_ms", 150.0, "a radar older than this at the trigger is masked",
              min_value=1.0, max_value=10000.0, read_only=True),
    ParamSpec("sync.max_lidar_age_ms", 150.0, "a LiDAR older than this at the trigger is masked",
              min_value=1.0, max_value=10000.0, read_only=True),
    ParamSpec("output.min_score", 0.0, "detections below this score get no marker (display only)",
              min_value=0.0, max_value=1.0),
    ParamSpec("output.marker_lifetime_s", 1.0, "fallback lifetime of markers (vanished ids are DELETEd "
              "explicitly)", min_value=0.0, max_value=3600.0),
)

# fallback health thresholds for when fusion_monitor.health.config is absent (names match it)
_FALLBACK_HEALTH = (
    ParamSpec("health.liveness.stale_timeout_ms", 250.0, "a sensor silent for longer than this (node clock) is "
              "STALE", min_value=1.0, max_value=60000.0),
    ParamSpec("health.debounce.raise_count", 3, "bad results (k of the last n) needed before a check raises",
              min_value=1, max_value=1000),
    ParamSpec("health.camera.dark_threshold", 0.1, "mean luma below which the camera is WARN (dark)",
              min_value=0.0, max_value=1.0),
)


def _health_parameters() -> tuple[ParamSpec, ...]:
    """Every health threshold (fusion_monitor.health.config.describe), all runtime-tunable."""
    try:
        from fusion_monitor.health.config import describe
    except ImportError:
        return _FALLBACK_HEALTH
    return tuple(ParamSpec(d.name, d.default, d.description, d.min_value, d.max_value) for d in describe())


PARAMETERS = PARAMETERS + _health_parameters()
BY_NAME: dict[str, ParamSpec] = {p.name: p for p in PARAMETERS}
if len(BY_NAME) != len(PARAMETERS):  # pragma: no cover - table edit error
    raise RuntimeError("duplicate parameter name in PARAMETERS")


def defaults() -> dict[str, Any]:
    """Flat name -> default value."""
    return {p.name: p.default for p in PARAMETERS}


def validate(values: dict[str, Any]) -> list[str]:
    """Errors for unknown names, wrong types and out-of-range values (empty when all are fine)."""
    errors = []
    for name, value in values.items():
        spec = BY_NAME.get(name)
        if spec is None:
            errors.append(f"{name}: not a parameter of {NODE_NAME}")
            continue
        err = spec.validate(value)
        if err:
            errors.append(err)
    return errors


def pipeline_params(values: dict[str, Any]) -> dict[str, Any]:
    """The subset of a flat parameter dict that configures the pipeline."""
    return {k: v for k, v in values.items() if k in BY_NAME and BY_NAME[k].for_pipeline}


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in flat.items():
        d = out
        *parents, leaf = name.split(".")
        for p in parents:
            d = d.setdefault(p, {})
        d[leaf] = value
    return out


def flatten(nested: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Inverse of the YAML nesting: {'a': {'b': 1}} -> {'a.b': 1}."""
    flat: dict[str, Any] = {}
    for k, v in nested.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            flat.update(flatten(v, key + "."))
        else:
            flat[key] = v
    return flat


def _yaml_scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        text = repr(v)
        if "e" in text or "E" in text:  # YAML 1.1 readers take 1e-05 for a string: write it positional
            text = f"{v:.15f}".rstrip("0")
            text = text + "0" if text.endswith(".") else text
        return text
    if isinstance(v, int):
        return str(v)
    return json.dumps(v)


def param_yaml() -> str:
    """The text of config/fusion_monitor.param.yaml: every default, with the /** wildcard, commented."""
    lines = [
        "# fusion_monitor node parameters: every default (generated by",
        "#   python -m fusion_monitor.ros.params --write-config config/",
        "# from fusion_monitor/ros/params.py; schema: fusion_monitor.param.schema.json).",
        "# [ro] = read-only (structural, set at start); others are tunable at runtime with ros2 param set.",
        "/**:",
        "  ros__parameters:",
    ]

    def emit(d: dict[str, Any], indent: int, prefix: str) -> None:
        for k, v in d.items():
            name = f"{prefix}{k}"
            pad = " " * indent
            if isinstance(v, dict):
                lines.append(f"{pad}{k}:")
                emit(v, indent + 2, name + ".")
            else:
                spec = BY_NAME[name]
                bound = ""
                if spec.choices:
                    bound = f" {{{', '.join(spec.choices)}}}"
                elif spec.min_value is not None or spec.max_value is not None:
                    bound = f" [{spec.min_value}, {spec.max_value}]"
                ro = " [ro]" if spec.read_only else ""
                lines.append(f"{pad}# {spec.description}{bound}{ro}")
                lines.append(f"{pad}{k}: {_yaml_scalar(v)}")

    emit(_nest(defaults()), 4, "")
    return "\n".join(lines) + "\n"


def _schema_of(spec: ParamSpec) -> dict[str, Any]:
    t = {"bool": "boolean", "int": "integer", "double": "number", "string": "string"}[spec.type_name]
    s: dict[str, Any] = {"type": t, "description": spec.description, "default": spec.default}
    if spec.min_value is not None:
        s["minimum"] = spec.min_value
    if spec.max_value is not None:
        s["maximum"] = spec.max_value
    if spec.choices is not None:
        s["enum"] = list(spec.choices)
    if spec.read_only:
        s["readOnly"] = True
    return s


def json_schema() -> dict[str, Any]:
    """JSON schema (draft-07, Autoware layout) of the parameter file."""

    def build(d: dict[str, Any], prefix: str) -> dict[str, Any]:
        props = {}
        for k, v in d.items():
            name = f"{prefix}{k}"
            props[k] = build(v, name + ".") if isinstance(v, dict) else _schema_of(BY_NAME[name])
        return {"type": "object", "properties": props, "required": list(d), "additionalProperties": False}

    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": f"Parameters for the {NODE_NAME} node",
        "type": "object",
        "definitions": {NODE_NAME: build(_nest(defaults()), "")},
        "properties": {
            "/**": {
                "type": "object",
                "properties": {"ros__parameters": {"$ref": f"#/definitions/{NODE_NAME}"}},
                "required": ["ros__parameters"],
                "additionalProperties": False,
            }
        },
        "required": ["/**"],
        "additionalProperties": False,
    }


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fusion_monitor.ros.params", description=__doc__.splitlines()[0])
    parser.add_argument("--write-config", metavar="DIR", type=Path, help="write the param YAML and schema to DIR")
    args = parser.parse_args(argv)
    if args.write_config is None:
        sys.stdout.write(param_yaml())
        return 0
    args.write_config.mkdir(parents=True, exist_ok=True)
    (args.write_config / f"{NODE_NAME}.param.yaml").write_text(param_yaml())
    (args.write_config / f"{NODE_NAME}.param.schema.json").write_text(schema_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
