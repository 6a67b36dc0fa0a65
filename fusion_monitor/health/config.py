"""Every health threshold: frozen, validated, documented configs with flat ``health.<group>.<name>`` io.

The node declares one ROS parameter per entry of :func:`describe` (name, default, description,
range); the replay tool reads the same names from its parameter file. :meth:`HealthConfig.from_dict`
validates at the boundary, so the core only ever sees a valid frozen config.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


def _p(default, doc: str, lo: float | None = None, hi: float | None = None):
    return field(default=default, metadata={"doc": doc, "min": lo, "max": hi})


class _Group:
    """Range validation from field metadata (mixin for the frozen group dataclasses)."""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            expected = type(f.default)
            if expected is float and isinstance(v, int) and not isinstance(v, bool):
                object.__setattr__(self, f.name, float(v))
                v = float(v)
            if expected is int and isinstance(v, float) and v.is_integer():
                object.__setattr__(self, f.name, int(v))
                v = int(v)
            if type(v) is not expected:
                raise TypeError(f"{type(self).__name__}.{f.name} = {v!r} must be {expected.__name__}")
            lo, hi = f.metadata.get("min"), f.metadata.get("max")
            if lo is not None and v < lo:
                raise ValueError(f"{type(self).__name__}.{f.name} = {v!r} is below its minimum {lo}")
            if hi is not None and v > hi:
                raise ValueError(f"{type(self).__name__}.{f.name} = {v!r} is above its maximum {hi}")
        self._check()

    def _check(self):  # cross-field rules, overridden per group
        pass

    def _order(self, lower: str, upper: str, strict: bool = True):
        a, b = getattr(self, lower), getattr(self, upper)
        if (a >= b) if strict else (a > b):
            raise ValueError(f"{type(self).__name__}: {lower} = {a} must be {'<' if strict else '<='} {upper} = {b}")


@dataclass(frozen=True)
class DebounceConfig(_Group):
    """k-of-n debounce with hysteresis (Autoware-style: raise only after repeated bad frames)."""

    window: int = _p(5, "length n of the sliding window of raw results per check", 1, 1000)
    raise_count: int = _p(3, "bad results (k of the last n) needed before a check raises WARN/ERROR", 1, 1000)
    clear_count: int = _p(5, "consecutive results below the raised level needed before it recovers (hysteresis)",
                          1, 1000)

    def _check(self):
        self._order("raise_count", "window", strict=False)


@dataclass(frozen=True)
class LivenessConfig(_Group):
    """Rate, staleness, stamp skew and time-jump thresholds (node clock and header stamps)."""

    stale_timeout_ms: float = _p(250.0, "a sensor silent for longer than this (node clock) is STALE", 1.0, 60000.0)
    rate_window_s: float = _p(2.0, "window over which message rates are measured", 0.1, 600.0)
    rate_tolerance: float = _p(0.2, "relative deviation from the expected rate that raises WARN", 0.01, 10.0)
    rate_error_fraction: float = _p(0.5, "a rate below this fraction of the expected rate is ERROR", 0.0, 1.0)
    max_delay_ms: float = _p(300.0, "node-clock minus header-stamp delay above which the sensor is WARN", 1.0, 1e6)
    sync_warn_ms: float = _p(50.0, "|stamp skew| to the other sensors (median delay difference) that raises WARN",
                             0.1, 1e6)
    sync_error_ms: float = _p(200.0, "|stamp skew| that raises ERROR", 0.1, 1e6)
    time_jump_ms: float = _p(1000.0, "a header stamp step that differs from the node-clock step by more than this "
                             "is a time jump", 1.0, 1e7)

    def _check(self):
        self._order("sync_warn_ms", "sync_error_ms")


@dataclass(frozen=True)
class CameraCheckConfig(_Group):
    """Image statistics thresholds; luma in [0, 1] on a subsampled image."""

    stride: int = _p(4, "pixel stride of the subsampled image the checks run on (speed)", 1, 64)
    min_sample_width: int = _p(200, "the stride is reduced until the subsampled image is at least this wide (small "
                               "decoded images keep their detail)", 16, 100000)
    dark_threshold: float = _p(0.1, "mean luma below which the camera is WARN (dark)", 0.0, 1.0)
    dark_error: float = _p(0.04, "mean luma below which the camera is ERROR (black)", 0.0, 1.0)
    bright_threshold: float = _p(0.3, "fraction of saturated pixels (luma >= 0.98) that raises WARN (a sunny sky "
                                 "saturates up to about 25 %)", 0.0, 1.0)
    bright_error: float = _p(0.6, "fraction of saturated pixels that raises ERROR", 0.0, 1.0)
    contrast_threshold: float = _p(0.08, "luma standard deviation below which contrast is WARN", 0.0, 1.0)
    contrast_drop_ratio: float = _p(0.6, "low contrast is WARN only below this fraction of the camera's own baseline "
                                    "luma std as well", 0.0, 1.0)
    contrast_error: float = _p(0.03, "luma standard deviation below which contrast is ERROR", 0.0, 1.0)
    blur_threshold: float = _p(0.0008, "variance of the Laplacian (luma, subsampled) below which the image is "
                               "WARN (blurred)", 0.0, 1.0)
    blur_error: float = _p(0.0003, "variance of the Laplacian below which the image is ERROR", 0.0, 1.0)
    baseline_alpha: float = _p(0.05, "EMA weight of a nominal frame in the camera's own running baseline (mean luma, "
                               "sharpness)", 0.0, 1.0)
    baseline_alpha_degraded: float = _p(0.002, "EMA weight while a relative check is raised, so a lasting scene "
                                        "change (tunnel, dusk) is absorbed in about a minute at 12 Hz; 0 = never",
                                        0.0, 1.0)
    baseline_warmup_frames: int = _p(3, "frames before the running baseline is used", 1, 10000)
    dark_ratio: float = _p(0.5, "mean luma below this fraction of the camera's own baseline is WARN (darkening)",
                           0.0, 1.0)
    bright_shift: float = _p(0.2, "mean luma above the camera's own baseline by more than this is WARN (brightening; "
                             "facing open space the image must also be washed out: open_view_fraction)", 0.0, 1.0)
    bright_saturated_min: float = _p(0.05, "saturated-pixel fraction that makes a brightened image washed out",
                                     0.0, 1.0)
    bright_contrast_ratio: float = _p(0.75, "luma std below this fraction of its baseline makes a brightened image "
                                      "washed out (a view turning to sky brightens but keeps its contrast)", 0.0, 1.0)
    open_view_fraction: float = _p(0.25, "a camera whose grid cells are covered by LiDAR returns below this fraction "
                                   "faces open space (sky, fields); brightening then counts only when the image is "
                                   "also washed out", 0.0, 1.0)
    blur_ratio: float = _p(0.4, "sharpness below this fraction of the camera's own baseline, with soft edges "
                           "(edge_soft_ratio), is WARN (blur)", 0.0, 1.0)
    blur_ratio_error: float = _p(0.15, "sharpness below this fraction of the baseline is ERROR", 0.0, 1.0)
    edge_soft_ratio: float = _p(0.45, "the relative blur rule also needs the edge profile (fine-to-coarse energy of the "
                                "second derivative along x or y) below this fraction of its baseline: a view with "
                                "fewer edges (open field, sky) keeps sharp edges, a blurred image does not", 0.0, 1.0)
    noise_edge_ratio: float = _p(1.5, "the noise rule also needs the isotropic fine-to-coarse energy ratio above this "
                                 "multiple of its baseline (noise lives at the pixel scale; more edges in view raise "
                                 "both scales alike)", 1.0, 1e6)
    noise_ratio: float = _p(4.0, "sharpness above this multiple of the baseline is WARN (sensor noise)", 1.0, 1e6)
    noise_ratio_error: float = _p(10.0, "sharpness above this multiple of the baseline is ERROR", 1.0, 1e6)
    haze_shift: float = _p(0.1, "rise of the mean dark channel (min over RGB) above the camera's own baseline that, "
                           "with a sharpness drop, raises WARN (fog, haze, fogged lens)", 0.0, 1.0)
    haze_error_shift: float = _p(0.2, "dark-channel rise that, with a sharpness drop, raises ERROR", 0.0, 1.0)
    haze_sharpness_ratio: float = _p(0.6, "sharpness below this fraction of the baseline is the drop the haze rule "
                                     "needs", 0.0, 1.0)
    haze_contrast_ratio: float = _p(0.75, "luma std below this fraction of its baseline is the contrast loss the haze "
                                    "rule also needs (a view opening onto sky raises the dark channel and lowers "
                                    "detail, but keeps its contrast)", 0.0, 1.0)
    frozen_diff: float = _p(0.002, "mean |frame difference| of luma below which a new frame counts as frozen",
                            0.0, 1.0)
    frozen_frames_warn: int = _p(2, "consecutive frozen frames that raise WARN", 1, 10000)
    frozen_frames_error: int = _p(5, "consecutive frozen frames that raise ERROR", 1, 10000)
    grid_rows: int = _p(8, "rows of the occlusion grid (8 x 8: a blob of a fifth of the image covers several whole "
                        "cells wherever it sits; on a 4 x 4 grid one centred on a cell corner covered none)", 1, 32)
    grid_cols: int = _p(8, "columns of the occlusion grid", 1, 32)
    occlusion_sharpness_ratio: float = _p(0.1, "a grid cell whose sharpness ratio (to its own running baseline) is "
                                          "below this fraction of the 80th-percentile cell ratio counts as blocked "
                                          "(a local, not global, loss)", 0.0, 1.0)
    occlusion_dark_luma: float = _p(0.06, "a grid cell darker than this and flat is blocked (opaque occluder)",
                                    0.0, 1.0)
    occlusion_flat_std: float = _p(0.02, "luma std below which a dark cell counts as flat", 0.0, 1.0)
    occlusion_warmup_frames: int = _p(3, "frames before the per-cell sharpness baseline is used", 1, 10000)
    occlusion_baseline_alpha: float = _p(0.1, "EMA weight of a new frame in the per-cell (log) sharpness reference",
                                         0.0, 1.0)
    occlusion_min_cell_samples: int = _p(24, "minimum samples along each side of an occlusion grid cell; the cells use "
                                         "a finer stride than the global checks when the image is small", 3, 1000)
    occlusion_warn_cells: int = _p(4, "blocked cells that raise WARN: 4 of 64 is 6 % of the view, the area of one "
                                   "cell of a 4 x 4 grid, now found wherever it sits (1-3 cells of 64 were within the "
                                   "noise of nominal simulated drives)", 1, 1024)
    occlusion_error_cells: int = _p(16, "blocked cells that raise ERROR (16 of 64: a quarter of the view)", 1, 1024)
    occlusion_persist_frames: int = _p(24, "frames n of the per-cell persistence window: lens dirt stays in the same "
                                       "cells while the camera moves, a flat object or a plain stretch of facade "
                                       "passes (24 = 2 s at 12 Hz)", 1, 1000)
    occlusion_persist_count: int = _p(18, "frames (k of the last n) a cell must be soft or dark-flat before it counts "
                                      "as blocked", 1, 1000)
    near_object_m: float = _p(5.0, "LiDAR returns closer than this to the camera (m) are a near object; image "
                              "columns a near object fills are not judged by the occlusion check (a passing truck "
                              "is flat, dark and uniform, like a blocked lens)", 0.0, 1000.0)
    occlusion_near_m: float = _p(10.0, "a grid cell whose object returns are mostly closer than this (m) shows a "
                                 "nearby object's surface and is not judged for occlusion (a grey truck in the next lane "
                                 "filled a front camera's upper right cells with its flat side, 5-10 m away, for seconds "
                                 "on a nominal simulated drive)", 0.0, 1000.0)
    near_column_fraction: float = _p(0.5, "fraction of an image column's object returns (above the road) that must be "
                                     "near for the column to count as filled by a near object", 0.0, 1.0)
    near_min_points: int = _p(5, "object returns an image column needs before the near-object rule judges it",
                              1, 100000)
    near_ground_z_m: float = _p(0.3, "returns at or below this base-frame height are road, not an object",
                                -10.0, 10.0)
    near_view_fraction: float = _p(0.5, "fraction of image columns filled by a near object from which the whole-image "
                                   "checks (relative exposure, contrast, blur, noise, haze) are not judged; black and "
                                   "saturated images still are", 0.0, 1.0)
    near_view_cell_fraction: float = _p(0.35, "fraction of grid cells a near object fills (their object returns "
                                        "mostly within near_object_m) from which the whole-image checks are not "
                                        "judged either: a dark car alongside fills the lower half of a side "
                                        "camera's view while the facade above keeps its columns from counting as "
                                        "near", 0.0, 1.0)
    near_view_hold_frames: int = _p(20, "checked frames a view stays filled after the near object last filled it, "
                                    "while some column is still near (a car alongside drifts in and out of the "
                                    "fraction as the ego creeps past it: revision-2 simulated traffic queues)", 0, 10000)
    occlusion_cover_points: int = _p(5, "LiDAR returns (every other return of a sweep) a grid cell needs for the "
                                     "sharpness-loss rule to judge it; cells the LiDAR does not reach (above its top "
                                     "beam: sky, upper facades) are judged only by the dark-and-flat rule", 0, 100000)
    near_max_age_ms: float = _p(300.0, "a LiDAR sweep older than this (header stamps) no longer explains a camera "
                                "image", 0.0, 60000.0)

    def _check(self):
        self._order("dark_error", "dark_threshold", strict=False)
        self._order("bright_threshold", "bright_error", strict=False)
        self._order("contrast_error", "contrast_threshold", strict=False)
        self._order("blur_error", "blur_threshold", strict=False)
        self._order("frozen_frames_warn", "frozen_frames_error", strict=False)
        self._order("blur_ratio_error", "blur_ratio", strict=False)
        self._order("noise_ratio", "noise_ratio_error", strict=False)
        self._order("haze_shift", "haze_error_shift", strict=False)
        self._order("occlusion_persist_count", "occlusion_persist_frames", strict=False)
        self._order("occlusion_warn_cells", "occlusion_error_cells", strict=False)


@dataclass(frozen=True)
class LidarCheckConfig(_Group):
    """Point-cloud thresholds. Azimuths are in the base frame (REP 103: 0 deg forward, +90 deg left)."""

    min_points: int = _p(5000, "points per sweep below which the LiDAR is ERROR", 0, 10_000_000)
    count_drop_warn: float = _p(0.6, "sweep count below this fraction of the running median is WARN", 0.0, 1.0)
    count_drop_error: float = _p(0.3, "sweep count below this fraction of the running median is ERROR", 0.0, 1.0)
    count_history: int = _p(20, "sweeps in the running median of the point count", 1, 10000)
    azimuth_bins: int = _p(36, "azimuth bins of the blockage check (36 = 10 deg)", 4, 720)
    ground_elevation_deg: float = _p(-8.0, "beams below this elevation (base frame) form the ground band, the rest "
                                     "the sky band", -90.0, 90.0)
    blockage_ratio: float = _p(0.1, "a bin with fewer points than this fraction of its reference is blocked",
                               0.0, 1.0)
    blockage_min_reference: float = _p(20.0, "bins whose reference count is below this are not judged (sky over "
                                       "open road)", 0.0, 1e9)
    blockage_warn_deg: float = _p(20.0, "blocked azimuth width that raises WARN", 0.0, 360.0)
    blockage_error_deg: float = _p(60.0, "blocked azimuth width that raises ERROR", 0.0, 360.0)
    sky_only_alerts: bool = _p(False, "raise WARN for sectors where only the upper beams lost their returns (off by "
                               "default: an open view past a building looks the same; they are still listed in the "
                               "status values)")
    reference_alpha: float = _p(0.05, "EMA weight of a sweep in the per-bin sky reference", 0.0, 1.0)
    ego_box_m: str = _p("-1.5,4.5,-1.2,1.2,-0.5,2.3", "ego-body box in the base frame (x_min,x_max,y_min,y_max,"
                        "z_min,z_max, m) whose returns are ignored")
    near_range_m: float = _p(3.0, "range (m, from the sensor) inside which isolated returns outside the ego box are "
                             "clutter",
                             0.0, 100.0)
    near_voxel_m: float = _p(0.25, "voxel edge (m) of the isolation test: a near return counts as clutter only when its "
                             "voxel holds at most near_isolated_max returns (snow, spray and crosstalk are isolated "
                             "echoes; the side of a vehicle passing in the next lane is a dense surface)", 0.01, 10.0)
    near_isolated_max: int = _p(2, "returns per voxel up to which near returns count as isolated clutter", 1, 1000)
    near_warn: float = _p(0.004, "near-range clutter fraction that raises WARN (snow, spray, crosstalk)", 0.0, 1.0)
    near_error: float = _p(0.015, "near-range clutter fraction that raises ERROR", 0.0, 1.0)
    visibility_warn_m: float = _p(10.0, "95th-percentile range below which visibility is WARN (fog; nominal simulated "
                                  "drives go down to 13 m beside trucks, the nuScenes sample is 41 m; the fog shell "
                                  "fraction detects L8 levels 2-5)", 0.0, 1000.0)
    visibility_error_m: float = _p(7.0, "95th-percentile range below which visibility is ERROR", 0.0, 1000.0)
    fog_shell_min_m: float = _p(3.0, "inner range (m) of the fog-return shell", 0.0, 100.0)
    fog_shell_max_m: float = _p(8.0, "outer range (m) of the fog-return shell", 0.0, 100.0)
    fog_shell_min_height_m: float = _p(0.3, "shell returns count as fog only this far above the ground plane (base z); "
                                       "ground returns of dark asphalt within the shell range are not fog", -10.0, 10.0)
    fog_shell_intensity: float = _p(3.0, "returns in the shell at or below this intensity count as fog returns",
                                    0.0, 255.0)
    fog_shell_warn: float = _p(0.03, "fraction of fog returns that raises WARN (nuScenes sample 0.0001, simulated drives "
                               "below 0.002; L8 fog level 2 gives 0.06)",
                               0.0, 1.0)
    fog_shell_min_sectors: int = _p(12, "the fog shell must also cover this many of the 36 azimuth sectors (10 deg; "
                                    "a sector counts when over fog_shell_warn of its returns are fog returns): fog "
                                    "surrounds the car, a dark car driving alongside does not (nominal simulated "
                                    "drives: up to 8 sectors at a 3-7 % fraction; L8 fog levels 2-3: 7-20 sectors on "
                                    "simulated sweeps, 19-22 on the nuScenes sample)", 0, 36)
    fog_shell_error: float = _p(0.25, "fraction of fog returns that raises ERROR", 0.0, 1.0)
    below_ground_m: float = _p(-1.5, "base-frame z below which a return is an outlier (ground is z = 0)", -100.0, 0.0)
    below_ground_radius_m: float = _p(20.0, "horizontal radius within which below-ground returns are counted "
                                      "(slopes beyond it)", 0.0, 1000.0)
    outlier_warn: float = _p(0.001, "below-ground outlier fraction that raises WARN (crosstalk, solar noise)",
                             0.0, 1.0)
    outlier_error: float = _p(0.005, "below-ground outlier fraction that raises ERROR", 0.0, 1.0)
    ground_min_range_m: float = _p(3.0, "inner horizontal radius (m) of the ground-plane fit", 0.0, 100.0)
    ground_max_range_m: float = _p(20.0, "outer horizontal radius (m) of the ground-plane fit (lowest return per cell)",
                                   0.1, 200.0)
    ground_cell_m: float = _p(1.0, "cell edge (m) of the ground-plane fit", 0.05, 10.0)
    ground_warmup: int = _p(10, "sweeps averaged into the first ground-plane reference", 1, 10000)
    ground_reference_alpha: float = _p(0.1, "EMA weight of a steady sweep in the ground-plane reference: it follows "
                                       "road grade (a grade change of 0.05 deg per sweep lags by 0.5 deg), while a "
                                       "mount that moved is a step, and the reference freezes while a step is "
                                       "reported", 0.0, 1.0)
    ground_height_warn_m: float = _p(0.15, "ground-plane height step (m, at the base origin) that raises WARN "
                                     "(extrinsic drift; nominal sweeps vary by under 0.03 m)", 0.0, 100.0)
    ground_height_error_m: float = _p(0.3, "ground-plane height step that raises ERROR", 0.0, 100.0)
    ground_tilt_warn_deg: float = _p(1.5, "ground-plane tilt step (deg) that raises WARN (hard braking pitches a car "
                                     "by about 1 deg, and a nominal simulated drive showed a 1.1 deg step; the S1 "
                                     "extrinsic ladder's levels 4-5 turn the LiDAR by 2-3 deg)", 0.0, 90.0)
    ground_tilt_error_deg: float = _p(2.0, "ground-plane tilt step that raises ERROR", 0.0, 90.0)
    intensity_warn: float = _p(6.0, "mean intensity (0..255) below which the LiDAR is WARN", 0.0, 255.0)
    intensity_error: float = _p(2.5, "mean intensity below which the LiDAR is ERROR", 0.0, 255.0)
    frozen_warn: int = _p(1, "consecutive bit-identical sweeps after the first that raise WARN (a real LiDAR never "
                          "repeats a sweep: range noise on every point)", 1, 10000)
    frozen_error: int = _p(3, "consecutive bit-identical sweeps after the first that raise ERROR", 1, 10000)

    def _check(self):
        self._order("count_drop_error", "count_drop_warn", strict=False)
        self._order("frozen_warn", "frozen_error", strict=False)
        self._order("blockage_warn_deg", "blockage_error_deg", strict=False)
        self._order("near_warn", "near_error", strict=False)
        self._order("visibility_error_m", "visibility_warn_m", strict=False)
        self._order("intensity_error", "intensity_warn", strict=False)
        self._order("fog_shell_min_m", "fog_shell_max_m")
        self._order("ground_min_range_m", "ground_max_range_m")
        self._order("ground_height_warn_m", "ground_height_error_m", strict=False)
        self._order("ground_tilt_warn_deg", "ground_tilt_error_deg", strict=False)
        self._order("fog_shell_warn", "fog_shell_error", strict=False)
        self._order("outlier_warn", "outlier_error", strict=False)
        ego_box(self.ego_box_m)


def ego_box(text: str) -> tuple[float, float, float, float, float, float]:
    """Parse ``"x_min,x_max,y_min,y_max,z_min,z_max"`` (metres) into a tuple, validating order."""
    try:
        v = tuple(float(s) for s in str(text).split(","))
    except ValueError:
        raise ValueError(f"ego_box_m {text!r} is not 6 comma-separated numbers") from None
    if len(v) != 6 or not (v[0] < v[1] and v[2] < v[3] and v[4] < v[5]):
        raise ValueError(f"ego_box_m {text!r} must be x_min,x_max,y_min,y_max,z_min,z_max with min < max")
    return v  # type: ignore[return-value]


@dataclass(frozen=True)
class RadarCheckConfig(_Group):
    """Radar target-list thresholds (per radar)."""

    min_targets: int = _p(1, "targets per scan below which the radar is ERROR (delivers but sees nothing)", 0, 100000)
    count_drop_warn: float = _p(0.3, "windowed mean count below this fraction of the running median is WARN",
                                0.0, 1.0)
    count_history: int = _p(30, "scans in the running median of the target count", 1, 10000)
    count_warmup: int = _p(10, "scans in the running median before the count-drop and clutter rules judge (a median "
                           "of 3 scans made a nominal 18-target scan a 2.6x clutter burst)", 1, 10000)
    clutter_ratio: float = _p(2.0, "count above this multiple of the running median is a clutter burst (WARN)",
                              1.0, 1000.0)
    clutter_error_ratio: float = _p(4.0, "count above this multiple of the running median is ERROR", 1.0, 1000.0)
    clutter_min_excess: int = _p(8, "targets above the running median a clutter burst must also add (Poisson scatter "
                                 "of a sparse radar: median 5 reaches 12 in nominal driving)", 0, 100000)
    min_targets_for_velocity: int = _p(5, "targets needed before the velocity checks judge a scan", 1, 100000)
    max_speed_mps: float = _p(70.0, "|compensated velocity| above this is implausible", 0.0, 1000.0)
    implausible_fraction: float = _p(0.2, "fraction of implausible velocities that raises ERROR", 0.0, 1.0)
    static_window_mps: float = _p(0.5, "without a stationary classification (dyn_prop), the static world's radial "
                                  "velocity is that of the window of this width whose targets cover the most 5 m map "
                                  "cells (a vehicle's many returns share one velocity but few cells)", 0.01, 10.0)
    static_bias_warn_mps: float = _p(0.3, "|median radial velocity of static targets| that raises WARN", 0.0, 100.0)
    static_bias_error_mps: float = _p(1.0, "|median radial velocity of static targets| that raises ERROR",
                                      0.0, 100.0)
    frozen_warn: int = _p(2, "consecutive bit-identical scans after the first that raise WARN", 1, 10000)
    frozen_error: int = _p(5, "consecutive bit-identical scans after the first that raise ERROR", 1, 10000)
    frozen_min_targets: int = _p(5, "scans with fewer targets are not judged frozen (a short target list, e.g. an "
                                 "empty one, may repeat)", 1, 100000)

    alignment_window: int = _p(20, "radar scans whose LiDAR matches are summed by the alignment check (2 s at the "
                               "default 10 Hz trigger)", 1, 10000)
    alignment_min_range_m: float = _p(10.0, "targets nearer than this say little about yaw and are not matched",
                                      0.0, 1000.0)
    alignment_max_range_m: float = _p(60.0, "targets beyond this are not matched (sparse LiDAR returns)", 1.0, 1000.0)
    alignment_cell_m: float = _p(0.5, "BEV cell of the LiDAR occupancy the targets are matched to (occupied cells "
                                 "also mark their 8 neighbours)", 0.05, 10.0)
    alignment_z_min_m: float = _p(0.3, "LiDAR returns at or below this base-frame height are road, not matched",
                                  -10.0, 10.0)
    alignment_z_max_m: float = _p(3.0, "LiDAR returns at or above this base-frame height are not matched", -10.0, 100.0)
    alignment_search_deg: float = _p(8.0, "yaw offsets searched: +- this many degrees", 0.5, 45.0)
    alignment_step_deg: float = _p(0.5, "yaw offset step", 0.05, 5.0)
    alignment_shift_m: float = _p(1.5, "along-track shifts searched (+- this, 0.25 m steps): the ego moves between a "
                                  "radar scan and the LiDAR sweep it is matched to", 0.0, 10.0)
    alignment_max_lidar_age_ms: float = _p(150.0, "a scan is matched only to a LiDAR sweep stamped within this",
                                           1.0, 10000.0)
    alignment_min_targets: int = _p(60, "targets in the window needed to judge alignment", 1, 1000000)
    alignment_min_matches: int = _p(30, "targets matched at the best offset needed to judge alignment", 1, 1000000)
    alignment_min_support: float = _p(0.5, "fraction of the window's targets matched at the best offset needed to "
                                      "judge alignment (simulated radars: 0.5-0.9, also when turned; radar scans of "
                                      "another nuScenes scene against the sample's LiDAR: 0.36)", 0.0, 1.0)
    alignment_min_sharpness: float = _p(1.5, "targets matched at the best offset over the median over all offsets "
                                        "needed to judge alignment (a real match: 1.8-3.9; targets unrelated to the "
                                        "LiDAR's scene: about 1)", 1.0, 100.0)
    alignment_min_gain: float = _p(1.5, "the best offset must match this many times the targets matched as mounted "
                                   "(a long wall matches about as well at any yaw; nominal simulated drives: at most "
                                   "1.06; a 3 deg turn: 2-6)", 1.0, 100.0)
    alignment_warn_deg: float = _p(1.5, "|yaw offset| at which the radar is WARN (nominal drives stay within 1 deg "
                                   "on sparse side radars, 0 on the front radar)", 0.0, 45.0)
    alignment_error_deg: float = _p(3.0, "|yaw offset| at which the radar is ERROR", 0.0, 45.0)
    alignment_consensus_radars: int = _p(3, "radars whose targets all line up with the LiDAR the same yaw off "
                                         "(beyond alignment_warn_deg, within alignment_consensus_tol_deg of each "
                                         "other) blame the LiDAR, not themselves: a LiDAR turned 3 deg on its mount "
                                         "made all five radars of the rig look turned by -3 deg", 2, 100)
    alignment_consensus_tol_deg: float = _p(1.0, "yaw offsets this close count as the same turn", 0.0, 45.0)
    alignment_consensus_age_ms: float = _p(2000.0, "a radar's offset older than this does not vote", 0.0, 600000.0)

    def _check(self):
        self._order("clutter_ratio", "clutter_error_ratio", strict=False)
        self._order("static_bias_warn_mps", "static_bias_error_mps", strict=False)
        self._order("frozen_warn", "frozen_error", strict=False)
        self._order("alignment_warn_deg", "alignment_error_deg", strict=False)
        self._order("alignment_min_range_m", "alignment_max_range_m", strict=True)
        self._order("alignment_z_min_m", "alignment_z_max_m", strict=True)


@dataclass(frozen=True)
class AttributionCheckConfig(_Group):
    """Contribution-share checks against a calibrated baseline (docs: fusion_monitor.health.attribution)."""

    min_share: float = _p(0.03, "a modality whose windowed mean share falls below this while its sensors deliver is "
                          "ERROR (modality collapse; the reference detector's LiDAR share dips to 4 % of the "
                          "detections on nominal simulated drives)", 0.0, 1.0)
    window: int = _p(10, "frames averaged by the collapse and contradiction checks", 1, 100000)
    collapse_z: float = _p(3.0, "with a baseline, a windowed share under min_share is a collapse only when it is also "
                           "at least this many std of a window mean below the baseline mean (a modality whose share "
                           "varies a lot from scene to scene, e.g. radar with few moving targets, dips under "
                           "min_share on nominal drives); 0: the share alone decides", 0.0, 1000.0)
    z_warn: float = _p(4.0, "|windowed share - baseline mean| / baseline std that raises WARN", 0.0, 1000.0)
    collapse_warmup: int = _p(20, "without a baseline, a modality normally contributes when its windowed share over "
                              "its first this many live frames averaged at least 2 x min_share (only a modality "
                              "that contributed and stopped is called collapsed)", 1, 100000)
    drift_block: int = _p(20, "frames averaged into one CUSUM sample (2 s at the default 10 Hz trigger; consecutive "
                          "frames are strongly correlated, block means much less)", 1, 100000)
    cusum_k: float = _p(1.0, "CUSUM reference value k (in baseline block-std units): shifts above 2 k block std are "
                        "what it looks for; drives differ by about 1 block std (scene), which k = 1 does not "
                        "accumulate", 0.0, 100.0)
    cusum_h: float = _p(8.0, "CUSUM decision interval h (block-std units); k=1, h=8 gives an in-control average "
                        "run length of about 2.3e7 blocks two-sided (Siegmund approximation, independent blocks at 1 "
                        "block/s; h=5 alarmed on nominal drives outside the calibration set, whose scenes differ more "
                        "than the 4 calibration drives showed); a 3-std shift is found in about 5 blocks", 0.1, 1000.0)
    cusum_margin: float = _p(2.0, "with a baseline fit on 3 or more drives, the decision interval is at least this "
                             "times the largest CUSUM statistic a nominal drive reached when held out of the fit "
                             "(and the reference value at least its largest steady offset): nominal drives differ by "
                             "their scenes for minutes at a time, which the independent-block ARL0 does not model "
                             "(1.5 held on revision-1 drives; 3 of the 6 nominal revision-2 suite drives then reached "
                             "1.02-1.10 x h)", 1.0, 100.0)
    drift_up: bool = _p(False, "also alarm when a modality's share drifts above its baseline. Off: a share that "
                        "rises means the others' fell, which their own downward drift reports at the sensor that "
                        "lost it; and a scene with denser traffic holds the radar share 3 block std up for a minute "
                        "(two false alarms on the 6 nominal revision-2 suite drives, 0 with drops only)")
    contradiction_share: float = _p(-0.2, "a modality share below this on a confirmed detection contradicts it",
                                    -1.0, 0.0)
    contradiction_warn: float = _p(0.3, "fraction of confirmed detections contradicted that raises WARN", 0.0, 1.0)
    contradiction_error: float = _p(0.6, "fraction of confirmed detections contradicted that raises ERROR",
                                    0.0, 1.0)
    min_detections: int = _p(3, "confirmed detections in the window needed to judge contradiction", 1, 100000)
    min_score: float = _p(0.3, "detection score at or above which a detection counts as confirmed", 0.0, 1.0)
    baseline_file: str = _p("", "attribution baseline YAML written by `fusion-monitor calibrate` (empty: none; then "
                            "collapse is judged against each modality's own first frames, contradiction by its "
                            "absolute bound, and drift not at all)")

    def _check(self):
        self._order("contradiction_warn", "contradiction_error", strict=False)


_GROUPS: dict[str, type] = {
    "debounce": DebounceConfig,
    "liveness": LivenessConfig,
    "camera": CameraCheckConfig,
    "lidar": LidarCheckConfig,
    "radar": RadarCheckConfig,
    "attribution": AttributionCheckConfig,
}

#: Older flat names (fusion_monitor/ros/params.py) accepted by :meth:`HealthConfig.from_dict`.
ALIASES = {
    "health.stale_timeout_ms": "health.liveness.stale_timeout_ms",
    "health.debounce_frames": "health.debounce.raise_count",
}


@dataclass(frozen=True)
class HealthConfig:
    """All health thresholds, grouped; every leaf is a ROS parameter ``health.<group>.<name>``."""

    debounce: DebounceConfig = field(default_factory=DebounceConfig)
    liveness: LivenessConfig = field(default_factory=LivenessConfig)
    camera: CameraCheckConfig = field(default_factory=CameraCheckConfig)
    lidar: LidarCheckConfig = field(default_factory=LidarCheckConfig)
    radar: RadarCheckConfig = field(default_factory=RadarCheckConfig)
    attribution: AttributionCheckConfig = field(default_factory=AttributionCheckConfig)

    def to_dict(self, prefix: str = "health") -> dict[str, Any]:
        """Flat ``{"health.<group>.<name>": value}``."""
        out = {}
        for g in _GROUPS:
            for f in dataclasses.fields(getattr(self, g)):
                out[f"{prefix}.{g}.{f.name}"] = getattr(getattr(self, g), f.name)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any], prefix: str = "health", strict: bool = True) -> HealthConfig:
        """Config from flat names (defaults for absent ones).

        Raises
        ------
        KeyError
            A name under ``prefix`` that is no health parameter (``strict``); the message names it.
        ValueError, TypeError
            A value out of range or of the wrong type; the message names the parameter.
        """
        groups: dict[str, dict[str, Any]] = {g: {} for g in _GROUPS}
        for key, v in values.items():
            key = ALIASES.get(key, key) if prefix == "health" else key
            if not key.startswith(prefix + "."):
                continue
            parts = key[len(prefix) + 1:].split(".")
            if len(parts) != 2 or parts[0] not in _GROUPS or parts[1] not in {
                    f.name for f in dataclasses.fields(_GROUPS[parts[0]])}:
                if strict:
                    raise KeyError(f"{key!r} is not a health parameter (groups: {', '.join(_GROUPS)})")
                continue
            groups[parts[0]][parts[1]] = v
        try:
            return cls(**{g: _GROUPS[g](**kw) for g, kw in groups.items()})
        except (ValueError, TypeError) as e:
            raise type(e)(f"health parameters: {e}") from None

    def replace(self, **flat: Any) -> HealthConfig:
        """A copy with some flat names (``"camera.dark_threshold"`` or ``"health.camera.dark_threshold"``) changed."""
        d = self.to_dict()
        for k, v in flat.items():
            d[k if k.startswith("health.") else f"health.{k}"] = v
        return HealthConfig.from_dict(d)


@dataclass(frozen=True)
class ParamDescription:
    """One health parameter as the node declares it."""

    name: str
    default: Any
    description: str
    min_value: float | None
    max_value: float | None


def describe(prefix: str = "health") -> list[ParamDescription]:
    """Every health parameter with default, description and range (for ROS ParameterDescriptors and docs)."""
    out = []
    for g, cls in _GROUPS.items():
        for f in dataclasses.fields(cls):
            out.append(ParamDescription(f"{prefix}.{g}.{f.name}", f.default, f.metadata["doc"],
                                        f.metadata.get("min"), f.metadata.get("max")))
    return out
