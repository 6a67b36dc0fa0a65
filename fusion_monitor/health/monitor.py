"""HealthMonitor: one object the ROS node and the offline replay both drive, yielding debounced sensor statuses.

Drive it with the node clock injected::

    mon = HealthMonitor(load_rig(), HealthConfig())
    mon.on_message("CAM_FRONT", stamp_ns, now_ns)          # every message (liveness)
    mon.on_camera("CAM_FRONT", rgb_uint8, stamp_ns)         # messages you analyse
    mon.on_lidar("LIDAR_TOP", points, stamp_ns)
    mon.on_radar("RADAR_FRONT", structured_points, stamp_ns)
    mon.on_attribution(stamp_ns, [d.shares for d in dets], [d.score for d in dets], bev_shares, now_ns=now_ns)
    statuses = mon.statuses(now_ns)                         # list[SensorStatus], stable order and names

Every status is named ``"<node>: <sensor>/<check>"`` (attribution: ``"<node>: <modality>/<check>"``).
Before a sensor's first message its statuses are STALE; before the first inference the
attribution statuses are STALE "waiting for first inference", never ERROR. A node clock or
header stamp that jumps backwards resets the windows instead of failing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from fusion_monitor.health.attribution import ATTRIBUTION_CHECKS, AttributionChecker, Baseline, load_baseline
from fusion_monitor.health.camera import CAMERA_CHECKS, CameraChecker
from fusion_monitor.health.config import HealthConfig
from fusion_monitor.health.crossmodal import CameraContext, CameraProjection, camera_context
from fusion_monitor.health.debounce import Debouncer
from fusion_monitor.health.lidar import LIDAR_CHECKS, LidarChecker, lidar_columns
from fusion_monitor.health.liveness import LIVENESS_CHECKS, NS_PER_MS, StreamLiveness, stamp_skews_ms
from fusion_monitor.health.radar import RADAR_CHECKS, RadarChecker
from fusion_monitor.health.radar_alignment import LidarYawConsensus, Occupancy, lidar_occupancy
from fusion_monitor.health.status import CheckResult, Level, SensorStatus
from fusion_monitor.sensors.rig import MODALITIES, Rig

#: Per modality, the data checks reported; the LiDAR's "alignment" is judged here from the radars' alignment.
DATA_CHECKS = {"camera": CAMERA_CHECKS, "lidar": LIDAR_CHECKS + ("alignment",), "radar": RADAR_CHECKS}


#: Staleness levels meaning "no recent message" (ERROR once data came, STALE before the first message).
SILENT = (Level.ERROR, Level.STALE)
#: Node-clock steps back smaller than this are jitter between threads, not a time jump (no reset).
CLOCK_JITTER_NS = 200_000_000


class HealthMonitor:
    """Per-sensor raw-signal checks, liveness and attribution checks, debounced into sensor statuses.

    Parameters
    ----------
    rig : Rig
        Sensor set (names, modalities, rates, extrinsics).
    config : HealthConfig
    node_name : str
        First part of every status name.
    baseline : Baseline, optional
        Attribution baseline; checked against ``model_id`` and the rig's sensors when ``model_id`` is given.
        Without one, ``config.attribution.baseline_file`` (when set) is loaded and checked against the rig's
        sensors and ``model_id``.
    model_id : str, optional
        :func:`fusion_monitor.health.attribution.model_identity` of the running model.

    Raises
    ------
    BaselineMismatch
        The baseline was calibrated for another model or sensor set.
    FileNotFoundError, ValueError
        ``baseline_file`` is missing or not a baseline.
    """

    def __init__(self, rig: Rig, config: HealthConfig | None = None, node_name: str = "fusion_monitor",
                 baseline: Baseline | None = None, model_id: str | None = None):
        self.rig = rig
        self.config = config or HealthConfig()
        self.node_name = node_name
        if baseline is None and self.config.attribution.baseline_file:
            baseline = load_baseline(self.config.attribution.baseline_file, rig.sensors, model_id)
        elif baseline is not None and model_id is not None:
            baseline.check_compatible(model_id, rig.sensors)
        self.baseline = baseline
        self.modalities = tuple(m for m in MODALITIES if rig.of(m))
        self._build()

    def _build(self) -> None:
        c = self.config
        self._live = {n: StreamLiveness(n, s.rate_hz, c.liveness) for n, s in self.rig.sensors.items()}
        self._checkers: dict[str, object] = {}
        for n, s in self.rig.sensors.items():
            if s.modality == "camera":
                self._checkers[n] = CameraChecker(n, c.camera)
            elif s.modality == "lidar":
                self._checkers[n] = LidarChecker(n, c.lidar, s.T_base_sensor)
            else:
                self._checkers[n] = RadarChecker(n, c.radar, s.T_base_sensor)
        self._attr = AttributionChecker(self.modalities, c.attribution, self.baseline)
        self._deb: dict[tuple[str, str], Debouncer] = {}
        self._latest: dict[tuple[str, str], tuple[CheckResult, Level, int]] = {}
        self._data_stamp: dict[str, int] = {}
        self._context: dict[str, tuple[int, CameraContext]] = {}  # camera -> (LiDAR stamp, what the LiDAR sees)
        self._occupancy: Occupancy | None = None  # the latest sweep's occupied cells, for the radar alignment
        self._yaw_consensus = LidarYawConsensus(c.radar)  # the radars' verdict on the LiDAR's mount
        self._last_now_ns: int | None = None
        self._inference_now_ns: int | None = None
        self._inference_stamp_ns: int | None = None
        self.resets = 0

    def reset(self) -> None:
        """Forget every window, reference and raised level (a node-clock jump backwards does this)."""
        resets = self.resets
        self._build()
        self.resets = resets + 1

    # -- inputs -----------------------------------------------------------------------------
    def _sensor(self, sensor: str, modality: str | None = None):
        if sensor not in self.rig.sensors:
            raise KeyError(f"unknown sensor {sensor!r} (rig has: {', '.join(self.rig.sensors)})")
        spec = self.rig.sensors[sensor]
        if modality is not None and spec.modality != modality:
            raise ValueError(f"sensor {sensor!r} is a {spec.modality}, not a {modality}")
        return spec

    def _clock(self, now_ns: int | None) -> None:
        if now_ns is None:
            return
        now_ns = int(now_ns)
        if self._last_now_ns is not None and now_ns < self._last_now_ns - CLOCK_JITTER_NS:
            self.reset()
        if self._last_now_ns is None or now_ns > self._last_now_ns or now_ns < self._last_now_ns - CLOCK_JITTER_NS:
            self._last_now_ns = now_ns

    def on_message(self, sensor: str, stamp_ns: int, now_ns: int) -> None:
        """Any message of ``sensor`` with header ``stamp_ns`` arrived at node time ``now_ns`` (liveness only)."""
        self._sensor(sensor)
        self._clock(now_ns)
        self._live[sensor].on_message(stamp_ns, now_ns)

    def _record(self, sensor: str, results: Mapping[str, CheckResult], stamp_ns: int) -> None:
        for check, res in results.items():
            key = (sensor, check)
            deb = self._deb.setdefault(key, Debouncer(self.config.debounce))
            level = deb.update(res.level, stamp_ns)
            self._latest[key] = (res, level, int(stamp_ns))

    def _data(self, sensor: str, modality: str, data, stamp_ns: int, now_ns: int | None) -> None:
        self._sensor(sensor, modality)
        if now_ns is not None:
            self.on_message(sensor, stamp_ns, now_ns)
        stamp_ns = int(stamp_ns)
        prev = self._data_stamp.get(sensor)
        checker = self._checkers[sensor]
        if prev is not None and stamp_ns < prev:
            checker.reset()
        self._data_stamp[sensor] = stamp_ns
        if modality == "camera":
            results = checker.update(data, self._camera_context(sensor, stamp_ns))
        elif modality == "radar":
            results = checker.update(data, self._occupancy, stamp_ns)
            results["alignment"] = self._yaw_consensus.radar(sensor, stamp_ns, results["alignment"])
        else:
            results = checker.update(data)
            if modality == "lidar":
                ground = results.get("ground")
                doubt = "" if ground is None or ground.level == Level.OK else f"{sensor} ground plane moved"
                self._update_context(sensor, data, stamp_ns, doubt)
                results = {**results, "alignment": self._yaw_consensus.lidar(sensor, stamp_ns)}
        self._record(sensor, results, stamp_ns)

    def _update_context(self, lidar: str, points, stamp_ns: int, doubt: str = "") -> None:
        """Per camera, what this sweep says about its check grid (near objects, covered cells); for the radars,
        the occupied cells (``doubt``: why this LiDAR is not a reference for them now)."""
        c = self.config.camera
        xyz, _, _ = lidar_columns(points)
        xyz = xyz[:, ::2]  # every other return is plenty for per-cell coverage and near surfaces
        T = np.asarray(self.rig.sensors[lidar].T_base_sensor, np.float32)
        base = T[:3, :3] @ xyz + T[:3, 3:4]
        if self.rig.of("radar"):
            self._occupancy = replace(lidar_occupancy(base, stamp_ns, self.config.radar), doubt=doubt)
        for cam in self.rig.of("camera"):
            proj = CameraProjection.from_spec(cam)
            if proj is None:
                continue
            ctx = camera_context(base, proj, c.grid_rows, c.grid_cols, c.near_object_m, c.near_ground_z_m,
                                 c.near_column_fraction, c.near_min_points, c.occlusion_cover_points,
                                 c.occlusion_near_m)
            self._context[cam.name] = (int(stamp_ns), ctx)

    def _camera_context(self, camera: str, stamp_ns: int) -> CameraContext | None:
        """The latest LiDAR context of ``camera`` when the sweep is recent enough (header stamps)."""
        got = self._context.get(camera)
        if got is None or abs(int(stamp_ns) - got[0]) > self.config.camera.near_max_age_ms * NS_PER_MS:
            return None
        return got[1]

    def on_camera(self, sensor: str, image: np.ndarray, stamp_ns: int, now_ns: int | None = None) -> None:
        """Check one (H, W, 3) uint8 RGB image; with ``now_ns`` it also counts as a received message."""
        self._data(sensor, "camera", image, stamp_ns, now_ns)

    def on_lidar(self, sensor: str, points: np.ndarray, stamp_ns: int, now_ns: int | None = None) -> None:
        """Check one sweep ((N, >=3) [x y z intensity ring] or structured, sensor frame)."""
        self._data(sensor, "lidar", points, stamp_ns, now_ns)

    def on_radar(self, sensor: str, points: np.ndarray, stamp_ns: int, now_ns: int | None = None) -> None:
        """Check one radar scan (structured: x y rcs vx_comp vy_comp, optional vx vy dyn_prop)."""
        self._data(sensor, "radar", points, stamp_ns, now_ns)

    def on_attribution(self, stamp_ns: int, detection_shares: Sequence[Mapping[str, float]],
                       scores: Sequence[float] | None = None, bev_shares: Mapping[str, float] | None = None,
                       now_ns: int | None = None, masked: Sequence[str] = ()) -> None:
        """One inference result: per-detection modality shares (``Detection.shares``), scores, BEV shares.

        ``masked`` lists modalities the pipeline masked (stale or missing) for this frame.
        """
        self._clock(now_ns)
        stamp_ns = int(stamp_ns)
        if self._inference_stamp_ns is not None and stamp_ns < self._inference_stamp_ns:
            self._attr.reset()
        ref_now = int(now_ns) if now_ns is not None else stamp_ns
        live = {}
        fed = any(lv.count for lv in self._live.values())  # a driver that never reports messages: trust ``masked``
        for m in self.modalities:
            sensors = [s.name for s in self.rig.of(m)]
            delivering = any(self._live[s].count > 0 and
                             self._live[s].check_staleness(ref_now).level not in SILENT for s in sensors)
            live[m] = m not in masked and (delivering or not fed)
        results = self._attr.update(detection_shares, scores, bev_shares, live)
        for m, checks in results.items():
            self._record(m, checks, stamp_ns)
        self._inference_stamp_ns = stamp_ns
        self._inference_now_ns = ref_now

    # -- output -----------------------------------------------------------------------------
    def _status(self, sensor: str, check: str, res: CheckResult, level: Level | None = None,
                hardware_id: str | None = None) -> SensorStatus:
        return SensorStatus.from_result(self.node_name, sensor, check, res, level, hardware_id)

    def statuses(self, now_ns: int) -> list[SensorStatus]:
        """Every status at node time ``now_ns``: per sensor (liveness, then data checks in rig order), then
        per modality the attribution checks."""
        now_ns = int(now_ns)
        self._clock(now_ns)
        skews = stamp_skews_ms({n: lv.median_delay_ms() for n, lv in self._live.items()})
        out: list[SensorStatus] = []
        for name, spec in self.rig.sensors.items():
            lv = self._live[name]
            live_results = lv.results(now_ns, skews[name])
            for check in LIVENESS_CHECKS:
                out.append(self._status(name, check, live_results[check]))
            stale = live_results["staleness"].level in SILENT and lv.count > 0
            for check in DATA_CHECKS[spec.modality]:
                key = (name, check)
                if key not in self._latest:
                    out.append(self._status(name, check, CheckResult(
                        Level.STALE, f"waiting for first {spec.modality} data", {"value": "nan", "bound": "data"})))
                    continue
                res, level, stamp = self._latest[key]
                values = {**res.values, "stamp_ns": str(stamp)}
                if stale:
                    out.append(self._status(name, check, CheckResult(
                        Level.STALE, f"no data (last result: {res.message})", values)))
                else:
                    out.append(self._status(name, check, CheckResult(res.level, res.message, values), level))
        timeout_ms = max(self.config.liveness.stale_timeout_ms, 1000.0)
        for m in self.modalities:
            for check in ATTRIBUTION_CHECKS:
                key = (m, check)
                if self._inference_now_ns is None or key not in self._latest:
                    res = CheckResult(Level.STALE, "waiting for first inference", {"value": "nan", "bound": "inference"})
                    out.append(self._status(m, check, res, hardware_id=m))
                    continue
                res, level, stamp = self._latest[key]
                age_ms = (now_ns - self._inference_now_ns) / NS_PER_MS
                values = {**res.values, "stamp_ns": str(stamp), "inference_age_ms": f"{age_ms:.0f}"}
                if age_ms > timeout_ms:
                    out.append(self._status(m, check, CheckResult(
                        Level.STALE, f"no inference for {age_ms:.0f} ms", values), hardware_id=m))
                else:
                    out.append(self._status(m, check, CheckResult(res.level, res.message, values), level, m))
        return out

    def worst(self, now_ns: int) -> Level:
        """Highest level over :meth:`statuses` (for a one-line summary)."""
        return max((s.level for s in self.statuses(now_ns)), default=Level.OK)
