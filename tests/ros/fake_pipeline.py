"""FAKE pipeline for the ROS plumbing tests only (QoS, parameters, outputs, lifecycle, signals).

It honours the interface the node uses (rig, on_sample, on_bad_message, process, statuses,
set_thresholds) with trivial logic and no model: detections are fixed boxes whose shares are
renormalised over the live modalities. The end-to-end tests use the real fusion_monitor.pipeline.
Loaded into the node process with ``--pipeline-factory fake_pipeline:make`` (PYTHONPATH=tests/ros).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from fusion_monitor.frame import BevGrid, Detection, FrameResult
from fusion_monitor.sensors.rig import load_rig


@dataclass(frozen=True)
class FakeStatus:
    name: str
    hardware_id: str
    level: int
    message: str
    values: dict = field(default_factory=dict)


class FakeModelLoadError(RuntimeError):
    pass


class FakePipeline:
    def __init__(self, params: dict):
        pkg = params.get("model.package", "")
        if pkg and pkg.startswith("/nonexistent"):
            raise FakeModelLoadError(f"model package {pkg}: no such folder")
        self.params = dict(params)
        self.rig = load_rig(params.get("rig.profile") or None)
        self.last_recv: dict[str, int] = {}
        self.last_stamp: dict[str, int] = {}
        self.bad: dict[str, str] = {}
        self.samples = 0
        self.calibrated: dict = {}
        self.spec = SimpleNamespace(image_hw=(96, 176))  # model image size: JPEGs are DCT-decoded towards it
        self.grid = BevGrid(x_min_m=-8.0, y_min_m=-4.0, cell_m=1.0, rows=16, cols=8)

    def on_sample(self, sample, now_ns: int) -> None:
        self.last_recv[sample.sensor] = now_ns
        self.last_stamp[sample.sensor] = sample.stamp_ns
        self.bad.pop(sample.sensor, None)
        self.samples += 1

    def on_bad_message(self, sensor: str, reason: str, now_ns: int) -> None:
        self.bad[sensor] = reason

    def set_calibration(self, sensor: str, T_base_sensor=None, K=None) -> None:
        self.calibrated[sensor] = K

    def set_thresholds(self, values: dict) -> list[str]:
        if values.get("health.liveness.stale_timeout_ms", 1.0) == 999.0:
            return ["health.liveness.stale_timeout_ms: 999 is refused by the fake pipeline"]
        self.params.update(values)
        return []

    def _stale(self, sensor: str, now_ns: int) -> bool | None:
        if sensor not in self.last_recv:
            return None
        return now_ns - self.last_recv[sensor] > self.params["health.liveness.stale_timeout_ms"] * 1e6

    def statuses(self, now_ns: int) -> list[FakeStatus]:
        out = []
        for name in self.rig.sensors:
            stale = self._stale(name, now_ns)
            if stale is None:
                out.append(FakeStatus(f"fusion_monitor: {name}/staleness", name, 3, "no data yet"))
            elif stale:
                out.append(FakeStatus(f"fusion_monitor: {name}/staleness", name, 2, f"{name} stale"))
            else:
                out.append(FakeStatus(f"fusion_monitor: {name}/staleness", name, 0, "ok"))
            if name in self.calibrated:
                out.append(FakeStatus(f"fusion_monitor: {name}/calibration", name, 0, "K from CameraInfo",
                                      {"fx": f"{self.calibrated[name][0, 0]:.1f}"}))
            if name in self.bad:
                out.append(FakeStatus(f"fusion_monitor: {name}/decode", name, 1, self.bad[name]))
        return out

    def process(self, trigger_stamp_ns: int, now_ns: int) -> FrameResult:
        live = {m: any(self._stale(s.name, now_ns) is False for s in self.rig.of(m))
                for m in ("camera", "radar", "lidar")}
        raw = {"camera": 0.45, "radar": 0.10, "lidar": 0.40, "bias": 0.05}
        shares = {k: (v if k == "bias" or live[k] else 0.0) for k, v in raw.items()}
        total = sum(shares.values())
        shares = {k: v / total for k, v in shares.items()}
        dets = [
            Detection(1, "car", 0.82, (10.0, 2.0, 0.8), (4.5, 1.9, 1.6), 0.3, (5.0, 0.0), dict(shares)),
            Detection(2, "pedestrian", 0.55, (6.0, -3.0, 0.9), (0.7, 0.7, 1.8), 0.0, (0.0, 0.0), dict(shares)),
        ]
        maps = {k: np.full((16, 8), v, dtype=np.float32) for k, v in shares.items()}
        return FrameResult(
            stamp_ns=trigger_stamp_ns, frame_id="LIDAR_TOP", detections=dets, bev_maps=maps, bev_grid=self.grid,
            masked=[m for m, ok in live.items() if not ok],
            ages_ms={s: (now_ns - t) / 1e6 for s, t in self.last_recv.items()},
            timings_ms={"ingest": 0.1, "engine": 1.0, "decode": 0.2, "health": 0.1},
            statuses=self.statuses(now_ns),
        )


def make(params: dict) -> FakePipeline:
    return FakePipeline(params)


class FailingPipeline(FakePipeline):
    """process() always raises: the node must turn it into an ERROR diagnostic and keep going."""

    def process(self, trigger_stamp_ns: int, now_ns: int) -> FrameResult:
        raise RuntimeError("boom: the fake engine failed")


def make_failing(params: dict) -> FailingPipeline:
    return FailingPipeline(params)
