"""The live fusion_monitor node: subscriptions, LiDAR trigger, worker thread, publishers, parameters.

Shape (ros-conventions.md, style.md 8): callbacks only cache the latest messages per sensor (and,
for the trigger LiDAR, hand a trigger to a drop-oldest queue of size 1; a camera image is also handed
to the decode threads, a non-blocking submit). An ingest thread turns new messages into numpy samples
(``Pipeline.on_sample``) as they come, so sensor liveness never waits for inference; a worker thread
takes the newest trigger, ingests its sweep, runs ``Pipeline.process`` and publishes; a steady timer
publishes /diagnostics even when every input is silent. All ages come from the node clock
(``use_sim_time`` follows /clock). A worker exception becomes an ERROR diagnostic, never a dead
loop. The plain node configures and activates in its constructor; the lifecycle variant
(lifecycle_node.py) runs the same :class:`MonitorCore` steps from its transitions.

The node talks to the pipeline only through: ``rig``, ``on_sample``, ``on_bad_message``,
``process``, ``statuses``, ``set_thresholds`` and optionally ``set_calibration`` (CameraInfo,
/tf_static), ``warmup()`` (called in configure), ``classes``/``class_names``, ``spec.image_hw`` or
``camera_input_size`` (JPEG decode size), ``prepare_camera`` (a decoded image's model input, made in the
decode threads), and ``begin``/``finish`` for ``pipeline.overlap_frames``.
Pipeline calls are serialised by one lock and every ``now_ns`` handed to the pipeline's health state is
non-decreasing (see :meth:`MonitorCore._pipeline_now`); the one exception is ``begin`` with two frames in
flight, which runs outside that lock (it takes the pipeline's own lock where it needs one, and its
``now_ns`` only ages the samples).
"""

from __future__ import annotations

import importlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import OccupancyGrid
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Float32MultiArray, Float64
from visualization_msgs.msg import MarkerArray

from fusion_monitor.frame import SensorSample
from fusion_monitor.ros import params as P
from fusion_monitor.ros import topics as T
from fusion_monitor.ros.diagnostics import ERROR, OK, WARN, NodeStatus, diagnostic_array
from fusion_monitor.ros.ingest import is_compressed_topic, message_to_sample, quick_check
from fusion_monitor.ros.markers import MarkerBuilder, alert_markers, marker_array
from fusion_monitor.ros.outputs import NUSCENES_CLASSES, bev_grids, detections_cloud, shares_array
from fusion_monitor.ros.qos import OUTPUT_QOS, TF_STATIC_QOS, incompatible_publishers, sensor_qos
from fusion_monitor.ros.record import FAST_SERIALIZED, serialize
from fusion_monitor.sensors.errors import MessageError

PipelineFactory = Callable[[dict[str, Any]], Any]
BAD_MESSAGE_HOLD_NS = 5_000_000_000  # a bad message keeps the ingest status WARN this long
CACHE_DEPTH = 8  # per sensor: superseded messages awaiting a quick check
INGEST_PERIOD_S = 0.02  # the ingest thread converts at most this often (batches bursts of messages)
QOS_CHECK_PERIOD_S = 2.0  # the ingest thread compares sensor publishers' offered QoS with ours this often

_TYPE = {"bool": ParameterType.PARAMETER_BOOL, "int": ParameterType.PARAMETER_INTEGER,
         "double": ParameterType.PARAMETER_DOUBLE, "string": ParameterType.PARAMETER_STRING}


def default_pipeline_factory(values: dict[str, Any]):
    """The shared pipeline (fusion_monitor.pipeline) configured from the flat parameter dict."""
    from fusion_monitor.pipeline import Pipeline, PipelineConfig

    return Pipeline(PipelineConfig.from_params(values))


def load_factory(spec: str) -> PipelineFactory:
    """'package.module:callable' -> the callable (a pipeline factory taking the parameter dict)."""
    mod, sep, attr = spec.partition(":")
    if not sep or not mod or not attr:
        raise ValueError(f"pipeline factory {spec!r}: expected MODULE:CALLABLE")
    fn = getattr(importlib.import_module(mod), attr, None)
    if not callable(fn):
        raise ValueError(f"pipeline factory {spec!r}: {attr} is not a callable of {mod}")
    return fn


def descriptor_of(spec: P.ParamSpec) -> ParameterDescriptor:
    """ParameterDescriptor with type, description, range / choices and read_only."""
    d = ParameterDescriptor(name=spec.name, type=_TYPE[spec.type_name], description=spec.description,
                            read_only=spec.read_only)
    if spec.type_name == "double" and (spec.min_value is not None or spec.max_value is not None):
        d.floating_point_range = [FloatingPointRange(
            from_value=float(spec.min_value if spec.min_value is not None else -1e308),
            to_value=float(spec.max_value if spec.max_value is not None else 1e308), step=0.0)]
    elif spec.type_name == "int" and (spec.min_value is not None or spec.max_value is not None):
        d.integer_range = [IntegerRange(
            from_value=int(spec.min_value if spec.min_value is not None else -(2**63)),
            to_value=int(spec.max_value if spec.max_value is not None else 2**63 - 1), step=1)]
    if spec.choices:
        d.additional_constraints = "one of: " + ", ".join(spec.choices)
    return d


@dataclass
class _Trigger:
    stamp_ns: int
    msg: Any
    recv_ns: int
    seq: int = -1


class MonitorCore:
    """Everything ROS-facing of the monitor, attached to a Node or a LifecycleNode.

    Steps: :meth:`declare` (in the node's constructor), :meth:`configure` (build the pipeline:
    may raise ModelLoadError), :meth:`activate` (publishers, subscriptions, timer, worker),
    :meth:`deactivate`, :meth:`cleanup`.
    """

    def __init__(self, node: Node, pipeline_factory: PipelineFactory | None = None):
        self.node = node
        self.factory = pipeline_factory or default_pipeline_factory
        self.values: dict[str, Any] = {}
        self.pipeline = None
        self.rig = None
        self._plock = threading.Lock()  # every pipeline call
        self._cache_lock = threading.Lock()
        # sensor -> recent (msg, recv_ns, seq), newest last: the newest is converted, the ones it
        # superseded only get a cheap structural check (so a malformed message is never missed)
        self._latest: dict[str, deque] = {}
        self._ingested_seq: dict[str, int] = {}
        self._camera_info: dict[str, Any] = {}  # sensor -> latest CameraInfo (cached by the callback)
        self._camera_info_done: dict[str, Any] = {}  # sensor -> the CameraInfo last applied/checked
        self._applied_K: dict[str, Any] = {}
        self._tf_static: list = []  # TFMessages received on /tf_static (transient local: every latched one)
        self._tf_done = 0
        self._applied_T: dict[str, Any] = {}
        self._seq = 0
        self._queue: queue.Queue[_Trigger] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._finisher: threading.Thread | None = None
        # begun frames awaiting finish (pipeline.overlap_frames): at most one waits, the worker blocks meanwhile
        self._finish_queue: queue.Queue = queue.Queue(maxsize=1)
        self._ingester: threading.Thread | None = None
        self._new_data = threading.Event()
        self._ingest_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="fusion_monitor_decode")
        self._subs: list = []
        self._pubs: dict[str, Any] = {}
        self._timer = None
        self._markers = MarkerBuilder()
        self._last_trigger_ns: int | None = None
        self._trigger_sensor = ""
        self._modality: dict[str, str] = {}
        # counters and last state (read by the diagnostics timer)
        self.frames = 0
        self.triggers = 0
        self.dropped_triggers = 0
        self.bad_messages = 0
        self._last_bad: tuple[int, str, str] | None = None  # (now_ns, sensor, reason)
        self._qos_problems: dict[str, list[tuple[str, str]]] = {}  # topic -> [(publisher node, why)]
        self._worker_error: tuple[int, str] | None = None
        self._last_latency_ms: float | None = None
        self._last_frame_diag = float("-inf")  # monotonic time a frame last published /diagnostics
        self._last_statuses: list = []
        self._last_frame_id = ""

    # ---- parameters -------------------------------------------------------------------------
    def declare(self) -> dict[str, Any]:
        """Declare every parameter (P.PARAMETERS); validate the start values; install the on-set check."""
        for spec in P.PARAMETERS:
            self.node.declare_parameter(spec.name, spec.default, descriptor_of(spec))
        self.values = {spec.name: self.node.get_parameter(spec.name).value for spec in P.PARAMETERS}
        errors = P.validate(self.values)
        if errors:
            raise ValueError("invalid parameters: " + "; ".join(errors))
        self.node.add_on_set_parameters_callback(self._on_set_parameters)
        return dict(self.values)

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        changes = {p.name: p.value for p in parameters if p.name in P.BY_NAME}
        errors = P.validate(changes)
        errors += [f"{n}: read-only (structural) parameter" for n in changes if P.BY_NAME[n].read_only
                   and changes[n] != self.values.get(n)]
        if not errors:
            tunable = {k: v for k, v in changes.items() if P.BY_NAME[k].for_pipeline}
            if tunable and self.pipeline is not None:
                with self._plock:
                    errors += list(self.pipeline.set_thresholds(tunable) or [])
        if errors:
            return SetParametersResult(successful=False, reason="; ".join(errors))
        self.values.update(changes)
        return SetParametersResult(successful=True)

    # ---- lifecycle steps ----------------------------------------------------------------------
    def configure(self) -> None:
        """Build the pipeline (model package + backend). Raises the pipeline's ModelLoadError."""
        self.pipeline = self.factory({**self.values, "node_name": self.node.get_name()})
        warmup = getattr(self.pipeline, "warmup", None)
        if callable(warmup):  # first-call costs (imports, engine warm-up) belong in configure, not in frame 1
            warmup()
        from fusion_monitor.pipeline import freeze_long_lived

        freeze_long_lived()  # no 30 ms full-collection pauses of every thread at random frames
        self.rig = self.pipeline.rig
        self._modality = {name: s.modality for name, s in self.rig.sensors.items()}
        trig = self.values.get("trigger.sensor") or next(
            (n for n, s in self.rig.sensors.items() if s.modality == "lidar"), "")
        if trig not in self.rig.sensors:
            raise ValueError(f"trigger.sensor {trig!r} is not a sensor of rig {self.rig.name!r}")
        self._trigger_sensor = trig
        self.node.get_logger().info(
            f"configured: rig {self.rig.name} ({len(self.rig.sensors)} sensors), trigger {trig} at "
            f"{self.values['trigger.rate_hz']} Hz, LMD {'on' if self.values['lmd.enabled'] else 'off'}")

    def _output_publisher(self, msg_type, topic: str):
        """An output publisher without rclpy's default QoS-event handler: with ~30 outputs those handlers
        cost the executor a third of its CPU per received message (measured: 11 % vs 8 % of a core at
        160 msg/s)."""
        return self.node.create_publisher(msg_type, topic, OUTPUT_QOS,
                                          event_callbacks=PublisherEventCallbacks(use_default_callbacks=False))

    def _sensor_subscription(self, msg_type, topic: str, callback, qos):
        """A sensor subscription without rclpy's default QoS-event handler either (the 19 handlers of the
        nuScenes rig cost the executor 4 % of a core at 160 msg/s: 11.9 vs 7.8 % measured); an incompatible
        publisher is found by :meth:`_check_qos` from the ROS graph instead and reported in /diagnostics."""
        return self.node.create_subscription(msg_type, topic, callback, qos,
                                             event_callbacks=SubscriptionEventCallbacks(use_default_callbacks=False))

    def _check_qos(self) -> None:
        """Sensor topics whose publishers offer a QoS our subscription can never receive (``ingest/qos``)."""
        problems = {}
        for sub in list(self._subs):
            try:
                found = incompatible_publishers(self.node.get_publishers_info_by_topic(sub.topic_name),
                                                sub.qos_profile)
            except Exception as e:  # a graph query failing (context shutting down) is not a QoS problem
                self.node.get_logger().debug(f"QoS check of {sub.topic_name}: {type(e).__name__}: {e}")
                continue
            if found:
                problems[sub.topic_name] = found
        for topic, found in problems.items():
            if self._qos_problems.get(topic) != found:
                self.node.get_logger().warning(
                    f"{topic}: incompatible QoS, no message can arrive from "
                    + "; ".join(f"{pub} ({why})" for pub, why in found))
        self._qos_problems = problems

    def activate(self) -> None:
        """Publishers, subscriptions, diagnostics timer, worker thread."""
        n = self.node
        self._pubs = {
            "markers": self._output_publisher(MarkerArray, T.MARKERS),
            "detections": self._output_publisher(PointCloud2, T.DETECTIONS),
            "shares": self._output_publisher(Float32MultiArray, T.SHARES),
            "diagnostics": self._output_publisher(DiagnosticArray, T.DIAGNOSTICS),
            "processing_time_ms": self._output_publisher(Float64, T.PROCESSING_TIME),
            "pipeline_latency_ms": self._output_publisher(Float64, T.PIPELINE_LATENCY),
        }
        for stage in T.KNOWN_STAGES:  # per-stage times (other stage names get a publisher on first use)
            self._pubs[f"processing_time_ms/{stage}"] = self._output_publisher(Float64, f"{T.PROCESSING_TIME}/{stage}")
        for name in self.rig.sensors:
            self._pubs[f"age_ms/{name}"] = self._output_publisher(Float64, T.sensor_age(name))
        if self.values["output.bev_maps"]:
            for s, topic in T.ATTRIBUTION.items():
                self._pubs[f"attribution/{s}"] = self._output_publisher(OccupancyGrid, topic)
        qos = sensor_qos(self.values["qos.sensor.reliability"], self.values["qos.sensor.depth"])
        for name, spec in self.rig.sensors.items():
            if spec.modality == "camera":
                mtype = CompressedImage if is_compressed_topic(spec.topic) else Image
            else:
                mtype = PointCloud2
            self._subs.append(self._sensor_subscription(mtype, spec.topic, self._make_callback(name), qos))
            if spec.camera_info_topic:
                self._subs.append(self._sensor_subscription(
                    CameraInfo, spec.camera_info_topic, self._make_info_callback(name), qos))
        tf_type = _tf_message_type()
        if tf_type is not None:  # tf2_msgs has no PyPI wheel: /tf_static only on a ROS install
            self._subs.append(n.create_subscription(tf_type, "/tf_static", self._tf_static.append, TF_STATIC_QOS))
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="fusion_monitor_worker", daemon=True)
        self._worker.start()
        if self._overlaps():
            self._finisher = threading.Thread(target=self._finish_loop, name="fusion_monitor_finish", daemon=True)
            self._finisher.start()
        self._ingester = threading.Thread(target=self._ingest_loop, name="fusion_monitor_ingest", daemon=True)
        self._ingester.start()
        period = 1.0 / float(self.values["output.diagnostics_rate_hz"])
        self._timer = n.create_timer(period, self._on_diagnostics_timer, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.node.get_logger().info(f"active: {len(self.rig.sensors)} sensor subscriptions")

    def deactivate(self) -> None:
        """Stop the worker, drop subscriptions, timer and publishers."""
        self._stop.set()
        self._new_data.set()
        for t in (self._worker, self._finisher, self._ingester):
            if t is not None:
                t.join(timeout=10.0)
        self._worker = self._finisher = self._ingester = None
        while not self._finish_queue.empty():  # begun frames of this activation are not published
            self._finish_queue.get_nowait()
        n = self.node
        if self._timer is not None:
            n.destroy_timer(self._timer)
            self._timer = None
        for s in self._subs:
            n.destroy_subscription(s)
        self._subs = []
        for p in self._pubs.values():
            n.destroy_publisher(p)
        self._pubs = {}
        with self._cache_lock:
            self._latest.clear()
        self._ingested_seq.clear()
        self._qos_problems = {}

    def cleanup(self) -> None:
        if hasattr(self.pipeline, "close"):
            self.pipeline.close()
        self.pipeline = None
        self.rig = None

    def close(self) -> None:
        """At node destruction: deactivate if active, end the decode threads."""
        if self._worker is not None:
            self.deactivate()
        if hasattr(self.pipeline, "close"):
            self.pipeline.close()
        self._pool.shutdown(wait=True, cancel_futures=True)

    # ---- callbacks: cache only ------------------------------------------------------------------
    def now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def _make_callback(self, sensor: str):
        early = self._modality.get(sensor) == "camera"

        def cb(msg) -> None:
            recv = self.now_ns()
            # a camera image starts decoding on arrival (decode threads), so a trigger right after a burst of
            # images rarely waits for them; a queued decode of this camera's previous image is dropped instead
            decode = self._pool.submit(self._convert, sensor, "camera", msg, self._camera_target_size()) \
                if early else None
            with self._cache_lock:
                self._seq += 1
                seq = self._seq
                q = self._latest.setdefault(sensor, deque(maxlen=CACHE_DEPTH))
                if q and q[-1][3] is not None:
                    q[-1][3].cancel()  # not started yet: never decoded (superseded images get a quick check)
                q.append((msg, recv, seq, decode))
            self._new_data.set()
            if sensor == self._trigger_sensor:
                self._maybe_trigger(msg, recv, seq)
        return cb

    def _make_info_callback(self, sensor: str):
        def cb(msg) -> None:
            self._camera_info[sensor] = msg
        return cb

    def _maybe_trigger(self, msg, recv_ns: int, seq: int = -1) -> None:
        try:
            stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
        except (AttributeError, TypeError, ValueError):
            return  # the worker reports the bad message when it ingests it
        period_ns = int(1e9 / float(self.values["trigger.rate_hz"]))
        last = self._last_trigger_ns
        if last is not None and stamp < last:  # stamps went back (bag loop, replayed drive): restart
            last = None
        if last is not None and stamp - last < int(period_ns * 0.9):
            return
        self._last_trigger_ns = stamp
        self.triggers += 1
        job = _Trigger(stamp, msg, recv_ns, seq)
        try:
            self._queue.put_nowait(job)
        except queue.Full:  # drop the oldest: the worker is still busy
            try:
                self._queue.get_nowait()
                self.dropped_triggers += 1
            except queue.Empty:
                pass
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                self.dropped_triggers += 1

    # ---- worker -------------------------------------------------------------------------------
    def _overlaps(self) -> bool:
        """Two frames in flight (``pipeline.overlap_frames``, a pipeline with begin/finish)."""
        return bool(self.values.get("pipeline.overlap_frames")) and all(
            hasattr(self.pipeline, a) for a in ("begin", "finish"))

    def _work(self) -> None:
        """Processing thread: one trigger at a time (the queue keeps only the newest). With
        ``pipeline.overlap_frames`` it runs a frame up to inference (``Pipeline.begin``) and hands it to the
        finish thread, so the next frame's inference overlaps this one's decode, attribution and publishing."""
        overlap = self._overlaps()
        while not self._stop.is_set():
            try:
                job = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if self._stop.is_set():
                break
            try:
                queue_ms = (self.now_ns() - job.recv_ns) / 1e6  # trigger callback -> this worker took it
                ingest_ms = self._ingest(job)
                if not overlap:
                    self._process(job, ingest_ms, queue_ms)
                    self._worker_error = None
                    continue
                # begin() takes the pipeline's own lock where it needs it; its now_ns only ages the samples
                pending = self.pipeline.begin(job.stamp_ns, self.now_ns())
                item = (job, pending, ingest_ms, queue_ms, time.perf_counter())
                while not self._stop.is_set():
                    try:
                        self._finish_queue.put(item, timeout=0.2)
                        break
                    except queue.Full:
                        continue
            except Exception as e:  # never a dead loop: report and continue
                self._report_worker_error(e)

    def _finish_loop(self) -> None:
        """Finish thread (``pipeline.overlap_frames``): decode, attribution checks, statuses, publishing, in
        trigger order."""
        while not self._stop.is_set():
            try:
                job, pending, ingest_ms, queue_ms, handed = self._finish_queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                handoff_ms = (time.perf_counter() - handed) * 1e3  # waiting for the previous frame's finish
                t0 = time.perf_counter()
                if hasattr(pending, "wait_checks"):
                    pending.wait_checks()  # not under the lock: ingest goes on meanwhile
                with self._plock:
                    result = self.pipeline.finish(pending, self._pipeline_now())
                self._publish_frame(job, result, (time.perf_counter() - t0) * 1e3, ingest_ms,
                                    {"queue": queue_ms, "handoff": handoff_ms})
                self._worker_error = None
            except Exception as e:
                self._report_worker_error(e)

    def _ingest_loop(self) -> None:
        """Ingest thread: converts new messages as they come (at most every INGEST_PERIOD_S), so sensor
        liveness never waits for a long inference; wakes at the diagnostics rate when inputs are silent."""
        idle_s = 1.0 / float(self.values["output.diagnostics_rate_hz"])
        next_qos_check = time.monotonic() + 0.5  # first check soon after the subscriptions are matched
        while not self._stop.is_set():
            self._new_data.wait(timeout=idle_s)
            self._new_data.clear()
            if self._stop.is_set():
                break
            try:
                if time.monotonic() >= next_qos_check:
                    next_qos_check = time.monotonic() + QOS_CHECK_PERIOD_S
                    self._check_qos()
                self._ingest(None)
            except Exception as e:
                self._report_worker_error(e)
            self._stop.wait(INGEST_PERIOD_S)

    def _report_worker_error(self, e: Exception) -> None:
        self._worker_error = (self.now_ns(), f"{type(e).__name__}: {e}")
        self.node.get_logger().error(f"worker: {type(e).__name__}: {e}", throttle_duration_sec=5.0)

    def _apply_camera_info(self) -> None:
        """New CameraInfo -> pipeline.set_calibration(K) when it differs from the K in use (scaled to the rig's
        image size); a malformed CameraInfo is a bad message of that camera."""
        if not hasattr(self.pipeline, "set_calibration"):
            return
        from fusion_monitor.ros.conversions import camera_info_to_intrinsics

        for sensor, msg in list(self._camera_info.items()):
            if self._camera_info_done.get(sensor) is msg:
                continue
            self._camera_info_done[sensor] = msg
            spec = self.rig.sensors[sensor]
            try:
                intr = camera_info_to_intrinsics(msg, sensor)
                if spec.width and spec.height and (intr.width, intr.height) != (spec.width, spec.height):
                    intr = intr.scaled(spec.width, spec.height)
            except (MessageError, ValueError) as e:
                self._bad_message(sensor, getattr(e, "reason", str(e)), self.now_ns())
                continue
            K = np.asarray(intr.K, dtype=np.float64)
            current = self._applied_K.get(sensor, spec.K)
            if current is not None and np.allclose(K, current, rtol=1e-6, atol=1e-6):
                continue
            with self._plock:
                self.pipeline.set_calibration(sensor, K=K)
            self._applied_K[sensor] = K
            self.node.get_logger().info(f"{sensor}: CameraInfo K overrides the rig profile's K")

    def _apply_tf_static(self) -> None:
        """New /tf_static transforms -> pipeline.set_calibration(T_base_sensor) for sensors whose frame they reach."""
        from fusion_monitor.sensors.calibration import TransformTree, tf_message_to_transforms

        msgs = list(self._tf_static)
        if len(msgs) == self._tf_done or not hasattr(self.pipeline, "set_calibration"):
            return
        self._tf_done = len(msgs)
        tree = TransformTree()
        for m in msgs:
            try:
                for t in tf_message_to_transforms(m):
                    tree.add(t)
            except MessageError as e:
                self.node.get_logger().warning(f"/tf_static: {e}", throttle_duration_sec=10.0)
        base = self.rig.base_frame
        for name, spec in self.rig.sensors.items():
            if base not in tree.frames or spec.frame_id not in tree.frames:
                continue
            try:
                T = tree.lookup(base, spec.frame_id)
            except ValueError as e:
                self.node.get_logger().warning(f"/tf_static: {e}", throttle_duration_sec=10.0)
                continue
            if np.allclose(T, self._applied_T.get(name, spec.T_base_sensor), atol=1e-6):
                continue
            with self._plock:
                self.pipeline.set_calibration(name, T_base_sensor=T)
            self._applied_T[name] = T
            self.node.get_logger().info(f"{name}: /tf_static {base} -> {spec.frame_id} overrides the rig profile")

    def _ingest(self, job: _Trigger | None) -> float:
        """Convert the newest cached message of every sensor (quick-check the ones it superseded) and hand
        the samples to the pipeline; with a trigger, the trigger's own sweep is the one converted. Returns
        the time spent (ms). Called by the ingest thread and, for its trigger, by the worker."""
        with self._ingest_lock:
            t0 = time.perf_counter()
            if self._camera_info:
                self._apply_camera_info()
            if self._tf_static:
                self._apply_tf_static()
            with self._cache_lock:
                pending = {s: [e for e in q if e[2] > self._ingested_seq.get(s, 0)] for s, q in self._latest.items()}
            size = self._camera_target_size()
            todo = []  # (sensor, modality, msg, recv_ns, decode future or None)
            for sensor, entries in pending.items():
                if not entries:
                    continue
                self._ingested_seq[sensor] = entries[-1][2]
                modality = self._modality[sensor]
                if job is not None and sensor == self._trigger_sensor and any(e[2] == job.seq for e in entries):
                    full = (job.msg, job.recv_ns, None)
                    rest = [e for e in entries if e[2] != job.seq]
                else:
                    full, rest = (entries[-1][0], entries[-1][1], entries[-1][3]), entries[:-1]
                for msg, recv_ns, _, decode in rest:  # superseded: cheap check only
                    if decode is not None:
                        decode.cancel()
                    try:
                        quick_check(msg, sensor, modality)
                    except MessageError as e:
                        self._bad_message(sensor, e.reason, recv_ns)
                todo.append((sensor, modality, *full))

            def convert(item):
                sensor, modality, msg, recv_ns, _ = item
                return sensor, self._convert(sensor, modality, msg, size), recv_ns

            def collect(item):  # a decode started on arrival (waited for here, never inside the decode pool)
                sensor, modality, msg, recv_ns, decode = item
                try:
                    return sensor, decode.result(), recv_ns
                except CancelledError:
                    return convert(item)

            # every camera image's decode started in its callback: what is left here is LiDAR, radar and the
            # trigger's own message, converted on this thread
            results = [convert(t) for t in todo if t[4] is None] + [collect(t) for t in todo if t[4] is not None]
            for sensor, sample, recv_ns in results:
                if isinstance(sample, MessageError):
                    self._bad_message(sensor, sample.reason, recv_ns)
                    continue
                with self._plock:
                    self.pipeline.on_sample(sample, self._pipeline_now())
            return (time.perf_counter() - t0) * 1e3

    def _convert(self, sensor: str, modality: str, msg, size: tuple[int, int] | None) -> SensorSample | MessageError:
        """One message -> SensorSample, or the MessageError saying why it is malformed. A camera image also gets
        its model input slot here (in the decode threads when called from there), off the frame's path."""
        try:
            sample = message_to_sample(msg, sensor, modality, target_size=size)
        except MessageError as e:
            return e
        prepare = getattr(self.pipeline, "prepare_camera", None)
        if modality != "camera" or prepare is None:
            return sample
        try:
            return prepare(sample)
        except Exception as e:  # the frame prepares it itself (and reports what is wrong with it)
            self.node.get_logger().debug(f"{sensor}: image not prepared ahead: {type(e).__name__}: {e}")
            return sample

    def _camera_target_size(self) -> tuple[int, int] | None:
        """(width, height) JPEGs are DCT-decoded down to (never below): the model's image size, as the replay does."""
        size = getattr(self.pipeline, "camera_input_size", None)
        if size is None:
            hw = getattr(getattr(self.pipeline, "spec", None), "image_hw", None)
            size = (int(hw[1]), int(hw[0])) if hw is not None else None
        return size

    def _bad_message(self, sensor: str, reason: str, recv_ns: int) -> None:
        self.bad_messages += 1
        self._last_bad = (recv_ns, sensor, reason)
        self.node.get_logger().warning(f"bad message from {sensor}: {reason}", throttle_duration_sec=2.0)
        with self._plock:
            self.pipeline.on_bad_message(sensor, reason, self._pipeline_now())

    def _process(self, job: _Trigger, ingest_ms: float = 0.0, queue_ms: float = 0.0) -> None:
        t0 = time.perf_counter()  # wall time only for the processing-time metric
        with self._plock:
            result = self.pipeline.process(job.stamp_ns, self._pipeline_now())
        self._publish_frame(job, result, (time.perf_counter() - t0) * 1e3, ingest_ms, {"queue": queue_ms})

    def _publish_frame(self, job: _Trigger, result, total_ms: float, ingest_ms: float, waits: dict) -> None:
        self.frames += 1
        self._last_statuses = list(result.statuses or [])
        self._last_frame_id = result.frame_id
        # where a frame's latency goes besides processing: LiDAR stamp -> trigger callback (transport, executor),
        # callback -> worker (waiting behind the previous frame) and, with overlap, begin -> finish
        waits = {"receive": (job.recv_ns - job.stamp_ns) / 1e6, **waits}
        statuses = self._last_statuses + self.node_statuses(self.now_ns())
        self._publish_detections(result, statuses)
        # the pipeline's latency is that of its detections; /diagnostics and the timing topics follow
        self._last_latency_ms = (self.now_ns() - result.stamp_ns) / 1e6
        self._publish("diagnostics", diagnostic_array(statuses, self.now_ns()))
        self._last_frame_diag = time.monotonic()
        self._publish_timings(result, total_ms, ingest_ms, waits)
        self._publish("pipeline_latency_ms", Float64(data=float(self._last_latency_ms)))

    # ---- outputs ------------------------------------------------------------------------------
    def _publish(self, key: str, msg) -> None:
        pub = self._pubs.get(key)
        if pub is not None:
            # MarkerArray / DiagnosticArray: CDR built here (fast path of ros.record.serialize), published as
            # bytes; rclpy's per-sub-message conversion costs ~15 us per Marker
            pub.publish(serialize(msg) if type(msg) in FAST_SERIALIZED else msg)

    def _publish_detections(self, result, statuses: list) -> None:
        """A frame's markers (with the alert texts of ``statuses``), detections, shares and BEV maps."""
        self._publish("markers", self._markers.build(
            result, min_score=float(self.values["output.min_score"]),
            lifetime_s=float(self.values["output.marker_lifetime_s"]), statuses=statuses))
        names = getattr(self.pipeline, "class_names", None) or getattr(self.pipeline, "classes", None) \
            or NUSCENES_CLASSES
        self._publish("detections", detections_cloud(result, names))
        self._publish("shares", shares_array(result))
        if self.values["output.bev_maps"]:
            for stream, grid in bev_grids(result).items():
                self._publish(f"attribution/{stream}", grid)

    def _publish_timings(self, result, total_ms: float, ingest_ms: float, waits: dict) -> None:
        """~/debug/processing_time_ms (total and per stage) and the sensors' ages at the trigger."""
        # total = message conversion in the node + the pipeline's own total
        total = ingest_ms + float(result.timings_ms.get("total", total_ms))
        self._publish("processing_time_ms", Float64(data=total))
        for stage, ms in {**waits, "ingest": ingest_ms, **result.timings_ms}.items():
            if stage == "total":
                continue
            key = f"processing_time_ms/{stage}"
            if key not in self._pubs:
                self._pubs[key] = self._output_publisher(Float64, f"{T.PROCESSING_TIME}/{stage}")
            self._publish(key, Float64(data=float(ms)))
        for sensor, age_ms in result.ages_ms.items():
            self._publish(f"age_ms/{sensor}", Float64(data=float(age_ms)))

    def node_statuses(self, now_ns: int) -> list[NodeStatus]:
        """The node's own statuses: inference (waiting / OK / worker error) and message ingest."""
        name = self.node.get_name()
        values = {"frames": str(self.frames), "triggers": str(self.triggers),
                  "dropped_triggers": str(self.dropped_triggers),
                  "trigger_rate_hz": str(self.values.get("trigger.rate_hz")),
                  "pipeline_latency_ms": "" if self._last_latency_ms is None else f"{self._last_latency_ms:.1f}"}
        if self._worker_error is not None:
            inf = NodeStatus(f"{name}: pipeline/inference", "pipeline", ERROR,
                             f"processing failed: {self._worker_error[1]}", values)
        elif self.frames == 0:
            inf = NodeStatus(f"{name}: pipeline/inference", "pipeline", OK, "waiting for first inference", values)
        else:
            inf = NodeStatus(f"{name}: pipeline/inference", "pipeline", OK, f"{self.frames} frames processed", values)
        bad = self._last_bad
        ing_values = {"bad_messages": str(self.bad_messages)}
        if bad is not None and 0 <= now_ns - bad[0] < BAD_MESSAGE_HOLD_NS:
            ing_values.update(sensor=bad[1], reason=bad[2])
            ing = NodeStatus(f"{name}: ingest/messages", "ingest", WARN, f"malformed message from {bad[1]}: {bad[2]}",
                             ing_values)
        else:
            ing = NodeStatus(f"{name}: ingest/messages", "ingest", OK, "messages decode", ing_values)
        return [inf, ing, self._qos_status(name)]

    def _qos_status(self, name: str) -> NodeStatus:
        """``ingest/qos``: WARN while a sensor topic has a publisher whose QoS can never reach us."""
        problems = dict(self._qos_problems)
        values = {"subscriptions": str(len(self._subs)), "incompatible_topics": str(len(problems))}
        if not problems:
            return NodeStatus(f"{name}: ingest/qos", "ingest", OK, "no publisher with an incompatible QoS", values)
        for topic, found in problems.items():
            values[topic] = "; ".join(f"{pub}: {why}" for pub, why in found)
        topics = ", ".join(sorted(problems))
        return NodeStatus(f"{name}: ingest/qos", "ingest", WARN,
                          f"incompatible QoS on {topics}: no message can arrive (see qos.sensor.reliability)", values)

    def _pipeline_now(self) -> int:
        """Node-clock time for a pipeline call; read with the pipeline lock held.

        Every pipeline call reads the clock under the same lock, so the ``now_ns`` the pipeline sees never
        steps back except for a real time jump (bag loop, sim time reset), which it must see to reset. For
        the same reason a message is handed over with the time it is ingested, not its (older) receive time:
        the ingest thread runs every INGEST_PERIOD_S, so liveness is at most that late.
        """
        return self.now_ns()

    def _on_diagnostics_timer(self) -> None:
        period_s = 1.0 / float(self.values["output.diagnostics_rate_hz"])
        if time.monotonic() - self._last_frame_diag < 0.9 * period_s:
            return  # a frame published /diagnostics (and the alert markers) within the period
        now = self.now_ns()
        statuses = None
        # never wait for the worker: the executor thread would hold back every sensor callback meanwhile
        if self.pipeline is not None and self._plock.acquire(blocking=False):
            try:
                now = self._pipeline_now()
                statuses = list(self.pipeline.statuses(now))
            except Exception as e:
                statuses = [NodeStatus(f"{self.node.get_name()}: pipeline/health", "pipeline", ERROR,
                                       f"statuses failed: {type(e).__name__}: {e}")]
            finally:
                self._plock.release()
        if statuses is None:  # the worker holds the pipeline: last known statuses
            statuses = [s for s in self._last_statuses]
        else:
            self._last_statuses = statuses
        statuses = statuses + self.node_statuses(now)
        self._publish("diagnostics", diagnostic_array(statuses, now))
        frame = self._last_frame_id or (self.rig.base_frame if self.rig is not None else "base_link")
        self._publish("markers", marker_array(alert_markers(statuses, now, frame)))


def _tf_message_type():
    try:
        from tf2_msgs.msg import TFMessage

        return TFMessage
    except ImportError:
        return None


class FusionMonitorNode(Node):
    """The plain node: declares parameters, builds the pipeline and starts in its constructor."""

    def __init__(self, pipeline_factory: PipelineFactory | None = None, node_name: str = P.NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        self.core = MonitorCore(self, pipeline_factory)
        self.core.declare()
        self.core.configure()
        self.core.activate()

    def shutdown(self) -> None:
        self.core.close()


def _model_load_error_type():
    try:
        from fusion_monitor.pipeline import ModelLoadError

        return ModelLoadError
    except ImportError:
        return None


def run_node(params_file: str | None = None, lifecycle: bool = False, ros_args: list[str] | None = None, *,
             autostart: bool = False, pipeline_factory: PipelineFactory | str | None = None) -> int:
    """Run the node until shutdown (SIGINT / external). Exit codes: 0 clean, 2 configuration failed.

    ``params_file`` is loaded with ``--params-file``; ``ros_args`` are rclpy arguments (may start
    with ``--ros-args``). ``lifecycle`` runs the managed variant (unconfigured unless ``autostart``).
    ``pipeline_factory`` replaces the shared pipeline (a callable or 'MODULE:CALLABLE').
    """
    import sys

    import rclpy
    from rclpy.executors import ExternalShutdownException

    if isinstance(pipeline_factory, str):
        pipeline_factory = load_factory(pipeline_factory)
    argv = ["fusion_monitor_node"]
    if params_file:
        argv += ["--ros-args", "--params-file", str(params_file), "--"]
    extra = list(ros_args or [])
    if extra and extra[0] != "--ros-args":
        extra = ["--ros-args", *extra]
    argv += extra
    node = None
    code = 0
    with rclpy.init(args=argv):
        try:
            if lifecycle:
                from fusion_monitor.ros.lifecycle_node import FusionMonitorLifecycleNode

                node = FusionMonitorLifecycleNode(pipeline_factory)
                if autostart and not node.autostart():
                    code = 2
            else:
                try:
                    node = FusionMonitorNode(pipeline_factory)
                except Exception as e:
                    mle = _model_load_error_type()
                    kind = "model package" if mle is not None and isinstance(e, mle) else "configuration"
                    print(f"fusion_monitor: ERROR: {kind} failed: {e}", file=sys.stderr, flush=True)
                    return 2
            if code == 0:
                rclpy.spin(node)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            if node is not None:
                try:
                    node.shutdown()
                finally:
                    node.destroy_node()
    if code == 0:
        print("fusion_monitor: shut down cleanly", file=sys.stderr, flush=True)
    return code
