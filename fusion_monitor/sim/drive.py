"""Synthetic drives on the nuScenes rig: time-ordered sensor messages (numpy) with ground truth."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass, field

import numpy as np

from fusion_monitor.sensors.jpeg import encode_jpeg
from fusion_monitor.sensors.preprocess import scale_intrinsics
from fusion_monitor.sensors.rig import Rig, load_rig
from fusion_monitor.sim.raycast import scene_at
from fusion_monitor.sim.sensors import RADAR_DTYPE, render_camera, render_lidar, render_radar
from fusion_monitor.sim.world import CLASSES, World, make_world

#: Sim time zero (2023-11-14T22:13:20Z) in nanoseconds; every stamp is EPOCH_NS + t.
EPOCH_NS = 1_700_000_000_000_000_000
GT_RANGE_M = 60.0


@dataclass(frozen=True)
class GroundTruth:
    """Boxes in base_link at one instant.

    cls (N,) class ids into CLASSES; boxes (N, 7) [x, y, z, l, w, h, yaw] (z = box centre, metres, rad);
    velocity (N, 2) absolute velocity in base_link axes (m/s); instance (N,) object ids;
    num_lidar_pts / num_radar_pts (N,) filled when the frame was rendered, else -1.
    """

    cls: np.ndarray
    boxes: np.ndarray
    velocity: np.ndarray
    instance: np.ndarray
    num_lidar_pts: np.ndarray
    num_radar_pts: np.ndarray

    def __len__(self) -> int:
        return len(self.cls)


def ground_truth(world: World, t_s: float, range_m: float = GT_RANGE_M) -> GroundTruth:
    """Objects within ``range_m`` (square) of the ego at ``t_s``, in base_link."""
    T = world.ego_pose(t_s)
    Tinv = np.linalg.inv(T)
    ob = world.object_boxes(t_s)
    p = np.c_[ob[:, :3], np.ones(len(ob))] @ Tinv.T
    keep = (np.abs(p[:, 0]) < range_m) & (np.abs(p[:, 1]) < range_m)
    idx = np.flatnonzero(keep)
    boxes = ob[idx].copy()
    boxes[:, :3] = p[idx, :3]
    ego_yaw = np.arctan2(T[1, 0], T[0, 0])
    boxes[:, 6] = np.angle(np.exp(1j * (boxes[:, 6] - ego_yaw)))
    vel = world.object_velocity(t_s)[idx] @ T[:2, :2]  # rotate world -> base axes
    n = len(idx)
    return GroundTruth(world.obj_cls[idx], boxes, vel, idx, np.full(n, -1), np.full(n, -1))


def _with_counts(gt: GroundTruth, lidar_obj: np.ndarray, radar_obj: np.ndarray, n_obj: int) -> GroundTruth:
    lc = np.bincount(lidar_obj[lidar_obj >= 0], minlength=n_obj)
    rc = np.bincount(radar_obj[radar_obj >= 0], minlength=n_obj)
    return GroundTruth(gt.cls, gt.boxes, gt.velocity, gt.instance, lc[gt.instance], rc[gt.instance])


@dataclass(frozen=True)
class SensorMessage:
    """One sensor reading. ``data``: camera (H, W, 3) uint8 RGB (None when only the ``jpeg`` was kept); LiDAR
    (N, 5) float32 x y z intensity ring in the LiDAR frame; radar structured array (RADAR_DTYPE) in the radar
    frame."""

    stamp_ns: int
    sensor: str
    modality: str
    data: np.ndarray | None
    jpeg: bytes | None = None


@dataclass
class Frame:
    """All sensors rendered at one instant (training / evaluation sample)."""

    t_s: float
    images: np.ndarray  # (6, H, W, 3) uint8 in rig camera order
    K: np.ndarray  # (6, 3, 3) intrinsics of these images
    lidar: np.ndarray  # (N, 5) LiDAR frame
    radars: dict[str, np.ndarray]  # radar name -> RADAR_DTYPE points in the radar frame
    gt: GroundTruth
    rig: Rig = field(repr=False)


def render_frame(world: World, t_s: float, rig: Rig | None = None, image_hw: tuple[int, int] = (96, 176),
                 seed: int = 0) -> Frame:
    """Render every sensor of the rig at the same instant ``t_s`` (cameras at ``image_hw``)."""
    rig = rig or load_rig()
    rng = np.random.default_rng([world.seed, seed, int(round(t_s * 1000))])
    scene = scene_at(world, t_s)
    T_wb = world.ego_pose(t_s)
    cams = rig.of("camera")
    H, W = image_hw
    imgs = np.empty((len(cams), H, W, 3), np.uint8)
    Ks = np.empty((len(cams), 3, 3))
    for i, c in enumerate(cams):
        K = scale_intrinsics(c.K, W / c.width, H / c.height)
        Ks[i] = K
        imgs[i] = render_camera(world, scene, T_wb @ c.T_base_sensor, K, W, H, rng)
    lidar_spec = rig.of("lidar")[0]
    pts, lobj = render_lidar(world, scene, T_wb @ lidar_spec.T_base_sensor, rng)
    radars, robj = {}, []
    for r in rig.of("radar"):
        rp, ro = render_radar(world, scene, T_wb @ r.T_base_sensor, world.ego_velocity(t_s), rng,
                              obj_vel=world.object_velocity(t_s))
        radars[r.name] = rp
        robj.append(ro)
    gt = _with_counts(ground_truth(world, t_s), lobj, np.concatenate(robj) if robj else np.zeros(0, int),
                      len(world.obj_cls))
    return Frame(t_s, imgs, Ks, pts, radars, gt, rig)


class Drive:
    """A deterministic synthetic drive: the world, the rig and a message generator.

    Parameters
    ----------
    seed : int
    duration_s : float
    rig : Rig, optional (default: the shipped nuScenes rig)
    render_hw : (H, W) camera render resolution; images are upscaled to the rig's size when
        ``upscale`` is true (nuScenes 1600x900), else delivered at render size.
    avoid_collisions : vehicles, cyclists and the ego brake for what is ahead of them (see make_world; default on).
    """

    def __init__(self, seed: int, duration_s: float = 20.0, rig: Rig | None = None,
                 render_hw: tuple[int, int] = (144, 256), upscale: bool = True, avoid_collisions: bool = True):
        if duration_s <= 0:
            raise ValueError(f"duration_s must be > 0, got {duration_s}")
        self.seed = int(seed)
        self.duration_s = float(duration_s)
        self.rig = rig or load_rig()
        self.world = make_world(seed, duration_s, avoid_collisions=avoid_collisions)
        self.render_hw = render_hw
        self.upscale = upscale
        self.classes = CLASSES

    def schedule(self) -> list[tuple[int, str]]:
        """Time-ordered (stamp_ns, sensor name) of every message in the drive."""
        rng = np.random.default_rng([self.seed, 7])
        events = []
        for s in self.rig.sensors.values():
            period_ns = int(round(1e9 / s.rate_hz))
            if s.modality == "camera":
                phase = int(rng.integers(0, period_ns // 4))
            elif s.modality == "radar":
                phase = int(rng.integers(0, period_ns))
            else:
                phase = 0
            t = phase
            while t < self.duration_s * 1e9:
                events.append((t, s.name))
                t += period_ns
        events.sort()
        return [(EPOCH_NS + t, n) for t, n in events]

    def camera_intrinsics(self, name: str) -> tuple[np.ndarray, int, int]:
        """K, width, height of the delivered images of camera ``name``."""
        s = self.rig.sensors[name]
        if self.upscale:
            return s.K, s.width, s.height
        H, W = self.render_hw
        return scale_intrinsics(s.K, W / s.width, H / s.height), W, H

    def ground_truth(self, stamp_ns: int) -> GroundTruth:
        """Ground-truth boxes (base_link) at a stamp."""
        return ground_truth(self.world, (stamp_ns - EPOCH_NS) * 1e-9)

    def ego_pose(self, stamp_ns: int) -> np.ndarray:
        """4x4 base_link -> world at a stamp."""
        return self.world.ego_pose((stamp_ns - EPOCH_NS) * 1e-9)

    def render(self, stamp_ns: int, name: str, jpeg_quality: int | None = None, keep_image: bool = True
               ) -> SensorMessage:
        """Render one message (deterministic: depends only on the seed, stamp and sensor).

        ``jpeg_quality`` also JPEG-encodes a camera image; ``keep_image=False`` then leaves the decoded image out
        (``data`` None), which is all a bag writer needs.
        """
        H, W = self.render_hw
        t = (stamp_ns - EPOCH_NS) * 1e-9
        scene = scene_at(self.world, t)
        s = self.rig.sensors[name]
        rng = np.random.default_rng([self.seed, stamp_ns % (2**62), sum(map(ord, name))])
        T_wb = self.world.ego_pose(t)
        if s.modality == "camera":
            K = scale_intrinsics(s.K, W / s.width, H / s.height)
            img = render_camera(self.world, scene, T_wb @ s.T_base_sensor, K, W, H, rng)
            if self.upscale:
                img = upscale_image(img, s.width, s.height)
            jpeg = None if jpeg_quality is None else encode_jpeg(img, jpeg_quality)
            return SensorMessage(stamp_ns, name, "camera", img if keep_image or jpeg is None else None, jpeg)
        if s.modality == "lidar":
            pts, _ = render_lidar(self.world, scene, T_wb @ s.T_base_sensor, rng)
            return SensorMessage(stamp_ns, name, "lidar", pts)
        pts, _ = render_radar(self.world, scene, T_wb @ s.T_base_sensor, self.world.ego_velocity(t), rng,
                              first_id=int(stamp_ns // 1_000_000) % 30000, obj_vel=self.world.object_velocity(t))
        return SensorMessage(stamp_ns, name, "radar", pts)

    def messages(self, workers: int = 1, jpeg_quality: int | None = None, chunk_s: float = 0.5,
                 keep_images: bool | Collection[str] = True) -> Iterator[SensorMessage]:
        """Render and yield every message in stamp order.

        Parameters
        ----------
        workers : processes rendering in parallel (the output does not depend on it).
        jpeg_quality : also JPEG-encode camera images (``SensorMessage.jpeg``) in the workers.
        chunk_s : sim-time span rendered per work item.
        keep_images : with ``jpeg_quality``, which cameras also deliver the decoded image (True: all, False: none,
            or a collection of camera names); images left out are never copied between processes.
        """
        events = self.schedule()
        if not events:
            return
        keep = (lambda name: True) if keep_images is True else (
            (lambda name: False) if keep_images is False else frozenset(keep_images).__contains__)
        chunks: list[list[tuple[int, str, bool]]] = []
        start = events[0][0]
        for stamp, name in events:
            if not chunks or stamp - start >= chunk_s * 1e9:
                chunks.append([])
                start = stamp
            chunks[-1].append((stamp, name, keep(name)))
        if workers <= 1:
            for ch in chunks:
                yield from _render_events(self, ch, jpeg_quality)
            return
        import multiprocessing as mp

        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
        with ctx.Pool(workers, initializer=_init_worker, initargs=(self,)) as pool:
            for batch in pool.imap(_render_chunk, [(ch, jpeg_quality) for ch in chunks]):
                yield from batch


#: Upscaling a camera image (to an even height) by at least this factor is bilinear to the full width and half
#: the height, each row then doubled (a third of the cost of bilinear at full size; the render holds no finer detail).
_ROW_DOUBLING_FACTOR = 4.0


def upscale_image(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """(h, w, 3) uint8 -> (height, width, 3) uint8, bilinear (rows doubled for large factors, see
    _ROW_DOUBLING_FACTOR)."""
    from PIL import Image

    pil = Image.fromarray(img)
    if height % 2 or height < _ROW_DOUBLING_FACTOR * img.shape[0]:
        return np.asarray(pil.resize((width, height), Image.BILINEAR))
    half = np.asarray(pil.resize((width, height // 2), Image.BILINEAR))
    out = np.empty((height // 2, 2, width, 3), np.uint8)
    out[:, 0] = half
    out[:, 1] = half
    return out.reshape(height, width, 3)


_WORKER_DRIVE: Drive | None = None


def _init_worker(drive: Drive) -> None:
    global _WORKER_DRIVE
    _WORKER_DRIVE = drive


def _render_events(drive: Drive, events: list[tuple[int, str, bool]], jpeg_quality: int | None
                   ) -> list[SensorMessage]:
    return [drive.render(stamp, name, jpeg_quality, keep) for stamp, name, keep in events]


def _render_chunk(arg) -> list[SensorMessage]:
    events, jpeg_quality = arg
    return _render_events(_WORKER_DRIVE, events, jpeg_quality)


def simulate_drive(seed: int, duration_s: float = 20.0, rig: Rig | None = None,
                   render_hw: tuple[int, int] = (144, 256), upscale: bool = True, avoid_collisions: bool = True
                   ) -> Drive:
    """A deterministic synthetic drive; iterate ``drive.messages()`` for time-ordered SensorMessages.

    Same seed -> identical messages. Stamps are ``EPOCH_NS`` + sim time in ns.
    """
    return Drive(seed, duration_s, rig, render_hw, upscale, avoid_collisions)


__all__ = ["EPOCH_NS", "RADAR_DTYPE", "Drive", "Frame", "GroundTruth", "SensorMessage", "ground_truth",
           "render_frame", "scale_intrinsics", "simulate_drive"]
