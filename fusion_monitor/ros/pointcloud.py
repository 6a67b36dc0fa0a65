"""sensor_msgs/PointCloud2 <-> numpy structured arrays, for any field layout, zero-copy where possible.

Duck-typed on field names, so rclpy messages and rosbags messages both work; nothing here
imports rclpy at module load (the reverse direction builds messages through a
:class:`MessageFactory`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from fusion_monitor.sensors.errors import MessageError
from fusion_monitor.sensors.types import PointCloud, RadarScan

# sensor_msgs/PointField datatype constants
INT8, UINT8, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64 = range(1, 9)
_DATATYPE_TO_NUMPY: dict[int, str] = {
    INT8: "i1", UINT8: "u1", INT16: "i2", UINT16: "u2", INT32: "i4", UINT32: "u4", FLOAT32: "f4", FLOAT64: "f8",
}
_NUMPY_TO_DATATYPE: dict[str, int] = {v: k for k, v in _DATATYPE_TO_NUMPY.items()}

#: Largest cloud buffer accepted (bytes); a bigger header is reported, never allocated.
MAX_CLOUD_BYTES = 1 << 31


def sensor_of(msg: Any, sensor: str | None = None) -> str:
    """The sensor name for error reports: ``sensor`` if given, else ``header.frame_id``, else ``"?"``."""
    if sensor:
        return str(sensor)
    try:
        fid = msg.header.frame_id
    except AttributeError:
        return "?"
    return fid if isinstance(fid, str) and fid else "?"


def stamp_ns_of(msg: Any, sensor: str) -> int:
    """Header stamp of a message in integer nanoseconds (``sec * 1e9 + nanosec``).

    Raises
    ------
    MessageError
        When the header or its stamp is missing or ``nanosec`` is outside [0, 1e9).
    """
    try:
        sec, nsec = msg.header.stamp.sec, msg.header.stamp.nanosec
    except AttributeError:
        raise MessageError(sensor, "message has no header.stamp") from None
    if not _is_int(sec) or not _is_int(nsec):
        raise MessageError(sensor, f"header.stamp sec={sec!r} nanosec={nsec!r} are not integers")
    if not 0 <= int(nsec) < 1_000_000_000:
        raise MessageError(sensor, f"header.stamp.nanosec={nsec} is outside [0, 1e9)")
    return int(sec) * 1_000_000_000 + int(nsec)


def frame_id_of(msg: Any, sensor: str) -> str:
    """``header.frame_id`` as a string (MessageError when missing or not a string)."""
    try:
        fid = msg.header.frame_id
    except AttributeError:
        raise MessageError(sensor, "message has no header.frame_id") from None
    if not isinstance(fid, str):
        raise MessageError(sensor, f"header.frame_id {fid!r} is not a string")
    return fid


def _bool(msg: Any, name: str, sensor: str) -> bool:
    v = _get(msg, name, sensor)
    if not isinstance(v, bool | np.bool_ | int | np.integer) or int(v) not in (0, 1):
        raise MessageError(sensor, f"{name}={v!r} is not a bool")
    return bool(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def _get(msg: Any, name: str, sensor: str) -> Any:
    try:
        return getattr(msg, name)
    except AttributeError:
        raise MessageError(sensor, f"message has no field '{name}'") from None


def _uint(msg: Any, name: str, sensor: str) -> int:
    """A uint32 message field (height, width, step, point_step, row_step)."""
    v = _get(msg, name, sensor)
    if not _is_int(v) or not 0 <= int(v) <= 0xFFFFFFFF:
        raise MessageError(sensor, f"{name}={v!r} is not a uint32")
    return int(v)


def buffer_of(data: Any, sensor: str, what: str = "data") -> memoryview:
    """A flat, read-only byte view of a message's ``data`` without copying.

    Accepts bytes, bytearray, array.array('B'), memoryview and contiguous uint8 numpy arrays
    (rosbags); a Python list of ints (some bindings) is copied once.
    """
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8 or data.ndim != 1:
            raise MessageError(sensor, f"{what} is a numpy array of {data.dtype} {data.shape}, expected 1-D uint8")
        if not data.flags.c_contiguous:
            data = np.ascontiguousarray(data)
        mv = memoryview(data)
    elif isinstance(data, list | tuple):
        try:
            mv = memoryview(bytes(data))
        except (ValueError, TypeError):
            raise MessageError(sensor, f"{what} is a list that is not bytes (values outside 0..255)") from None
    else:
        try:
            mv = memoryview(data)
        except TypeError:
            raise MessageError(sensor, f"{what} of type {type(data).__name__} is not a byte buffer") from None
    if mv.ndim != 1 or mv.itemsize != 1:
        try:
            mv = mv.cast("B")
        except (TypeError, ValueError):
            raise MessageError(sensor, f"{what} is not a flat byte buffer (format {mv.format!r})") from None
    return mv.toreadonly()


@lru_cache(maxsize=256)
def _dtype_cached(layout: tuple, point_step: int, big: bool) -> np.dtype:
    order = ">" if big else "<"
    names, formats, offsets = [], [], []
    for name, offset, datatype, count in layout:
        base = np.dtype(order + _DATATYPE_TO_NUMPY[datatype])
        names.append(name)
        formats.append(base if count == 1 else np.dtype((base, (count,))))
        offsets.append(offset)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": point_step})


def fields_to_dtype(fields: Any, point_step: int, is_bigendian: bool, sensor: str = "?") -> np.dtype:
    """Numpy structured dtype for a PointCloud2 field list.

    Parameters
    ----------
    fields : sequence of PointField-like
        Each with ``name``, ``offset`` (bytes), ``datatype`` (1..8), ``count`` (>= 1).
    point_step : int
        Bytes per point; becomes the dtype's itemsize (padding kept).
    is_bigendian : bool
        Byte order of multi-byte fields.
    sensor : str
        Named in errors.

    Returns
    -------
    np.dtype
        Structured dtype; ``count > 1`` fields are sub-arrays of shape (count,).

    Raises
    ------
    MessageError
        Unknown datatype, count < 1, duplicate or empty names, a field past ``point_step``.
    """
    try:
        items = list(fields)
    except TypeError:
        raise MessageError(sensor, f"fields of type {type(fields).__name__} is not a list") from None
    if not items:
        raise MessageError(sensor, "PointCloud2 has no fields")
    if len(items) > 1024:
        raise MessageError(sensor, f"PointCloud2 has {len(items)} fields (more than 1024)")
    layout = []
    seen = set()
    for f in items:
        try:
            name, offset, datatype, count = f.name, f.offset, f.datatype, f.count
        except AttributeError:
            raise MessageError(sensor, f"field {f!r} lacks name/offset/datatype/count") from None
        if not isinstance(name, str) or not name:
            raise MessageError(sensor, f"field name {name!r} is not a non-empty string")
        if name in seen:
            raise MessageError(sensor, f"field '{name}' appears twice")
        seen.add(name)
        if not _is_int(datatype) or int(datatype) not in _DATATYPE_TO_NUMPY:
            raise MessageError(sensor, f"field '{name}' has unknown datatype {datatype!r} (expected 1..8)")
        if not _is_int(count) or int(count) < 1:
            raise MessageError(sensor, f"field '{name}' has count {count!r} (expected >= 1)")
        if not _is_int(offset) or int(offset) < 0:
            raise MessageError(sensor, f"field '{name}' has offset {offset!r}")
        size = np.dtype(_DATATYPE_TO_NUMPY[int(datatype)]).itemsize * int(count)
        if int(offset) + size > point_step:
            raise MessageError(
                sensor, f"field '{name}' (offset {offset}, {size} bytes) ends past point_step {point_step}"
            )
        layout.append((name, int(offset), int(datatype), int(count)))
    try:
        return _dtype_cached(tuple(layout), int(point_step), bool(is_bigendian))
    except (ValueError, TypeError, OverflowError) as e:  # numpy refusing a name or layout
        raise MessageError(sensor, f"field layout not representable: {e}") from None


def pointcloud2_to_array(msg: Any, sensor: str | None = None, *, native: bool = False) -> np.ndarray:
    """View a PointCloud2's data as a structured numpy array, without copying.

    Parameters
    ----------
    msg : PointCloud2-like
        rclpy or rosbags message (any object with the PointCloud2 field names).
    sensor : str, optional
        Name used in errors; defaults to ``header.frame_id``.
    native : bool
        When True and the cloud is big-endian, return a native-order copy.

    Returns
    -------
    np.ndarray
        Read-only structured array of shape (width,) when ``height == 1``, else
        (height, width) (organised cloud; ``row_step`` padding skipped by strides). NaN
        points are kept (see :func:`fusion_monitor.sensors.types.finite_mask`).

    Raises
    ------
    MessageError
        Any inconsistency between header fields and data; nothing is allocated before the
        sizes are checked against ``len(data)``.
    """
    sensor = sensor_of(msg, sensor)
    height = _uint(msg, "height", sensor)
    width = _uint(msg, "width", sensor)
    point_step = _uint(msg, "point_step", sensor)
    row_step = _uint(msg, "row_step", sensor)
    big = _bool(msg, "is_bigendian", sensor)
    buf = buffer_of(_get(msg, "data", sensor), sensor)
    n_bytes = buf.nbytes
    if n_bytes > MAX_CLOUD_BYTES:
        raise MessageError(sensor, f"data has {n_bytes} bytes (limit {MAX_CLOUD_BYTES})")
    if point_step == 0:
        raise MessageError(sensor, "point_step is 0")
    if point_step > max(n_bytes, 1 << 16):
        raise MessageError(sensor, f"point_step {point_step} is larger than the data ({n_bytes} bytes)")
    dtype = fields_to_dtype(_get(msg, "fields", sensor), point_step, bool(big), sensor)
    n_points = height * width
    if n_points == 0:
        if n_bytes != 0:
            raise MessageError(sensor, f"height*width is 0 ({height}x{width}) but data has {n_bytes} bytes")
        shape = (0,) if height <= 1 else (height, 0)
        return np.zeros(shape, dtype=dtype)
    if row_step < width * point_step:
        raise MessageError(
            sensor, f"row_step {row_step} < width {width} * point_step {point_step} = {width * point_step}"
        )
    min_bytes = (height - 1) * row_step + width * point_step
    max_bytes = height * row_step
    if not min_bytes <= n_bytes <= max_bytes:
        raise MessageError(
            sensor,
            f"data has {n_bytes} bytes; height {height} x row_step {row_step} needs {max_bytes}"
            + (f" (at least {min_bytes})" if min_bytes != max_bytes else ""),
        )
    if height == 1:
        arr = np.ndarray(shape=(width,), dtype=dtype, buffer=buf, offset=0, strides=(point_step,))
    else:
        arr = np.ndarray(shape=(height, width), dtype=dtype, buffer=buf, offset=0, strides=(row_step, point_step))
    if native and big:
        arr = to_native(arr)
    return arr


def to_native(points: np.ndarray) -> np.ndarray:
    """Return ``points`` with every field in native byte order (a copy only when needed)."""
    native = _native_dtype(points.dtype)
    if native == points.dtype:
        return points
    return points.astype(native)


def _native_dtype(dt: np.dtype) -> np.dtype:
    if dt.names is None:
        if dt.subdtype is not None:
            base, shape = dt.subdtype
            return np.dtype((base.newbyteorder("="), shape))
        return dt.newbyteorder("=")
    return np.dtype(
        {
            "names": list(dt.names),
            "formats": [_native_dtype(dt.fields[n][0]) for n in dt.names],
            "offsets": [dt.fields[n][1] for n in dt.names],
            "itemsize": dt.itemsize,
        }
    )


def pointcloud2_to_cloud(msg: Any, sensor: str | None = None) -> PointCloud:
    """PointCloud2 -> :class:`PointCloud` (zero-copy view, stamp in ns, frame from the header).

    Raises
    ------
    MessageError
        Bad layout or data, a stamp outside range, or no float ``x``, ``y``, ``z`` fields.
    """
    sensor = sensor_of(msg, sensor)
    points = pointcloud2_to_array(msg, sensor)
    _require_xyz(points, sensor)
    return PointCloud(points=points, stamp_ns=stamp_ns_of(msg, sensor), frame_id=frame_id_of(msg, sensor),
                      is_dense=_bool(msg, "is_dense", sensor))


def pointcloud2_to_radar_scan(msg: Any, sensor: str | None = None) -> RadarScan:
    """PointCloud2 (radar detections, e.g. nuScenes ARS408 fields) -> :class:`RadarScan`."""
    sensor = sensor_of(msg, sensor)
    points = pointcloud2_to_array(msg, sensor)
    _require_xyz(points, sensor)
    if points.ndim != 1:
        points = points.reshape(-1)
    return RadarScan(points=points, stamp_ns=stamp_ns_of(msg, sensor), frame_id=frame_id_of(msg, sensor),
                     is_dense=_bool(msg, "is_dense", sensor))


def _require_xyz(points: np.ndarray, sensor: str) -> None:
    for axis in ("x", "y", "z"):
        f = points.dtype.fields.get(axis)
        if f is None:
            raise MessageError(sensor, f"cloud has no '{axis}' field (fields: {list(points.dtype.names)})")
        if f[0].kind != "f" or f[0].subdtype is not None:
            raise MessageError(sensor, f"field '{axis}' is {f[0]}, expected a float32/float64 scalar")


def dtype_to_fields(dtype: np.dtype) -> tuple[list[tuple[str, int, int, int]], bool]:
    """PointField tuples (name, offset, datatype, count) and is_bigendian for a structured dtype.

    Raises
    ------
    ValueError
        A field type PointCloud2 cannot carry (int64, bool, nested struct, ...) or mixed byte orders.
        Raw ``np.void`` fields are padding: kept in point_step, not listed.
    """
    if dtype.names is None:
        raise ValueError(f"dtype {dtype} is not structured")
    out, orders = [], set()
    for name in dtype.names:
        ft, offset = dtype.fields[name][:2]
        count = 1
        if ft.subdtype is not None:
            ft, shape = ft.subdtype
            count = int(np.prod(shape))
        if ft.kind == "V" and ft.names is None:
            continue  # raw bytes (np.void): padding, kept in point_step but not a field
        code = f"{ft.kind}{ft.itemsize}"
        if code not in _NUMPY_TO_DATATYPE or ft.names is not None:
            raise ValueError(f"field '{name}' of type {ft} has no PointField datatype")
        if ft.itemsize > 1:
            orders.add(">" if ft.byteorder == ">" or (ft.byteorder == "=" and not _LITTLE) else "<")
        out.append((name, int(offset), _NUMPY_TO_DATATYPE[code], count))
    if len(orders) > 1:
        raise ValueError(f"dtype {dtype} mixes byte orders")
    return out, orders == {">"}


_LITTLE = np.little_endian


@dataclass(frozen=True)
class MessageFactory:
    """Message classes to build messages with (rclpy's or a rosbags typestore's).

    ``types`` maps ROS type names (``sensor_msgs/msg/PointCloud2``) to classes that take
    every field as a keyword; ``wrap_bytes`` turns bytes into what the ``data`` field takes.
    """

    types: dict[str, Any]
    wrap_bytes: Any

    def make(self, type_name: str, **fields: Any) -> Any:
        try:
            cls = self.types[type_name]
        except KeyError:
            raise KeyError(f"message factory has no type {type_name}") from None
        return cls(**fields)

    def header(self, frame_id: str, stamp_ns: int) -> Any:
        sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
        stamp = self.make("builtin_interfaces/msg/Time", sec=sec, nanosec=nsec)
        return self.make("std_msgs/msg/Header", stamp=stamp, frame_id=frame_id)


_RCLPY_TYPES = {
    "sensor_msgs/msg/PointCloud2": ("sensor_msgs.msg", "PointCloud2"),
    "sensor_msgs/msg/PointField": ("sensor_msgs.msg", "PointField"),
    "sensor_msgs/msg/Image": ("sensor_msgs.msg", "Image"),
    "sensor_msgs/msg/CompressedImage": ("sensor_msgs.msg", "CompressedImage"),
    "sensor_msgs/msg/CameraInfo": ("sensor_msgs.msg", "CameraInfo"),
    "sensor_msgs/msg/RegionOfInterest": ("sensor_msgs.msg", "RegionOfInterest"),
    "std_msgs/msg/Header": ("std_msgs.msg", "Header"),
    "builtin_interfaces/msg/Time": ("builtin_interfaces.msg", "Time"),
}


@lru_cache(maxsize=1)
def rclpy_factory() -> MessageFactory:
    """Factory building rclpy messages (imports sensor_msgs / std_msgs lazily; built once)."""
    import importlib

    types = {k: getattr(importlib.import_module(mod), cls) for k, (mod, cls) in _RCLPY_TYPES.items()}
    return MessageFactory(types=types, wrap_bytes=bytes)


def rosbags_factory(typestore: Any = None) -> MessageFactory:
    """Factory building rosbags messages (no ROS needed); default typestore: ROS 2 Kilted (built once)."""
    if typestore is None:
        return _default_rosbags_factory()
    return MessageFactory(types=typestore.types, wrap_bytes=_bytes_to_uint8)


def _bytes_to_uint8(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype=np.uint8)


@lru_cache(maxsize=1)
def _default_rosbags_factory() -> MessageFactory:
    from rosbags.typesys import Stores, get_typestore

    return rosbags_factory(get_typestore(getattr(Stores, "ROS2_KILTED", None) or Stores.LATEST))


def array_to_pointcloud2(
    points: np.ndarray,
    frame_id: str,
    stamp_ns: int,
    *,
    factory: MessageFactory | None = None,
    is_dense: bool | None = None,
) -> Any:
    """Structured array (N,) or (H, W) -> PointCloud2 carrying the same bytes.

    Parameters
    ----------
    points : np.ndarray
        Structured array; its itemsize becomes point_step (padding kept, so a cloud read with
        :func:`pointcloud2_to_array` round-trips bit-exactly).
    frame_id : str
        header.frame_id.
    stamp_ns : int
        header stamp, nanoseconds.
    factory : MessageFactory, optional
        Defaults to :func:`rclpy_factory`.
    is_dense : bool, optional
        Defaults to "every x, y, z is finite".
    """
    if factory is None:
        factory = rclpy_factory()
    if points.ndim not in (1, 2):
        raise ValueError(f"points must be (N,) or (H, W), got shape {points.shape}")
    layout, big = dtype_to_fields(points.dtype)
    height, width = (1, points.shape[0]) if points.ndim == 1 else points.shape
    point_step = points.dtype.itemsize
    fields = [factory.make("sensor_msgs/msg/PointField", name=n, offset=o, datatype=d, count=c)
              for n, o, d, c in layout]
    if is_dense is None:
        names = points.dtype.names
        is_dense = all(a not in names for a in "xyz") or bool(np.all(_finite_xyz(points)))
    return factory.make(
        "sensor_msgs/msg/PointCloud2",
        header=factory.header(frame_id, stamp_ns),
        height=int(height),
        width=int(width),
        fields=fields,
        is_bigendian=bool(big),
        point_step=int(point_step),
        row_step=int(point_step * width),
        data=factory.wrap_bytes(np.ascontiguousarray(points).tobytes()),
        is_dense=bool(is_dense),
    )


def _finite_xyz(points: np.ndarray) -> np.ndarray:
    ok = np.ones(points.shape, dtype=bool)
    for a in "xyz":
        if a in points.dtype.names:
            ok &= np.isfinite(points[a]) if points.dtype.fields[a][0].kind == "f" else True
    return ok
