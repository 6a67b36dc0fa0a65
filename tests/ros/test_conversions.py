"""PointCloud2 / Image / CompressedImage / CameraInfo conversions against obviously-correct references."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image as PILImage
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField

from fusion_monitor.ros import conversions as conv
from fusion_monitor.sensors.errors import MessageError
from fusion_monitor.sensors.types import NUSCENES_RADAR_DTYPE, CameraIntrinsics, finite_mask

RB = conv.rosbags_factory()
RC = conv.rclpy_factory()

# PointField datatype -> (struct code, numpy code): the slow, obvious reference
_REF = {1: "b", 2: "B", 3: "h", 4: "H", 5: "i", 6: "I", 7: "f", 8: "d"}


def _pack_reference(layout, values, point_step, row_step, height, width, big):
    """Build the data bytes with struct, one value at a time (the obviously-correct reference)."""
    order = ">" if big else "<"
    data = bytearray(height * row_step)
    for r in range(height):
        for c in range(width):
            base = r * row_step + c * point_step
            for (name, offset, dt, count) in layout:
                for k in range(count):
                    size = struct.calcsize(_REF[dt])
                    struct.pack_into(order + _REF[dt], data, base + offset + k * size, values[name][r, c, k])
    return bytes(data)


def _make_cloud(factory, layout, point_step, row_step, height, width, big, data, frame="LIDAR_TOP"):
    fields = [factory.make("sensor_msgs/msg/PointField", name=n, offset=o, datatype=d, count=c) for n, o, d, c in layout]
    return factory.make(
        "sensor_msgs/msg/PointCloud2", header=factory.header(frame, 1_500_000_000_123_456_789), height=height,
        width=width, fields=fields, is_bigendian=big, point_step=point_step, row_step=row_step,
        data=factory.wrap_bytes(data), is_dense=False,
    )


@pytest.mark.parametrize("factory", [RB, RC], ids=["rosbags", "rclpy"])
@pytest.mark.parametrize("big", [False, True], ids=["little", "big"])
@pytest.mark.parametrize("height", [1, 3], ids=["unorganised", "organised"])
def test_every_datatype_count_padding_and_byte_order_matches_struct_reference(factory, big, height):
    rng = np.random.default_rng(7)
    # every datatype, a count=3 field, unaligned offsets, point padding and row padding
    layout = [("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("i8", 12, 1, 1), ("u16", 13, 4, 1),
              ("i16", 15, 3, 1), ("u8", 17, 2, 1), ("i32", 18, 5, 1), ("u32", 22, 6, 1), ("f64", 26, 8, 1),
              ("vec", 34, 7, 3)]
    point_step, width = 52, 5
    row_step = point_step * width + 7
    values = {}
    for name, _o, dt, count in layout:
        np_code = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}[dt]
        if dt in (7, 8):
            v = rng.normal(size=(height, width, count)).astype(np_code)
        else:
            info = np.iinfo(np_code)
            v = rng.integers(info.min, info.max, size=(height, width, count), endpoint=True).astype(np_code)
        values[name] = v
    values["x"][0, 1, 0] = np.nan  # a NaN point
    data = _pack_reference(layout, values, point_step, row_step, height, width, big)
    msg = _make_cloud(factory, layout, point_step, row_step, height, width, big, data)
    arr = conv.pointcloud2_to_array(msg)
    assert arr.shape == ((width,) if height == 1 else (height, width))
    arr2 = arr.reshape(height, width)
    for name, _o, _dt, count in layout:
        got = arr2[name].reshape(height, width, count)
        np.testing.assert_array_equal(got, values[name])
    assert not finite_mask(arr2)[0, 1]
    native = conv.to_native(arr)
    assert native.dtype.fields["u16"][0].byteorder in ("=", "|") or not big
    np.testing.assert_array_equal(native["f64"], arr["f64"])


def test_view_is_zero_copy_and_read_only():
    pts = np.zeros(1000, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("pad", "V4")])
    pts["x"] = np.arange(1000)
    msg = conv.array_to_pointcloud2(pts, "LIDAR_TOP", 5, factory=RB)
    arr = conv.pointcloud2_to_array(msg)
    assert np.shares_memory(arr, msg.data)
    assert not arr.flags.writeable
    assert arr.dtype.itemsize == 16 and arr["x"][999] == 999


def test_rclpy_cdr_round_trip_is_bit_exact():
    pts = np.zeros((4, 6), dtype=NUSCENES_RADAR_DTYPE)
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 255, size=pts.nbytes, dtype=np.uint8)
    pts = np.frombuffer(raw.tobytes(), dtype=NUSCENES_RADAR_DTYPE).reshape(4, 6)
    msg = conv.array_to_pointcloud2(pts, "RADAR_FRONT", 1_532_402_927_647_951_000, factory=RC)
    back = deserialize_message(serialize_message(msg), PointCloud2)
    arr = conv.pointcloud2_to_array(back)
    assert arr.shape == (4, 6) and arr.tobytes() == pts.tobytes()
    cloud = conv.pointcloud2_to_radar_scan(back)
    assert cloud.stamp_ns == 1_532_402_927_647_951_000 and cloud.frame_id == "RADAR_FRONT" and len(cloud) == 24


@pytest.mark.parametrize(
    "mutate, words",
    [
        (lambda m: setattr(m, "point_step", 8), "ends past point_step"),
        (lambda m: setattr(m, "width", m.width + 1), "row_step"),
        (lambda m: (setattr(m, "width", m.width + 1), setattr(m, "row_step", m.row_step + 12)), "needs 132"),
        (lambda m: setattr(m, "row_step", 4), "row_step"),
        (lambda m: setattr(m, "data", bytes(m.data)[:-3]), "bytes"),
        (lambda m: setattr(m.fields[1], "datatype", 9), "unknown datatype 9"),
        (lambda m: setattr(m.fields[1], "count", 0), "count 0"),
        (lambda m: setattr(m.fields[1], "name", "x"), "appears twice"),
        (lambda m: setattr(m, "fields", []), "no fields"),
        (lambda m: setattr(m, "point_step", 0), "point_step is 0"),
    ],
)
def test_malformed_cloud_names_sensor_and_reason(mutate, words):
    pts = np.zeros(10, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
    msg = conv.array_to_pointcloud2(pts, "LIDAR_TOP", 0, factory=RC)
    mutate(msg)
    with pytest.raises(MessageError) as e:
        conv.pointcloud2_to_array(msg)
    assert e.value.sensor == "LIDAR_TOP"
    assert words in e.value.reason


def test_cloud_without_xyz_is_refused_as_lidar():
    pts = np.zeros(3, dtype=[("range_m", "<f4")])
    msg = conv.array_to_pointcloud2(pts, "LIDAR_TOP", 0, factory=RB)
    with pytest.raises(MessageError, match="no 'x' field"):
        conv.pointcloud2_to_cloud(msg)


def test_empty_cloud_is_an_empty_array():
    pts = np.zeros(0, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
    msg = conv.array_to_pointcloud2(pts, "RADAR_FRONT", 0, factory=RB)
    assert conv.pointcloud2_to_radar_scan(msg).points.shape == (0,)


# ------------------------------------------------------------------ images

def _rgb(h=6, w=8, seed=1):
    return np.random.default_rng(seed).integers(0, 255, size=(h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_colour_encodings_give_rgb(encoding):
    rgb = _rgb()
    order = {"rgb8": [0, 1, 2], "bgr8": [2, 1, 0], "rgba8": [0, 1, 2, 0], "bgra8": [2, 1, 0, 0]}[encoding]
    arr = rgb[:, :, order]
    msg = conv.array_to_image(arr, "CAM_FRONT", 7, encoding, factory=RC)
    back = deserialize_message(serialize_message(msg), Image)
    np.testing.assert_array_equal(conv.image_to_rgb(back), rgb)
    assert conv.image_to_frame(back).stamp_ns == 7


def test_step_padding_and_mono16_big_endian():
    h, w = 5, 7
    mono = np.arange(h * w, dtype=np.uint16).reshape(h, w) * 1000
    step = w * 2 + 6
    data = bytearray(h * step)
    for r in range(h):
        data[r * step: r * step + w * 2] = mono[r].astype(">u2").tobytes()
    msg = RB.make("sensor_msgs/msg/Image", header=RB.header("CAM", 0), height=h, width=w, encoding="mono16",
                  is_bigendian=1, step=step, data=RB.wrap_bytes(bytes(data)))
    got = conv.image_to_rgb(msg)
    np.testing.assert_array_equal(got, mono)
    assert got.dtype == np.uint16


def _yuv_reference(y, u, v):
    """BT.601 full range (OpenCV's coefficients), chroma term rounded, then added to Y and clipped."""
    r = y + np.rint(1.403 * (v - 128))
    g = y + np.rint(-0.344 * (u - 128) - 0.714 * (v - 128))
    b = y + np.rint(1.773 * (u - 128))
    return [int(np.clip(c, 0, 255)) for c in (r, g, b)]


@pytest.mark.parametrize("encoding", ["yuv422", "uyvy", "yuv422_yuy2", "yuyv"])
def test_yuv422_variants_match_per_pixel_reference(encoding):
    rng = np.random.default_rng(3)
    h, w = 16, 32
    raw = rng.integers(0, 256, size=(h, w, 2), dtype=np.uint8)
    msg = conv.array_to_image(raw, "CAM_FRONT", 0, encoding, factory=RB)
    got = conv.image_to_rgb(msg)
    uyvy = encoding in ("yuv422", "uyvy")
    for r in range(h):
        for c in range(0, w, 2):
            q = raw[r, c:c + 2].reshape(4).astype(float)
            u, y0, v, y1 = q if uyvy else (q[1], q[0], q[3], q[2])
            assert got[r, c].tolist() == _yuv_reference(y0, u, v)
            assert got[r, c + 1].tolist() == _yuv_reference(y1, u, v)


def test_unknown_encoding_and_bad_sizes_are_reported():
    msg = conv.array_to_image(_rgb(), "CAM_FRONT", 0, "rgb8", factory=RB)
    msg.encoding = "bayer_rggb8"
    with pytest.raises(MessageError, match="unsupported image encoding 'bayer_rggb8'"):
        conv.image_to_rgb(msg)
    msg.encoding = "rgb8"
    msg.height = 7
    with pytest.raises(MessageError, match="data has 144 bytes"):
        conv.image_to_rgb(msg)


def _encode(rgb, fmt, **kw):
    b = io.BytesIO()
    PILImage.fromarray(rgb).save(b, format=fmt, **kw)
    return b.getvalue()


def test_png_is_lossless_and_jpeg_close():
    rgb = _rgb(32, 48)
    png = conv.compressed_image(_encode(rgb, "PNG"), "CAM_FRONT", 3, "png", factory=RC)
    back = deserialize_message(serialize_message(png), CompressedImage)
    np.testing.assert_array_equal(conv.decode_compressed(back).image, rgb)
    smooth = np.repeat(np.repeat(_rgb(4, 6), 8, axis=0), 8, axis=1)
    jpg = conv.compressed_image(_encode(smooth, "JPEG", quality=95, subsampling=0), "CAM_FRONT", 3, "rgb8; jpeg compressed bgr8",
                                factory=RB)
    frame = conv.decode_compressed(jpg)
    assert frame.image.shape == smooth.shape and frame.scale == 1.0
    assert np.abs(frame.image.astype(int) - smooth).mean() < 4


def test_jpeg_dct_scaling_decodes_at_the_needed_size():
    img = np.zeros((900, 1600, 3), dtype=np.uint8)
    img[:, 800:] = 255
    msg = conv.compressed_image(_encode(img, "JPEG"), "CAM_FRONT", 0, "jpeg", factory=RB)
    frame = conv.decode_compressed(msg, target_size=(704, 256))
    assert frame.image.shape == (450, 800, 3) and frame.scale == 0.5
    frame = conv.decode_compressed(msg, target_size=(200, 112))
    assert frame.image.shape == (113, 200, 3) and frame.scale == 0.125
    assert frame.image[50, 150, 0] > 200 and frame.image[50, 50, 0] < 50


def test_compressed_format_mismatch_truncation_and_bombs():
    png = _encode(_rgb(), "PNG")
    msg = conv.compressed_image(png, "CAM_BACK", 0, "jpeg", factory=RB)
    with pytest.raises(MessageError, match="format says jpeg but data is png") as e:
        conv.decode_compressed(msg)
    assert e.value.sensor == "CAM_BACK"
    jpg = _encode(_rgb(64, 64), "JPEG")
    msg = conv.compressed_image(jpg[: len(jpg) // 2], "CAM_BACK", 0, "jpeg", factory=RB)
    with pytest.raises(MessageError, match="cannot decode jpeg"):
        conv.decode_compressed(msg)
    # PNG headers announcing huge images: refused before decoding (ours, then Pillow's bomb guard)
    for (w, h), words in [((9000, 8000), "9000x8000 pixels"), ((60000, 60000), "decompression bomb")]:
        bomb = bytearray(png)
        struct.pack_into(">II", bomb, 16, w, h)
        struct.pack_into(">I", bomb, 29, zlib.crc32(bytes(bomb[12:29])))  # keep the IHDR CRC valid
        msg = conv.compressed_image(bytes(bomb), "CAM_BACK", 0, "png", factory=RB)
        with pytest.raises(MessageError, match=words):
            conv.decode_compressed(msg)
    msg = conv.compressed_image(png, "CAM_BACK", 0, "png", factory=RB)
    with pytest.raises(MessageError, match="sensor is 1600x900"):
        conv.decode_compressed(msg, expected_size=(1600, 900))


def test_camera_info_round_trip_and_uncalibrated():
    K = np.array([[1266.4, 0, 816.3], [0, 1266.4, 491.5], [0, 0, 1]])
    intr = CameraIntrinsics(K=K, width=1600, height=900)
    msg = conv.intrinsics_to_camera_info(intr, "CAM_FRONT", 0, factory=RC)
    back = conv.camera_info_to_intrinsics(deserialize_message(serialize_message(msg), CameraInfo))
    np.testing.assert_array_equal(back.K, K)
    assert (back.width, back.height, back.frame_id) == (1600, 900, "CAM_FRONT")
    msg.k = np.zeros(9)
    with pytest.raises(MessageError, match="not calibrated"):
        conv.camera_info_to_intrinsics(msg)
    msg = conv.intrinsics_to_camera_info(intr, "CAM_FRONT", 0, factory=RB)
    msg.k = np.array([1266.4, 0, 2000.0, 0, 1266.4, 491.5, 0, 0, 1])
    with pytest.raises(MessageError, match="principal point"):
        conv.camera_info_to_intrinsics(msg)


def test_pointfield_constants_match():
    assert (PointField.INT8, PointField.FLOAT64) == (conv.fields_to_dtype.__globals__["INT8"], 8)


def test_live_tf_needs_tf2_ros():
    from fusion_monitor.ros.conversions_tf import LiveTf, tf2_available

    if tf2_available():
        pytest.skip("tf2_ros present: live tf is exercised by the ROS-install CI job, not here")
    with pytest.raises(ImportError, match="tf2_ros is not installed"):
        LiveTf(node=None)
