"""QoS profiles of the node and the player: sensor data, /tf_static, outputs, and a bag's offered QoS."""

from __future__ import annotations

from collections.abc import Sequence

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSCompatibility, QoSProfile, ReliabilityPolicy, qos_check_compatible

# message types that are sensor data: published/subscribed best effort unless overridden
SENSOR_TYPES = frozenset(
    {
        "sensor_msgs/msg/PointCloud2",
        "sensor_msgs/msg/Image",
        "sensor_msgs/msg/CompressedImage",
        "sensor_msgs/msg/LaserScan",
        "sensor_msgs/msg/Imu",
    }
)

TF_STATIC_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=100,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
# outputs (markers, diagnostics, maps): reliable, volatile, like rviz/aggregators expect
OUTPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
CLOCK_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)

_RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}


def sensor_qos(reliability: str = "best_effort", depth: int = 5) -> QoSProfile:
    """Sensor-data QoS (keep last ``depth``, volatile) with ``reliability`` 'best_effort' or 'reliable'."""
    if reliability not in _RELIABILITY:
        raise ValueError(f"reliability {reliability!r}: expected one of {sorted(_RELIABILITY)}")
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth {depth!r}: expected an integer >= 1")
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=_RELIABILITY[reliability],
        durability=DurabilityPolicy.VOLATILE,
    )


def playback_qos(topic: str, msgtype: str, offered: Sequence | None = None, depth: int = 10) -> QoSProfile:
    """QoS a player offers for one bag topic, keeping the recorded intent.

    ``offered`` is the bag's offered_qos_profiles for the topic (rosbags ``Qos`` tuples, enums
    with ``.name``). Reliable only when every recorded publisher was reliable; transient local
    only when every one was. Without a record: /tf_static reliable + transient local, sensor
    types best effort, anything else reliable.
    """
    if offered:
        rel = [getattr(q.reliability, "name", str(q.reliability)).upper() for q in offered]
        dur = [getattr(q.durability, "name", str(q.durability)).upper() for q in offered]
        reliable = all(r == "RELIABLE" for r in rel)
        transient = all(d == "TRANSIENT_LOCAL" for d in dur)
        rec_depth = max((int(q.depth) for q in offered), default=0)
        return QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=max(depth, rec_depth, 1),
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.TRANSIENT_LOCAL if transient else DurabilityPolicy.VOLATILE,
        )
    if topic == "/tf_static":
        return TF_STATIC_QOS
    if msgtype in SENSOR_TYPES:
        return sensor_qos("best_effort", depth)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE)


def incompatible_publishers(endpoints: Sequence, subscription_qos: QoSProfile) -> list[tuple[str, str]]:
    """(publisher node, why) for every publisher endpoint (``Node.get_publishers_info_by_topic``) whose offered
    QoS can never deliver to a subscription with ``subscription_qos`` (e.g. best effort offered, reliable
    requested). Unknown or system-default policies (compatibility undecidable) are not reported."""
    out = []
    for info in endpoints:
        compat, why = qos_check_compatible(info.qos_profile, subscription_qos)
        if compat == QoSCompatibility.ERROR:
            ns = info.node_namespace.rstrip("/")
            out.append((f"{ns}/{info.node_name}" if info.node_name else "an unnamed publisher", why.strip()))
    return out
