"""One frame in -> detections + per-modality attributions + sensor statuses.

The ROS node and the offline replay are two thin drivers of this class: they convert messages to
numpy (:class:`fusion_monitor.frame.SensorSample`), call :meth:`Pipeline.on_sample` for each, and
:meth:`Pipeline.process` when it says a trigger is due. Nothing here imports ROS.

Stages of :meth:`Pipeline.process`: align (latest sample per sensor, stale ones masked) ->
preprocess (images resized/normalised, LiDAR/radar BEV rasters) -> decomposed detector (one graph
giving the detector's outputs and the LMD streams) -> decode (detections from the full stream;
per-detection shares from the streams at the detection's heat-map peak) -> health (raw and
attribution checks, debounced). :meth:`Pipeline.begin` runs it up to the detector (and the raw
checks), :meth:`Pipeline.finish` the rest, so a driver can overlap two frames.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from fusion_monitor.frame import BevGrid, Detection, FrameResult, SensorSample
from fusion_monitor.sensors.rig import Rig, load_rig
from fusion_monitor.sensors.timesync import LatestCache, SyncPolicy
from fusion_monitor.tracking import Tracker

log = logging.getLogger(__name__)

def _models_dir() -> Path:
    """models/ of the source tree, else the installed share/fusion_monitor/models (colcon, pip)."""
    import sys

    repo = Path(__file__).resolve().parents[1] / "models"
    if repo.is_dir():
        return repo
    try:  # a sourced colcon install space
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("fusion_monitor")) / "models"
    except Exception:
        return Path(sys.prefix) / "share" / "fusion_monitor" / "models"


DEFAULT_PACKAGE = _models_dir() / "reference" / "package"
MODALITIES = ("camera", "lidar", "radar")


class ModelLoadError(RuntimeError):
    """The model package cannot be used (names the path and the reason)."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"model package {path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class PipelineConfig:
    """Frozen configuration of the pipeline (the node's parameters, flattened names)."""

    node_name: str = "fusion_monitor"
    rig_profile: str = ""
    model_package: str = ""
    backend: str = "auto"
    num_threads: int = 0
    thread_spinning: bool = True
    score_threshold: float = 0.3
    lmd_enabled: bool = True
    trigger_sensor: str = ""
    trigger_rate_hz: float = 10.0
    max_camera_age_ms: float = 120.0
    max_radar_age_ms: float = 150.0
    max_lidar_age_ms: float = 150.0
    parallel_checks: bool = False
    health: dict = field(default_factory=dict)  # "health.<group>.<name>" -> value (fusion_monitor.health.HealthConfig)

    _NAMES = {
        "node_name": "node_name", "rig.profile": "rig_profile", "model.package": "model_package",
        "model.backend": "backend", "model.num_threads": "num_threads",
        "model.thread_spinning": "thread_spinning", "model.score_threshold": "score_threshold",
        "lmd.enabled": "lmd_enabled", "trigger.sensor": "trigger_sensor", "trigger.rate_hz": "trigger_rate_hz",
        "sync.max_camera_age_ms": "max_camera_age_ms", "sync.max_radar_age_ms": "max_radar_age_ms",
        "sync.max_lidar_age_ms": "max_lidar_age_ms", "pipeline.parallel_checks": "parallel_checks",
    }

    _NODE_ONLY = ("pipeline.overlap_frames",)  # how the node drives the pipeline, not the pipeline's own

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> PipelineConfig:
        """From flat parameter names (``model.package``, ``health.camera.dark_threshold``, ...).

        Unknown names outside ``health.`` and the node-only groups (qos., output.) raise ValueError.
        """
        kwargs: dict[str, Any] = {}
        health: dict[str, Any] = {}
        for name, value in params.items():
            if name in cls._NAMES:
                kwargs[cls._NAMES[name]] = value
            elif name.startswith("health."):
                health[name] = value
            elif name.startswith(("qos.", "output.", "use_sim_time")) or name in cls._NODE_ONLY:
                continue
            else:
                raise ValueError(f"unknown parameter {name!r}")
        cfg = cls(**kwargs, health=health)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.backend not in ("auto", "onnxruntime", "pytorch", "torch", "tensorrt"):
            raise ValueError(f"model.backend {self.backend!r}: expected auto, onnxruntime, pytorch or tensorrt")
        if not self.trigger_rate_hz > 0:
            raise ValueError(f"trigger.rate_hz {self.trigger_rate_hz} must be > 0")
        for name in ("max_camera_age_ms", "max_radar_age_ms", "max_lidar_age_ms"):
            if not getattr(self, name) > 0:
                raise ValueError(f"sync.{name} {getattr(self, name)} must be > 0")
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"model.score_threshold {self.score_threshold} must be in [0, 1]")


def freeze_long_lived() -> None:
    """Move every object alive now (imports, the model, the backend session) to the garbage collector's permanent
    generation, so a full collection scans only what frames allocate. Called by the node after configure and by
    replay once the pipeline is built: with torch, ONNX Runtime and rclpy loaded a full collection took 31 ms,
    a pause of every thread at random frames; after the freeze it takes well under 1 ms."""
    import gc

    gc.collect()
    gc.freeze()


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class Pipeline:
    """The monitor's core. Thread-safe: callbacks may call :meth:`on_sample` while a worker runs
    :meth:`process`."""

    def __init__(self, config: PipelineConfig | None = None, *, backend=None):
        self.config = config or PipelineConfig()
        self.rig: Rig = load_rig(self.config.rig_profile or None)
        self._lock = threading.Lock()
        self._load_model(backend)
        self.policy = self._sync_policy()
        self._init_health()
        self._start_fresh()
        self._pool = None  # raw-signal check thread (parallel_checks)

    def _start_fresh(self) -> None:
        """The state frames build up, empty: cached samples, tracks, check bookkeeping, failure reports."""
        self.cache = LatestCache(self.policy)
        self.tracker = Tracker()  # persistent detection ids (markers, share rows)
        self._checked_stamp: dict[str, int] = {}
        self._bad: dict[str, tuple[int, int, str]] = {}  # sensor -> (count, last now_ns, reason)
        self._last_failure: tuple[str, int] = ("", 0)
        self._frames_failed = 0

    # -- set-up --------------------------------------------------------------------------------
    def _load_model(self, backend) -> None:
        from fusion_monitor.inference import create_backend, load_package
        from fusion_monitor.inference.errors import InferenceError
        from fusion_monitor.sensors.preprocess import InputSpec

        path = Path(self.config.model_package) if self.config.model_package else DEFAULT_PACKAGE
        if not self.config.lmd_enabled:
            plain = path.with_name(path.name + "_plain")
            if plain.is_dir():
                path = plain
        self.package_path = path
        try:
            self.package = load_package(path)
            options = {"spinning": bool(self.config.thread_spinning)}
            if self.config.num_threads:
                options["intra_op_threads"] = self.config.num_threads
            self.backend = backend or create_backend(self.package, _backend_kind(self.config.backend), **options)
        except (InferenceError, OSError, ValueError) as e:
            raise ModelLoadError(path, str(e)) from None
        meta = self.package.metadata
        self.classes = tuple(meta.classes)
        self.stream_names = tuple(meta.stream_names) if meta.decomposed and self.config.lmd_enabled else ()
        prep = meta.preprocessing.get("input_spec") or meta.extra.get("input_spec")
        if prep is None:
            raise ModelLoadError(path, "metadata has no preprocessing.input_spec (image size, BEV grid)")
        self.spec = InputSpec.from_dict(prep)
        self.decoding = dict(meta.decoding)
        from fusion_monitor.inference.naming import stream_output_name

        outs = list(meta.outputs)
        self._heatmap_key = self.decoding.get("heatmap_output", "heatmap")
        self._regression_key = self.decoding.get("regression_output", "regression")
        self._heatmap_streams_key = stream_output_name(self._heatmap_key)
        for key in (self._heatmap_key, self._regression_key) + ((self._heatmap_streams_key,) if self.stream_names else ()):
            if key not in outs:
                raise ModelLoadError(path, f"graph has no output {key!r} (outputs: {outs})")

    def _sync_policy(self) -> SyncPolicy:
        c = self.config
        policy = SyncPolicy.from_rig(self.rig, trigger_rate_hz=c.trigger_rate_hz,
                                     trigger_sensor=c.trigger_sensor or None)
        bound_ms = {"camera": c.max_camera_age_ms, "radar": c.max_radar_age_ms, "lidar": c.max_lidar_age_ms}
        max_age = {n: int(bound_ms[s.modality] * 1e6) for n, s in self.rig.sensors.items()}
        return replace(policy, max_age_ns=max_age)

    def _init_health(self) -> None:
        from fusion_monitor.health import HealthConfig
        from fusion_monitor.health.attribution import model_identity

        self.health_config = HealthConfig.from_dict(self.config.health) if self.config.health else HealthConfig()
        self.model_id = model_identity(self.package_path.name, self.package.metadata.attribution_sha256)
        # a baseline file (health.attribution.baseline_file) from another model or sensor set is refused here
        self.health = self._new_health_monitor()

    def _new_health_monitor(self):
        from fusion_monitor.health import HealthMonitor

        return HealthMonitor(self.rig, self.health_config, node_name=self.config.node_name, model_id=self.model_id)

    def warmup(self, runs: int = 2, frames: int = 3) -> None:
        """Pay one-off costs before the first frame: imports, ONNX Runtime's first runs on zeros, then ``frames``
        synthetic frames through the whole pipeline (checks, preprocessing, inference, decoding, statuses),
        after which the pipeline forgets them (:meth:`forget_frames`). Without those frames the node's first real
        frames took 120-220 ms instead of ~70 ms (first calls of every check and buffer)."""
        import fusion_monitor.model.decode  # noqa: F401  (imports torch-free decode helpers and class tables)

        self.backend.warmup(runs)
        if frames:
            self._warm_frames(frames)
            self.forget_frames()

    def _warm_frames(self, frames: int) -> None:
        """Synthetic samples of every sensor (noise images, a random sweep, random radar targets), processed."""
        rng = np.random.default_rng(0)
        H, W = self.spec.image_hw
        t0 = 1_000_000_000
        period = int(1e9 / self.config.trigger_rate_hz)
        for k in range(frames):
            stamp = t0 + k * period
            trigger = None
            for name, spec in self.rig.sensors.items():
                if spec.modality == "camera":
                    data = rng.integers(0, 256, (H + H // 6, W + W // 7, 3), np.uint8)
                elif spec.modality == "lidar":
                    n = 20_000
                    data = np.column_stack([rng.uniform(-40, 40, (n, 2)), rng.uniform(-2, 3, n),
                                            rng.uniform(0, 100, n), rng.integers(0, 32, n)]).astype(np.float32)
                else:
                    data = np.column_stack([rng.uniform(1, 80, (40, 2)), np.zeros(40), rng.uniform(-5, 20, 40),
                                            rng.normal(0, 3, (40, 2))]).astype(np.float32)
                got = self.on_sample(SensorSample(name, spec.modality, stamp, spec.frame_id or name, data), stamp)
                trigger = got if got is not None else trigger
            self.process(trigger if trigger is not None else stamp, stamp)

    def forget_frames(self) -> None:
        """Back to a fresh pipeline's state (after warm-up frames): cached samples, health windows and baselines,
        tracks, check bookkeeping and failure reports; the model, rig, calibration and thresholds stay."""
        with self._lock:
            self.health = self._new_health_monitor()
            self._start_fresh()

    # -- input side ----------------------------------------------------------------------------
    def prepare_camera(self, sample: SensorSample) -> SensorSample:
        """The camera sample with its model input slot computed now (resize + normalise, see
        :func:`fusion_monitor.sensors.preprocess.prepare_image`): a driver with spare threads calls this before
        :meth:`on_sample` so the frame only copies it. Anything else is returned as is. An image the model cannot
        take may raise; the frame validates every image itself before it uses a prepared slot."""
        from fusion_monitor.sensors.preprocess import prepare_image

        if sample.modality != "camera" or sample.sensor not in self.spec.camera_names:
            return sample
        return replace(sample, model_input=prepare_image(sample.data, self.spec))

    def on_sample(self, sample: SensorSample, now_ns: int) -> int | None:
        """Cache one converted message; returns the trigger stamp when this message triggers a frame."""
        with self._lock:
            res = self.cache.push(sample.sensor, sample.stamp_ns, sample, now_ns)
            self.health.on_message(sample.sensor, sample.stamp_ns, now_ns)
        return res.frame.trigger_stamp_ns if res.frame is not None else None

    def on_bad_message(self, sensor: str, reason: str, now_ns: int) -> None:
        """A message that could not be converted: reported on the sensor's input check."""
        with self._lock:
            count = self._bad.get(sensor, (0, 0, ""))[0]
            self._bad[sensor] = (count + 1, int(now_ns), reason)

    def set_calibration(self, sensor: str, T_base_sensor: np.ndarray | None = None, K: np.ndarray | None = None) -> None:
        """Override one sensor's calibration (from /tf_static or CameraInfo)."""
        spec = self.rig.sensors[sensor]
        new = replace(spec, T_base_sensor=spec.T_base_sensor if T_base_sensor is None else np.asarray(T_base_sensor),
                      K=spec.K if K is None else np.asarray(K))
        with self._lock:
            self.rig.sensors[sensor] = new

    def set_thresholds(self, params: Mapping[str, Any]) -> list[str]:
        """Runtime update of health thresholds (``health.*`` names); returns errors (empty: applied)."""
        from fusion_monitor.health import HealthConfig

        updates = {k: v for k, v in params.items() if k.startswith("health.")}
        other = sorted(k for k in params if not k.startswith("health.") and k != "model.score_threshold")
        errors = [f"{k}: not tunable at runtime" for k in other]
        merged = {**self.health_config.to_dict(), **updates}
        try:
            cfg = HealthConfig.from_dict(merged)
        except (KeyError, ValueError, TypeError) as e:
            errors.append(str(e).strip("'\""))
        if "model.score_threshold" in params:
            v = params["model.score_threshold"]
            if not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                errors.append(f"model.score_threshold: {v!r} must be in [0, 1]")
        if errors:
            return errors
        with self._lock:
            self.health_config = cfg
            self.health.config = cfg
            self.health.reset()  # new thresholds: windows and debounce restart
            if "model.score_threshold" in params:
                self.config = replace(self.config, score_threshold=float(params["model.score_threshold"]))
        return []

    def statuses(self, now_ns: int) -> list:
        """Every sensor/check status now (for the timer even when no frame runs)."""
        with self._lock:
            return self.health.statuses(now_ns) + self._input_statuses(now_ns)

    def _input_statuses(self, now_ns: int) -> list:
        """One "<node>: <sensor>/input" status per sensor: malformed messages rejected recently."""
        from fusion_monitor.health import CheckResult, Level, SensorStatus

        out = []
        window_ns = int(self.health_config.liveness.stale_timeout_ms * 1e6 * 8)
        for name in self.rig.sensors:
            count, last_ns, reason = self._bad.get(name, (0, 0, ""))
            recent = count and now_ns - last_ns <= window_ns
            res = (CheckResult(Level.WARN, f"malformed message rejected: {reason}",
                               {"value": str(count), "bound": "0 malformed messages", "last_reason": reason})
                   if recent else CheckResult(Level.OK, "messages well-formed",
                                              {"value": str(count), "bound": "0 malformed messages"}))
            out.append(SensorStatus.from_result(self.config.node_name, name, "input", res))
        reason, when = self._last_failure
        recent = reason and now_ns - when <= window_ns
        res = (CheckResult(Level.ERROR, f"frame processing failed: {reason}", {"value": "failed", "bound": "ok"})
               if recent else CheckResult(Level.OK, "frames processed", {"value": "ok", "bound": "ok"}))
        out.append(SensorStatus.from_result(self.config.node_name, "pipeline", "processing", res, hardware_id="pipeline"))
        return out

    # -- one frame -----------------------------------------------------------------------------
    def process(self, trigger_stamp_ns: int, now_ns: int) -> FrameResult:
        """Run the monitor on the latest samples aligned to ``trigger_stamp_ns``: :meth:`begin` then
        :meth:`finish`."""
        return self.finish(self.begin(trigger_stamp_ns, now_ns), now_ns)

    def begin(self, trigger_stamp_ns: int, now_ns: int) -> PendingFrame:
        """First half of a frame: align, raw-signal checks, preprocess, inference.

        A driver may run the next frame's :meth:`begin` while this one's :meth:`finish` runs (the node
        does): begin touches no state finish uses except through the pipeline's lock, and ``now_ns``
        here only ages the samples (it reaches no health check)."""
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        with self._lock:
            frame = self.cache.snapshot(trigger_stamp_ns, now_ns, trigger=self.policy.trigger_sensor or "timer")
            rig = self.rig
        samples = {n: a.sample.payload for n, a in frame.sensors.items() if not a.stale and a.sample is not None}
        ages_ms = {n: a.age_ns / 1e6 for n, a in frame.sensors.items() if a.age_ns is not None}
        present = {m: any(rig.sensors[n].modality == m for n in samples) for m in MODALITIES}
        masked = [m for m in MODALITIES if not present[m]]
        timings["align"] = (time.perf_counter() - t0) * 1e3

        failure, outputs = "", None
        raw = self._raw_pool().submit(self._raw_checks, samples, rig) if self.config.parallel_checks else None
        try:
            t1 = time.perf_counter()
            inputs = self._preprocess(samples, rig, present)
            timings["preprocess"] = (time.perf_counter() - t1) * 1e3

            t2 = time.perf_counter()
            outputs = self.backend.run(inputs)
            timings["inference"] = (time.perf_counter() - t2) * 1e3
        except Exception as e:  # a failing frame becomes an ERROR status, never a dead monitor
            log.exception("frame at %d failed", trigger_stamp_ns)
            failure = f"{type(e).__name__}: {e}"
        # with parallel_checks, finish() collects the checks: the next frame's begin() need not wait for them
        checks = self._raw_checks(samples, rig) if raw is None else raw
        return PendingFrame(trigger_stamp_ns, rig, ages_ms, masked, timings, outputs, failure, checks,
                            (time.perf_counter() - t0) * 1e3)

    def finish(self, pending: PendingFrame, now_ns: int) -> FrameResult:
        """Second half of a frame: decode, tracking, attribution checks, statuses (frames in trigger order)."""
        p = pending
        timings = dict(p.timings)
        t3 = time.perf_counter()
        failure = p.failure
        detections, bev_maps, bev_shares = [], {}, {}
        if not failure:
            try:
                detections, bev_maps, bev_shares = self._decode(p.outputs)
                detections = self.tracker.update(detections, p.stamp_ns)
            except Exception as e:
                log.exception("frame at %d failed", p.stamp_ns)
                failure = f"{type(e).__name__}: {e}"
                detections, bev_maps, bev_shares = [], {}, {}
        timings["decode"] = (time.perf_counter() - t3) * 1e3
        self._last_failure = (failure, now_ns) if failure else self._last_failure

        raw_ms = p.wait_checks()
        t5 = time.perf_counter()
        with self._lock:
            if self.stream_names and not failure:
                self.health.on_attribution(p.stamp_ns, [d.shares for d in detections],
                                           [d.score for d in detections], bev_shares, now_ns, p.masked)
        statuses = self.statuses(now_ns)
        # the checks' own time (with parallel_checks they ran beside inference), attribution and statuses
        timings["health"] = raw_ms + (time.perf_counter() - t5) * 1e3
        # processing only (the wait for the checks counts, the wait between begin and finish does not: a driver
        # that overlaps frames times that itself)
        timings["total"] = p.begin_ms + (time.perf_counter() - t3) * 1e3
        rig = p.rig
        grid = BevGrid(-self.spec.range_m, -self.spec.range_m, 2 * self.spec.range_m / self._out_hw[0],
                       self._out_hw[0], self._out_hw[1])
        return FrameResult(stamp_ns=p.stamp_ns, frame_id=rig.base_frame, detections=detections, bev_maps=bev_maps,
                           bev_grid=grid, masked=p.masked, ages_ms=p.ages_ms, timings_ms=timings, statuses=statuses)

    def _raw_checks(self, samples: dict, rig: Rig) -> float:
        """Raw-signal checks of the frame's samples not checked at an earlier trigger; returns the time (ms)."""
        t0 = time.perf_counter()
        for name, s in samples.items():
            with self._lock:  # one sensor at a time: finish() of the previous frame may interleave
                if self._checked_stamp.get(name) == s.stamp_ns:
                    continue  # this sample was checked at an earlier trigger
                self._checked_stamp[name] = s.stamp_ns
                modality = rig.sensors[name].modality
                if modality == "camera":
                    self.health.on_camera(name, s.data, s.stamp_ns)
                elif modality == "lidar":
                    self.health.on_lidar(name, s.data, s.stamp_ns)
                else:
                    self.health.on_radar(name, _radar_structured(s.data), s.stamp_ns)
        return (time.perf_counter() - t0) * 1e3

    def close(self) -> None:
        """End the raw-signal check thread (if one was started); the pipeline still works afterwards."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _raw_pool(self):
        """The one thread raw-signal checks run on beside inference (``pipeline.parallel_checks``)."""
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(1, thread_name_prefix="fusion_monitor_checks")
        return self._pool

    def _preprocess(self, samples: dict[str, SensorSample], rig: Rig, present: dict[str, bool]) -> dict:
        from fusion_monitor.sensors.preprocess import preprocess_frame

        images, Ks, radars, prepared = {}, {}, {}, {}
        lidar_pts, T_lidar = None, None
        for name, s in samples.items():
            spec = rig.sensors[name]
            if spec.modality == "camera" and name in self.spec.camera_names:
                images[name] = s.data
                if s.model_input is not None:
                    prepared[name] = s.model_input
                Ks[name] = _intrinsics_for(spec, s.data.shape[1], s.data.shape[0])
            elif spec.modality == "lidar" and lidar_pts is None:
                lidar_pts, T_lidar = s.data, spec.T_base_sensor
            elif spec.modality == "radar":
                radars[name] = (s.data, spec.T_base_sensor)
        pre = preprocess_frame(images=images, intrinsics=Ks, lidar_points=lidar_pts, T_base_lidar=T_lidar,
                               radars=radars, present=present, spec=self.spec, prepared=prepared)
        return pre.inputs

    @property
    def _out_hw(self) -> tuple[int, int]:
        shape = self.decoding.get("heatmap_shape")
        if shape:
            return int(shape[-2]), int(shape[-1])
        return self.spec.grid, self.spec.grid

    def _decode(self, outputs: dict[str, np.ndarray]):
        from fusion_monitor.model.decode import decode

        heat = outputs[self._heatmap_key][0]  # (C, H, W) logits
        reg = outputs[self._regression_key][0]
        dets = decode(heat, reg, self.spec, score_threshold=self.config.score_threshold, classes=self.classes)
        streams = outputs[self._heatmap_streams_key][:, 0] if self.stream_names else None  # (S, C, H, W)
        W = heat.shape[-1]
        out: list[Detection] = []
        for k in range(len(dets)):
            b, label, cell = dets.boxes[k], int(dets.labels[k]), int(dets.cells[k])
            shares: dict[str, float] = {}
            if streams is not None:
                h = streams[:, label, cell // W, cell % W].astype(np.float64)
                denom = float(np.abs(h).sum()) or 1.0
                shares = {s: float(v / denom) for s, v in zip(self.stream_names, h)}
            out.append(Detection(track_id=k, label=self.classes[label], score=float(dets.scores[k]),
                                 center_m=(float(b[0]), float(b[1]), float(b[2])),
                                 size_m=(float(b[3]), float(b[4]), float(b[5])), yaw_rad=float(b[6]),
                                 velocity_mps=(float(b[7]), float(b[8])), shares=shares))
        bev_maps: dict[str, np.ndarray] = {}
        bev_shares: dict[str, float] = {}
        if streams is not None:
            best = np.argmax(heat, axis=0)  # strongest class per cell
            rows, cols = np.indices(best.shape)
            per_stream = streams[:, best, rows, cols]  # (S, H, W)
            mask = _sigmoid(heat.max(axis=0)) > 0.1
            total = float(np.abs(per_stream[:, mask]).sum()) or 1.0
            for s, name in enumerate(self.stream_names):
                bev_maps[name] = per_stream[s].astype(np.float32)
                bev_shares[name] = float(per_stream[s][mask].sum() / total)
        return out, bev_maps, bev_shares


@dataclass
class PendingFrame:
    """A frame between :meth:`Pipeline.begin` and :meth:`Pipeline.finish`."""

    stamp_ns: int
    rig: Rig
    ages_ms: dict[str, float]
    masked: list[str]
    timings: dict[str, float]
    outputs: dict[str, np.ndarray] | None  # the detector's outputs; None when the frame failed
    failure: str  # "" or why the frame failed
    raw_checks: Any  # the raw-signal checks' own time (ms), or the Future giving it (parallel_checks)
    begin_ms: float  # wall time of begin()

    def wait_checks(self) -> float:
        """Wait for the frame's raw-signal checks (a driver may, before it takes any lock for finish());
        returns their own time (ms)."""
        if not isinstance(self.raw_checks, float):
            self.raw_checks = float(self.raw_checks.result())
        return self.raw_checks


def _intrinsics_for(spec, width: int, height: int) -> np.ndarray | None:
    """The camera's K for an image of ``width`` x ``height`` (calibrated size scaled, same aspect ratio)."""
    if spec.K is None or not spec.width or not spec.height or (width, height) == (spec.width, spec.height):
        return spec.K
    from fusion_monitor.sensors.preprocess import scale_intrinsics

    return scale_intrinsics(spec.K, width / spec.width, height / spec.height)


_RADAR_FIELDS = ("x", "y", "z", "rcs", "vx_comp", "vy_comp")


def _radar_structured(points: np.ndarray) -> np.ndarray:
    """(N, 6) [x y z rcs vx_comp vy_comp] -> structured array with those field names."""
    pts = np.asarray(points, np.float32)
    out = np.zeros(len(pts), dtype=[(f, np.float32) for f in _RADAR_FIELDS])
    for j, f in enumerate(_RADAR_FIELDS):
        out[f] = pts[:, j]
    return out


def _backend_kind(name: str) -> str:
    return "pytorch" if name == "torch" else name
