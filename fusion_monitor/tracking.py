"""Track ids that persist from frame to frame, so markers and share rows keep their id while an object
stays in view (RViz then updates a box instead of deleting and re-adding it).

A greedy nearest-centre tracker in the output frame, in the spirit of CenterPoint's tracking step:
detections are matched in score order to the closest predicted track of the same class within a
class-specific gate. The output frame moves with the ego vehicle and no odometry is assumed, so a
track predicts with its own displacement per second in that frame (which contains the ego motion);
a new track starts with the median displacement rate of the confirmed tracks (mostly the ego motion
seen on a static world). A track not matched for ``max_missed`` frames is dropped; ids are never reused
within 2**24 new tracks (they stay exact in the float32 share rows).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from fusion_monitor.frame import Detection

# centre-distance gates (m) after prediction; nuScenes-like classes, anything else uses DEFAULT_GATE_M
GATE_M = {"car": 2.5, "truck": 3.5, "bus": 3.5, "trailer": 3.5, "construction_vehicle": 3.0,
          "pedestrian": 1.2, "cyclist": 1.6, "bicycle": 1.6, "motorcycle": 2.0}
DEFAULT_GATE_M = 2.0
SHIFT_RADIUS_M = 4.0  # the largest frame-to-frame ego displacement the common shift looks for (35 m/s at 9 Hz)
ID_SPACE = 1 << 24


@dataclass
class _Track:
    id: int
    label: str
    xy: np.ndarray  # last matched centre (m)
    rate: np.ndarray  # displacement per second in the output frame
    stamp_ns: int
    hits: int = 1
    missed: int = 0


class Tracker:
    """Assigns persistent ``track_id`` to each frame's detections (see the module docstring)."""

    def __init__(self, max_missed: int = 2, gates_m: dict[str, float] | None = None):
        self.max_missed = int(max_missed)
        self.gates_m = dict(GATE_M if gates_m is None else gates_m)
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._last_ns: int | None = None

    def reset(self) -> None:
        """Forget every track (time jumped back, e.g. a looped bag)."""
        self._tracks, self._last_ns = [], None

    def update(self, detections: list[Detection], stamp_ns: int) -> list[Detection]:
        """The same detections (same order) with persistent track ids."""
        stamp_ns = int(stamp_ns)
        if self._last_ns is not None and stamp_ns <= self._last_ns:
            self.reset()
        self._last_ns = stamp_ns
        if not detections:
            self._age(set(range(len(self._tracks))))
            return []
        xy = np.array([d.center_m[:2] for d in detections], dtype=np.float64)
        labels = [d.label for d in detections]
        same = np.array([[t.label == lab for t in self._tracks] for lab in labels], dtype=bool).reshape(len(xy), -1)
        track_xy = np.array([t.xy for t in self._tracks], dtype=np.float64).reshape(-1, 2)
        shift = self._common_shift(xy, track_xy, same)
        predicted = np.array([t.xy + (t.rate * (stamp_ns - t.stamp_ns) / 1e9 if t.hits >= 2 else shift)
                              for t in self._tracks], dtype=np.float64).reshape(-1, 2)
        dist = np.where(same, np.linalg.norm(xy[:, None, :] - predicted[None, :, :], axis=2), np.inf)
        free = set(range(len(self._tracks)))
        ids: list[int] = [-1] * len(detections)
        for i in sorted(range(len(detections)), key=lambda k: -detections[k].score):
            j = int(np.argmin(dist[i])) if dist.shape[1] else -1
            if j < 0 or dist[i, j] > self.gates_m.get(labels[i], DEFAULT_GATE_M):
                ids[i] = self._new_track(labels[i], xy[i], stamp_ns)
                continue
            dist[:, j] = np.inf  # one detection per track
            free.discard(j)
            self._match(self._tracks[j], xy[i], stamp_ns)
            ids[i] = self._tracks[j].id
        self._age(free)
        return [replace(d, track_id=ids[i]) for i, d in enumerate(detections)]

    # ---------------------------------------------------------------------------------------
    def _age(self, unmatched: set[int]) -> None:
        for j in unmatched:
            self._tracks[j].missed += 1
        self._tracks = [t for t in self._tracks if t.missed <= self.max_missed]

    def _common_shift(self, xy: np.ndarray, track_xy: np.ndarray, same: np.ndarray) -> np.ndarray:
        """Median displacement from each detection to its nearest same-class live track within SHIFT_RADIUS_M."""
        live = np.array([t.missed == 0 for t in self._tracks], dtype=bool)
        if not live.any():
            return np.zeros(2)
        moves = xy[:, None, :] - track_xy[None, :, :]  # (N, T, 2)
        d = np.where(same & live[None, :], np.linalg.norm(moves, axis=2), np.inf)
        j = np.argmin(d, axis=1)
        ok = d[np.arange(len(xy)), j] <= SHIFT_RADIUS_M
        return np.median(moves[np.arange(len(xy)), j][ok], axis=0) if ok.any() else np.zeros(2)

    def _new_track(self, label: str, xy: np.ndarray, stamp_ns: int) -> int:
        tid = self._next_id
        self._next_id = (self._next_id + 1) % ID_SPACE
        self._tracks.append(_Track(tid, label, xy, np.zeros(2), stamp_ns))
        return tid

    @staticmethod
    def _match(t: _Track, xy: np.ndarray, stamp_ns: int) -> None:
        dt = (stamp_ns - t.stamp_ns) / 1e9
        if dt > 0:
            measured = (xy - t.xy) / dt
            t.rate = measured if t.hits == 1 else 0.5 * t.rate + 0.5 * measured
        t.xy, t.stamp_ns = xy, stamp_ns
        t.hits += 1
        t.missed = 0
