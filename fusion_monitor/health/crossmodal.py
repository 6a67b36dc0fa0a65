"""Cross-modal context for the camera checks: which image columns the LiDAR sees filled by a near object.

A truck passing beside the car, a bus in front at a light or a wall at a parking spot fills a camera's
view with one uniform, often dark surface. Single-image statistics cannot tell that from a dirty or
failing camera (Autoware's image_diagnostics raises exactly these false alarms); the LiDAR can: when
most of its returns in an image column hit something a few metres from the camera, a flat, dark or
unchanging column is the scene, not the sensor. The LiDAR also says where there is structure to see:
image cells above its top beam (sky, upper facades) get no returns, and a flat patch there is usually
sky, not dirt. :func:`camera_context` projects a sweep into a camera and returns both, per cell of the
camera's check grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CameraProjection:
    """Base frame -> camera pixels (rig profile resolution): ``p_cam = R p_base + t``, ``u = K p_cam``."""

    R: np.ndarray
    t: np.ndarray
    K: np.ndarray
    width: int
    height: int

    @classmethod
    def from_spec(cls, spec) -> CameraProjection | None:
        """From a rig camera (needs K, width and height); None when the profile lacks them."""
        if spec.K is None or not spec.width or not spec.height:
            return None
        T = np.linalg.inv(np.asarray(spec.T_base_sensor, np.float64))
        return cls(T[:3, :3].astype(np.float32), T[:3, 3].astype(np.float32), np.asarray(spec.K, np.float32),
                   int(spec.width), int(spec.height))


@dataclass(frozen=True)
class CameraContext:
    """What one LiDAR sweep says about one camera's check grid.

    Attributes
    ----------
    near_columns : (cols,) bool
        Column bands a near object fills (a flat, dark, unchanging column there is the scene).
    near_cells : (rows, cols) bool
        Cells whose object returns are mostly near (a low car passing the bottom of a side camera's view).
    close_cells : (rows, cols) bool
        Cells whose object returns are mostly within the near-object distance itself (``near_m``; ``near_cells``
        may use a longer one): how much of the view a near object fills.
    covered : (rows, cols) bool
        Cells with LiDAR returns projecting into them: structure the camera should see. Cells above the
        LiDAR's top beam (sky, upper facades) or beyond its range are not covered.
    """

    near_columns: np.ndarray
    covered: np.ndarray
    near_cells: np.ndarray | None = None
    close_cells: np.ndarray | None = None

    def explained(self) -> np.ndarray:
        """(rows, cols) cells a near object explains (its column is filled, or the cell itself is near)."""
        cells = np.broadcast_to(self.near_columns[None, :], self.covered.shape)
        return cells | self.near_cells if self.near_cells is not None else cells.copy()


def camera_context(xyz_base: np.ndarray, proj: CameraProjection, rows: int, cols: int, near_m: float,
                   ground_z_m: float, min_fraction: float, min_points: int, min_cover_points: int,
                   near_cell_m: float | None = None) -> CameraContext:
    """Project a sweep into a camera: near-object column bands and LiDAR-covered grid cells.

    Parameters
    ----------
    xyz_base : (3, N) LiDAR returns in the base frame (rows x, y, z)
    proj : the camera's projection
    rows, cols : the camera's check grid
    near_m : distance from the camera below which a return is near
    ground_z_m : returns at or below this base-frame height are road, never a near object
    min_fraction : fraction of a band's object returns that must be near for the band to be filled
    min_points : object returns a band needs before it is judged (fewer: not filled)
    min_cover_points : returns a cell needs to count as covered
    near_cell_m : distance below which a return makes a *cell* near (default ``near_m``): a large object a little
        farther away (a truck in the next lane) fills single cells with its flat side without filling columns
    """
    x, y, z = xyz_base
    R, t = proj.R, proj.t
    cz = R[2, 0] * x + R[2, 1] * y + R[2, 2] * z + t[2]
    front = cz > np.float32(0.3)
    x, y, z, cz = x[front], y[front], z[front], cz[front]
    cx = R[0, 0] * x + R[0, 1] * y + R[0, 2] * z + t[0]
    cy = R[1, 0] * x + R[1, 1] * y + R[1, 2] * z + t[1]
    u = proj.K[0, 0] * cx / cz + proj.K[0, 2]
    v = proj.K[1, 1] * cy / cz + proj.K[1, 2]
    inside = (u >= 0) & (u < proj.width) & (v >= 0) & (v < proj.height)
    band = np.minimum((u[inside] * (cols / proj.width)).astype(np.int64), cols - 1)
    row = np.minimum((v[inside] * (rows / proj.height)).astype(np.int64), rows - 1)
    covered = np.bincount(row * cols + band, minlength=rows * cols).reshape(rows, cols) >= min_cover_points
    obj = z[inside] > np.float32(ground_z_m)
    d2 = (cx * cx + cy * cy + cz * cz)[inside][obj]
    is_near = (d2 < np.float32(near_m * near_m)).astype(np.float64)
    cell_m = near_m if near_cell_m is None else near_cell_m
    is_near_cell = is_near if cell_m == near_m else (d2 < np.float32(cell_m * cell_m)).astype(np.float64)
    n = np.bincount(band[obj], minlength=cols)
    near = np.bincount(band[obj], weights=is_near, minlength=cols)
    cell = (row * cols + band)[obj]
    n_cell = np.bincount(cell, minlength=rows * cols)
    near_cell = np.bincount(cell, weights=is_near_cell, minlength=rows * cols)
    enough = n_cell >= min_points
    cells = (enough & (near_cell >= min_fraction * np.maximum(n_cell, 1))).reshape(rows, cols)
    close = cells if cell_m == near_m else (enough & (np.bincount(cell, weights=is_near, minlength=rows * cols)
                                                      >= min_fraction * np.maximum(n_cell, 1))).reshape(rows, cols)
    return CameraContext((n >= min_points) & (near >= min_fraction * np.maximum(n, 1)), covered, cells, close)
