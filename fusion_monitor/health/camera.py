"""Camera image checks on a subsampled luma image: exposure, contrast, blur, frozen frame, occluded regions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fusion_monitor.health.config import CameraCheckConfig
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
    """

    mean: float
    std: float
    sat_hi: float
    sat_lo: float
    sharpness: float
    cell_mean: np.ndarray
    cell_std: np.ndarray
    cell_sharpness: np.ndarray


def image_stats(y: np.ndarray, rows: int = 4, cols: int = 4) -> ImageStats:
    """Statistics of a luma image ``y`` (H, W) in [0, 1] with a rows x cols grid."""
    if y.ndim != 2 or y.shape[0] < 3 * rows or y.shape[1] < 3 * cols:
        raise ValueError(f"luma image {y.shape} too small for a {rows}x{cols} grid")
    lap = laplacian(y)
    g = _grid(y, rows, cols)
    gl = _grid(lap, rows, cols)
    return ImageStats(
        mean=float(y.mean()), std=float(y.std()),
        sat_hi=float(np.count_nonzero(y >= 0.98)) / y.size, sat_lo=float(np.count_nonzero(y <= 0.02)) / y.size,
        sharpness=float(lap.var()), cell_mean=g.mean(axis=2), cell_std=g.std(axis=2), cell_sharpness=gl.var(axis=2),
    )


_ROW_WORDS = {1: ["" ], 2: ["top", "bottom"], 3: ["top", "middle", "bottom"]}
_COL_WORDS = {1: [""], 2: ["left", "right"], 3: ["left", "centre", "right"]}


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
        self._cell_ref: np.ndarray | None = None
        self._frames = 0
        self.last_stats: ImageStats | None = None
        self._base_mean: float | None = None
        self._base_sharp: float | None = None
        self._base_dark: float | None = None

    def reset(self) -> None:
        """Forget the previous frame and the running baselines (after a time jump)."""
        self._base_mean = None
        self._base_sharp = None
        self._base_dark = None
        self._prev = None
        self.frozen_frames = 0
        self._cell_ref = None
        self._frames = 0

    def update(self, image: np.ndarray) -> dict[str, CheckResult]:
        """Run every camera check on one (H, W, 3) uint8 RGB image; returns check name -> result."""
        c = self.config
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
            st = ImageStats(st.mean, st.std, st.sat_hi, st.sat_lo, st.sharpness, fine.cell_mean, fine.cell_std,
                            fine.cell_sharpness)
        self.last_stats = st
        ready = self._frames >= c.baseline_warmup_frames and self._base_mean is not None
        dark = dark_channel(image, 2 * stride)
        out = {"exposure": self._exposure(st, ready), "contrast": self._contrast(st), "blur": self._blur(st, ready),
               "noise": self._noise(st, ready), "visibility": self._visibility(st, dark, ready),
               "frozen": self._frozen(y, st)}
        global_checks = ("exposure", "contrast", "blur", "noise", "visibility")
        global_bad = [k for k in global_checks if out[k].level != Level.OK]
        out["occlusion"] = self._occlusion(st, w_px, h_px, global_bad)
        if self._base_mean is None:
            self._base_mean, self._base_sharp, self._base_dark = st.mean, st.sharpness, dark
        else:
            a = (c.baseline_alpha if ready else 0.5) if not global_bad else c.baseline_alpha_degraded
            self._base_mean = (1 - a) * self._base_mean + a * st.mean
            self._base_sharp = (1 - a) * self._base_sharp + a * st.sharpness
            self._base_dark = (1 - a) * self._base_dark + a * dark
        self._prev = y
        self._frames += 1
        return out

    def _exposure(self, st: ImageStats, ready: bool) -> CheckResult:
        c = self.config
        v = {"mean_luma": fmt(st.mean), "saturated_fraction": fmt(st.sat_hi),
             "baseline_mean_luma": fmt(self._base_mean if self._base_mean is not None else float("nan"))}
        if st.mean < c.dark_error:
            return CheckResult(Level.ERROR, f"image black (mean luma {st.mean:.3f})",
                               {**v, "value": fmt(st.mean), "bound": f">= {c.dark_error:g}"})
        if st.sat_hi > c.bright_error:
            return CheckResult(Level.ERROR, f"overexposed: {st.sat_hi:.0%} of pixels saturated",
                               {**v, "value": fmt(st.sat_hi), "bound": f"<= {c.bright_error:g}"})
        if st.mean < c.dark_threshold:
            return CheckResult(Level.WARN, f"image dark (mean luma {st.mean:.3f})",
                               {**v, "value": fmt(st.mean), "bound": f">= {c.dark_threshold:g}"})
        if st.sat_hi > c.bright_threshold:
            return CheckResult(Level.WARN, f"overexposed: {st.sat_hi:.0%} of pixels saturated",
                               {**v, "value": fmt(st.sat_hi), "bound": f"<= {c.bright_threshold:g}"})
        if ready and st.mean < c.dark_ratio * self._base_mean:
            return CheckResult(Level.WARN, f"image darkened to {st.mean / self._base_mean:.0%} of its usual luma "
                               f"({st.mean:.2f} vs {self._base_mean:.2f})",
                               {**v, "value": fmt(st.mean), "bound": f">= {c.dark_ratio:g} x baseline"})
        if ready and st.mean > self._base_mean + c.bright_shift:
            return CheckResult(Level.WARN, f"image brightened: mean luma {st.mean:.2f} vs usual {self._base_mean:.2f}",
                               {**v, "value": fmt(st.mean), "bound": f"<= baseline + {c.bright_shift:g}"})
        return CheckResult(Level.OK, f"exposure ok (mean luma {st.mean:.2f})",
                           {**v, "value": fmt(st.mean), "bound": f">= {c.dark_threshold:g}"})

    def _contrast(self, st: ImageStats) -> CheckResult:
        c = self.config
        v = {"value": fmt(st.std), "bound": f">= {c.contrast_threshold:g}"}
        if st.std < c.contrast_error:
            return CheckResult(Level.ERROR, f"no contrast (luma std {st.std:.3f})",
                               {**v, "bound": f">= {c.contrast_error:g}"})
        if st.std < c.contrast_threshold:
            return CheckResult(Level.WARN, f"low contrast (luma std {st.std:.3f})", v)
        return CheckResult(Level.OK, f"contrast ok (luma std {st.std:.3f})", v)

    def _blur(self, st: ImageStats, ready: bool) -> CheckResult:
        c = self.config
        ratio = st.sharpness / self._base_sharp if ready and self._base_sharp else float("nan")
        v = {"value": fmt(st.sharpness), "bound": f">= {c.blur_threshold:g}", "baseline": fmt(self._base_sharp or
             float("nan")), "ratio": fmt(ratio)}
        if st.mean < c.dark_error or st.std < c.contrast_error:
            return CheckResult(Level.OK, "blur not judged (image black or flat)", v)
        if st.sharpness < c.blur_error or ratio < c.blur_ratio_error:
            return CheckResult(Level.ERROR, f"image blurred (sharpness {st.sharpness:.2g}, {ratio:.0%} of usual)",
                               {**v, "bound": f">= {c.blur_error:g} and >= {c.blur_ratio_error:g} x baseline"})
        if st.sharpness < c.blur_threshold or ratio < c.blur_ratio:
            return CheckResult(Level.WARN, f"image soft (sharpness {st.sharpness:.2g}, {ratio:.0%} of usual)",
                               {**v, "bound": f">= {c.blur_threshold:g} and >= {c.blur_ratio:g} x baseline"})
        return CheckResult(Level.OK, f"sharpness ok ({st.sharpness:.2g})", v)

    def _noise(self, st: ImageStats, ready: bool) -> CheckResult:
        c = self.config
        ratio = st.sharpness / self._base_sharp if ready and self._base_sharp else float("nan")
        v = {"value": fmt(ratio), "bound": f"<= {c.noise_ratio:g} x baseline", "sharpness": fmt(st.sharpness)}
        if ratio > c.noise_ratio_error:
            return CheckResult(Level.ERROR, f"image noisy: high-frequency energy {ratio:.0f}x usual",
                               {**v, "bound": f"<= {c.noise_ratio_error:g} x baseline"})
        if ratio > c.noise_ratio:
            return CheckResult(Level.WARN, f"image noisy: high-frequency energy {ratio:.1f}x usual", v)
        return CheckResult(Level.OK, "no excess noise" if ready else "noise baseline warming up", v)

    def _visibility(self, st: ImageStats, dark: float, ready: bool) -> CheckResult:
        c = self.config
        shift = dark - self._base_dark if ready and self._base_dark is not None else float("nan")
        ratio = st.sharpness / self._base_sharp if ready and self._base_sharp else float("nan")
        v = {"value": fmt(shift), "bound": f"<= {c.haze_shift:g} (with sharpness < {c.haze_sharpness_ratio:g} x "
             "baseline)", "dark_channel": fmt(dark), "sharpness_ratio": fmt(ratio)}
        if not (ratio < c.haze_sharpness_ratio):
            return CheckResult(Level.OK, "no haze" if ready else "haze baseline warming up", v)
        where = f"dark channel {shift:+.2f} above usual, sharpness {ratio:.0%} of usual"
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

    def _occlusion(self, st: ImageStats, w_px: int, h_px: int, global_bad: list[str]) -> CheckResult:
        c = self.config
        if global_bad and self._cell_ref is not None:
            return CheckResult(Level.OK, f"occlusion not judged: whole image degraded (see {', '.join(global_bad)})",
                               {"value": "nan", "bound": "0 cells"})
        dark_flat = (st.cell_mean < c.occlusion_dark_luma) & (st.cell_std < c.occlusion_flat_std)
        globally_dark = st.mean < c.dark_threshold or (
            self._base_mean is not None and st.mean < c.dark_ratio * self._base_mean)
        if globally_dark:  # a dark image has dark flat cells everywhere: that is exposure, not occlusion
            dark_flat = np.zeros_like(dark_flat)
        if self._cell_ref is None or self._cell_ref.shape != st.cell_sharpness.shape:
            self._cell_ref = st.cell_sharpness.copy()
            ref_ready = False
        else:
            ref_ready = self._frames >= c.occlusion_warmup_frames
        ratio = st.cell_sharpness / np.maximum(self._cell_ref, 1e-12)
        ref_ratio = float(np.percentile(ratio, 80))
        soft = (ratio < c.occlusion_sharpness_ratio * ref_ratio) if ref_ready else np.zeros_like(dark_flat)
        blocked = dark_flat | soft
        # geometric EMA (log domain): robust to the heavy-tailed frame-to-frame texture changes
        a = 0.5 if self._frames < c.occlusion_warmup_frames else c.occlusion_baseline_alpha
        upd = np.exp((1 - a) * np.log(np.maximum(self._cell_ref, 1e-12)) + a * np.log(np.maximum(st.cell_sharpness, 1e-12)))
        self._cell_ref = np.where(blocked, self._cell_ref, upd)
        n = int(blocked.sum())
        total = blocked.size
        v = {"value": str(n), "bound": f"0 of {total} cells", "min_sharpness_ratio": fmt(float(ratio.min()))}
        if n == 0:
            return CheckResult(Level.OK, "no blocked region", v)
        if st.mean < c.dark_threshold and n > total // 2:
            return CheckResult(Level.OK, "occlusion not judged (whole image dark: see exposure)", v)
        word, box = region_text(blocked, w_px, h_px)
        v.update(region=word, region_px=box, cells=";".join(f"r{r}c{k}" for r, k in zip(*np.nonzero(blocked))))
        level = Level.ERROR if n >= c.occlusion_error_cells else Level.WARN
        return CheckResult(level, f"view blocked at {word} ({box}; {n} of {total} cells)", v)
