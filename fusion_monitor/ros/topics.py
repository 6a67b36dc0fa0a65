"""Names of the node's output topics ('~/' = the node's namespace/name); no ROS import, tests read it."""

from __future__ import annotations

MAP_STREAMS = ("camera", "radar", "lidar", "bias")

MARKERS = "~/markers"
DETECTIONS = "~/detections"
SHARES = "~/detections/shares"
DIAGNOSTICS = "/diagnostics"
PROCESSING_TIME = "~/debug/processing_time_ms"  # total; per stage: ~/debug/processing_time_ms/<stage>
PIPELINE_LATENCY = "~/debug/pipeline_latency_ms"  # trigger stamp -> the frame's detections/markers/maps published
ATTRIBUTION = {s: f"~/attribution/{s}" for s in MAP_STREAMS}
# stages timed by the node (ingest) and the pipeline; publishers exist from activation
#: Per-stage times; waits, not processing: "receive" = LiDAR stamp -> trigger callback, "queue" = callback -> worker,
#: "handoff" = inference done -> the previous frame finished (pipeline.overlap_frames).
KNOWN_STAGES = ("receive", "queue", "handoff", "ingest", "align", "preprocess", "inference", "decode", "health")


def sensor_age(sensor: str) -> str:
    """~/debug/<sensor>/age_ms: the sensor's age at each trigger (ms, node clock)."""
    return f"~/debug/{sensor}/age_ms"

OUTPUT_TOPICS = (MARKERS, DETECTIONS, SHARES, DIAGNOSTICS, PROCESSING_TIME, PIPELINE_LATENCY, *ATTRIBUTION.values())


def resolve(topic: str, node_name: str = "fusion_monitor", namespace: str = "/") -> str:
    """'~/x' -> '/<namespace>/<node>/x'; absolute names unchanged."""
    if topic.startswith("~/"):
        ns = namespace.rstrip("/")
        return f"{ns}/{node_name}/{topic[2:]}"
    return topic
