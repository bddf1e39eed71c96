"""Where the flow fails, by motion size: end-point error per diffusion level and for the output flow.

    python -m hfdinterp.train.flow_error DEV [--weights W ...] [--refine-steps 0] [--flow-resolution auto] [--noise 0]

For every case under DEV holding ``flow.npy`` (a reference bilateral flow at τ = 0.5: exact for
synthetic triplets, the teacher's pseudo ground truth for real ones), the model's flows are sampled
(with inference's sampling noise unless ``--noise`` says otherwise; seed 0) and compared with the
reference at full resolution:

  * ``global prior``: the coarsest level's starting estimate, for models with global matching;
  * ``1/16``, ``1/8``, ``1/4``: the diffusion's x̂_0 at each level, upsampled (no test-time refinement);
    with a flow resolution below 1 (``--flow-resolution``, default ``auto`` as inference), the levels
    of the pass on the downscaled frames, in full-resolution pixels;
  * ``1/4 refined``: the 1/4 flow after the inference layer's refinement (when ``--refine-steps`` > 0);
  * ``output``: the synthesizer's full-resolution flow, what the frame is warped with.

With ``--matches``, how often the global matcher's best match is the true one (``matcher_hits``).
With ``--correlation``, also how often the evidence the coarsest level reads, the local correlation
of the two frames' 1/16 features, peaks at the true motion (``correlation_hits``).

EPE is the mean over both flows (f_τ→0, f_τ→1) of |f − f_ref|, bucketed per pixel by the motion
between the two frames, |f_ref,τ→1 − f_ref,τ→0| in full-resolution pixels.

With ``--teacher``, the teacher's own bilateral flow from I0 and I1 alone (``teacher.py``, RIFE 4.x's
IFNet at τ = 0.5, as a user of RIFE gets it) is scored beside the model's: what a strong two-frame
method achieves in each bucket. The reference of a real triplet comes from the true middle frame, so
where the motion is not linear (a hand-held camera's shake over 12 frames, a person who stops) no
method that sees only I0 and I1 can place the middle frame; with ``--linear`` only the pixels whose
reference is close to linear motion count (``linear_pixels``).

With ``--trusted``, only the pixels where the reference can be checked count (``trusted_pixels``):
its motion is observable (the middle frame has texture in both directions around the pixel: a
uniform sky panning 100 px fits any flow) and it agrees with the frames (both frames warped by it
land on the true middle frame: the teacher's pseudo flow of a real triplet is wrong in places,
and occluded pixels have no match). On our large-motion dev sets most 64–128 px pixels are neither.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import HFDError
from ..inference.config import SAMPLING_NOISE, InferenceConfig
from ..inference.flow_resolution import (auto_resolution, downscaled, full_resolution_flows, parse_flow_resolution,
                                         small_padder)
from ..inference.interpolator import PROBE_SEED, probe_finds_large_motion
from ..inference.refinement import FlowRefinement, refine_flow
from ..io.images import read_image
from ..io.triplets import find_cases, find_image
from ..model.denoiser import local_correlation
from ..model.layers import unit_channels
from ..model.warp import InputPadder, backward_warp
from ..model.weights import load_weights
from .texture import smaller_eigenvalue

BUCKETS = ((0, 8), (8, 32), (32, 64), (64, 128), (128, float("inf")))
TEXTURE_WINDOW = 15  # pixels: the neighbourhood whose structure tensor says whether motion is observable
MIN_TEXTURE = 1e-4  # smaller eigenvalue of that structure tensor (grey levels in [0, 1]): below it, flat
MAX_WARP_ERROR = 0.05  # mean |w(I, f_ref) − I_τ| over the channels (13 grey levels of 255): above it, no match
# ``linear_pixels``: under linear motion the pixel at τ = 0.5 lies halfway between its matches in I0
# and I1 (f_τ→0 = −f_τ→1). A reference whose pixel lies further from that midpoint than this share of
# the motion is motion that two frames cannot predict.
MAX_NONLINEARITY = 0.1


def bucket_name(low: float, high: float) -> str:
    return f"<{high:g}" if low == 0 else f">{low:g}" if high == float("inf") else f"{low:g}–{high:g}"


@torch.no_grad()
def case_flows(model, image0: np.ndarray, image1: np.ndarray, refine_steps: int, seed: int = 0,
               resolution: float | None = 1.0, noise: float = SAMPLING_NOISE) -> dict:
    """{name: (4, H, W) full-resolution flow} for one pair at τ = 0.5; ``resolution`` None: ``auto``,
    as inference: by size, halved for a pair whose motion probe (``motion_is_large``) finds large motion."""
    tensor = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float()  # noqa: E731
    height, width = image0.shape[:2]
    multiple = model.config.pad_multiple
    padder = InputPadder(height, width, multiple)
    i0, i1 = padder.pad(tensor(image0)), padder.pad(tensor(image1))
    time = torch.tensor([0.5])
    if resolution is None:
        resolution = auto_resolution(height, width)
        large = probe_finds_large_motion(model, model.encode(downscaled(i0, resolution / 2, multiple)),
                                         model.encode(downscaled(i1, resolution / 2, multiple)), time,
                                         [torch.Generator().manual_seed(seed + PROBE_SEED)], None,
                                         tuple(i0.shape[-2:]), resolution, noise)
        if bool(large[0]):  # as inference does: the probe's pass, with the probe's noise
            resolution, seed = resolution / 2, seed + PROBE_SEED
    features0, features1 = model.encode(i0), model.encode(i1)
    small = small_padder(i0.shape[-2:], resolution, multiple)
    flow_features = (features0, features1) if resolution >= 1 else \
        (model.encode(downscaled(i0, resolution, multiple)), model.encode(downscaled(i1, resolution, multiple)))
    sampled = model.sample_flows(*flow_features, time, torch.Generator().manual_seed(seed), noise=noise)

    def full(flow: torch.Tensor) -> torch.Tensor:  # a flow on the padded frames' grid -> (4, H, W)
        return padder.unpad(F.interpolate(flow, size=i0.shape[-2:], mode="bilinear", align_corners=False))[0]

    def sampled_full(flow: torch.Tensor) -> torch.Tensor:  # any level of the flow pass -> (4, H, W)
        if resolution < 1:
            flow = full_resolution_flows(F.interpolate(flow, size=sampled[-1].shape[-2:], mode="bilinear",
                                                       align_corners=False), small, i0.shape[-2:])[2]
        return full(flow)

    result = {name: sampled_full(flow) for name, flow in zip(("1/16", "1/8", "1/4"), sampled)}
    flows = sampled if resolution >= 1 else full_resolution_flows(sampled[-1], small, i0.shape[-2:])
    if model.matcher is not None:  # what the coarsest level started from
        prior = model.starting_estimate(*flow_features, time) * model.config.diffusion.flow_scale
        result = {"global prior": sampled_full(prior), **result}
    if refine_steps > 0:
        flows = flows[:2] + [refine_flow(i0, i1, flows[2], time, FlowRefinement(steps=refine_steps))]
        result["1/4 refined"] = full(flows[2])
    out = model.synthesizer(i0, i1, features0, features1, flows, time)
    result["output"] = padder.unpad(out["flow"])[0]
    return result


def trusted_pixels(image0: np.ndarray, middle: np.ndarray, image1: np.ndarray, reference: torch.Tensor) -> torch.Tensor:
    """(H, W) bool: where the reference bilateral flow (4, H, W) can be checked against the frames
    ((H, W, 3) in [0, 1]): textured around the pixel (the smaller eigenvalue of the middle frame's
    structure tensor over a ``TEXTURE_WINDOW`` square at least ``MIN_TEXTURE``) and consistent (both
    frames warped by it within ``MAX_WARP_ERROR`` of the middle frame)."""
    tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float()  # noqa: E731
    smaller = smaller_eigenvalue(tensor(middle), TEXTURE_WINDOW)
    flow = reference[None].float()
    warped0, warped1 = backward_warp(tensor(image0), flow[:, :2]), backward_warp(tensor(image1), flow[:, 2:])
    mismatch = torch.maximum((warped0 - tensor(middle)).abs().mean(1), (warped1 - tensor(middle)).abs().mean(1))
    return ((smaller[:, 0] >= MIN_TEXTURE) & (mismatch <= MAX_WARP_ERROR))[0]


def linear_pixels(reference: torch.Tensor) -> torch.Tensor:
    """(H, W) bool: where the reference bilateral flow at τ = 0.5 (4, H, W) is close to linear motion:
    the pixel lies within ``MAX_NONLINEARITY`` of the motion from the midpoint of its two matches,
    |f_τ→0 + f_τ→1| / 2 ≤ MAX_NONLINEARITY · |f_τ→1 − f_τ→0| (a still pixel, within a pixel of both)."""
    off_midpoint = (reference[:2] + reference[2:]).norm(dim=0) / 2
    motion = (reference[2:] - reference[:2]).norm(dim=0)
    return off_midpoint <= torch.clamp(MAX_NONLINEARITY * motion, min=1.0)


@torch.no_grad()
def teacher_flow(teacher, image0: np.ndarray, image1: np.ndarray) -> torch.Tensor:
    """The teacher's bilateral flow at τ = 0.5 from the two frames alone ((H, W, 3) in [0, 1]): (4, H, W)."""
    from .teacher import teacher_bilateral_flow

    tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float()  # noqa: E731
    return teacher_bilateral_flow(teacher, tensor(image0), tensor(image1), torch.tensor([0.5]))[0]


def flow_error_table(model, root: Path, refine_steps: int = 0, resolution: float | None = 1.0,
                     trusted: bool = False, noise: float = SAMPLING_NOISE, teacher=None,
                     linear: bool = False) -> dict[str, dict[str, dict[str, float]]]:
    """{set: {flow name: {bucket: EPE}}} plus each set's pixel share per bucket under ``"share"``;
    ``trusted`` / ``linear``: over ``trusted_pixels`` / ``linear_pixels`` only (both: over both), with
    the share of each bucket's pixels kept under ``"kept"``; ``teacher``: also its own flow from I0
    and I1 (``teacher_flow``), as the row ``"teacher (I0, I1)"``."""
    tables = {}
    for set_name, cases in find_cases(root).items():
        sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        counts: dict[str, float] = defaultdict(float)
        all_counts: dict[str, float] = defaultdict(float)  # before the trusted mask
        for case in cases:
            if not (case / "flow.npy").is_file():
                continue
            reference = torch.from_numpy(np.load(case / "flow.npy").astype(np.float32))  # (4, H, W)
            image0, image1 = (read_image(case / f"{n}.png").pixels[..., :3] for n in ("i0", "i1"))
            motion = (reference[2:] - reference[:2]).norm(dim=0)  # (H, W)
            kept = torch.ones_like(motion, dtype=torch.bool)
            if trusted:
                middle = read_image(find_image(case, "gt")).pixels[..., :3]
                kept &= trusted_pixels(image0, middle, image1, reference)
            if linear:
                kept &= linear_pixels(reference)
            for low, high in BUCKETS:
                inside = (motion >= low) & (motion < high)
                all_counts[bucket_name(low, high)] += float(inside.sum())
                counts[bucket_name(low, high)] += float((inside & kept).sum())
            flows = case_flows(model, image0, image1, refine_steps, resolution=resolution, noise=noise)
            if teacher is not None:
                flows["teacher (I0, I1)"] = teacher_flow(teacher, image0, image1)
            for name, flow in flows.items():
                error = ((flow[:2] - reference[:2]).norm(dim=0) + (flow[2:] - reference[2:]).norm(dim=0)) / 2
                for low, high in BUCKETS:
                    inside = (motion >= low) & (motion < high)
                    sums[name][bucket_name(low, high)] += float(error[inside & kept].sum())
        if not counts:
            continue
        total = sum(counts.values())
        tables[set_name] = {name: {b: (values[b] / counts[b] if counts[b] else float("nan")) for b in counts}
                            for name, values in sums.items()}
        tables[set_name]["share"] = {b: counts[b] / total if total else 0.0 for b in counts}
        if trusted or linear:
            tables[set_name]["kept"] = {b: counts[b] / all_counts[b] if all_counts[b] else 0.0 for b in counts}
    return tables


def _hit_shares(model, root: Path, resolution: float | None, case_hits) -> dict[str, dict[str, float]]:
    """{set: {bucket: share of hits}} over every case with a reference flow: ``case_hits(frames,
    reference, scale)`` gets both frames as the flow pass sees them (padded, downscaled by ``scale``)
    and the padded full-resolution reference (1, 4, H, W), and returns per grid pixel whether it is
    a hit, its motion in full-resolution pixels, and whether it counts."""
    tables = {}
    for set_name, cases in find_cases(root).items():
        hits, counts = defaultdict(float), defaultdict(float)
        for case in cases:
            if not (case / "flow.npy").is_file():
                continue
            reference = torch.from_numpy(np.load(case / "flow.npy").astype(np.float32))[None]
            frames = [torch.from_numpy(read_image(case / f"{n}.png").pixels[..., :3].copy()).permute(2, 0, 1)[None].float()
                      for n in ("i0", "i1")]
            height, width = frames[0].shape[-2:]
            scale = auto_resolution(height, width) if resolution is None else resolution
            multiple = model.config.pad_multiple
            padder = InputPadder(height, width, multiple)
            frames, reference = [padder.pad(f) for f in frames], padder.pad(reference)
            if scale < 1:
                frames = [downscaled(f, scale, multiple) for f in frames]
            hit, magnitude, counted = case_hits(frames, reference, scale)
            for low, high in BUCKETS:
                inside = counted & (magnitude >= low) & (magnitude < high)
                hits[bucket_name(low, high)] += float((hit & inside).sum())
                counts[bucket_name(low, high)] += float(inside.sum())
        if counts:
            tables[set_name] = {b: hits[b] / counts[b] if counts[b] else float("nan") for b in counts}
    return tables


@torch.no_grad()
def correlation_hits(model, root: Path, resolution: float | None = 1.0) -> dict[str, dict[str, float]]:
    """{set: {bucket: share}}: how often the local correlation that the coarsest level reads (the
    encoder's 1/16 features of both frames at zero flow, ±corr_radius) peaks within one feature pixel
    of the true motion |f_ref,τ→1 − f_ref,τ→0|, per feature pixel, bucketed by that motion. If the
    features do not match, the denoiser has nothing to read the motion from."""
    radius = model.config.denoiser.corr_radius
    size = 2 * radius + 1

    def case_hits(frames, reference, scale):
        coarsest0, coarsest1 = (model.encode(f)[-1] for f in frames)
        best = local_correlation(coarsest0, coarsest1, radius)[0].argmax(0)  # (h, w)
        found = torch.stack((best % size - radius, best // size - radius)).float()  # (dx, dy) feature px
        feature_px = frames[0].shape[-1] / coarsest0.shape[-1] / scale  # full-resolution px per feature px
        motion = F.adaptive_avg_pool2d(reference[:, 2:] - reference[:, :2], best.shape)[0]
        return (found - motion / feature_px).norm(dim=0) <= 1, motion.norm(dim=0), torch.ones_like(best, dtype=torch.bool)

    return _hit_shares(model, root, resolution, case_hits)


@torch.no_grad()
def matcher_hits(model, root: Path, resolution: float | None = 1.0) -> dict[str, dict[str, float]]:
    """{set: {bucket: share}}: how often the global matcher's best match is right. For every pixel x
    of the match's grid (at τ) whose reference match stays in the frame, I0's matching feature at
    x + f_ref,τ→0 is compared with all of I1's; a hit is an arg-max within one pixel of
    x + f_ref,τ→1. Bucketed by the motion |f_ref,τ→1 − f_ref,τ→0|, as the EPE. The prior can only be
    as good as these matches (before its confidence and alignment rules)."""

    def case_hits(frames, reference, scale):
        match0, match1 = model.matcher.pair_features(*(model.encode(f) for f in frames))
        _, _, rows, columns = match0.shape
        feature_px = reference.shape[-2] / rows  # full-resolution pixels per pixel of the match
        true = F.adaptive_avg_pool2d(reference, (rows, columns)) / feature_px  # (1, 4, h, w) feature px
        queries = unit_channels(backward_warp(match0, true[:, :2])).flatten(2)[0]  # (C, N)
        best = (queries.T @ unit_channels(match1).flatten(2)[0]).argmax(1)  # (N,)
        ys, xs = torch.meshgrid(torch.arange(rows), torch.arange(columns), indexing="ij")
        target_x, target_y = (xs + true[0, 2]).flatten(), (ys + true[0, 3]).flatten()
        hit = ((best % columns - target_x).abs() <= 1) & ((best // columns - target_y).abs() <= 1)
        inside = (target_x > -0.5) & (target_x < columns - 0.5) & (target_y > -0.5) & (target_y < rows - 0.5)
        return hit, (true[0, 2:] - true[0, :2]).norm(dim=0).flatten() * feature_px, inside

    return _hit_shares(model, root, resolution, case_hits)


def format_tables(tables: dict, label: str) -> str:
    lines = []
    for set_name, table in tables.items():
        buckets = list(table["share"])
        lines.append(f"\n{label} — {set_name} (EPE in px; motion |f_τ→1 − f_τ→0| at full resolution)")
        lines.append("| flow | " + " | ".join(buckets) + " |")
        lines.append("|---" * (len(buckets) + 1) + "|")
        lines.append("| pixels | " + " | ".join(f"{table['share'][b]:.1%}" for b in buckets) + " |")
        if "kept" in table:
            lines.append("| kept (of the bucket's pixels) | " + " | ".join(f"{table['kept'][b]:.1%}" for b in buckets)
                         + " |")
        for name, row in table.items():
            if name not in ("share", "kept"):
                lines.append(f"| {name} | " + " | ".join(f"{row[b]:.2f}" for b in buckets) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="folder of <set>/<case>/{i0,gt,i1}.png + flow.npy")
    parser.add_argument("--weights", nargs="+", required=True)
    parser.add_argument("--refine-steps", type=int, default=0)
    parser.add_argument("--flow-resolution", default="auto", help="auto (as inference), or 0.25–1")
    parser.add_argument("--correlation", action="store_true",
                        help="also: how often the coarsest level's correlation peaks at the true motion")
    parser.add_argument("--matches", action="store_true",
                        help="also: how often the global matcher's best match is the true one")
    parser.add_argument("--trusted", action="store_true",
                        help="only pixels where the reference is observable and agrees with the frames")
    parser.add_argument("--linear", action="store_true",
                        help="only pixels whose reference is close to linear motion (what two frames can predict)")
    parser.add_argument("--teacher", nargs="?", const="", default=None, metavar="WEIGHTS",
                        help="also score the teacher's own flow from I0 and I1 (RIFE 4.x; default: its cache)")
    parser.add_argument("--noise", type=float, default=SAMPLING_NOISE,
                        help="scale of the sampling noise (default: inference's; 1: the paper's sampler)")
    args = parser.parse_args()
    try:
        InferenceConfig(noise=args.noise).check()  # the bounds inference holds --noise to
    except HFDError as error:
        parser.error(str(error))
    resolution = parse_flow_resolution(args.flow_resolution)
    teacher = None
    if args.teacher is not None:
        from .teacher import load_teacher
        teacher = load_teacher(args.teacher or None)
    for weights in args.weights:
        model = load_weights(weights, "cpu").eval()
        label = (f"{weights}, flow resolution {args.flow_resolution}, noise {args.noise:g}"
                 + (", trusted pixels" if args.trusted else "") + (", linear motion" if args.linear else ""))
        tables = flow_error_table(model, Path(args.root), args.refine_steps, resolution, args.trusted, args.noise,
                                  teacher, args.linear)
        print(format_tables(tables, label), flush=True)
        if args.correlation:
            for set_name, shares in correlation_hits(model, Path(args.root), resolution).items():
                print(f"\n{weights} — {set_name}: the 1/16 correlation's arg-max within one feature pixel of "
                      "the true motion (share of feature pixels)")
                print("| " + " | ".join(shares) + " |\n" + "|---" * len(shares) + "|\n| "
                      + " | ".join(f"{v:.1%}" for v in shares.values()) + " |", flush=True)
        if args.matches and model.matcher is not None:
            for set_name, shares in matcher_hits(model, Path(args.root), resolution).items():
                print(f"\n{weights} — {set_name}: the global matcher's best match within one pixel of its grid "
                      "of the true one (share of the grid's pixels whose match stays in the frame)")
                print("| " + " | ".join(shares) + " |\n" + "|---" * len(shares) + "|\n| "
                      + " | ".join(f"{v:.1%}" for v in shares.values()) + " |", flush=True)


if __name__ == "__main__":
    main()
