"""Sensor message -> fusion_monitor.frame.SensorSample (numpy), using the shared conversions.

Cameras: CompressedImage (JPEG/PNG, DCT-scaled to ``target_size`` when given) or Image -> (H, W, 3)
uint8 RGB. LiDAR: PointCloud2 -> (N, 5) float32 x, y, z, intensity, ring. Radar: PointCloud2 ->
(N, 6) float32 x, y, z, rcs, vx_comp, vy_comp. Missing optional fields are zeros; points with a
non-finite x/y/z are dropped. Every failure is a MessageError naming the sensor.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fusion_monitor.frame import SensorSample
from fusion_monitor.sensors.errors import MessageError

LIDAR_COLUMNS = ("x", "y", "z", "intensity", "ring")
RADAR_COLUMNS = ("x", "y", "z", "rcs", "vx_comp", "vy_comp")


def is_compressed_topic(topic: str) -> bool:
    """Camera topics ending in 'compressed' carry sensor_msgs/CompressedImage, others sensor_msgs/Image."""
    return topic.rstrip("/").endswith("compressed")


def cloud_columns(msg: Any, sensor: str, columns: tuple[str, ...]) -> tuple[np.ndarray, int]:
    """PointCloud2 -> ((N, len(columns)) float32, stamp_ns); absent non-xyz columns are zeros."""
    from fusion_monitor.ros.pointcloud import pointcloud2_to_array, stamp_ns_of

    pts = pointcloud2_to_array(msg, sensor).reshape(-1)
    names = pts.dtype.names or ()
    for axis in "xyz":
        if axis not in names:
            raise MessageError(sensor, f"cloud has no {axis!r} field (fields: {list(names)})")
    out = np.zeros((pts.shape[0], len(columns)), dtype=np.float32)
    for j, c in enumerate(columns):
        if c in names:
            out[:, j] = pts[c]
    if out.shape[0] and not np.isfinite(out[:, :3]).all():  # the usual all-finite sweep is not copied again
        out = out[np.isfinite(out[:, :3]).all(axis=1)]
    return out, stamp_ns_of(msg, sensor)


def camera_rgb(msg: Any, sensor: str, target_size: tuple[int, int] | None = None) -> tuple[np.ndarray, int]:
    """Image or CompressedImage -> ((H, W, 3) uint8 RGB, stamp_ns)."""
    from fusion_monitor.ros.conversions_image import decode_compressed, image_to_rgb
    from fusion_monitor.ros.pointcloud import stamp_ns_of

    if hasattr(msg, "format"):
        frame = decode_compressed(msg, sensor, target_size=target_size)
        img, stamp_ns = frame.image, frame.stamp_ns
    else:
        img, stamp_ns = image_to_rgb(msg, sensor), stamp_ns_of(msg, sensor)
    if img.ndim == 2:  # mono: the model wants 3 channels
        if img.dtype != np.uint8:
            img = (img >> 8).astype(np.uint8) if img.dtype.itemsize == 2 else img.astype(np.uint8)
        img = np.repeat(img[:, :, None], 3, axis=2)
    return img, stamp_ns


def message_to_sample(msg: Any, sensor: str, modality: str, *,
                      target_size: tuple[int, int] | None = None) -> SensorSample:
    """One received message of ``sensor`` -> SensorSample (raises MessageError when malformed)."""
    try:
        if modality == "camera":
            data, stamp_ns = camera_rgb(msg, sensor, target_size)
        elif modality == "lidar":
            data, stamp_ns = cloud_columns(msg, sensor, LIDAR_COLUMNS)
        elif modality == "radar":
            data, stamp_ns = cloud_columns(msg, sensor, RADAR_COLUMNS)
        else:
            raise MessageError(sensor, f"unknown modality {modality!r}")
    except MessageError:
        raise
    except Exception as e:  # anything else a hostile message triggers is still a bad message
        raise MessageError(sensor, f"{type(e).__name__}: {e}") from None
    return SensorSample(sensor=sensor, modality=modality, stamp_ns=stamp_ns,
                        frame_id=str(msg.header.frame_id), data=data)


def quick_check(msg: Any, sensor: str, modality: str) -> None:
    """Cheap structural check of a message that was superseded before it could be converted.

    Clouds are viewed (no copy) and must have x, y, z; compressed images must carry JPEG or PNG
    bytes; raw images must fit their size and encoding. Raises MessageError.
    """
    try:
        if modality == "camera":
            if hasattr(msg, "format"):
                from fusion_monitor.ros.pointcloud import buffer_of

                head = bytes(buffer_of(msg.data, sensor)[:8])
                if not (head[:3] == b"\xff\xd8\xff" or head[:8] == b"\x89PNG\r\n\x1a\n"):
                    raise MessageError(sensor, f"data is neither JPEG nor PNG (starts {head[:4].hex()})")
            else:
                from fusion_monitor.ros.conversions_image import image_to_array

                image_to_array(msg, sensor)
        else:
            from fusion_monitor.ros.pointcloud import pointcloud2_to_array

            names = pointcloud2_to_array(msg, sensor).dtype.names or ()
            missing = [a for a in "xyz" if a not in names]
            if missing:
                raise MessageError(sensor, f"cloud has no {missing} field(s) (fields: {list(names)})")
    except MessageError:
        raise
    except Exception as e:
        raise MessageError(sensor, f"{type(e).__name__}: {e}") from None
