"""What one processed frame yields: detections with per-modality shares, BEV maps, statuses, timings.

These are the types the pipeline returns and both drivers (the ROS node, the offline replay) turn
into outputs. Pure Python + numpy: no ROS types here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

STREAMS = ("camera", "radar", "lidar", "bias")


@dataclass(frozen=True)
class SensorSample:
    """One sensor message converted to numpy.

    ``data`` is an (H, W, 3) uint8 RGB image for cameras, an (N, k) float32 array of points
    in the sensor frame for LiDAR (x, y, z, intensity, ring) and radar (x, y, z, rcs, vx_comp,
    vy_comp, ...). ``stamp_ns`` is the header stamp in nanoseconds.
    """

    sensor: str
    modality: str
    stamp_ns: int
    frame_id: str
    data: np.ndarray
    #: cameras: the model's (3, H, W) float32 input slot made from ``data`` ahead of the frame (optional)
    model_input: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Detection:
    """A 3D detection in the output frame with its modality attribution.

    ``shares`` maps stream name (camera, radar, lidar, bias) to its signed share of the
    detection's heat-map logit: h_s / sum_s' |h_s'|, so the absolute shares sum to 1 and a
    negative share means that stream argued against the detection.
    """

    track_id: int
    label: str
    score: float
    center_m: tuple[float, float, float]
    size_m: tuple[float, float, float]  # length, width, height
    yaw_rad: float
    velocity_mps: tuple[float, float] = (0.0, 0.0)
    shares: dict[str, float] = field(default_factory=dict)

    @property
    def dominant(self) -> str:
        """Modality with the largest share (bias excluded); 'bias' if no modality share is positive."""
        mods = {k: v for k, v in self.shares.items() if k != "bias"}
        if not mods or max(mods.values()) <= 0:
            return "bias"
        return max(mods, key=mods.get)


@dataclass(frozen=True)
class BevGrid:
    """A BEV raster: row i, column j covers x = x_min_m + (i + 0.5) * cell_m, y = y_min_m + (j + 0.5) * cell_m."""

    x_min_m: float
    y_min_m: float
    cell_m: float
    rows: int
    cols: int


@dataclass
class FrameResult:
    """Everything the monitor derived from one trigger."""

    stamp_ns: int
    frame_id: str
    detections: list[Detection]
    bev_maps: dict[str, np.ndarray]  # stream -> (rows, cols) float32 contribution map
    bev_grid: BevGrid | None
    masked: list[str]  # modalities masked at this trigger (stale or missing)
    ages_ms: dict[str, float]  # sensor -> age at the trigger
    timings_ms: dict[str, float]  # stage -> processing time
    statuses: list = field(default_factory=list)  # fusion_monitor.health SensorStatus


def _r(x: float, nd: int = 4) -> float:
    return round(float(x), nd)


def frame_record(result: FrameResult, t0_ns: int) -> dict:
    """One line of frames.jsonl: stamp, detections with per-modality shares, sensor statuses."""
    return {
        "stamp_ns": int(result.stamp_ns),
        "t_s": _r((result.stamp_ns - t0_ns) / 1e9, 3),
        "frame_id": result.frame_id,
        "detections": [
            {
                "id": int(d.track_id),
                "label": d.label,
                "score": _r(d.score, 3),
                "center_m": [_r(v, 2) for v in d.center_m],
                "size_m": [_r(v, 2) for v in d.size_m],
                "yaw_rad": _r(d.yaw_rad, 3),
                "velocity_mps": [_r(v, 2) for v in d.velocity_mps],
                "shares": {k: _r(v) for k, v in d.shares.items()},
                "dominant": d.dominant,
            }
            for d in result.detections
        ],
        "masked": list(result.masked),
        "ages_ms": {k: _r(v, 1) for k, v in result.ages_ms.items()},
        "timings_ms": {k: _r(v, 2) for k, v in result.timings_ms.items()},
        "statuses": [
            {"name": s.name, "hardware_id": getattr(s, "hardware_id", ""), "level": int(s.level),
             "message": s.message, "values": dict(getattr(s, "values", {}) or {})}
            for s in result.statuses
        ],
    }
