"""Attribution checks: each modality's contribution share against a calibrated baseline.

Per frame the monitor receives, for every detection, each modality's signed share of the
detection's logit (``Detection.shares``: h_m / sum |h|, negative = argued against), the
detection scores, and optionally each modality's share of the BEV contribution mass. From these
:func:`frame_statistics` makes one number per (kind, modality): ``det.<m>`` = mean share over
confirmed detections, ``bev.<m>`` = BEV share. A :class:`Baseline` (fit on nominal drives by
:func:`fit_baseline`) holds their mean and standard deviation.

Checks per modality:

- ``contribution``: the windowed mean share is below ``min_share`` while the modality's sensors
  deliver although the modality normally contributes (modality collapse, ERROR), or more than ``z_warn``
  baseline std from the baseline mean (WARN). "Normally contributes" comes from the baseline (a detector
  that barely uses its camera is nominal at 1 %); without one, from the modality's own share over its
  first ``collapse_warmup`` live frames, so only a modality that contributed and stopped is called
  collapsed;
- ``drift``: two-sided CUSUM on standardised *block means* (slow drift); only a drop alarms unless
  ``drift_up`` is set (a share that rises is the others' drop, reported at the sensor that lost it). Shares of consecutive frames
  are strongly correlated (the same objects in view), so a CUSUM on single frames false-alarms far
  more often than its formula says. The checker averages ``drift_block`` frames (1 s at the 20 Hz
  LiDAR trigger) and standardises the block mean with the baseline's *block* std, measured by
  :func:`fit_baseline` on the nominal drives' own block means (so it holds the autocorrelation and
  the drive-to-drive spread). With reference k and decision interval h (block-std units),
  Siegmund's approximation gives the in-control average run length of one side
  ARL0 = (exp(2kb) - 2kb - 1) / (2k^2), b = h + 1.166, and half of it two-sided (:func:`cusum_arl0`);
  defaults k = 1, h = 8 give about 2.3e7 blocks per false alarm and CUSUM for independent blocks with
  the fitted std. That figure is far too optimistic on real drives: a drive's scene holds its shares a
  steady 1-2 block std off the fleet mean for its whole length (more moving traffic: more radar), and a
  CUSUM with k below that offset climbs through any h (a 2-min nominal drive reached 20 at k = 1).
  So with a baseline fit on 3 or more drives, :func:`held_out_drift` holds each drive out of the fit in
  turn: k becomes the largest steady offset of a held-out drive (at least ``cusum_k``), and h at least
  ``cusum_margin`` x the largest statistic a held-out drive then reached. The documented false-alarm
  rate is thus empirical: no calibration drive, seen as a new one, alarms with a margin of ``cusum_margin``
  on its worst statistic (with N drives, a new drive outside all of them has a chance of about 1 / (N + 1)
  of exceeding the largest; the margin is for that). The expected delay for a sustained shift of d block
  stds is about (h + 1.166) / (d - k) blocks;
- ``contradiction``: the fraction of confirmed detections on which the modality's share is below
  ``contradiction_share`` (a sensor arguing against what the others confirm).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from fusion_monitor.health.config import AttributionCheckConfig
from fusion_monitor.health.status import CheckResult, Level, fmt

#: Checks per modality, in order.
ATTRIBUTION_CHECKS = ("contribution", "drift", "contradiction")
BASELINE_FORMAT = 2
#: Formats :meth:`Baseline.from_dict` reads (1: no block std; it is then derived as std / sqrt(block)).
READABLE_FORMATS = (1, 2)


class BaselineMismatch(ValueError):
    """A baseline was calibrated for another model or sensor set (the message says which differs)."""


def frame_statistics(detection_shares: Sequence[Mapping[str, float]], modalities: Sequence[str],
                     scores: Sequence[float] | None = None, bev_shares: Mapping[str, float] | None = None,
                     min_score: float = 0.0) -> dict[str, float]:
    """One frame's share statistics: ``det.<m>`` (mean share over detections with score >= min_score; nan when
    none) and ``bev.<m>`` (nan when not given, or when every BEV share is 0: an empty heat map)."""
    if scores is not None and len(scores) != len(detection_shares):
        raise ValueError(f"{len(scores)} scores for {len(detection_shares)} detections")
    keep = [d for i, d in enumerate(detection_shares) if scores is None or scores[i] >= min_score]
    if bev_shares is not None and not any(float(v) for v in bev_shares.values()):
        bev_shares = None  # nothing in the BEV above the heat threshold: no evidence, not a zero share
    out = {}
    for m in modalities:
        vals = [float(d.get(m, 0.0)) for d in keep]
        out[f"det.{m}"] = float(np.mean(vals)) if vals else float("nan")
        out[f"bev.{m}"] = float(bev_shares[m]) if bev_shares is not None and m in bev_shares else float("nan")
    return out


@dataclass(frozen=True)
class Baseline:
    """Nominal share statistics of one model on one sensor set.

    Attributes
    ----------
    model_id : str
        Identifies the model (package name + hash); a baseline is refused for another model.
    sensors : tuple[str, ...]
        Sensor names of the rig it was fit on (sorted); refused for another set.
    modalities : tuple[str, ...]
    mean, std : dict[str, float]
        Per statistic key (``det.<m>``, ``bev.<m>``); std has a floor (``min_std`` at fit time).
    n_frames : int
        Frames the fit used.
    source : str
        Free text: which drives it was fit on.
    block_std : dict[str, float]
        Per statistic key, the std of ``block_frames``-frame block means over the nominal drives (the drift
        check's unit; floored like ``std``). Empty for a format-1 file: derived as std / sqrt(block_frames).
    block_frames : int
        Frames per block the block std was measured with.
    drift_k, drift_excursion : dict[str, float]
        Per statistic key, from holding each nominal drive out of the fit in turn (:func:`held_out_drift`):
        the CUSUM reference value that the drives' steady scene offsets need, and the largest CUSUM
        statistic a held-out drive reached with it. The drift check uses them as its reference value and
        (times a margin) its decision interval. Empty when fit on fewer than 3 drives.
    drift_drives : int
        Drives the held-out runs used (0: none).
    """

    model_id: str
    sensors: tuple[str, ...]
    modalities: tuple[str, ...]
    mean: dict[str, float]
    std: dict[str, float]
    n_frames: int
    source: str = ""
    block_std: dict[str, float] = field(default_factory=dict)
    block_frames: int = 20
    drift_k: dict[str, float] = field(default_factory=dict)
    drift_excursion: dict[str, float] = field(default_factory=dict)
    drift_drives: int = 0

    def block_sd(self, key: str, block_frames: int) -> float:
        """The std of a ``block_frames``-frame block mean of ``key`` (measured when the fit used that block length;
        else scaled from the measured one, or from the frame std, as for independent frames)."""
        if key in self.block_std:
            return self.block_std[key] * math.sqrt(self.block_frames / block_frames)
        return self.std[key] / math.sqrt(block_frames)

    def check_compatible(self, model_id: str, sensors: Iterable[str]) -> None:
        """Raise :class:`BaselineMismatch` unless model id and sensor set match."""
        if model_id != self.model_id:
            raise BaselineMismatch(f"baseline is for model {self.model_id!r}, the running model is {model_id!r}")
        s = tuple(sorted(sensors))
        if s != self.sensors:
            missing = sorted(set(self.sensors) - set(s))
            extra = sorted(set(s) - set(self.sensors))
            raise BaselineMismatch(f"baseline sensor set differs: missing {missing}, not in baseline {extra}")

    def to_dict(self) -> dict:
        return {"format": BASELINE_FORMAT, "model_id": self.model_id, "sensors": list(self.sensors),
                "modalities": list(self.modalities), "n_frames": int(self.n_frames), "source": self.source,
                "mean": {k: float(v) for k, v in self.mean.items()}, "std": {k: float(v) for k, v in self.std.items()},
                "block_frames": int(self.block_frames), "block_std": {k: float(v) for k, v in self.block_std.items()},
                "drift_drives": int(self.drift_drives), "drift_k": {k: float(v) for k, v in self.drift_k.items()},
                "drift_excursion": {k: float(v) for k, v in self.drift_excursion.items()}}

    def to_yaml(self, path: str | Path | None = None) -> str:
        """YAML text (also written to ``path`` when given)."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_dict(cls, d: Mapping) -> Baseline:
        if not isinstance(d, Mapping):
            raise ValueError(f"baseline must be a mapping, got {type(d).__name__}")
        if d.get("format") not in READABLE_FORMATS:
            raise ValueError(f"baseline format {d.get('format')!r} is not one of {READABLE_FORMATS}")
        for k in ("model_id", "sensors", "modalities", "mean", "std", "n_frames"):
            if k not in d:
                raise ValueError(f"baseline lacks '{k}'")
        mean = {str(k): float(v) for k, v in d["mean"].items()}
        std = {str(k): float(v) for k, v in d["std"].items()}
        if set(mean) != set(std):
            raise ValueError(f"baseline mean keys {sorted(mean)} != std keys {sorted(std)}")
        block_std = {str(k): float(v) for k, v in (d.get("block_std") or {}).items()}
        bad = [k for k, v in {**std, **block_std}.items() if not (v > 0)]
        if bad:
            raise ValueError(f"baseline std must be > 0 for {bad}")
        if set(block_std) - set(mean):
            raise ValueError(f"baseline block_std keys {sorted(set(block_std) - set(mean))} have no mean")
        block_frames = int(d.get("block_frames", 20))
        if block_frames < 1:
            raise ValueError(f"baseline block_frames {block_frames} must be >= 1")
        drift_k = {str(k): float(v) for k, v in (d.get("drift_k") or {}).items()}
        drift_excursion = {str(k): float(v) for k, v in (d.get("drift_excursion") or {}).items()}
        if set(drift_k) != set(drift_excursion) or set(drift_k) - set(mean):
            raise ValueError(f"baseline drift_k keys {sorted(drift_k)} and drift_excursion keys "
                             f"{sorted(drift_excursion)} must match and have a mean")
        bad = [k for k, v in {**drift_k, **drift_excursion}.items() if not (math.isfinite(v) and v >= 0)]
        if bad:
            raise ValueError(f"baseline drift_k / drift_excursion must be finite and >= 0 for {bad}")
        return cls(str(d["model_id"]), tuple(sorted(str(s) for s in d["sensors"])),
                   tuple(str(m) for m in d["modalities"]), mean, std, int(d["n_frames"]), str(d.get("source", "")),
                   block_std, block_frames, drift_k, drift_excursion, int(d.get("drift_drives", 0)))

    @classmethod
    def from_yaml(cls, text_or_path: str | Path) -> Baseline:
        """Baseline from YAML text or a file path."""
        p = Path(text_or_path) if not (isinstance(text_or_path, str) and "\n" in text_or_path) else None
        text = p.read_text() if p is not None and p.exists() else str(text_or_path)
        try:
            return cls.from_dict(yaml.safe_load(text))
        except yaml.YAMLError as e:
            raise ValueError(f"baseline is not valid YAML: {e}") from None


def model_identity(package_name: str, onnx_sha256: str) -> str:
    """The model id a baseline is tied to: package folder name + the first 16 hex digits of a sha256 (the
    package's ``attribution_sha256``: weights, streams and LMD rules; or the graph file's)."""
    if not onnx_sha256:
        raise ValueError(f"model package {package_name!r} has no onnx_sha256: cannot identify it for a baseline")
    return f"{package_name}@{onnx_sha256[:16]}"


def load_baseline(path: str | Path, sensors: Iterable[str], model_id: str | None = None) -> Baseline:
    """Read a baseline file and check it against the running sensor set (and model, when ``model_id`` is given).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not a baseline file.
    BaselineMismatch
        Calibrated for another model or sensor set.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"attribution baseline file {str(p)!r} does not exist")
    try:
        b = Baseline.from_yaml(p)
    except ValueError as e:
        raise ValueError(f"{p}: {e}") from None
    if model_id is not None:
        b.check_compatible(model_id, sensors)
    else:
        b.check_compatible(b.model_id, sensors)
    return b


def fit_baseline(frames: Iterable[Mapping[str, float]], model_id: str, sensors: Iterable[str],
                 modalities: Sequence[str], min_std: float = 0.02, min_frames: int = 20, source: str = "",
                 block_frames: int = 20, drive_ids: Sequence[int] | None = None, min_block_std: float = 0.005,
                 cusum_k: float = 1.0) -> Baseline:
    """Fit a baseline from nominal frames' statistics (:func:`frame_statistics` outputs).

    Keys whose values are nan in every frame are left out. ``min_std`` floors the std (a
    modality that never varies must not make every tiny change an alarm). The block std is the std
    of the means of consecutive ``block_frames``-frame blocks (frames without a value skipped; blocks
    never span two drives: ``drive_ids`` gives each frame's drive), floored by ``min_block_std``;
    with fewer than 5 blocks it is left out (then derived as for independent frames). With 3 or more drives,
    :func:`held_out_drift` (reference value at least ``cusum_k``) gives the drift check's per-key reference
    value and nominal excursion.

    With several drives, each drive counts once, whatever its length: the mean is the mean of the drives'
    means and the block variance the mean of the drives' mean squared block deviations from it. Drives
    differ by their scenes; a short drive from another domain (the real-sample sequence among simulated
    drives) must widen the baseline as much as a long one.

    Raises
    ------
    ValueError
        Fewer than ``min_frames`` frames with a finite value for some kept key, or ``drive_ids`` of
        another length than ``frames``.
    """
    rows = list(frames)
    ids = list(drive_ids) if drive_ids is not None else [0] * len(rows)
    if len(ids) != len(rows):
        raise ValueError(f"{len(ids)} drive ids for {len(rows)} frames")
    mean, std, block_std, drift_k, drift_excursion, drift_drives = {}, {}, {}, {}, {}, 0
    keys = sorted({k for r in rows for k in r})
    for k in keys:
        vals = np.array([float(r.get(k, float("nan"))) for r in rows])
        ok = np.isfinite(vals)
        v = vals[ok]
        if v.size == 0:
            continue
        if v.size < min_frames:
            raise ValueError(f"baseline key {k}: only {v.size} frames with a value, need >= {min_frames}")
        drive = np.asarray(ids)[ok]
        mean[k] = float(np.mean([v[drive == d].mean() for d in dict.fromkeys(drive.tolist())]))
        std[k] = max(float(v.std(ddof=1)), float(min_std))
        per_drive = [b for b in _block_means(v, drive, block_frames) if b.size]
        if sum(b.size for b in per_drive) >= 5:
            var = np.mean([np.mean((b - mean[k]) ** 2) for b in per_drive])
            block_std[k] = max(float(np.sqrt(var)), float(min_block_std))
        held = held_out_drift(v, drive, block_frames, cusum_k, min_block_std)
        if held is not None:
            drift_k[k], drift_excursion[k], n = held
            drift_drives = max(drift_drives, n)
    if not mean:
        raise ValueError("no frame has any share statistic")
    return Baseline(model_id, tuple(sorted(sensors)), tuple(modalities), mean, std, len(rows), source, block_std,
                    int(block_frames), drift_k, drift_excursion, drift_drives)


def _block_means(values: np.ndarray, drive_ids: np.ndarray, block: int) -> list[np.ndarray]:
    """Per drive, the means of consecutive ``block``-value blocks (a drive's incomplete last block dropped)."""
    out = []
    for d in dict.fromkeys(drive_ids.tolist()):
        v = values[drive_ids == d]
        n = v.size // block
        out.append(v[: n * block].reshape(n, block).mean(axis=1))
    return out


def held_out_drift(values: np.ndarray, drive_ids: np.ndarray, block: int, k: float,
                   min_block_std: float = 0.005) -> tuple[float, float, int] | None:
    """How far nominal drives stray from a baseline fit without them: (k, excursion, drives), or None.

    For each drive in turn, the mean and block std are fit on the *other* drives as :func:`fit_baseline`
    does (each drive once), and the drive's own block means are standardised by them. Drives differ by
    their scenes: a drive with more moving traffic sits a steady 1.5 block std above the others' radar
    share for its whole length, and a CUSUM with a smaller reference value climbs through any decision
    interval on it. So the returned reference value is the largest mean |z| of a held-out drive (at least
    ``k``), and the excursion is the largest two-sided CUSUM statistic any held-out drive then reaches
    with that reference value. A decision interval above the excursion would have raised no alarm on any
    calibration drive seen as a new one. None with fewer than 3 drives that fill a block (a held-out fit
    needs two).
    """
    order = list(dict.fromkeys(drive_ids.tolist()))
    blocks = _block_means(values, drive_ids, block)
    means = [values[drive_ids == d].mean() for d in order]
    usable = [i for i, b in enumerate(blocks) if b.size]
    if len(usable) < 3:
        return None
    held_out = []
    for i in usable:
        others = [j for j in usable if j != i]
        mean = float(np.mean([means[j] for j in others]))
        sd = max(float(np.sqrt(np.mean([np.mean((blocks[j] - mean) ** 2) for j in others]))), float(min_block_std))
        held_out.append((blocks[i] - mean) / sd)
    k_key = max(float(k), max(abs(float(z.mean())) for z in held_out))
    worst = 0.0
    for z in held_out:
        cs = Cusum(k_key, math.inf)
        for x in z:
            cs.update(float(x))
            worst = max(worst, cs.hi, cs.lo)
    return k_key, worst, len(usable)


def cusum_arl0(k: float, h: float, two_sided: bool = True) -> float:
    """In-control average run length (frames) of a CUSUM on N(0, 1) data (Siegmund's approximation)."""
    if k <= 0:
        raise ValueError(f"cusum k {k} must be > 0")
    b = h + 1.166
    arl = (math.exp(2 * k * b) - 2 * k * b - 1) / (2 * k * k)
    return arl / 2 if two_sided else arl


@dataclass
class Cusum:
    """Two-sided tabular CUSUM on standardised values: S+ = max(0, S+ + z - k), S- = max(0, S- - z - k)."""

    k: float = 0.5
    h: float = 8.0
    hi: float = 0.0
    lo: float = 0.0

    def update(self, z: float) -> bool:
        """Add one standardised value; True while either sum exceeds h."""
        if math.isfinite(z):
            self.hi = max(0.0, self.hi + z - self.k)
            self.lo = max(0.0, self.lo - z - self.k)
        return self.hi > self.h or self.lo > self.h

    def reset(self) -> None:
        self.hi = self.lo = 0.0


@dataclass
class _ModState:
    det: deque = field(default_factory=deque)
    bev: deque = field(default_factory=deque)
    confirmed: deque = field(default_factory=deque)
    contradicted: deque = field(default_factory=deque)
    cusum: dict = field(default_factory=dict)
    block: dict = field(default_factory=dict)  # kind -> values of the block being filled
    drift: dict = field(default_factory=dict)  # kind -> (direction, statistic) of the last alarming block
    own: list = field(default_factory=list)  # windowed shares of the first live frames (reference without baseline)


class AttributionChecker:
    """Attribution checks of all modalities.

    Parameters
    ----------
    modalities : sequence of str
    config : AttributionCheckConfig
    baseline : Baseline or None
        Without one, collapse is judged against the modality's own first frames, the contradiction
        rule is absolute, and drift is not judged.
    """

    def __init__(self, modalities: Sequence[str], config: AttributionCheckConfig | None = None,
                 baseline: Baseline | None = None):
        self.modalities = tuple(modalities)
        self.config = config or AttributionCheckConfig()
        self.baseline = baseline
        self.frames = 0
        self.reset()

    def reset(self) -> None:
        n = self.config.window
        self._st = {m: _ModState(deque(maxlen=n), deque(maxlen=n), deque(maxlen=n), deque(maxlen=n),
                                 {kind: Cusum(*self.drift_kh(f"{kind}.{m}")) for kind in ("det", "bev")},
                                 {"det": [], "bev": []}, {})
                    for m in self.modalities}

    def update(self, detection_shares: Sequence[Mapping[str, float]], scores: Sequence[float] | None = None,
               bev_shares: Mapping[str, float] | None = None, live: Mapping[str, bool] | None = None
               ) -> dict[str, dict[str, CheckResult]]:
        """One inference frame; returns modality -> check -> result.

        ``live`` says, per modality, whether its sensors delivered data for this frame (a masked
        modality is expected to contribute nothing and is not called collapsed).
        """
        c = self.config
        stats = frame_statistics(detection_shares, self.modalities, scores, bev_shares, c.min_score)
        conf = [d for i, d in enumerate(detection_shares) if scores is None or scores[i] >= c.min_score]
        self.frames += 1
        out = {}
        for m in self.modalities:
            s = self._st[m]
            for kind, dq in (("det", s.det), ("bev", s.bev)):
                x = stats[f"{kind}.{m}"]
                if math.isfinite(x):
                    dq.append(x)
            s.confirmed.append(len(conf))
            s.contradicted.append(sum(1 for d in conf if float(d.get(m, 0.0)) < c.contradiction_share))
            is_live = True if live is None else bool(live.get(m, True))
            contribution = self._contribution(m, s, is_live)
            contribution.values.update(frame_det_share=fmt(stats[f"det.{m}"], 4),
                                       frame_bev_share=fmt(stats[f"bev.{m}"], 4))
            out[m] = {"contribution": contribution, "drift": self._drift(m, s, stats, is_live),
                      "contradiction": self._contradiction(m, s)}
        return out

    def drift_kh(self, key: str) -> tuple[float, float]:
        """The drift CUSUM's reference value and decision interval for statistic ``key``.

        ``cusum_k`` / ``cusum_h``, raised to what the baseline's held-out drives need (:func:`held_out_drift`):
        k to their largest steady offset, h to ``cusum_margin`` x their largest excursion. Used only when the
        baseline measured them with this block length."""
        c, b = self.config, self.baseline
        if b is None or key not in b.drift_k or b.block_frames != c.drift_block:
            return c.cusum_k, c.cusum_h
        return max(c.cusum_k, b.drift_k[key]), max(c.cusum_h, c.cusum_margin * b.drift_excursion[key])

    def _base(self, key: str) -> tuple[float, float] | None:
        b = self.baseline
        if b is None or key not in b.mean:
            return None
        return b.mean[key], b.std[key]

    def _normally_contributes(self, m: str, s: _ModState, kind: str, share: float) -> tuple[bool, str]:
        """Whether modality ``m`` normally contributes at least 2 x min_share, and the reference saying so."""
        c = self.config
        base = self._base(f"{kind}.{m}")
        if base is not None:
            return base[0] >= 2 * c.min_share, f" (baseline {base[0]:.0%})"
        if len(s.own) < c.collapse_warmup:
            s.own.append(share)
            return False, ""
        ref = float(np.mean(s.own))
        return ref >= 2 * c.min_share, f" (its first {len(s.own)} frames: {ref:.0%})"

    def _contribution(self, m: str, s: _ModState, live: bool) -> CheckResult:
        c = self.config
        kind, dq = ("det", s.det) if s.det else ("bev", s.bev)
        if not dq:
            return CheckResult(Level.OK, "no detections yet", {"value": "nan", "bound": f">= {c.min_share:g}"})
        share = float(np.mean(dq))
        base = self._base(f"{kind}.{m}")
        v = {"value": fmt(share), "bound": f">= {c.min_share:g}", "statistic": f"{kind} share, mean of {len(dq)} frames"}
        if base is not None:
            v.update(baseline_mean=fmt(base[0]), baseline_std=fmt(base[1]))
        if not live:
            return CheckResult(Level.OK, f"{m} masked (no data): contribution not judged", v)
        normally, ref = self._normally_contributes(m, s, kind, share)
        if share < c.min_share and normally and base is not None and c.collapse_z > 0:
            # the dip must also be unusual for this modality: collapse_z std of a len(dq)-frame mean below baseline
            z_window = (share - base[0]) / self.baseline.block_sd(f"{kind}.{m}", len(dq))
            v.update(z_window=fmt(z_window), z_bound=f"<= -{c.collapse_z:g}")
            normally = z_window <= -c.collapse_z
        if share < c.min_share and normally:
            return CheckResult(Level.ERROR, f"modality collapse: {m} delivers data but contributes {share:.1%} of the "
                               f"{'detections' if kind == 'det' else 'BEV'}{ref}", v)
        if base is not None:
            z = (share - base[0]) / base[1]
            v.update(z=fmt(z))
            if abs(z) > c.z_warn:
                return CheckResult(Level.WARN, f"{m} share {share:.0%} vs baseline {base[0]:.0%} +- {base[1]:.0%} "
                                   f"({z:+.1f} std)", {**v, "bound": f"|z| <= {c.z_warn:g}"})
        return CheckResult(Level.OK, f"{m} share {share:.0%}", v)

    def _drift(self, m: str, s: _ModState, stats: Mapping[str, float], live: bool) -> CheckResult:
        c = self.config
        if self.baseline is None:
            return CheckResult(Level.OK, "no baseline: drift not judged",
                               {"bound": f"S <= {c.cusum_h:g} (k={c.cusum_k:g})", "value": "nan"})
        v = {"bound": "; ".join(f"{kind}: S <= {s.cusum[kind].h:.3g} (k={s.cusum[kind].k:.3g})"
                                for kind in ("det", "bev")) + f", blocks of {c.drift_block} frames"}
        for kind in ("det", "bev"):
            key = f"{kind}.{m}"
            x = stats[key]
            if key not in self.baseline.mean or not live:
                continue
            if math.isfinite(x):
                s.block[kind].append(x)
            if len(s.block[kind]) >= c.drift_block:
                z = (float(np.mean(s.block[kind])) - self.baseline.mean[key]) / self.baseline.block_sd(key,
                                                                                                     c.drift_block)
                s.block[kind].clear()
                cs = s.cusum[kind]
                cs.update(z)
                if cs.lo > cs.h:  # the modality contributes less than it normally does
                    s.drift[kind] = ("down", cs.lo)
                elif c.drift_up and cs.hi > cs.h:
                    s.drift[kind] = ("up", cs.hi)
                else:
                    s.drift.pop(kind, None)
            v[f"cusum_{kind}"] = fmt(max(s.cusum[kind].hi, s.cusum[kind].lo))
        v["value"] = fmt(max((max(cs.hi, cs.lo) for cs in s.cusum.values()), default=0.0))
        if s.drift:
            kind, (direction, stat) = next(iter(s.drift.items()))
            mean = self.baseline.mean[f"{kind}.{m}"]
            return CheckResult(Level.WARN, f"{m} {'detection' if kind == 'det' else 'BEV'} share drifted {direction} "
                               f"from baseline {mean:.0%} (CUSUM {stat:.1f} > {s.cusum[kind].h:.3g})",
                               {**v, "value": fmt(stat)})
        return CheckResult(Level.OK, f"{m} share within baseline", v)

    def _contradiction(self, m: str, s: _ModState) -> CheckResult:
        c = self.config
        n = int(sum(s.confirmed))
        k = int(sum(s.contradicted))
        v = {"value": fmt(k / n if n else float("nan")), "bound": f"<= {c.contradiction_warn:g}",
             "confirmed": str(n), "contradicted": str(k), "share_bound": f"< {c.contradiction_share:g}"}
        if n < c.min_detections:
            return CheckResult(Level.OK, f"{n} confirmed detections in window: not judged", v)
        f = k / n
        if f > c.contradiction_error:
            return CheckResult(Level.ERROR, f"{m} argues against {f:.0%} of confirmed detections ({k} of {n})",
                               {**v, "bound": f"<= {c.contradiction_error:g}"})
        if f > c.contradiction_warn:
            return CheckResult(Level.WARN, f"{m} argues against {f:.0%} of confirmed detections ({k} of {n})", v)
        return CheckResult(Level.OK, f"{m} contradicts {f:.0%} of confirmed detections", v)
