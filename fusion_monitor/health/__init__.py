"""fusion_monitor.health: raw-signal and attribution checks, debounce, sensor statuses (pure, time injected)."""

from fusion_monitor.health.attribution import (
    AttributionChecker,
    Baseline,
    BaselineMismatch,
    Cusum,
    cusum_arl0,
    fit_baseline,
    frame_statistics,
    load_baseline,
    model_identity,
)
from fusion_monitor.health.camera import CameraChecker
from fusion_monitor.health.config import (
    AttributionCheckConfig,
    CameraCheckConfig,
    DebounceConfig,
    HealthConfig,
    LidarCheckConfig,
    LivenessConfig,
    RadarCheckConfig,
    describe,
)
from fusion_monitor.health.debounce import Debouncer
from fusion_monitor.health.lidar import LidarChecker
from fusion_monitor.health.liveness import StreamLiveness
from fusion_monitor.health.monitor import HealthMonitor
from fusion_monitor.health.radar import RadarChecker
from fusion_monitor.health.status import CheckResult, Level, SensorStatus, status_name, summarize

__all__ = [
    "AttributionCheckConfig", "AttributionChecker", "Baseline", "BaselineMismatch", "CameraCheckConfig",
    "CameraChecker", "CheckResult", "Cusum", "DebounceConfig", "Debouncer", "HealthConfig", "HealthMonitor",
    "Level", "LidarCheckConfig", "LidarChecker", "LivenessConfig", "RadarCheckConfig", "RadarChecker",
    "SensorStatus", "StreamLiveness", "cusum_arl0", "describe", "fit_baseline", "frame_statistics", "load_baseline",
    "model_identity", "status_name",
    "summarize",
]
