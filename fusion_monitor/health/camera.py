"""Camera image checks on a subsampled luma image: exposure, contrast, blur, frozen frame, occluded regions."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from fusion_monitor.health.config import CameraCheckConfig
from fusion_monitor.health.crossmodal import CameraContext
from fusion_monitor.health.status import CheckResult, Level, fmt

#: Checks a :class:`CameraChecker` reports, in order.
CAMERA_CHECKS = ("exposure", "contrast", "blur", "noise", "visibility", "frozen", "occlusion")

_LUMA = np.array([0.299, 0.587, 0.114], np.float32) / 255.0


def luma(image: np.ndarray, stride: int = 1) -> np.ndarray:
    """Luma in [0, 1] (float32, (H/stride, W/stride)) of an (H, W, 3) uint8 RGB or (H, W) uint8 image.

    Raises
    ------
    ValueError
        The image is not uint8 (H, W) or (H, W, 3|4), or is empty.
    """
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or a.size == 0:
        raise ValueError(f"image must be uint8 (H, W) or (H, W, 3), got {a.dtype} {a.shape}")
    sub = a[::stride, ::stride]
    if sub.ndim == 2:
        return sub.astype(np.float32) * np.float32(1 / 255.0)
    # per-channel products on the strided view: about 2x faster than a copy + matmul
    return sub[..., 0] * _LUMA[0] + sub[..., 1] * _LUMA[1] + sub[..., 2] * _LUMA[2]


def dark_channel(image: np.ndarray, stride: int = 8) -> float:
    """Mean over the subsampled image of min(R, G, B) / 255 (rises with haze and fog: the airlight term)."""
    a = np.asarray(image)
    sub = a[::stride, ::stride]
    if sub.ndim == 2:
        return float(sub.mean()) / 255.0
    return float(np.minimum(np.minimum(sub[..., 0], sub[..., 1]), sub[..., 2]).mean()) / 255.0


def laplacian(y: np.ndarray) -> np.ndarray:
    """4-neighbour Laplacian of a 2-D array, shape (H-2, W-2)."""
    return 4 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:]


def _grid(a: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(rows, cols, h*w) view of a 2-D array cut into a grid (edges cropped)."""
    h, w = a.shape[0] // rows, a.shape[1] // cols
    return a[: h * rows, : w * cols].reshape(rows, h, cols, w).swapaxes(1, 2).reshape(rows, cols, h * w)


@dataclass(frozen=True)
class ImageStats:
    """Per-image statistics (luma in [0, 1], computed on the subsampled image).

    Attributes
    ----------
    mean, std : float
        Luma mean and standard deviation.
    sat_hi, sat_lo : float
        Fraction of pixels with luma >= 0.98 / <= 0.02.
    sharpness : float
        Variance of the Laplacian of luma.
    cell_mean, cell_std, cell_sharpness : np.ndarray
        (rows, cols) per grid cell.
    edge_x, edge_y, edge_iso : float
        Edge profile: energy of the second derivative along x / along y / of the Laplacian on the image, divided
        by the same on the image averaged 2x2 (:func:`scale_ratios`). It measures how *sharp* the edges are, not how
        many there are: a view with fewer edges (open field, sky) keeps it, blur lowers it (motion blur along
        its direction), fine-grained sensor noise raises it.
    """

    mean: float
    std: float
    sat_hi: float
    sat_lo: float
    sharpness: float
    cell_mean: np.ndarray
    cell_std: np.ndarray
    cell_sharpness: np.ndarray
    edge_x: float = float("nan")
    edge_y: float = float("nan")
    edge_iso: float = float("nan")


def scale_ratios(y: np.ndarray, lap_var: float | None = None) -> tuple[float, float, float]:
    """(x, y, isotropic) fine-to-coarse energy ratios of a luma image: var of the second derivative along x, along
    y and of the Laplacian, each divided by the same on the 2x2-averaged image (nan on a flat image).
    ``lap_var``: var of ``laplacian(y)`` when the caller has it already."""
    h, w = y.shape[0] // 2 * 2, y.shape[1] // 2 * 2
    # 2x2 block means from four strided views (a reshape + mean over two axes is several times slower)
    y2 = (y[0:h:2, 0:w:2] + y[1:h:2, 0:w:2] + y[0:h:2, 1:w:2] + y[1:h:2, 1:w:2]) * np.float32(0.25)

    def energies(a: np.ndarray, lv: float | None = None) -> tuple[float, float, float]:
        dxx = a[:, 2:] - 2 * a[:, 1:-1] + a[:, :-2]
        dyy = a[2:] - 2 * a[1:-1] + a[:-2]
        return float(dxx.var()), float(dyy.var()), float(laplacian(a).var()) if lv is None else lv

    fine, coarse = energies(y, lap_var), energies(y2)
    return tuple(f / c if c > 1e-12 else float("nan") for f, c in zip(fine, coarse))  # type: ignore[return-value]


def image_stats(y: np.ndarray, rows: int = 4, cols: int = 4) -> ImageStats:
    """Statistics of a luma image ``y`` (H, W) in [0, 1] with a rows x cols grid."""
    if y.ndim != 2 or y.shape[0] < 3 * rows or y.shape[1] < 3 * cols:
        raise ValueError(f"luma image {y.shape} too small for a {rows}x{cols} grid")
    lap = laplacian(y)
    g = _grid(y, rows, cols)
    gl = _grid(lap, rows, cols)
    sharpness = float(lap.var())
    ex, ey, ei = scale_ratios(y, sharpness)
    return ImageStats(
        mean=float(y.mean()), std=float(y.std()),
        sat_hi=float(np.count_nonzero(y >= 0.98)) / y.size, sat_lo=float(np.count_nonzero(y <= 0.02)) / y.size,
        sharpness=sharpness, cell_mean=g.mean(axis=2), cell_std=g.std(axis=2), cell_sharpness=gl.var(axis=2),
        edge_x=ex, edge_y=ey, edge_iso=ei,
    )


_ROW_WORDS = {1: ["" ], 2: ["top", "bottom"], 3: ["top", "middle", "bottom"]}
_COL_WORDS = {1: [""], 2: ["left", "right"], 3: ["left", "centre", "right"]}


def largest_region(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected group of True cells of a small grid (first found on ties)."""
    mask = np.asarray(mask, bool)
    rows, cols = mask.shape
    seen = np.zeros_like(mask)
    best: list[tuple[int, int]] = []
    for r0, c0 in zip(*np.nonzero(mask)):
        if seen[r0, c0]:
            continue
        seen[r0, c0] = True
        stack, group = [(int(r0), int(c0))], []
        while stack:
            r, c = stack.pop()
            group.append((r, c))
            for rr in range(max(r - 1, 0), min(r + 2, rows)):
                for cc in range(max(c - 1, 0), min(c + 2, cols)):
                    if mask[rr, cc] and not seen[rr, cc]:
                        seen[rr, cc] = True
                        stack.append((rr, cc))
        if len(group) > len(best):
            best = group
    out = np.zeros_like(mask)
    if best:
        out[tuple(np.array(best).T)] = True
    return out


def region_text(mask: np.ndarray, width_px: int, height_px: int) -> tuple[str, str]:
    """Where a boolean (rows, cols) cell mask lies: ("top-left", "x 0-800 px, y 0-450 px") of its bounding box."""
    rows, cols = mask.shape
    rr, cc = np.nonzero(mask)
    r0, r1, c0, c1 = rr.min(), rr.max() + 1, cc.min(), cc.max() + 1
    x0, x1 = int(c0 * width_px / cols), int(c1 * width_px / cols)
    y0, y1 = int(r0 * height_px / rows), int(r1 * height_px / rows)
    rc = (r0 + r1) / 2 / rows
    cc_ = (c0 + c1) / 2 / cols
    vert = "top" if rc < 0.4 else ("bottom" if rc > 0.6 else "middle")
    horiz = "left" if cc_ < 0.4 else ("right" if cc_ > 0.6 else "centre")
    word = "centre" if (vert, horiz) == ("middle", "centre") else f"{vert}-{horiz}"
    return word, f"x {x0}-{x1} px, y {y0}-{y1} px"


class CameraChecker:
    """Stateful image checks of one camera (state: previous frame, frozen counter, running baselines).

    Absolute bounds (black, saturated, flat, very soft) work from the first frame. Relative bounds
    (darkened, brightened, blurred or noisy compared with this camera's own running baseline, and
    blocked grid cells compared with their own sharpness) start after ``baseline_warmup_frames``;
    the baselines learn only from frames that pass, so a fault present from start-up is judged by
    the absolute bounds alone. Occlusion is a *local* loss: a cell counts as blocked when its
    sharpness ratio is far below the ratio of the sharper cells, so a global blur or fog is
    reported by ``blur``/``contrast`` and not as occlusion.

    Real cameras (and the simulator's flat-shaded scenes) see uniform sky, asphalt and truck sides;
    single-image statistics call those blocked, dark or flat. Four rules keep them apart from faults:

    - relative rules need two signs of the fault: blur = less detail *and* soft edges (the edge
      profile, :func:`scale_ratios`), noise = more detail *and* a finer grain, haze = a brighter dark
      channel *and* less detail *and* less contrast, low contrast = low *and* a drop against the
      camera's own baseline;
    - a cell is blocked only when it stays soft in the same place for ``occlusion_persist_count``
      of ``occlusion_persist_frames`` frames (dirt stays on the lens while the view moves; a plain
      patch of facade or road passes);
    - the LiDAR context (:class:`fusion_monitor.health.crossmodal.CameraContext`) explains cells and
      views a near object fills (not judged), and says where there is structure to see (a sharpness
      loss counts only there; a brightening toward open sky needs a washed-out image);
    - baselines do not learn from a view filled by a near object.

    Parameters
    ----------
    sensor : str
        Camera name (for messages).
    config : CameraCheckConfig
    """

    def __init__(self, sensor: str, config: CameraCheckConfig | None = None):
        self.sensor = sensor
        self.config = config or CameraCheckConfig()
        self._prev: np.ndarray | None = None
        self.frozen_frames = 0
        self._cell_ref: np.ndarray | None = None  # per-cell running mean of log10 sharpness
        self._frames = 0
        self._near_hold = 0  # frames the near-object view still counts as filled
        self.last_stats: ImageStats | None = None
        self._base_mean: float | None = None
        self._base_sharp: float | None = None
        self._base_dark: float | None = None
        self._base_std: float | None = None
        self._base_edge: np.ndarray | None = None  # (edge_x, edge_y, edge_iso)
        self._cell_hist: deque[np.ndarray] = deque(maxlen=self.config.occlusion_persist_frames)
        self._cell_state: np.ndarray | None = None  # per cell: soft when last judged (carried while a near object hides it)

    def reset(self) -> None:
        """Forget the previous frame and the running baselines (after a time jump)."""
        self._base_mean = None
        self._base_sharp = None
        self._base_dark = None
        self._base_std = None
        self._base_edge = None
        self._prev = None
        self.frozen_frames = 0
        self._cell_ref = None
        self._frames = 0
        self._near_hold = 0
        self._cell_hist.clear()
        self._cell_state = None

    def update(self, image: np.ndarray, context: CameraContext | None = None) -> dict[str, CheckResult]:
        """Run every camera check on one (H, W, 3) uint8 RGB image; returns check name -> result.

        ``context`` (:func:`fusion_monitor.health.crossmodal.camera_context`, from the latest LiDAR sweep)
        marks the image columns a near object fills -- not judged for occlusion; when they reach
        ``near_view_fraction`` of the image the whole-image texture checks are not judged either -- and the
        cells the LiDAR covers (only those are judged by the sharpness-loss rule). Without it every cell is
        judged and no column is explained.
        """
        c = self.config
        grid = (c.grid_rows, c.grid_cols)
        near = np.zeros(c.grid_cols, bool) if context is None else np.asarray(context.near_columns, bool)
        covered = np.ones(grid, bool) if context is None else np.asarray(context.covered, bool)
        explained = np.zeros(grid, bool) if context is None else context.explained()
        if near.shape != (c.grid_cols,) or covered.shape != grid or explained.shape != grid:
            raise ValueError(f"camera context grid {covered.shape} does not match the check grid "
                             f"({c.grid_rows}, {c.grid_cols})")
        close = (np.zeros(grid, bool) if context is None or context.close_cells is None
                 else np.asarray(context.close_cells, bool))
        filled = (bool(near.any()) and float(near.mean()) >= c.near_view_fraction) or (
            float(close.mean()) >= c.near_view_cell_fraction)
        if filled:
            self._near_hold = c.near_view_hold_frames
        elif self._near_hold > 0 and (near.any() or close.any()):  # the same near object, a little under the fractions
            self._near_hold -= 1
            filled = True
        else:
            self._near_hold = 0
        open_view = context is not None and float(covered.mean()) < c.open_view_fraction
        h_px, w_px = np.asarray(image).shape[:2]
        # small images: a finer stride, so every grid cell keeps at least 3x3 samples and the sampled image stays
        # at least min_sample_width wide (the pipeline checks images decoded near model resolution, 200x112 for
        # nuScenes: at stride 4 the 50x28 samples hid sensor noise and motion blur on the real samples)
        stride = max(1, min(c.stride, h_px // (3 * c.grid_rows), w_px // (3 * c.grid_cols),
                            w_px // c.min_sample_width))
        y = luma(image, stride)
        st = image_stats(y, c.grid_rows, c.grid_cols)
        # the occlusion grid needs enough samples per cell for a stable sharpness estimate: the variance of the
        # Laplacian over 12x7 samples (a 256x144 sim image or a 200x112 decoded nuScenes image at stride 4) swings
        # by 100x between frames and made single cells look blocked; use a finer stride for the cells
        cell_stride = max(1, min(stride, h_px // (c.occlusion_min_cell_samples * c.grid_rows),
                                 w_px // (c.occlusion_min_cell_samples * c.grid_cols)))
        if cell_stride != stride:
            fine = image_stats(luma(image, cell_stride), c.grid_rows, c.grid_cols)
            st = replace(st, cell_mean=fine.cell_mean, cell_std=fine.cell_std, cell_sharpness=fine.cell_sharpness)
        self.last_stats = st
        ready = self._frames >= c.baseline_warmup_frames and self._base_mean is not None
        dark = dark_channel(image, 2 * stride)
        out = {"exposure": self._exposure(st, ready, filled, open_view), "contrast": self._contrast(st, ready),
               "blur": self._blur(st, ready), "noise": self._noise(st, ready),
               "visibility": self._visibility(st, dark, ready), "frozen": self._frozen(y, st)}
        if filled:
            out = self._near_view(out, st, near, close)
        global_checks = ("exposure", "contrast", "blur", "noise", "visibility")
        global_bad = [k for k in global_checks if out[k].level != Level.OK]
        out["occlusion"] = self._occlusion(st, w_px, h_px, global_bad, explained, covered)
        if not filled:  # a view filled by a near object is the scene, not the camera: the baselines do not learn it
            self._learn(st, dark, 1.0 if self._base_mean is None else
                        (c.baseline_alpha if ready else 0.5) if not global_bad else c.baseline_alpha_degraded)
        self._prev = y
        self._frames += 1
        return out

    def _learn(self, st: ImageStats, dark: float, a: float) -> None:
        """EMA step of the running baselines with weight ``a`` (1: start from this frame)."""
        def ema(old, new):
            return new if old is None or a >= 1.0 else (1 - a) * old + a * new

        edge = np.array([st.edge_x, st.edge_y, st.edge_iso])
        if self._base_edge is not None:
            edge = np.where(np.isfinite(edge), edge, self._base_edge)
        self._base_mean = ema(self._base_mean, st.mean)
        self._base_sharp = ema(self._base_sharp, st.sharpness)
        self._base_dark = ema(self._base_dark, dark)
        self._base_std = ema(self._base_std, st.std)
        self._base_edge = ema(self._base_edge, edge)

    def _edge_ratios(self) -> np.ndarray:
        """(x, y, iso) edge-profile ratios of the last image to the baseline (nan before one)."""
        st = self.last_stats
        if st is None or self._base_edge is None:
            return np.full(3, np.nan)
        return np.array([st.edge_x, st.edge_y, st.edge_iso]) / np.maximum(self._base_edge, 1e-12)

    def _near_view(self, out: dict[str, CheckResult], st: ImageStats, near: np.ndarray, close: np.ndarray
                   ) -> dict[str, CheckResult]:
        """Whole-image texture checks are not judged while a near object fills the view (the LiDAR sees it)."""
        why = (f"not judged: a near object fills {int(near.sum())} of {near.size} image columns and "
               f"{int(close.sum())} of {close.size} cells (LiDAR returns within "
               f"{self.config.near_object_m:g} m)")
        res = dict(out)
        for k in ("contrast", "blur", "noise", "visibility"):
            if res[k].level != Level.OK:
                res[k] = CheckResult(Level.OK, why, {**res[k].values, "raw_result": res[k].message})
        return res

    def _exposure(self, st: ImageStats, ready: bool, near_view: bool = False, open_view: bool = False
                  ) -> CheckResult:
        c = self.config
        v = {"mean_luma": fmt(st.mean), "saturated_fraction": fmt(st.sat_hi),
             "baseline_mean_luma": fmt(self._base_mean if self._base_mean is not None else float("nan"))}
        if st.mean < c.dark_error:
            return CheckResult(Level.ERROR, f"image black (mean luma {st.mean:.3f})",
                               {**v, "value": fmt(st.mean), "bound": f">= {c.dark_error:g}"})
        if st.sat_hi > c.bright_error:
            return CheckResult(Level.ERROR, f"overexposed: {st.sat_hi:.0%} of pixels saturated",
                               {**v, "value": fmt(st.sat_hi), "bound": f"<= {c.bright_error:g}"})
        if st.sat_hi > c.bright_threshold:
            return CheckResult(Level.WARN, f"overexposed: {st.sat_hi:.0%} of pixels saturated",
                               {**v, "value": fmt(st.sat_hi), "bound": f"<= {c.bright_threshold:g}"})
        if near_view:  # a dark truck beside the car: dark is the scene (black and saturated are still judged)
            return CheckResult(Level.OK, f"exposure ok for a view filled by a near object (mean luma {st.mean:.2f})",
                               {**v, "value": fmt(st.mean), "bound": f">= {c.dark_error:g}"})
        if st.mean < c.dark_threshold:
            return CheckResult(Level.WARN, f"image dark (mean luma {st.mean:.3f})",
                               {**v, "value": fmt(st.mean), "bound": f">= {c.dark_threshold:g}"})
        if ready and st.mean < c.dark_ratio * self._base_mean:
            return CheckResult(Level.WARN, f"image darkened to {st.mean / self._base_mean:.0%} of its usual luma "
                               f"({st.mean:.2f} vs {self._base_mean:.2f})",
                               {**v, "value": fmt(st.mean), "bound": f">= {c.dark_ratio:g} x baseline"})
        # a camera turning to open space (sky, fields: the LiDAR sees almost nothing in its view) brightens without a
        # fault; then the image must also look washed out (saturated, or its contrast gone)
        washed = st.sat_hi >= c.bright_saturated_min or bool(
            self._base_std and st.std < c.bright_contrast_ratio * self._base_std)
        if ready and st.mean > self._base_mean + c.bright_shift and (washed or not open_view):
            return CheckResult(Level.WARN, f"image brightened: mean luma {st.mean:.2f} vs usual {self._base_mean:.2f}, "
                               f"{st.sat_hi:.0%} saturated, contrast {st.std / (self._base_std or 1):.0%} of usual",
                               {**v, "value": fmt(st.mean), "bound": f"<= baseline + {c.bright_shift:g} (with "
                                f"saturation >= {c.bright_saturated_min:g} or contrast < {c.bright_contrast_ratio:g} "
                                "x baseline)"})
        return CheckResult(Level.OK, f"exposure ok (mean luma {st.mean:.2f})",
                           {**v, "value": fmt(st.mean), "bound": f">= {c.dark_threshold:g}"})

    def _contrast(self, st: ImageStats, ready: bool) -> CheckResult:
        """No contrast (absolute, ERROR); low contrast (WARN) only when it is also a drop against this camera's own
        baseline (a camera looking at a grey sidewalk and a pale facade is low-contrast every day)."""
        c = self.config
        ratio = st.std / self._base_std if ready and self._base_std else float("nan")
        v = {"value": fmt(st.std), "bound": f">= {c.contrast_threshold:g} or >= {c.contrast_drop_ratio:g} x baseline",
             "baseline_std": fmt(self._base_std if self._base_std is not None else float("nan")), "ratio": fmt(ratio)}
        if st.std < c.contrast_error:
            return CheckResult(Level.ERROR, f"no contrast (luma std {st.std:.3f})",
                               {**v, "bound": f">= {c.contrast_error:g}"})
        if st.std < c.contrast_threshold and ratio < c.contrast_drop_ratio:
            return CheckResult(Level.WARN, f"low contrast (luma std {st.std:.3f}, {ratio:.0%} of usual)", v)
        return CheckResult(Level.OK, f"contrast ok (luma std {st.std:.3f})", v)

    def _blur(self, st: ImageStats, ready: bool) -> CheckResult:
        """Less fine detail than usual *and* soft edges: a view with fewer edges (open field, sky, a building
        gone by) loses detail but keeps sharp edges, a blurred image does not."""
        c = self.config
        ratio = st.sharpness / self._base_sharp if ready and self._base_sharp else float("nan")
        edge = self._edge_ratios() if ready else np.full(3, np.nan)
        soft_edges = float(np.nanmin(edge[:2])) if np.isfinite(edge[:2]).any() else float("nan")
        v = {"value": fmt(st.sharpness), "bound": f">= {c.blur_threshold:g}", "baseline": fmt(self._base_sharp or
             float("nan")), "ratio": fmt(ratio), "edge_profile_ratio": fmt(soft_edges)}
        if st.mean < c.dark_error or st.std < c.contrast_error:
            return CheckResult(Level.OK, "blur not judged (image black or flat)", v)
        edges_soft = not (soft_edges >= c.edge_soft_ratio)  # nan (no edges to judge) counts as soft
        where = (f"sharpness {st.sharpness:.2g}, {ratio:.0%} of usual, edge profile {soft_edges:.0%} of usual"
                 f"{' along x' if edge[0] < edge[1] else ' along y' if edge[1] < edge[0] else ''}")
        if st.sharpness < c.blur_error or (ratio < c.blur_ratio_error and edges_soft):
            return CheckResult(Level.ERROR, f"image blurred ({where})",
                               {**v, "bound": f">= {c.blur_error:g} and (>= {c.blur_ratio_error:g} x baseline or edge "
                                f"profile >= {c.edge_soft_ratio:g} x baseline)"})
        if st.sharpness < c.blur_threshold or (ratio < c.blur_ratio and edges_soft):
            return CheckResult(Level.WARN, f"image soft ({where})",
                               {**v, "bound": f">= {c.blur_threshold:g} and (>= {c.blur_ratio:g} x baseline or edge "
                                f"profile >= {c.edge_soft_ratio:g} x baseline)"})
        return CheckResult(Level.OK, f"sharpness ok ({st.sharpness:.2g})", v)

    def _noise(self, st: ImageStats, ready: bool) -> CheckResult:
        """More fine energy than usual *and* a finer-grained edge profile (noise lives at the pixel scale; a view
        with more edges raises both scales alike)."""
        c = self.config
        ratio = st.sharpness / self._base_sharp if ready and self._base_sharp else float("nan")
        grain = float(self._edge_ratios()[2]) if ready else float("nan")
        v = {"value": fmt(ratio), "bound": f"<= {c.noise_ratio:g} x baseline", "sharpness": fmt(st.sharpness),
             "edge_profile_ratio": fmt(grain)}
        fine_grained = not (grain <= c.noise_edge_ratio)
        if ratio > c.noise_ratio_error and fine_grained:
            return CheckResult(Level.ERROR, f"image noisy: high-frequency energy {ratio:.0f}x usual, fine-to-coarse "
                               f"energy {grain:.1f}x usual", {**v, "bound": f"<= {c.noise_ratio_error:g} x baseline"})
        if ratio > c.noise_ratio and fine_grained:
            return CheckResult(Level.WARN, f"image noisy: high-frequency energy {ratio:.1f}x usual, fine-to-coarse "
                               f"energy {grain:.1f}x usual", v)
        return CheckResult(Level.OK, "no excess noise" if ready else "noise baseline warming up", v)

    def _visibility(self, st: ImageStats, dark: float, ready: bool) -> CheckResult:
        """Haze: the dark channel rises (airlight), detail and contrast fall together."""
        c = self.config
        shift = dark - self._base_dark if ready and self._base_dark is not None else float("nan")
        ratio = st.sharpness / self._base_sharp if ready and self._base_sharp else float("nan")
        contrast = st.std / self._base_std if ready and self._base_std else float("nan")
        v = {"value": fmt(shift), "bound": f"<= {c.haze_shift:g} (with sharpness < {c.haze_sharpness_ratio:g} x "
             f"baseline and contrast < {c.haze_contrast_ratio:g} x baseline)", "dark_channel": fmt(dark),
             "sharpness_ratio": fmt(ratio), "contrast_ratio": fmt(contrast)}
        if not (ratio < c.haze_sharpness_ratio and contrast < c.haze_contrast_ratio):
            return CheckResult(Level.OK, "no haze" if ready else "haze baseline warming up", v)
        where = (f"dark channel {shift:+.2f} above usual, sharpness {ratio:.0%} and contrast {contrast:.0%} of "
                 "usual")
        if shift > c.haze_error_shift:
            return CheckResult(Level.ERROR, f"visibility lost: haze or fog ({where})",
                               {**v, "bound": f"<= {c.haze_error_shift:g}"})
        if shift > c.haze_shift:
            return CheckResult(Level.WARN, f"visibility reduced: haze or fog ({where})", v)
        return CheckResult(Level.OK, "no haze", v)

    def _frozen(self, y: np.ndarray, st: ImageStats) -> CheckResult:
        c = self.config
        if st.std < c.contrast_error:
            self.frozen_frames = 0
            return CheckResult(Level.OK, "frozen not judged (flat image: see exposure/contrast)",
                               {"value": "nan", "bound": f"> {c.frozen_diff:g}", "frozen_frames": "0"})
        if self._prev is None or self._prev.shape != y.shape:
            self.frozen_frames = 0
            return CheckResult(Level.OK, "first frame", {"value": "nan", "bound": f"> {c.frozen_diff:g}",
                                                          "frozen_frames": "0"})
        d = float(np.abs(y - self._prev).mean())
        self.frozen_frames = self.frozen_frames + 1 if d <= c.frozen_diff else 0
        v = {"value": fmt(d), "bound": f"> {c.frozen_diff:g}", "frozen_frames": str(self.frozen_frames)}
        if self.frozen_frames >= c.frozen_frames_error:
            return CheckResult(Level.ERROR, f"frozen: {self.frozen_frames + 1} identical frames", v)
        if self.frozen_frames >= c.frozen_frames_warn:
            return CheckResult(Level.WARN, f"frozen: {self.frozen_frames + 1} identical frames", v)
        return CheckResult(Level.OK, f"frames change (mean |diff| {d:.3f})", v)

    def _occlusion(self, st: ImageStats, w_px: int, h_px: int, global_bad: list[str], explained: np.ndarray,
                   covered: np.ndarray) -> CheckResult:
        c = self.config
        if global_bad and self._cell_ref is not None:
            self._cell_hist.clear()
            self._cell_state = None
            return CheckResult(Level.OK, f"occlusion not judged: whole image degraded (see {', '.join(global_bad)})",
                               {"value": "nan", "bound": "0 cells"})
        dark_flat, soft = self._soft_cells(st)
        # a near object (LiDAR) explains a flat column; a sharpness loss counts only where the LiDAR sees structure
        raw = dark_flat | (soft & covered)
        # an explained cell is not judged: it keeps the state it had when last judged while it stays soft, so a
        # truck pulling up behind a blob neither clears the blob nor makes its own flat side a blob (sim420)
        last = np.zeros_like(raw) if self._cell_state is None else self._cell_state
        soft_now = np.where(explained, last & raw, raw)
        self._cell_state = soft_now
        self._cell_hist.append(soft_now)
        # persistence: dirt stays in the same cells while the camera moves, a flat object (truck side, shadow)
        # passes; a cell is blocked when it was soft in k of the last n frames
        persistent = (np.sum(self._cell_hist, axis=0) >= c.occlusion_persist_count) & soft_now
        # dirt or a blob on the lens is one piece; soft cells scattered over the view are plain texture (a facade
        # passing slowly): the region is the largest 8-connected group of persistent cells
        blocked = largest_region(persistent)
        n = int(blocked.sum())
        total = blocked.size
        v = {"value": str(n), "bound": f"< {c.occlusion_warn_cells} of {total} cells",
             "persistent_cells": str(int(persistent.sum())), "soft_cells_now": str(int(soft_now.sum())),
             "near_object_cells": str(int(explained.sum())),
             "persistence": f">= {c.occlusion_persist_count} of {c.occlusion_persist_frames} frames"}
        if n == 0:
            return CheckResult(Level.OK, "no blocked region", v)
        if n < c.occlusion_warn_cells:
            return CheckResult(Level.OK, f"{n} blocked cell(s), below the bound",
                               {**v, "bound": f"< {c.occlusion_warn_cells} cells"})
        if st.mean < c.dark_threshold and n > total // 2:
            return CheckResult(Level.OK, "occlusion not judged (whole image dark: see exposure)", v)
        word, box = region_text(blocked, w_px, h_px)
        v.update(region=word, region_px=box, cells=";".join(f"r{r}c{k}" for r, k in zip(*np.nonzero(blocked))))
        level = Level.ERROR if n >= c.occlusion_error_cells else Level.WARN
        return CheckResult(level, f"view blocked at {word} ({box}; {n} of {total} cells)", v)

    def _soft_cells(self, st: ImageStats) -> tuple[np.ndarray, np.ndarray]:
        """This frame's (dark-and-flat cells, cells far less sharp than usual); updates the per-cell reference.

        A cell is soft when its sharpness fell below ``occlusion_sharpness_ratio`` of its own reference *and* of
        the sharper cells' change (so a global loss is blur, not occlusion). The reference is a geometric running
        mean that learns only from cells that are not soft."""
        c = self.config
        dark_flat = (st.cell_mean < c.occlusion_dark_luma) & (st.cell_std < c.occlusion_flat_std)
        globally_dark = st.mean < c.dark_threshold or (
            self._base_mean is not None and st.mean < c.dark_ratio * self._base_mean)
        if globally_dark:  # a dark image has dark flat cells everywhere: that is exposure, not occlusion
            dark_flat = np.zeros_like(dark_flat)
        log_sharp = np.log10(np.maximum(st.cell_sharpness, 1e-12))
        if self._cell_ref is None or self._cell_ref.shape != log_sharp.shape:
            self._cell_ref = log_sharp.copy()
            ready = False
        else:
            ready = self._frames >= c.occlusion_warmup_frames
        drop = log_sharp - self._cell_ref
        limit = np.log10(c.occlusion_sharpness_ratio) + min(0.0, float(np.percentile(drop, 80)))
        soft = (drop < limit) if ready else np.zeros_like(dark_flat)
        a = 0.5 if self._frames < c.occlusion_warmup_frames else c.occlusion_baseline_alpha
        self._cell_ref = np.where(soft | dark_flat, self._cell_ref, (1 - a) * self._cell_ref + a * log_sharp)
        return dark_flat, soft
