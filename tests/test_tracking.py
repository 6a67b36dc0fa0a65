"""Persistent track ids: a box keeps its id (and so its RViz marker) while the object stays in view."""

import numpy as np

from fusion_monitor.frame import Detection
from fusion_monitor.tracking import ID_SPACE, Tracker

DT_NS = 100_000_000  # 10 Hz triggers


def det(label, x, y, score=0.8):
    return Detection(track_id=-1, label=label, score=score, center_m=(x, y, 0.8), size_m=(4.5, 1.9, 1.6), yaw_rad=0.0)


def drive(n_frames=30, ego_speed=12.0):
    """Ego drives +x at ego_speed: parked cars slide back in base_link; a pedestrian crosses; an oncoming car."""
    frames = []
    for k in range(n_frames):
        t = k * 0.1
        dx = -ego_speed * t
        frames.append([
            det("car", 30 + dx, 4.0), det("car", 37 + dx, 4.2), det("car", 44 + dx, 4.0),  # parked, 7 m apart
            det("pedestrian", 15 + dx, -6 + 1.4 * t, 0.6),  # crossing at 1.4 m/s
            det("car", 60 + dx - 10 * t, -2.0, 0.9),  # oncoming at 10 m/s
        ])
    return frames


def run(tracker, frames, t0_ns=0):
    return [tracker.update(f, t0_ns + k * DT_NS) for k, f in enumerate(frames)]


def test_ids_persist_while_ego_and_objects_move():
    out = run(Tracker(), drive())
    first = [d.track_id for d in out[0]]
    assert len(set(first)) == 5 and all(i >= 0 for i in first)
    for frame in out[1:]:
        assert [d.track_id for d in frame] == first  # same object, same id, every frame


def test_order_and_content_of_detections_unchanged():
    frames = drive(3)
    out = run(Tracker(), frames)
    for a, b in zip(frames, out):
        assert [(d.label, d.center_m, d.score) for d in a] == [(d.label, d.center_m, d.score) for d in b]


def test_a_missed_frame_keeps_the_id_a_long_gap_does_not():
    frames = drive(12)
    ped = [f[3] for f in frames]
    gappy = [[p] if k not in (4,) else [] for k, p in enumerate(ped)]
    ids = [f[0].track_id for f in run(Tracker(max_missed=2), gappy) if f]
    assert len(set(ids)) == 1
    long_gap = [[p] if not 3 <= k <= 7 else [] for k, p in enumerate(ped)]
    ids = [f[0].track_id for f in run(Tracker(max_missed=2), long_gap) if f]
    assert len(set(ids)) == 2 and ids[0] != ids[-1]


def test_classes_never_share_a_track_even_when_close():
    a = [[det("car", 10.0, 0.0), det("cyclist", 10.5, 0.3, 0.7)] for _ in range(5)]
    out = run(Tracker(), a)
    car_ids = {f[0].track_id for f in out}
    cyc_ids = {f[1].track_id for f in out}
    assert len(car_ids) == 1 and len(cyc_ids) == 1 and car_ids != cyc_ids


def test_new_objects_get_new_ids_and_ids_are_not_reused():
    tr = Tracker()
    seen = set()
    for k in range(20):  # a new far-away car every frame, each visible once
        (d,) = tr.update([det("car", 100.0 * k, 0.0)], k * DT_NS)
        assert d.track_id not in seen
        seen.add(d.track_id)


def test_time_going_back_starts_over():
    tr = Tracker()
    before = {d.track_id for f in run(tr, drive(5), t0_ns=10 * DT_NS) for d in f}
    again = tr.update(drive(1)[0], 0)  # a looped bag: stamps jump back
    assert len({d.track_id for d in again}) == 5 and not before & {d.track_id for d in again}
    later = tr.update(drive(2)[1], DT_NS)
    assert [d.track_id for d in later] == [d.track_id for d in again]


def test_ids_fit_float32_share_rows():
    tr = Tracker()
    tr._next_id = ID_SPACE - 1
    ids = [tr.update([det("car", 100.0 * k, 0.0)], k * DT_NS)[0].track_id for k in range(3)]
    assert ids == [ID_SPACE - 1, 0, 1]
    assert all(float(np.float32(i)) == i for i in ids)
