"""Quasi-static drives built from the real nuScenes samples (../shared/data/real), written with the sim's bag writer.

The samples hold one full keyframe (6 cameras + LIDAR_TOP), 19 CAM_FRONT keyframes (2 Hz) and radar
scans from other scenes. A sequence plays them at the nuScenes rates; every message gets a small
deterministic jitter (image crop shift of up to 4 px, LiDAR yaw
+-0.2 deg and 1 cm noise with 3 % point dropout, radar 5 cm noise and 10 % target dropout) so that a
repeated sample is not a frozen sensor. The raw-signal statistics are those of real data; the scene is
static (a car waiting at a light), so motion-dependent checks see a standstill.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from fusion_monitor.sensors.jpeg import encode_jpeg
from fusion_monitor.sensors.rig import Rig, load_rig

EPOCH_NS = 1_532_402_927_000_000_000  # scene-0061 time base
IMAGE_WH = (400, 225)  # delivered image size (1/4 of 1600x900)
JITTER_PX = 4


class RealDataMissing(FileNotFoundError):
    """The real samples are not where FUSION_MONITOR_REAL_DATA (or the given root) says."""


class RealSequence:
    """A drive-like object (``rig``, ``schedule()``, ``messages()``, ``camera_intrinsics()``) for
    :func:`fusion_monitor.sim.bag.write_bag`.

    Parameters
    ----------
    root : folder holding ``nuscenes_mini_scene-0061_sample0`` etc.
    duration_s : seconds of drive
    seed : jitter seed
    step_keyframes : CAM_FRONT steps through its 19 keyframes at 2 Hz (a 0.5 s scene jump every 6 frames,
        which the per-cell occlusion references were not made for); off: every camera shows its keyframe
    """

    def __init__(self, root: str | Path, duration_s: float, seed: int = 0, rig: Rig | None = None,
                 step_keyframes: bool = False):
        from PIL import Image

        self.root = Path(root)
        sample = self.root / "nuscenes_mini_scene-0061_sample0"
        meta_file = sample / "calib_and_gt.json"
        if not meta_file.is_file():
            raise RealDataMissing(f"real samples missing: {meta_file} not found")
        if duration_s <= 0:
            raise ValueError(f"duration_s must be > 0, got {duration_s}")
        self.duration_s = float(duration_s)
        self.seed = int(seed)
        self.rig = rig or load_rig()
        meta = json.loads(meta_file.read_text())
        big = (IMAGE_WH[0] + JITTER_PX, IMAGE_WH[1] + JITTER_PX)

        def load(p: Path) -> np.ndarray:
            return np.asarray(Image.open(p).convert("RGB").resize(big, Image.BILINEAR))

        self.images: dict[str, list[np.ndarray]] = {n: [load(sample / c["file"])] for n, c in meta["cameras"].items()}
        keyframes = sorted((self.root / "nuscenes_mini_scene-0061_CAM_FRONT_keyframes").glob("*.jpg"))
        if keyframes and step_keyframes:
            self.images["CAM_FRONT"] = [load(p) for p in keyframes]
        self.lidar = np.fromfile(sample / meta["lidar"]["file"], np.float32).reshape(-1, 5)
        from fusion_monitor.sensors.readers import read_nuscenes_radar_pcd

        scans = {}
        for p in sorted((self.root / "nuscenes_radar_pcd").glob("*.pcd")):
            name = next((r.name for r in self.rig.of("radar") if f"__{r.name}__" in p.name), None)
            scans.setdefault(name or p.name, read_nuscenes_radar_pcd(p).points)
        if not scans:
            raise RealDataMissing(f"no radar .pcd files under {self.root / 'nuscenes_radar_pcd'}")
        pool = list(scans.values())
        self.radar = {r.name: scans.get(r.name, pool[i % len(pool)]) for i, r in enumerate(self.rig.of("radar"))}

    def schedule(self) -> list[tuple[int, str]]:
        """Time-ordered (stamp_ns, sensor) at the rig's rates (cameras staggered like the real rig)."""
        events = []
        for i, s in enumerate(self.rig.sensors.values()):
            period = int(round(1e9 / s.rate_hz))
            t = (i * 7_000_000) % period
            while t < self.duration_s * 1e9:
                events.append((EPOCH_NS + t, s.name))
                t += period
        return sorted(events)

    def camera_intrinsics(self, name: str) -> tuple[np.ndarray, int, int]:
        s = self.rig.sensors[name]
        K = np.asarray(s.K, float).copy()
        K[0] *= IMAGE_WH[0] / s.width
        K[1] *= IMAGE_WH[1] / s.height
        return K, IMAGE_WH[0], IMAGE_WH[1]

    def _rng(self, stamp_ns: int, name: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, stamp_ns % (2 ** 62), sum(map(ord, name))])

    def render(self, stamp_ns: int, name: str, jpeg_quality: int | None = None):

        from fusion_monitor.sim.drive import SensorMessage

        s = self.rig.sensors[name]
        rng = self._rng(stamp_ns, name)
        t_s = (stamp_ns - EPOCH_NS) * 1e-9
        if s.modality == "camera":
            frames = self.images[name]
            base = frames[int(t_s * 2.0) % len(frames)]
            k = int(round(t_s * s.rate_hz))  # consecutive frames never share a crop (no false "frozen")
            dx, dy = k % (JITTER_PX + 1), (k // (JITTER_PX + 1)) % (JITTER_PX + 1)
            img = np.ascontiguousarray(base[dy:dy + IMAGE_WH[1], dx:dx + IMAGE_WH[0]])
            jpeg = None if jpeg_quality is None else encode_jpeg(img, jpeg_quality)
            return SensorMessage(stamp_ns, name, "camera", img, jpeg)
        if s.modality == "lidar":
            pts = self.lidar[rng.random(len(self.lidar)) >= 0.03].copy()
            a = np.radians(rng.uniform(-0.2, 0.2))
            c, si = np.cos(a), np.sin(a)
            x, y = pts[:, 0].copy(), pts[:, 1].copy()
            pts[:, 0], pts[:, 1] = c * x - si * y, si * x + c * y
            pts[:, :3] += rng.normal(0, 0.01, (len(pts), 3)).astype(np.float32)
            return SensorMessage(stamp_ns, name, "lidar", pts)
        scan = self.radar[name]
        out = scan[rng.random(len(scan)) >= 0.1].copy()
        out["x"] += rng.normal(0, 0.05, len(out)).astype(np.float32)
        out["y"] += rng.normal(0, 0.05, len(out)).astype(np.float32)
        return SensorMessage(stamp_ns, name, "radar", out)

    def messages(self, workers: int = 1, jpeg_quality: int | None = None) -> Iterator:
        """Every message in stamp order (``workers`` is accepted for the bag writer and ignored)."""
        for stamp, name in self.schedule():
            yield self.render(stamp, name, jpeg_quality)
