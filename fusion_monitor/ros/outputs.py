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
from nav_msgs.msg import OccupancyGrid
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Float32MultiArray, Float64, MultiArrayDimension

from fusion_monitor.frame import STREAMS, BevGrid, FrameResult
from fusion_monitor.ros.markers import stamp_msg

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
    arr = np.zeros(len(result.detections), dtype=_DET_DTYPE)
    index = {c: i for i, c in enumerate(class_names)}
    for i, d in enumerate(result.detections):
        arr[i]["x"], arr[i]["y"], arr[i]["z"] = d.center_m
        arr[i]["length"], arr[i]["width"], arr[i]["height"] = d.size_m
        arr[i]["yaw"] = d.yaw_rad
        arr[i]["vx"], arr[i]["vy"] = d.velocity_mps
        arr[i]["score"] = d.score
        arr[i]["track_id"] = d.track_id
        arr[i]["label_id"] = index.get(d.label, -1)
        for s in STREAMS:
            arr[i][f"share_{s}"] = d.shares.get(s, np.nan)
    return arr


def detections_cloud(result: FrameResult, class_names=NUSCENES_CLASSES) -> PointCloud2:
    """``~/detections`` message: a PointCloud2 with one point per detection."""
    arr = detections_array(result, class_names)
    msg = PointCloud2()
    msg.header.stamp = stamp_msg(result.stamp_ns)
    msg.header.frame_id = result.frame_id
    msg.height, msg.width = 1, len(arr)
    msg.fields = [
        PointField(name=n, offset=int(_DET_DTYPE.fields[n][1]), datatype=_PF[_DET_DTYPE.fields[n][0].str], count=1)
        for n in _DET_DTYPE.names
    ]
    msg.is_bigendian = False
    msg.point_step = _DET_DTYPE.itemsize
    msg.row_step = _DET_DTYPE.itemsize * len(arr)
    msg.data = arr.tobytes()
    msg.is_dense = True
    return msg


def shares_array(result: FrameResult) -> Float32MultiArray:
    """``~/detections/shares``: (N, 5) float32 rows [track_id, camera, radar, lidar, bias]."""
    n, k = len(result.detections), len(SHARE_COLUMNS)
    data = np.zeros((n, k), dtype=np.float32)
    for i, d in enumerate(result.detections):
        data[i, 0] = d.track_id
        for j, s in enumerate(STREAMS, start=1):
            data[i, j] = d.shares.get(s, np.nan)
    msg = Float32MultiArray()
    msg.layout.dim = [
        MultiArrayDimension(label="detections", size=n, stride=n * k),
        MultiArrayDimension(label=",".join(SHARE_COLUMNS), size=k, stride=k),
    ]
    msg.layout.data_offset = 0
    msg.data = data.ravel()
    return msg


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
    with np.errstate(invalid="ignore"):
        vals = np.clip(m / scale, 0.0, 1.0) * 100.0
    cells = np.where(np.isfinite(vals), np.rint(vals), -1).astype(np.int8)
    msg = OccupancyGrid()
    msg.header.stamp = stamp_msg(stamp_ns)
    msg.header.frame_id = frame_id
    msg.info.map_load_time = msg.header.stamp
    msg.info.resolution = float(grid.cell_m)
    msg.info.width, msg.info.height = int(grid.rows), int(grid.cols)  # width runs along x (rows of the map)
    msg.info.origin.position.x, msg.info.origin.position.y = float(grid.x_min_m), float(grid.y_min_m)
    msg.info.origin.orientation.w = 1.0
    # OccupancyGrid is row-major in y: index = y * width + x. An array.array('b') is taken as is (a numpy
    # array would be checked element by element by the generated setter).
    msg.data = array.array("b", np.ascontiguousarray(cells.T).tobytes())
    return msg


def bev_grids(result: FrameResult) -> dict[str, OccupancyGrid]:
    """Stream -> OccupancyGrid for every BEV map of the frame (empty without a grid)."""
    if result.bev_grid is None or not result.bev_maps:
        return {}
    scale = bev_scale(result.bev_maps)
    return {s: bev_occupancy_grid(m, result.bev_grid, result.stamp_ns, result.frame_id, scale)
            for s, m in result.bev_maps.items()}


def scalar(value: float) -> Float64:
    return Float64(data=float(value))
