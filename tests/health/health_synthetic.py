"""Synthetic sensor data for the health tests (no dataset needed)."""

from __future__ import annotations

import numpy as np

from fusion_monitor.sensors.types import NUSCENES_RADAR_DTYPE


def synthetic_radar(rng: np.random.Generator, n: int = 60, ego_speed_mps: float = 8.0) -> np.ndarray:
    """A plausible ARS408 scan of a static world seen from a moving car (radar frame, x forward)."""
    a = np.zeros(n, dtype=NUSCENES_RADAR_DTYPE)
    r = rng.uniform(3.0, 80.0, n)
    phi = np.radians(rng.uniform(-45, 45, n))
    a["x"], a["y"] = r * np.cos(phi), r * np.sin(phi)
    vr_comp = rng.normal(0.0, 0.05, n)
    a["vx_comp"], a["vy_comp"] = vr_comp * np.cos(phi), vr_comp * np.sin(phi)
    raw = vr_comp - ego_speed_mps * np.cos(phi)
    a["vx"], a["vy"] = raw * np.cos(phi), raw * np.sin(phi)
    a["rcs"] = rng.uniform(-5.0, 20.0, n)
    a["dyn_prop"] = 1
    moving = rng.random(n) < 0.1
    a["dyn_prop"][moving] = 0
    a["vx_comp"][moving] += 5.0
    a["id"] = np.arange(n)
    return a


def synthetic_sweep(rng: np.random.Generator, n_az: int = 1000) -> np.ndarray:
    """A 32-ring sweep in the nuScenes LIDAR_TOP frame (x right, y forward): flat ground plus a ring of walls."""
    el = np.radians(np.linspace(-30.67, 10.67, 32))
    az = np.radians(np.linspace(-180, 180, n_az, endpoint=False))
    E, A = np.meshgrid(el, az, indexing="ij")
    h = 1.84
    wall = 25.0 + 10.0 * np.sin(3 * A)
    r_ground = np.where(E < 0, h / np.maximum(np.sin(-E), 1e-6), np.inf)
    r_wall = wall / np.cos(E)
    r = np.minimum(r_ground, r_wall) + rng.normal(0, 0.02, E.shape)
    x = r * np.cos(E) * np.sin(A)  # azimuth measured from +y (forward) toward +x
    y = r * np.cos(E) * np.cos(A)
    z = r * np.sin(E)
    inten = rng.uniform(5, 40, E.shape)
    ring = np.broadcast_to(np.arange(32)[:, None], E.shape)
    return np.stack([x, y, z, inten, ring], axis=-1).reshape(-1, 5).astype(np.float32)


def textured_image(rng: np.random.Generator, h: int = 450, w: int = 800) -> np.ndarray:
    """A synthetic daylight image with texture at several scales (uint8 RGB)."""
    base = np.kron(rng.random((h // 25, w // 25)), np.ones((25, 25)))
    fine = rng.random((h, w)) * 0.3
    y = np.clip(0.25 + 0.5 * base + fine - 0.15, 0, 1)
    return (np.repeat(y[..., None], 3, axis=2) * 255).astype(np.uint8)


def remeasured(points: np.ndarray, rng: np.random.Generator, sigma_m: float = 0.005) -> np.ndarray:
    """The same scene measured again: ``sigma_m`` of range noise on x y z (a real LiDAR or radar never
    delivers two bit-identical sweeps or scans; re-sending one is the frozen fault)."""
    out = points.copy()
    if out.dtype.names:
        for f in ("x", "y", "z"):
            if f in out.dtype.names:
                out[f] += rng.normal(0.0, sigma_m, out.shape).astype(out[f].dtype)
    else:
        out[:, :3] += rng.normal(0.0, sigma_m, (len(out), 3)).astype(out.dtype)
    return out
