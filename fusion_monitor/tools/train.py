"""`fusion-monitor train`: train the reference detector on pre-generated synthetic frames (CPU, seeded).

Reproduce the shipped weights (see models/README.md; ~15 CPU-min of generation, ~1 h of one core training):

    python -m fusion_monitor.model.dataset /tmp/fm_data/train 1 192
    python -m fusion_monitor.model.dataset /tmp/fm_data/train 261 191
    python -m fusion_monitor.model.dataset /tmp/fm_data/eval 900000 30     # 180 held-out frames
    fusion-monitor train --data /tmp/fm_data/train --out /tmp/fm_run --steps 2400 --seed 0
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from fusion_monitor.model.dataset import arrays_to_inputs, load_frame
from fusion_monitor.model.targets import build_targets, detection_loss
from fusion_monitor.sensors.preprocess import InputSpec
from fusion_monitor.sensors.rig import load_rig
from fusion_monitor.sim.world import CLASSES

# Proper non-empty subsets of (camera, lidar, radar) used by modality dropout.
SUBSETS = ((1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1))


def keep_gt(d: dict) -> np.ndarray:
    """Ground truth used for training/evaluation: at least one LiDAR or radar point (nuScenes convention)."""
    return (d["gt_lidar_pts"] + d["gt_radar_pts"]) >= 1


class FrameDataset(torch.utils.data.Dataset):
    """Stored frames -> (inputs, targets) tensors, with seeded modality dropout and sensor-failure augmentation."""

    def __init__(self, files: list[Path], spec: InputSpec, seed: int, p_full: float = 0.5, augment: bool = True):
        self.files = files
        self.spec = spec
        self.seed = seed
        self.p_full = p_full
        self.augment = augment
        self.rig = load_rig()
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.seed, self.epoch, i])
        d = load_frame(self.files[i])
        keep = None
        if self.augment and rng.random() < 0.15:  # LiDAR limited field of view (BEVFusion-style failure)
            p = d["lidar"].astype(np.float32)
            az = np.arctan2(p[:, 1], p[:, 0])
            centre = rng.uniform(-np.pi, np.pi)
            keep = np.abs(np.angle(np.exp(1j * (az - centre)))) < rng.uniform(np.pi / 3, np.pi / 2)
        x = arrays_to_inputs(d, self.spec, self.rig, lidar_keep=keep)
        if self.augment and rng.random() < 0.1:  # one camera blacked out
            x["camera"][rng.integers(0, 6)] = 0.0
        present = np.ones(3, np.float32)
        if self.augment and rng.random() >= self.p_full:
            present = np.array(SUBSETS[rng.integers(0, len(SUBSETS))], np.float32)
        for k, m in enumerate(("camera", "lidar", "radar")):
            if present[k] == 0:
                x[m][:] = 0
        g = keep_gt(d)
        t = build_targets(d["gt_cls"][g], d["gt_boxes"][g], d["gt_vel"][g], self.spec, len(CLASSES))
        inputs = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in x.items()}
        inputs["present"] = torch.from_numpy(present)
        return inputs, {k: torch.from_numpy(v) for k, v in t.items()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="folder of pre-generated frames (python -m fusion_monitor.model.dataset)")
    parser.add_argument("--out", required=True, help="output folder (weights.pt, train_log.jsonl)")
    parser.add_argument("--steps", type=int, default=3000, help="optimizer steps (default 3000)")
    parser.add_argument("--batch", type=int, default=4, help="frames per step (default 4)")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate of the one-cycle schedule")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    parser.add_argument("--workers", type=int, default=1, help="data loader processes")
    parser.add_argument("--resume", default=None, help="checkpoint to start from")
    parser.add_argument("--follow-data", action="store_true",
                        help="pick up frames still being generated at every epoch (faster start; the result then "
                             "depends on generation timing and is not bit-reproducible)")


def run(args: argparse.Namespace) -> int:
    from fusion_monitor.model.build import build_model

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    files = sorted(Path(args.data).glob("w*_f*.npz"))
    if not files:
        raise SystemExit(f"fusion-monitor train: no frames in {args.data}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = InputSpec()
    model = build_model(spec=spec)
    if args.resume:
        model.load_state_dict(torch.load(args.resume, map_location="cpu"))
    ds = FrameDataset(files, spec, args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch, shuffle=True, num_workers=args.workers,
                                         generator=gen, drop_last=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.08)
    log = (out / "train_log.jsonl").open("a")
    step, t0 = 0, time.time()
    model.train()
    while step < args.steps:
        # --follow-data: frames may still be being generated while training starts; pick up new files every epoch.
        new_files = sorted(Path(args.data).glob("w*_f*.npz")) if args.follow_data else ds.files
        if len(new_files) != len(ds.files):
            ds.files = new_files
            loader = torch.utils.data.DataLoader(ds, batch_size=args.batch, shuffle=True, num_workers=args.workers,
                                                 generator=gen, drop_last=True)
        for inputs, tgt in loader:
            out_t = model(**inputs)
            loss, parts = detection_loss(out_t, tgt)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 35.0)
            opt.step()
            sched.step()
            step += 1
            if step % 20 == 0 or step == 1:
                rec = {"step": step, "loss": float(loss.detach()), **parts, "lr": sched.get_last_lr()[0],
                       "elapsed_s": round(time.time() - t0, 1)}
                log.write(json.dumps(rec) + "\n")
                log.flush()
                print(json.dumps(rec), flush=True)
            if step % 250 == 0 or step == args.steps:
                torch.save(model.state_dict(), out / "checkpoint.pt")
            if step >= args.steps:
                break
        ds.epoch += 1
    torch.save(model.state_dict(), out / "weights.pt")
    print(f"done: {step} steps in {time.time() - t0:.0f} s -> {out / 'weights.pt'}", flush=True)
    return 0
