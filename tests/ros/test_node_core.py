"""MonitorCore logic on a real rclpy node in this process (FAKE pipeline, no DDS peers):
trigger decimation and drop-oldest, time jumps, /tf_static and CameraInfo calibration overrides."""

from __future__ import annotations

from types import SimpleNamespace as NS

import numpy as np
import pytest
from fake_pipeline import make


@pytest.fixture
def core(ros_ctx):
    from rclpy.node import Node

    from fusion_monitor.ros.node import MonitorCore

    node = Node("fusion_monitor_core_test")
    c = MonitorCore(node, make)
    c.declare()
    c.configure()
    try:
        yield c
    finally:
        c.close()
        node.destroy_node()


def _cloud_msg(stamp_ns: int):
    sec, nsec = divmod(stamp_ns, 1_000_000_000)
    return NS(header=NS(stamp=NS(sec=sec, nanosec=nsec), frame_id="LIDAR_TOP"))


def test_trigger_every_other_sweep_drop_oldest_and_time_jump(core):
    t0 = 1_000_000_000_000
    for k in range(6):  # 20 Hz sweeps, 10 Hz trigger, worker not running: the queue (size 1) overflows
        core._maybe_trigger(_cloud_msg(t0 + k * 50_000_000), 0)
    assert core.triggers == 3 and core.dropped_triggers == 2
    assert core._queue.get_nowait().stamp_ns == t0 + 200_000_000  # the newest trigger survived
    core._maybe_trigger(_cloud_msg(t0 - 5_000_000_000), 0)  # bag looped: time jumped back
    assert core.triggers == 4 and core._last_trigger_ns == t0 - 5_000_000_000
    core.values["trigger.rate_hz"] = 20.0
    core._maybe_trigger(_cloud_msg(t0 - 4_950_000_000), 0)
    assert core.triggers == 5


def _transform(parent, child, t, q_xyzw):
    return NS(header=NS(frame_id=parent, stamp=NS(sec=1, nanosec=0)), child_frame_id=child,
              transform=NS(translation=NS(x=t[0], y=t[1], z=t[2]),
                           rotation=NS(x=q_xyzw[0], y=q_xyzw[1], z=q_xyzw[2], w=q_xyzw[3])))


def test_tf_static_overrides_sensor_extrinsics(core):
    msg = NS(transforms=[_transform("base_link", "LIDAR_TOP", (1.0, 0.0, 2.0), (0, 0, 0, 1)),
                         _transform("LIDAR_TOP", "RADAR_FRONT", (2.5, 0.0, -1.0), (0, 0, 0, 1))])
    core._tf_static.append(msg)
    core._apply_tf_static()
    cal = core.pipeline.calibrated
    assert set(cal) == {"LIDAR_TOP", "RADAR_FRONT"}
    core._apply_tf_static()  # nothing new: nothing re-applied
    assert core._tf_done == 1


def test_tf_static_calls_set_calibration_with_the_composed_transform(core):
    seen = {}
    core.pipeline.set_calibration = lambda sensor, T_base_sensor=None, K=None: seen.__setitem__(sensor, T_base_sensor)
    core._tf_static.append(NS(transforms=[_transform("base_link", "LIDAR_TOP", (1.0, 0.0, 2.0), (0, 0, 0, 1)),
                                          _transform("LIDAR_TOP", "RADAR_FRONT", (2.5, 0.0, -1.0),
                                                     (0, 0, 0, 1))]))
    core._apply_tf_static()
    assert np.allclose(seen["RADAR_FRONT"][:3, 3], [3.5, 0.0, 1.0])


def test_camera_info_scaled_to_the_rig_size_and_bad_info_reported(core):
    K = [500.0, 0.0, 400.0, 0.0, 500.0, 225.0, 0.0, 0.0, 1.0]  # an 800x450 CameraInfo of a 1600x900 camera
    core._camera_info["CAM_FRONT"] = NS(header=NS(frame_id="CAM_FRONT", stamp=NS(sec=1, nanosec=0)), width=800,
                                        height=450, k=K, d=[0.0] * 5, p=[0.0] * 12, distortion_model="plumb_bob")
    core._camera_info["CAM_BACK"] = NS(header=NS(frame_id="CAM_BACK", stamp=NS(sec=1, nanosec=0)), width=1600,
                                       height=900, k=[0.0] * 9, d=[], p=[0.0] * 12, distortion_model="")
    core._apply_camera_info()
    assert core.pipeline.calibrated["CAM_FRONT"][0, 0] == pytest.approx(1000.0)
    assert "CAM_BACK" not in core.pipeline.calibrated
    assert core.bad_messages == 1 and core._last_bad[1] == "CAM_BACK" and "zeros" in core._last_bad[2]
    statuses = {s.name: s for s in core.node_statuses(core._last_bad[0])}
    assert statuses["fusion_monitor_core_test: ingest/messages"].level == 1


@pytest.mark.parametrize("reliability", ["best_effort", "reliable"])
def test_inputs_remappable_with_sensor_qos_by_default(ros_ctx, reliability):
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import ReliabilityPolicy

    from fusion_monitor.ros.node import MonitorCore

    node = Node("fusion_monitor_remap_test", cli_args=["--ros-args", "-r", "/LIDAR_TOP:=/sensing/lidar/top"],
                parameter_overrides=[Parameter("qos.sensor.reliability", value=reliability)])
    core = MonitorCore(node, make)
    core.declare()
    core.configure()
    core.activate()
    try:
        topics = {s.topic_name: s for s in core._subs}
        assert "/sensing/lidar/top" in topics and "/LIDAR_TOP" not in topics
        assert "/CAM_FRONT/image_rect_compressed" in topics and "/CAM_FRONT/camera_info" in topics
        assert len([t for t in topics if t.startswith("/RADAR_")]) == 5
        info = node.get_subscriptions_info_by_topic("/sensing/lidar/top")
        want = ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort" else ReliabilityPolicy.RELIABLE
        assert info and info[0].qos_profile.reliability == want
        pubs = {name for name, _ in node.get_publisher_names_and_types_by_node(node.get_name(), "/")}
        assert {"/fusion_monitor_remap_test/markers", "/fusion_monitor_remap_test/attribution/lidar",
                "/diagnostics", "/fusion_monitor_remap_test/debug/pipeline_latency_ms"} <= pubs
    finally:
        core.close()
        node.destroy_node()


def test_incompatible_sensor_qos_is_a_diagnostic_not_silence(ros_ctx):
    """A LiDAR driver publishing best effort while the node asks for reliable: nothing can arrive; the node says
    why in /diagnostics (ingest/qos WARN naming the topic and the publisher), and OK once the publisher matches."""
    import time

    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import PointCloud2

    from fusion_monitor.ros.node import MonitorCore
    from fusion_monitor.ros.qos import sensor_qos

    node = Node("fusion_monitor_qos_test", parameter_overrides=[Parameter("qos.sensor.reliability", value="reliable")])
    driver = Node("lidar_driver")
    core = MonitorCore(node, make)
    core.declare()
    core.configure()
    core.activate()

    def qos_status(expect_level: int, timeout_s: float = 10.0):
        deadline = time.monotonic() + timeout_s
        while True:
            core._check_qos()
            st = {s.name: s for s in core.node_statuses(0)}["fusion_monitor_qos_test: ingest/qos"]
            if st.level == expect_level or time.monotonic() > deadline:
                return st
            time.sleep(0.1)

    try:
        assert qos_status(0, 0).level == 0  # no publisher yet
        pub = driver.create_publisher(PointCloud2, "/LIDAR_TOP", sensor_qos("best_effort"))
        st = qos_status(1)
        assert st.level == 1, st.message
        assert "/LIDAR_TOP" in st.message and "/lidar_driver" in st.values["/LIDAR_TOP"]
        assert "reliab" in st.values["/LIDAR_TOP"].lower()
        driver.destroy_publisher(pub)
        driver.create_publisher(PointCloud2, "/LIDAR_TOP", sensor_qos("reliable"))
        st = qos_status(0)
        assert st.level == 0, st.message
    finally:
        core.close()
        driver.destroy_node()
        node.destroy_node()


def _jpeg_msg(stamp_ns: int, data: bytes):
    from sensor_msgs.msg import CompressedImage

    m = CompressedImage()
    m.header.frame_id, m.format, m.data = "CAM_FRONT", "jpeg", data
    m.header.stamp.sec, m.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return m


def test_camera_images_decode_on_arrival_superseded_queued_ones_never(core):
    """A camera image starts decoding when it arrives (the trigger rarely waits for a burst of images); when a
    newer image arrives before the decode started, the old one is never decoded; a corrupt image decoded on
    arrival is still reported as a bad message at ingest."""
    import io
    import threading

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (900, 1600, 3), np.uint8)).save(buf, format="JPEG")
    cb = core._make_callback("CAM_FRONT")
    gate = threading.Event()
    busy = [core._pool.submit(gate.wait) for _ in range(2)]  # both decode threads busy: decodes queue
    t0 = 1_000_000_000_000
    cb(_jpeg_msg(t0, buf.getvalue()))
    cb(_jpeg_msg(t0 + 83_000_000, buf.getvalue()))
    old, new = core._latest["CAM_FRONT"]
    assert old[3].cancelled() and not new[3].cancelled()
    gate.set()
    [b.result() for b in busy]
    assert new[3].result().data.shape == (113, 200, 3)  # DCT-scaled towards the model's 176x96 on arrival
    core._ingest(None)
    assert core.pipeline.samples == 1 and core.pipeline.last_stamp["CAM_FRONT"] == t0 + 83_000_000
    assert core.bad_messages == 0
    cb(_jpeg_msg(t0 + 166_000_000, buf.getvalue()[:2000]))  # truncated JPEG
    core._ingest(None)
    assert core.bad_messages == 1 and core._last_bad[1] == "CAM_FRONT" and "jpeg" in core._last_bad[2].lower()
    assert core.pipeline.samples == 1
