"""sensor_msgs/Image and CompressedImage -> numpy (RGB uint8 or mono), and numpy -> Image.

Raw encodings: rgb8, bgr8, rgba8, bgra8, mono8, mono16 (plus their 8UC1/8UC3/8UC4/16UC1
aliases) and the YUV 4:2:2 layouts cameras emit: ``yuv422``/``uyvy`` (U Y0 V Y1) and
``yuv422_yuy2``/``yuyv`` (Y0 U Y1 V). Compressed: JPEG and PNG through Pillow
(libjpeg-turbo), with JPEG DCT scaling (``Image.draft``) so an image is decoded only at the
resolution the model needs. Duck-typed: rclpy and rosbags messages both work.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image as PILImage

from fusion_monitor.ros.pointcloud import (
    MessageFactory,
    _bool,
    _get,
    _uint,
    buffer_of,
    frame_id_of,
    rclpy_factory,
    sensor_of,
    stamp_ns_of,
)
from fusion_monitor.sensors.errors import MessageError
from fusion_monitor.sensors.types import CameraFrame

# encoding -> (channels, bytes per channel, kind)
_RAW: dict[str, tuple[int, int, str]] = {
    "rgb8": (3, 1, "rgb"), "bgr8": (3, 1, "bgr"), "rgba8": (4, 1, "rgba"), "bgra8": (4, 1, "bgra"),
    "mono8": (1, 1, "mono"), "mono16": (1, 2, "mono"),
    "8UC1": (1, 1, "mono"), "8UC3": (3, 1, "bgr"), "8UC4": (4, 1, "bgra"), "16UC1": (1, 2, "mono"),
    "yuv422": (2, 1, "uyvy"), "uyvy": (2, 1, "uyvy"), "UYVY": (2, 1, "uyvy"),
    "yuv422_yuy2": (2, 1, "yuyv"), "yuyv": (2, 1, "yuyv"), "YUYV": (2, 1, "yuyv"),
}
RAW_ENCODINGS = tuple(_RAW)

#: Decoded images larger than this many pixels are refused before any pixel is decoded.
MAX_PIXELS = 64 * 1024 * 1024
_MAX_SIDE = 1 << 16
#: Decoded bytes / compressed bytes above which a compressed image is refused undecoded.
MAX_EXPANSION = 2000


def image_to_array(msg: Any, sensor: str | None = None) -> np.ndarray:
    """View an Image's pixels in their own layout, without copying.

    Returns
    -------
    np.ndarray
        Read-only (H, W, C) uint8 for colour encodings (channel order as encoded), (H, W)
        uint8/uint16 for mono, (H, W, 2) uint8 for YUV 4:2:2 (the raw byte pairs).
        ``step`` padding is skipped by strides; mono16 honours ``is_bigendian``.

    Raises
    ------
    MessageError
        Unknown encoding, step too small, data size not height * step, odd width for YUV.
    """
    sensor = sensor_of(msg, sensor)
    encoding = _get(msg, "encoding", sensor)
    if not isinstance(encoding, str) or encoding not in _RAW:
        raise MessageError(sensor, f"unsupported image encoding {encoding!r} (supported: {', '.join(_RAW)})")
    channels, depth, kind = _RAW[encoding]
    height = _uint(msg, "height", sensor)
    width = _uint(msg, "width", sensor)
    step = _uint(msg, "step", sensor)
    big = _bool(msg, "is_bigendian", sensor)
    buf = buffer_of(_get(msg, "data", sensor), sensor)
    if height == 0 or width == 0:
        raise MessageError(sensor, f"image is empty ({width}x{height})")
    if height > _MAX_SIDE or width > _MAX_SIDE:
        raise MessageError(sensor, f"image size {width}x{height} exceeds {_MAX_SIDE} pixels per side")
    if kind in ("uyvy", "yuyv") and width % 2:
        raise MessageError(sensor, f"{encoding} needs an even width, got {width}")
    pixel_bytes = channels * depth
    if step < width * pixel_bytes:
        raise MessageError(sensor, f"step {step} < width {width} * {pixel_bytes} bytes per pixel ({encoding})")
    if buf.nbytes != height * step:
        raise MessageError(sensor, f"data has {buf.nbytes} bytes, height {height} x step {step} = {height * step}")
    if depth == 1:
        dtype = np.dtype(np.uint8)
    else:
        dtype = np.dtype(">u2" if big else "<u2")
    if channels == 1:
        return np.ndarray((height, width), dtype=dtype, buffer=buf, strides=(step, depth))
    return np.ndarray((height, width, channels), dtype=dtype, buffer=buf, strides=(step, pixel_bytes, depth))


def image_to_rgb(msg: Any, sensor: str | None = None) -> np.ndarray:
    """Image -> (H, W, 3) uint8 RGB (a view for rgb8; mono encodings give (H, W) native order).

    YUV 4:2:2 is converted with the BT.601 full-range coefficients OpenCV uses for
    ``COLOR_YUV2RGB_UYVY`` / ``_YUY2`` (see :func:`yuv422_to_rgb`).
    """
    sensor = sensor_of(msg, sensor)
    arr = image_to_array(msg, sensor)
    kind = _RAW[msg.encoding][2]
    if kind == "rgb":
        return arr
    if kind == "bgr":
        return arr[:, :, ::-1]
    if kind == "rgba":
        return arr[:, :, :3]
    if kind == "bgra":
        return arr[:, :, 2::-1]
    if kind == "mono":
        return arr.astype(arr.dtype.newbyteorder("="), copy=False)
    return yuv422_to_rgb(arr, kind)


_CHROMA = np.arange(256, dtype=np.float64) - 128.0
_R_OF_V = np.rint(1.403 * _CHROMA).astype(np.int16)
_B_OF_U = np.rint(1.773 * _CHROMA).astype(np.int16)
_G_OF_UV = np.rint(-0.344 * _CHROMA[:, None] - 0.714 * _CHROMA[None, :]).astype(np.int16).reshape(-1)  # [u * 256 + v]


def yuv422_to_rgb(pairs: np.ndarray, layout: str) -> np.ndarray:
    """Convert YUV 4:2:2 byte pairs (H, W, 2) to RGB (H, W, 3) uint8.

    Parameters
    ----------
    pairs : np.ndarray
        (H, W, 2) uint8, W even: ``uyvy`` = U Y0 V Y1, ``yuyv`` = Y0 U Y1 V per two pixels.
    layout : str
        ``"uyvy"`` or ``"yuyv"``.

    Notes
    -----
    BT.601 full range as in OpenCV: R = Y + 1.403 (V - 128), G = Y - 0.344 (U - 128) -
    0.714 (V - 128), B = Y + 1.773 (U - 128); each chroma term is rounded to an integer
    (lookup tables), then added to Y and clipped to [0, 255]. Integer arithmetic only.
    """
    if layout not in ("uyvy", "yuyv"):
        raise ValueError(f"YUV layout {layout!r} is not 'uyvy' or 'yuyv'")
    h, w = pairs.shape[:2]
    quads = pairs.reshape(h, w // 2, 4)
    if layout == "uyvy":
        u, y0, v, y1 = (quads[..., i] for i in range(4))
    else:
        y0, u, y1, v = (quads[..., i] for i in range(4))
    uv = u.astype(np.int32)
    uv <<= 8
    uv += v
    terms = (np.take(_R_OF_V, v), np.take(_G_OF_UV, uv), np.take(_B_OF_U, u))
    out = np.empty((h, w // 2, 2, 3), dtype=np.uint8)
    t = np.empty((h, w // 2), dtype=np.int16)
    for k, y in enumerate((y0, y1)):
        for c, term in enumerate(terms):
            np.add(y, term, out=t, casting="unsafe")
            np.clip(t, 0, 255, out=t)
            out[:, :, k, c] = t
    return out.reshape(h, w, 3)


def image_to_frame(msg: Any, sensor: str | None = None) -> CameraFrame:
    """Image -> :class:`CameraFrame` (RGB or mono, stamp in ns)."""
    sensor = sensor_of(msg, sensor)
    img = image_to_rgb(msg, sensor)
    return CameraFrame(image=img, stamp_ns=stamp_ns_of(msg, sensor), frame_id=frame_id_of(msg, sensor))


def _sniff(head: bytes) -> str | None:
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    return None


def _declared_format(fmt: str) -> str | None:
    f = fmt.lower()
    has_jpeg = "jpeg" in f or "jpg" in f
    has_png = "png" in f
    if "compresseddepth" in f:
        return "compressedDepth"
    if has_jpeg and not has_png:
        return "jpeg"
    if has_png and not has_jpeg:
        return "png"
    return None


def decode_compressed(
    msg: Any,
    sensor: str | None = None,
    *,
    target_size: tuple[int, int] | None = None,
    expected_size: tuple[int, int] | None = None,
    max_pixels: int = MAX_PIXELS,
    max_expansion: int = MAX_EXPANSION,
) -> CameraFrame:
    """CompressedImage (JPEG or PNG) -> :class:`CameraFrame` RGB uint8 (mono images stay (H, W)).

    Parameters
    ----------
    msg : CompressedImage-like
        ``format`` as image_transport writes it (``"jpeg"``, ``"png"``,
        ``"rgb8; jpeg compressed bgr8"``); empty means "sniff the bytes".
    sensor : str, optional
        Name used in errors; defaults to ``header.frame_id``.
    target_size : (width, height), optional
        Smallest size the consumer needs. JPEGs are decoded with DCT scaling by 1/2, 1/4 or
        1/8 while still at least this size (``CameraFrame.scale`` says which); no resize
        otherwise.
    expected_size : (width, height), optional
        The sensor's size (e.g. from CameraInfo); a different header size is reported
        before decoding.
    max_pixels : int
        Larger headers are refused before decoding (decompression bombs). Pillow's own guard
        (a warning above 89 M pixels, an error above 179 M) stays in force; no global warning
        filter is touched, so decoding from several threads is safe.
    max_expansion : int
        Decoded RGB bytes may be at most this multiple of the compressed size (or 1 MiB):
        a header promising a huge image from a few bytes is refused before allocating it.
        Real camera JPEGs expand 10-50x; zlib's ceiling for PNG is about 1032x.

    Raises
    ------
    MessageError
        Unknown or mismatched format, corrupt or truncated data, an absurd or unexpected size.
    """
    sensor = sensor_of(msg, sensor)
    fmt = _get(msg, "format", sensor)
    if not isinstance(fmt, str):
        raise MessageError(sensor, f"format {fmt!r} is not a string")
    buf = buffer_of(_get(msg, "data", sensor), sensor)
    if buf.nbytes == 0:
        raise MessageError(sensor, "compressed image has no data")
    head = bytes(buf[:8])
    actual = _sniff(head)
    declared = _declared_format(fmt)
    if declared == "compressedDepth":
        raise MessageError(sensor, f"format {fmt!r} (compressedDepth) is not supported")
    if actual is None:
        raise MessageError(sensor, f"data is neither JPEG nor PNG (starts {head[:4].hex()}, format {fmt!r})")
    if fmt and declared is None:
        raise MessageError(sensor, f"unknown compressed format {fmt!r} (expected jpeg or png)")
    if declared is not None and declared != actual:
        raise MessageError(sensor, f"format says {declared} but data is {actual}")
    stamp_ns = stamp_ns_of(msg, sensor)
    frame_id = frame_id_of(msg, sensor)
    try:
        im = PILImage.open(io.BytesIO(buf), formats=("JPEG",) if actual == "jpeg" else ("PNG",))
        w, h = im.size
        if w <= 0 or h <= 0 or w * h > max_pixels:
            raise MessageError(sensor, f"{actual} header says {w}x{h} pixels (limit {max_pixels})")
        if w * h * 3 > max(max_expansion * buf.nbytes, 1 << 20):
            raise MessageError(sensor, f"{actual} header says {w}x{h} pixels from only {buf.nbytes} bytes "
                                       f"(more than {max_expansion}x expansion)")
        if expected_size is not None and (w, h) != tuple(expected_size):
            raise MessageError(sensor, f"{actual} is {w}x{h}, sensor is {expected_size[0]}x{expected_size[1]}")
        scale = 1.0
        if actual == "jpeg":
            if target_size is not None:
                im.draft("RGB", (int(target_size[0]), int(target_size[1])))
                scale = im.size[0] / w
            elif im.mode not in ("RGB", "L"):
                im.draft("RGB", (w, h))
        if im.mode not in ("RGB", "L", "I;16", "I;16B"):
            im = im.convert("RGB")
        else:
            im.load()
        arr = np.asarray(im)
    except MessageError:
        raise
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError, struct.error ... on corrupt input
        raise MessageError(sensor, f"cannot decode {actual}: {type(e).__name__}: {e}") from None
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return CameraFrame(image=arr, stamp_ns=stamp_ns, frame_id=frame_id, scale=scale)


def array_to_image(
    image: np.ndarray,
    frame_id: str,
    stamp_ns: int,
    encoding: str = "rgb8",
    *,
    factory: MessageFactory | None = None,
) -> Any:
    """(H, W, C) uint8 or (H, W) uint8/uint16 array -> sensor_msgs/Image with the given encoding.

    The array must already be in the encoding's channel layout (e.g. (H, W, 2) byte pairs
    for ``yuv422``); ``step`` = W * bytes per pixel, no padding.
    """
    if encoding not in _RAW:
        raise ValueError(f"unsupported image encoding {encoding!r}")
    channels, depth, _ = _RAW[encoding]
    want_shape_len = 2 if channels == 1 else 3
    if image.ndim != want_shape_len or (channels > 1 and image.shape[2] != channels):
        raise ValueError(f"array of shape {image.shape} does not fit encoding {encoding}")
    if image.dtype.itemsize != depth or image.dtype.kind != "u":
        raise ValueError(f"array dtype {image.dtype} does not fit encoding {encoding}")
    factory = factory or rclpy_factory()
    big = depth > 1 and (image.dtype.byteorder == ">" or (image.dtype.byteorder == "=" and not np.little_endian))
    h, w = image.shape[:2]
    return factory.make(
        "sensor_msgs/msg/Image",
        header=factory.header(frame_id, stamp_ns),
        height=int(h),
        width=int(w),
        encoding=encoding,
        is_bigendian=int(big),
        step=int(w * channels * depth),
        data=factory.wrap_bytes(np.ascontiguousarray(image).tobytes()),
    )


def compressed_image(
    data: bytes, frame_id: str, stamp_ns: int, fmt: str = "jpeg", *, factory: MessageFactory | None = None
) -> Any:
    """Wrap encoded JPEG/PNG bytes (e.g. a dataset file) in a sensor_msgs/CompressedImage."""
    factory = factory or rclpy_factory()
    return factory.make(
        "sensor_msgs/msg/CompressedImage",
        header=factory.header(frame_id, stamp_ns),
        format=fmt,
        data=factory.wrap_bytes(bytes(data)),
    )
