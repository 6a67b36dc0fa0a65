"""Every output topic of the node for one FrameResult, as (topic, rclpy message) pairs.

The live node publishes these; the offline replay records them into monitor.mcap, so a review bag
holds exactly what the node would have published (source stamps and frames). Serialise them with
:func:`fusion_monitor.ros.record.serialize` (what ``McapRecorder.write`` does; a publisher takes its bytes too)."""

from __future__ import annotations

from fusion_monitor.frame import FrameResult
from fusion_monitor.ros import topics
from fusion_monitor.ros.diagnostics import diagnostic_array
from fusion_monitor.ros.markers import MarkerBuilder
from fusion_monitor.ros.outputs import bev_grids, detections_cloud, scalar, shares_array


class FrameOutputs:
    """Builds the node's output messages frame after frame (keeps marker ids stable across frames)."""

    def __init__(self, node_name: str = "fusion_monitor", namespace: str = "/", class_names=None,
                 min_score: float = 0.0, marker_lifetime_s: float = 1.0, bev_maps: bool = True):
        self.node_name, self.namespace = node_name, namespace
        self.class_names = class_names
        self.min_score, self.lifetime_s, self.bev_maps = min_score, marker_lifetime_s, bev_maps
        self.markers = MarkerBuilder()
        self._topics: dict[tuple[str, str, str], str] = {}

    def topic(self, name: str) -> str:
        key = (name, self.node_name, self.namespace)
        resolved = self._topics.get(key)
        if resolved is None:
            resolved = self._topics[key] = topics.resolve(name, self.node_name, self.namespace)
        return resolved

    def messages(self, result: FrameResult, latency_ms: float | None = None) -> list[tuple[str, object]]:
        out: list[tuple[str, object]] = [
            (self.topic(topics.MARKERS), self.markers.build(result, min_score=self.min_score,
                                                            lifetime_s=self.lifetime_s, statuses=result.statuses)),
            (self.topic(topics.DETECTIONS), detections_cloud(result, self.class_names)
             if self.class_names else detections_cloud(result)),
            (self.topic(topics.SHARES), shares_array(result)),
            (topics.DIAGNOSTICS, diagnostic_array(result.statuses, result.stamp_ns)),
            (self.topic(topics.PROCESSING_TIME), scalar(result.timings_ms.get("total", 0.0))),
        ]
        for stage, ms in result.timings_ms.items():
            if stage != "total":
                out.append((self.topic(f"{topics.PROCESSING_TIME}/{stage}"), scalar(ms)))
        if latency_ms is not None:
            out.append((self.topic(topics.PIPELINE_LATENCY), scalar(latency_ms)))
        if self.bev_maps:
            for stream, grid in bev_grids(result).items():
                out.append((self.topic(topics.ATTRIBUTION.get(stream, f"~/attribution/{stream}")), grid))
        return out
