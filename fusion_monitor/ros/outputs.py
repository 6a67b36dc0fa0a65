"""Standard messages from a FrameResult: detections, per-detection shares, BEV maps, debug scalars.

- ``~/detections``: sensor_msgs/PointCloud2, one point per detection at its centre (RViz shows
  it), header = the source LiDAR stamp and frame; fields :data:`DETECTION_FIELDS` (box, velocity,
  score, track id, class index into ``class_names``, one share per stream).
- ``~/detections/shares``: std_msgs/Float32MultiArray, rows = detections, columns
  :data:`SHARE_COLUMNS`; the layout labels say so (dim[0] "detections", dim[1]
  "track_id,camera,radar,lidar,bias").
- ``~/attribution/<modality>``: nav_msgs/OccupancyGrid (RViz Map display) of the modality's
  positive BEV contribution, 0..100 scaled by the largest value over all modalities of the frame
  (so maps of one frame compare), origin at the grid corner; row i of the numpy map is x.
- ``~/debug/...``: std_msgs/Float64 scalars.
"""

from __future__ import annotations

import array

import numpy as np
from geometry_msgs.msg import Point, Pose, Quaternion
from nav_msgs.msg import MapMetaData, OccupancyGrid
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Float32MultiArray, Float64, MultiArrayDimension, MultiArrayLayout

from fusion_monitor.frame import STREAMS, BevGrid, FrameResult
from fusion_monitor.ros.markers import CHECK_FIELDS, FAST_PATH, header_msg, new_message, slots_are

SHARE_COLUMNS = ("track_id", *STREAMS)
NUSCENES_CLASSES = (
    "car", "truck", "construction_vehicle", "bus", "trailer",
    "barrier", "motorcycle", "bicycle", "pedestrian", "traffic_cone",
)
_DET_FLOATS = ("x", "y", "z", "length", "width", "height", "yaw", "vx", "vy", "score")
DETECTION_FIELDS = (*_DET_FLOATS, "track_id", "label_id", *(f"share_{s}" for s in STREAMS))
_DET_DTYPE = np.dtype(
    [(n, "<f4") for n in _DET_FLOATS] + [("track_id", "<u4"), ("label_id", "<i4")]
    + [(f"share_{s}", "<f4") for s in STREAMS]
)
_PF = {"<f4": PointField.FLOAT32, "<u4": PointField.UINT32, "<i4": PointField.INT32}


def detections_array(result: FrameResult, class_names=NUSCENES_CLASSES) -> np.ndarray:
    """Structured (N,) array of the detections (the fields of ``~/detections``); label_id -1 = unknown class."""
    index = {c: i for i, c in enumerate(class_names)}
    nan = np.nan
    rows = []
    for d in result.detections:
        (x, y, z), (length, width, height), (vx, vy) = d.center_m, d.size_m, d.velocity_mps
        sh = d.shares
        rows.append((x, y, z, length, width, height, d.yaw_rad, vx, vy, d.score, d.track_id,
                     index.get(d.label, -1), *[sh.get(s, nan) for s in STREAMS]))
    return np.array(rows, dtype=_DET_DTYPE) if rows else np.zeros(0, dtype=_DET_DTYPE)


_DET_FIELDS = tuple((n, int(_DET_DTYPE.fields[n][1]), _PF[_DET_DTYPE.fields[n][0].str]) for n in _DET_DTYPE.names)

# Fast path (see fusion_monitor.ros.markers): the messages below are filled slot by slot when the installed
# classes have exactly these fields; the generated constructors otherwise. Same result either way.
_FAST = FAST_PATH and all((
    slots_are(PointCloud2, "header", "height", "width", "fields", "is_bigendian", "point_step", "row_step", "data",
              "is_dense"),
    slots_are(PointField, "name", "offset", "datatype", "count"),
    slots_are(Float32MultiArray, "layout", "data"), slots_are(MultiArrayLayout, "dim", "data_offset"),
    slots_are(MultiArrayDimension, "label", "size", "stride"),
    slots_are(OccupancyGrid, "header", "info", "data"),
    slots_are(MapMetaData, "map_load_time", "resolution", "width", "height", "origin"),
    slots_are(Float64, "data"),
))


def _point_fields() -> list[PointField]:
    if _FAST:
        return [new_message(PointField, CHECK_FIELDS, name=n, offset=off, datatype=dt, count=1)
                for n, off, dt in _DET_FIELDS]
    return [PointField(name=n, offset=off, datatype=dt, count=1) for n, off, dt in _DET_FIELDS]


def detections_cloud(result: FrameResult, class_names=NUSCENES_CLASSES) -> PointCloud2:
    """``~/detections`` message: a PointCloud2 with one point per detection."""
    arr = detections_array(result, class_names)
    # uint8[] data as an array.array('B') (what the setter stores; a bytes object would be checked byte by byte
    # under ROS_PYTHON_CHECK_FIELDS=1)
    fields = dict(
        header=header_msg(result.stamp_ns, result.frame_id), height=1, width=len(arr), fields=_point_fields(),
        is_bigendian=False, point_step=_DET_DTYPE.itemsize, row_step=_DET_DTYPE.itemsize * len(arr),
        data=array.array("B", arr.tobytes()), is_dense=True)
    return new_message(PointCloud2, CHECK_FIELDS, **fields) if _FAST else PointCloud2(**fields)


def shares_array(result: FrameResult) -> Float32MultiArray:
    """``~/detections/shares``: (N, 5) float32 rows [track_id, camera, radar, lidar, bias]."""
    n, k = len(result.detections), len(SHARE_COLUMNS)
    nan = np.nan
    rows = [(d.track_id, *[d.shares.get(s, nan) for s in STREAMS]) for d in result.detections]
    data = np.array(rows, dtype=np.float32) if rows else np.zeros((0, k), dtype=np.float32)
    # float32[] as an array.array('f') of the same values (a numpy array is converted element by element,
    # and rejected by the setter under ROS_PYTHON_CHECK_FIELDS=1)
    values = array.array("f", data.tobytes())
    dims = (("detections", n, n * k), (",".join(SHARE_COLUMNS), k, k))
    if not _FAST:
        return Float32MultiArray(layout=MultiArrayLayout(
            dim=[MultiArrayDimension(label=lb, size=sz, stride=st) for lb, sz, st in dims], data_offset=0), data=values)
    layout = new_message(MultiArrayLayout, CHECK_FIELDS, data_offset=0, dim=[
        new_message(MultiArrayDimension, CHECK_FIELDS, label=lb, size=sz, stride=st) for lb, sz, st in dims])
    return new_message(Float32MultiArray, CHECK_FIELDS, layout=layout, data=values)


def parse_shares(msg: Float32MultiArray) -> dict[int, dict[str, float]]:
    """Inverse of :func:`shares_array`: track id -> stream -> share (uses the layout labels)."""
    if len(msg.layout.dim) != 2:
        raise ValueError(f"shares layout has {len(msg.layout.dim)} dimensions, expected 2")
    cols = msg.layout.dim[1].label.split(",")
    n, k = msg.layout.dim[0].size, msg.layout.dim[1].size
    data = np.asarray(msg.data, dtype=np.float32).reshape(n, k)
    return {int(row[0]): {c: float(v) for c, v in zip(cols[1:], row[1:])} for row in data}


def bev_scale(bev_maps: dict[str, np.ndarray]) -> float:
    """Largest positive contribution over every map of a frame (1.0 when none is positive)."""
    peak = max((float(np.nanmax(m)) for m in bev_maps.values() if m.size), default=0.0)
    return peak if np.isfinite(peak) and peak > 0 else 1.0


def bev_occupancy_grid(bev_map: np.ndarray, grid: BevGrid, stamp_ns: int, frame_id: str,
                       scale: float | None = None) -> OccupancyGrid:
    """One (rows, cols) contribution map -> OccupancyGrid (x along the grid's width, y along its height).

    Values are ``clip(map / scale, 0, 1) * 100``; NaN cells are -1 (unknown).
    """
    m = np.asarray(bev_map, dtype=np.float32)
    if m.shape != (grid.rows, grid.cols):
        raise ValueError(f"BEV map shape {m.shape} does not match the grid ({grid.rows}, {grid.cols})")
    scale = bev_scale({"m": m}) if scale is None else float(scale)
    # OccupancyGrid is row-major in y: index = y * width + x, so work on the transpose (C order from here).
    vals = np.array(m.T, dtype=np.float32, order="C")
    vals /= scale  # float32 arithmetic, as m / scale
    np.clip(vals, 0.0, 1.0, out=vals)  # NaN stays NaN, +-inf clip to 1 / 0
    vals *= 100.0
    np.rint(vals, out=vals)
    vals[np.isnan(vals)] = -1.0  # the only non-finite values left
    cells = vals.astype(np.int8)
    header = header_msg(stamp_ns, frame_id)
    # int8[] as an array.array('b'): what the setter stores (a numpy array would be checked element by element)
    data = array.array("b", cells.tobytes())
    # width runs along x (rows of the map); map_load_time is the header's stamp object, as it always was
    info = dict(map_load_time=header.stamp, resolution=float(grid.cell_m), width=int(grid.rows), height=int(grid.cols))
    x0, y0 = float(grid.x_min_m), float(grid.y_min_m)
    if not _FAST:
        return OccupancyGrid(header=header, data=data,
                             info=MapMetaData(**info, origin=Pose(position=Point(x=x0, y=y0))))
    origin = new_message(Pose, CHECK_FIELDS, position=new_message(Point, CHECK_FIELDS, x=x0, y=y0, z=0.0),
                         orientation=new_message(Quaternion, CHECK_FIELDS, x=0.0, y=0.0, z=0.0, w=1.0))
    return new_message(OccupancyGrid, CHECK_FIELDS, header=header, data=data,
                       info=new_message(MapMetaData, CHECK_FIELDS, **info, origin=origin))


def bev_grids(result: FrameResult) -> dict[str, OccupancyGrid]:
    """Stream -> OccupancyGrid for every BEV map of the frame (empty without a grid)."""
    if result.bev_grid is None or not result.bev_maps:
        return {}
    scale = bev_scale(result.bev_maps)
    return {s: bev_occupancy_grid(m, result.bev_grid, result.stamp_ns, result.frame_id, scale)
            for s, m in result.bev_maps.items()}


def scalar(value: float) -> Float64:
    if _FAST:
        return new_message(Float64, CHECK_FIELDS, data=float(value))
    return Float64(data=float(value))
