"""The ROS message boundary: PointCloud2, Image, CompressedImage, CameraInfo, TFMessage -> numpy types.

Every function is duck-typed on message field names, so it accepts rclpy messages (live
node) and rosbags messages (bag replay without ROS) alike; bad input raises
:class:`fusion_monitor.sensors.errors.MessageError` carrying the sensor and the reason.
Building messages (numpy -> msg) goes through a :class:`MessageFactory`
(:func:`rclpy_factory` or :func:`rosbags_factory`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fusion_monitor.ros.conversions_image import (
    MAX_PIXELS,
    RAW_ENCODINGS,
    array_to_image,
    compressed_image,
    decode_compressed,
    image_to_array,
    image_to_frame,
    image_to_rgb,
    yuv422_to_rgb,
)
from fusion_monitor.ros.pointcloud import (
    MessageFactory,
    _get,
    _uint,
    array_to_pointcloud2,
    dtype_to_fields,
    fields_to_dtype,
    frame_id_of,
    pointcloud2_to_array,
    pointcloud2_to_cloud,
    pointcloud2_to_radar_scan,
    rclpy_factory,
    rosbags_factory,
    sensor_of,
    stamp_ns_of,
    to_native,
)
from fusion_monitor.sensors.calibration import StampedTransform, tf_message_to_transforms
from fusion_monitor.sensors.errors import MessageError
from fusion_monitor.sensors.types import CameraIntrinsics

__all__ = [
    "MAX_PIXELS", "RAW_ENCODINGS", "MessageError", "MessageFactory", "StampedTransform",
    "array_to_image", "array_to_pointcloud2", "camera_info_to_intrinsics", "compressed_image",
    "decode_compressed", "dtype_to_fields", "fields_to_dtype", "image_to_array", "image_to_frame",
    "image_to_rgb", "intrinsics_to_camera_info", "pointcloud2_to_array", "pointcloud2_to_cloud",
    "pointcloud2_to_radar_scan", "rclpy_factory", "rosbags_factory", "sensor_of", "stamp_ns_of",
    "tf_message_to_transforms", "to_native", "transforms_to_tf_message", "yuv422_to_rgb",
]


def _floats(msg: Any, name: str, n: int | None, sensor: str) -> np.ndarray:
    v = _get(msg, name, sensor)
    try:
        arr = np.asarray(v, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise MessageError(sensor, f"{name} is not a list of numbers") from None
    if n is not None and arr.shape[0] != n:
        raise MessageError(sensor, f"{name} has {arr.shape[0]} values, expected {n}")
    if not np.all(np.isfinite(arr)):
        raise MessageError(sensor, f"{name} has non-finite values {arr.tolist()}")
    return arr


def camera_info_to_intrinsics(msg: Any, sensor: str | None = None) -> CameraIntrinsics:
    """CameraInfo -> :class:`CameraIntrinsics` (K 3x3, width, height, distortion, P 3x4).

    Raises
    ------
    MessageError
        Zero size, an all-zero K (camera not calibrated), fx/fy <= 0, a principal point
        outside the image, non-finite values, wrong array lengths.
    """
    sensor = sensor_of(msg, sensor)
    width = _uint(msg, "width", sensor)
    height = _uint(msg, "height", sensor)
    if width == 0 or height == 0:
        raise MessageError(sensor, f"CameraInfo size is {width}x{height}")
    k = _floats(msg, "k", 9, sensor)
    if not np.any(k):
        raise MessageError(sensor, "CameraInfo K is all zeros (camera not calibrated)")
    K = k.reshape(3, 3)
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise MessageError(sensor, f"CameraInfo focal lengths fx={K[0, 0]}, fy={K[1, 1]} must be > 0")
    if not (0 <= K[0, 2] <= width and 0 <= K[1, 2] <= height):
        raise MessageError(sensor, f"principal point ({K[0, 2]}, {K[1, 2]}) is outside the {width}x{height} image")
    if K[2, 0] != 0 or K[2, 1] != 0 or K[2, 2] != 1:
        raise MessageError(sensor, f"K's last row is {K[2].tolist()}, expected [0, 0, 1]")
    D = _floats(msg, "d", None, sensor)
    p = _floats(msg, "p", 12, sensor)
    P = p.reshape(3, 4) if np.any(p) else None
    model = _get(msg, "distortion_model", sensor)
    if not isinstance(model, str):
        raise MessageError(sensor, f"distortion_model {model!r} is not a string")
    return CameraIntrinsics(K=K, width=width, height=height, distortion_model=model, D=D, P=P,
                            frame_id=frame_id_of(msg, sensor))


def intrinsics_to_camera_info(
    intr: CameraIntrinsics, frame_id: str, stamp_ns: int, *, factory: MessageFactory | None = None
) -> Any:
    """:class:`CameraIntrinsics` -> CameraInfo (rectified: R = I, P = [K | 0] unless given)."""
    factory = factory or rclpy_factory()
    P = intr.P if intr.P is not None else np.hstack([intr.K, np.zeros((3, 1))])
    roi = factory.make("sensor_msgs/msg/RegionOfInterest", x_offset=0, y_offset=0, height=0, width=0,
                       do_rectify=False)
    return factory.make(
        "sensor_msgs/msg/CameraInfo",
        header=factory.header(frame_id, stamp_ns),
        height=int(intr.height),
        width=int(intr.width),
        distortion_model=intr.distortion_model or "plumb_bob",
        d=np.asarray(intr.D, dtype=np.float64).reshape(-1) if len(intr.D) else np.zeros(5),
        k=np.asarray(intr.K, dtype=np.float64).reshape(9),
        r=np.eye(3).reshape(9),
        p=np.asarray(P, dtype=np.float64).reshape(12),
        binning_x=0,
        binning_y=0,
        roi=roi,
    )


def transforms_to_tf_message(transforms: list[StampedTransform], factory: MessageFactory | None = None) -> Any:
    """StampedTransforms -> tf2_msgs/TFMessage (e.g. the rig profile as /tf_static in a bag).

    The default factory is rosbags' (tf2_msgs has no rclpy wheel on PyPI).
    """
    from scipy.spatial.transform import Rotation

    factory = factory or rosbags_factory()
    out = []
    for t in transforms:
        x, y, z, w = Rotation.from_matrix(t.T_parent_child[:3, :3]).as_quat()
        tx, ty, tz = (float(v) for v in t.T_parent_child[:3, 3])
        tf = factory.make(
            "geometry_msgs/msg/Transform",
            translation=factory.make("geometry_msgs/msg/Vector3", x=tx, y=ty, z=tz),
            rotation=factory.make("geometry_msgs/msg/Quaternion", x=float(x), y=float(y), z=float(z), w=float(w)),
        )
        out.append(factory.make("geometry_msgs/msg/TransformStamped", header=factory.header(t.parent_frame, t.stamp_ns),
                                child_frame_id=t.child_frame, transform=tf))
    return factory.make("tf2_msgs/msg/TFMessage", transforms=out)
