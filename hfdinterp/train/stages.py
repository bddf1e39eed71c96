"""The three training stages of the paper, as data, and the loss each one computes.

| stage       | trains                   | flow the synthesizer sees | loss                         |
|-------------|--------------------------|---------------------------|------------------------------|
| synthesizer | encoder + synthesizer    | ground truth              | photometric (+ small flow L1)|
| diffusion   | denoiser                 | —                         | L1 on x̂_0 at one level       |
| joint       | everything               | sampled by the diffusion  | photometric (+ small flow L1)|
| refine      | synthesizer              | sampled by the diffusion  | photometric (+ small flow L1)|
| refine_mixed | synthesizer (ours)      | sampled, half of it polished | photometric (+ small flow L1)|
| global_matching | the global matcher (ours) | —                      | all-pairs matching + prior L1|
| diffusion_on_path | denoiser (ours)        | —                         | L1 on x̂_0, half on the sampler's own path |

Beyond the paper, ``matching`` trains everything at once on two tasks sharing the encoder: the
synthesizer with the true flow (photometric) and the denoiser at all three levels (flow L1), plus a
contrastive term that makes the features' local correlation peak at the true motion. With the
encoder frozen after a synthesis-only stage 1, its features do not match: a soft-argmax of their
local correlation found motion no better than zero flow (measured, see CHANGELOG 0.2.0), so the
denoiser had nothing to read motion from.

Also beyond the paper, ``refine`` is stage 3 with the encoder and the denoiser frozen: the synthesizer
learns to correct the flow the diffusion actually samples (its residual flow heads at 1/2 and 1/1 were
trained only on true flow before), and nothing it learns can pull the shared denoiser away.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..model.diffusion import alpha_bar, level_segments, level_timesteps, q_sample
from ..inference.refinement import FlowRefinement, refine_flow
from ..model.levels import LEVELS
from ..model.hfd import HFD
from ..model.warp import backward_warp, downsample_flow, upsample_flow, warp_bilateral
from .losses import feature_matching, flow_l1, global_match_cross_entropy, photometric

@dataclass(frozen=True)
class Stage:
    name: str
    trains: tuple[str, ...]  # submodules of HFD whose parameters are optimised
    learning_rate: float
    flow_weight: float = 0.01  # weight of the auxiliary L1 between the output flow and the true flow
    # How the output frame's two warps sample. Stages whose loss reaches the flow keep bilinear, whose
    # gradient with respect to the flow is the smoother one (with cubic, joint did not lower its loss on
    # the tiny config). None: the model's own config.synthesizer.image_warp.
    output_warp: str | None = "bilinear"
    # Of the batches, the share whose sampled 1/4 flow is polished photometrically first, as default
    # inference does; the rest see the flow as `--refine-steps 0` hands it over.
    refined_share: float = 0.0
    # Of the diffusion batches, the share whose denoiser input is taken from the noise-free sampler's own
    # path (``on_path_call``) instead of the true flow noised to a random t.
    on_path_share: float = 0.0


STAGES = {
    "synthesizer": Stage("synthesizer", ("encoder", "synthesizer"), 3e-4),
    "diffusion": Stage("diffusion", ("denoiser",), 3e-4),
    "joint": Stage("joint", ("encoder", "denoiser", "synthesizer"), 1e-4),
    "matching": Stage("matching", ("encoder", "denoiser", "synthesizer", "matcher"), 3e-4),
    # The synthesizer learns on exactly what inference hands it. At lr 1e-4 it gained, then lost 0.6 dB by step 800.
    "refine": Stage("refine", ("synthesizer",), 5e-5, output_warp="cubic", refined_share=1.0),
    # The same, learning for both inference settings: half the batches polished, half as sampled.
    "refine_mixed": Stage("refine_mixed", ("synthesizer",), 5e-5, output_warp="cubic", refined_share=0.5),
    # Ours: stage 2 for the noise-free sampler (--noise 0): half the batches denoise what that sampler
    # actually hands each call, made from the model's own earlier x̂_0s.
    "diffusion_on_path": Stage("diffusion_on_path", ("denoiser",), 3e-4, on_path_share=0.5),
    # Ours: the global matcher alone, on the frozen encoder (cheap: no synthesis, no denoiser).
    "global_matching": Stage("global_matching", ("matcher",), 1e-3),
}
PAPER_RECIPE = ("synthesizer", "diffusion", "joint")
# Ours: what `hfdinterp train` runs by default. No joint stage: since 0.3 it costs 0.3–2.3 dB (weights/README.md).
RECIPE = ("synthesizer", "matching")


def true_flow_pyramid(flow: torch.Tensor) -> list[torch.Tensor]:
    """Ground-truth bilateral flow at 1/16, 1/8, 1/4 (full-resolution pixels)."""
    return [downsample_flow(flow, factor) for factor in LEVELS.level_scales]


def _pixel_loss(prediction: torch.Tensor, target: torch.Tensor, perceptual=None) -> torch.Tensor:
    """Charbonnier + census, plus the paper's 0.1 · LPIPS + 20 · style when their weights are given."""
    pixel = photometric(prediction, target)
    return pixel if perceptual is None else pixel + perceptual(prediction, target)


def _synthesis_with_true_flow(model: HFD, batch: dict, features0, features1, stage: Stage, perceptual=None):
    """Stage 1's task: synthesize I_t from the true flow pyramid -> (pixel loss, output flow L1)."""
    out = model.synthesizer(batch["image0"], batch["image1"], features0, features1,
                            true_flow_pyramid(batch["flow"]), batch["time"], stage.output_warp)
    return _pixel_loss(out["image"], batch["image_t"], perceptual), flow_l1(out["flow"], batch["flow"])


def synthesizer_loss(model: HFD, batch: dict, generator: torch.Generator, stage: Stage, perceptual=None):
    features0, features1 = model.encode(batch["image0"]), model.encode(batch["image1"])
    pixel, flow = _synthesis_with_true_flow(model, batch, features0, features1, stage, perceptual)
    return pixel + stage.flow_weight * flow, {"photo": pixel.item(), "flow_px": flow.item()}


def handed_over_estimate(target: torch.Tensor, level: int, generator: torch.Generator,
                         coarser: torch.Tensor | None = None) -> torch.Tensor:
    """The estimate the sampler hands to ``level`` (scaled units): zeros at 1/16; at a finer level the
    upsampled coarser result, which at inference may be anything from right to nothing. So half the
    time it is the true coarser flow with noise, otherwise that flow shrunk towards zero (a coarse
    level that saw too little motion), or ``coarser`` (the model's own coarser x̂_0) when given."""
    if level == 0:
        return torch.zeros_like(target)
    batch_size, device = target.shape[0], target.device
    true = upsample_flow(downsample_flow(target, 2))
    jitter = torch.rand(batch_size, 1, 1, 1, generator=generator).to(device) * 0.1
    perturbed = true + jitter * torch.randn(target.shape, generator=generator).to(device)
    shrink = torch.rand(batch_size, 1, 1, 1, generator=generator).to(device)
    shrunk = true * shrink
    choice = torch.rand(batch_size, 1, 1, 1, generator=generator).to(device)
    fallback = shrunk if coarser is None else torch.where(choice < 0.75, upsample_flow(coarser.detach()), shrunk)
    return torch.where(choice < 0.5, perturbed, fallback)


def _denoise_level(model: HFD, batch: dict, level: int, features0, features1, generator: torch.Generator,
                   coarser: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage 2's task at one level: a t inside the level's segment, the true flow noised to it, the
    estimate the sampler would hand over, self-conditioning half the time -> (x̂_0, target), scaled."""
    config = model.config.diffusion
    device, batch_size = batch["flow"].device, batch["flow"].shape[0]
    top, bottom = level_segments(config)[level]
    low = bottom + 1 if level < LEVELS.count - 1 else 0
    steps = torch.randint(low, top + 1, (batch_size,), generator=generator)
    target = downsample_flow(batch["flow"], LEVELS.scale(level)) / config.flow_scale  # (B, 4, h, w)
    noise = torch.randn(target.shape, generator=generator).to(device)
    x_t = q_sample(target, steps, noise, alpha_bar(config))
    k = LEVELS.entry(level)
    if level == 0:  # what the sampler starts from: the global matching prior, or zeros (the paper)
        estimate = model.starting_estimate(features0, features1, batch["time"])
    else:
        estimate = handed_over_estimate(target, level, generator, coarser)
    steps = steps.to(device)
    if float(torch.rand(1, generator=generator)) < 0.5:  # self-conditioning: a first pass supplies the estimate
        with torch.no_grad():
            estimate = model.denoiser(x_t, steps, level, estimate, features0[k], features1[k], batch["time"])
    return model.denoiser(x_t, steps, level, estimate, features0[k], features1[k], batch["time"]), target


def on_path_call(model: HFD, batch: dict, features0, features1,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One denoiser call exactly as the noise-free sampler makes it at inference: the sampler runs on
    the model's own x̂_0s without gradient, recording every call's (x_t, t, level, estimate); one call,
    drawn at random, is made again with gradient -> (x̂_0, target, level), scaled units.

    The paper's stage 2 only ever shows the denoiser the true flow noised to t. At ``--noise 0`` it sees
    √ᾱ_t times its own coarser estimate instead (``sample_hierarchical``), which no q_sample draws."""
    calls = []

    def recording(denoise):
        def recorded(x_t, step, level, estimate):
            calls.append((x_t, step, level, estimate))
            return denoise(x_t, step, level, estimate)
        return recorded

    with torch.no_grad():
        model.sample_flows(features0, features1, batch["time"], wrap=recording, noise=0.0)
    x_t, step, level, estimate = calls[int(torch.randint(len(calls), (1,), generator=generator))]
    x0_hat = model.denoise_fn(features0, features1, batch["time"])(x_t, step, level, estimate)
    target = downsample_flow(batch["flow"], LEVELS.scale(level)) / model.config.diffusion.flow_scale
    return x0_hat, target, level


def diffusion_loss(model: HFD, batch: dict, generator: torch.Generator, stage: Stage, perceptual=None,
                   level: int | None = None):
    """Pick a level (unless given) and a t inside its segment, noise the true flow, predict x̂_0, L1.
    With ``stage.on_path_share``, that share of the batches takes a call of the noise-free sampler
    instead (``on_path_call``; its level is the call's)."""
    with torch.no_grad():
        features0, features1 = model.encode(batch["image0"]), model.encode(batch["image1"])
    drawn = int(torch.randint(LEVELS.count, (1,), generator=generator))
    on_path = float(torch.rand(1, generator=generator)) < stage.on_path_share
    if on_path and level is None:
        x0_hat, target, level = on_path_call(model, batch, features0, features1, generator)
    else:
        level = drawn if level is None else level
        x0_hat, target = _denoise_level(model, batch, level, features0, features1, generator)
    loss = flow_l1(x0_hat, target)
    return loss, {"flow_px": loss.item() * model.config.diffusion.flow_scale, "level": level}


def _synthesis_with_sampled_flow(model: HFD, batch: dict, features0, features1, flows, stage: Stage,
                                 perceptual=None):
    out = model.synthesizer(batch["image0"], batch["image1"], features0, features1, flows, batch["time"],
                            stage.output_warp)
    pixel = _pixel_loss(out["image"], batch["image_t"], perceptual)
    flow = flow_l1(out["flow"], batch["flow"])
    return pixel + stage.flow_weight * flow, {"photo": pixel.item(), "flow_px": flow.item()}


def joint_loss(model: HFD, batch: dict, generator: torch.Generator, stage: Stage, perceptual=None):
    """Sample the flow with the full DDIM chain, back-propagating through each level's last step."""
    features0, features1 = model.encode(batch["image0"]), model.encode(batch["image1"])
    last_steps = {timesteps[-1] for timesteps in level_timesteps(model.config.diffusion)}

    def through_last_steps(denoise):
        def truncated(x_t, step, level, estimate):
            with torch.set_grad_enabled(step in last_steps):
                return denoise(x_t, step, level, estimate)
        return truncated

    flows = model.sample_flows(features0, features1, batch["time"], generator, wrap=through_last_steps)
    return _synthesis_with_sampled_flow(model, batch, features0, features1, flows, stage, perceptual)


def _polished(stage: Stage, generator: torch.Generator) -> bool:
    """Whether this batch's flow is polished first: always or never without a draw, so that ``refine``
    takes the same random numbers as before ``refined_share`` existed; otherwise drawn."""
    if stage.refined_share in (0.0, 1.0):
        return stage.refined_share == 1.0
    return float(torch.rand(1, generator=generator)) < stage.refined_share


def refine_loss(model: HFD, batch: dict, generator: torch.Generator, stage: Stage, perceptual=None):
    """Synthesis through the flow the frozen encoder and denoiser sample (and, by default, the test-time
    flow refinement polishes); only the synthesizer learns."""
    with torch.no_grad():
        features0, features1 = model.encode(batch["image0"]), model.encode(batch["image1"])
        flows = model.sample_flows(features0, features1, batch["time"], generator)
    if _polished(stage, generator):
        flows = flows[:2] + [refine_flow(batch["image0"], batch["image1"], flows[2], batch["time"], FlowRefinement())]
    return _synthesis_with_sampled_flow(model, batch, features0, features1, flows, stage, perceptual)


MATCHING_WEIGHT = 0.05  # of the contrastive feature-matching term, summed over the three levels
GLOBAL_PRIOR_WEIGHT = 1.0  # of the L1 between the global matching prior and the true 1/16 flow (scaled units)
# A pixel of the matcher's contrastive loss counts 1 + motion / LARGE_MOTION_PX times (motion between
# the frames, full-resolution pixels): large motion is what the matcher is for, and the few pixels
# that move far are where it failed (its best match right for 11–24 % of the 64–128 px pixels of the
# large-motion dev sets). Measured against the plain mean, 2,000 steps each (weights/README.md,
# "Splatting the prior, and a matcher trained on larger crops"): 1–2 points more of those matches.
LARGE_MOTION_PX = 32.0


def matching_loss(model: HFD, batch: dict, generator: torch.Generator, stage: Stage, perceptual=None):
    """Synthesis with the true flow + flow L1 at every level + a contrastive matching term on the
    encoder's features at 1/16, 1/8, 1/4, through one shared encoder pass.

    Levels run coarse to fine like the sampler, and a finer level is sometimes handed the coarser
    level's own x̂_0 (detached), so it learns to fix what the coarser level got wrong."""
    features0, features1 = model.encode(batch["image0"]), model.encode(batch["image1"])
    pixel, _ = _synthesis_with_true_flow(model, batch, features0, features1, stage, perceptual)
    radius = max(1, model.config.denoiser.corr_radius)
    flow_loss, match_loss, coarser, metrics = 0.0, 0.0, None, {"photo": pixel.item()}
    for level, (factor, true_flow) in enumerate(zip(LEVELS.level_scales, true_flow_pyramid(batch["flow"]))):
        k = LEVELS.entry(level)
        aligned0, aligned1 = warp_bilateral(features0[k], features1[k], true_flow, factor)
        match_loss = match_loss + feature_matching(aligned0, aligned1, radius)
        x0_hat, target = _denoise_level(model, batch, level, features0, features1, generator, coarser)
        level_loss = flow_l1(x0_hat, target)
        flow_loss = flow_loss + level_loss
        metrics[f"px{factor}"] = level_loss.item() * model.config.diffusion.flow_scale
        coarser = x0_hat
    metrics["match"] = match_loss.item() / LEVELS.count
    loss = pixel + flow_loss + MATCHING_WEIGHT * match_loss
    if model.matcher is not None:  # ours: the global prior learns alongside
        global_loss, global_metrics = _global_matching_terms(model, batch, features0, features1)
        loss, metrics = loss + global_loss, {**metrics, **global_metrics}
    return loss, metrics


def _global_matching_terms(model: HFD, batch: dict, features0, features1):
    """The matcher's own loss: all-pairs contrastive matching both ways on its grid (1/16, or 1/8 at
    ``matching_stride`` 8), each pixel weighted up by its motion (``LARGE_MOTION_PX``), plus the L1
    between its bilateral prior and the true flow there (scaled units)."""
    matcher, scale = model.matcher, model.config.diffusion.flow_scale
    match0, match1 = matcher.pair_features(features0, features1)  # (B, dim, h, w) on the match's grid
    true = downsample_flow(batch["flow"], matcher.stride)  # (B, 4, h, w), full-resolution pixels
    to0, to1 = true[:, :2] / matcher.stride, true[:, 2:] / matcher.stride  # feature pixels
    # The point seen at x in the frame at τ is at x + f_τ→0 in I0 and at x + f_τ→1 in I1: its features
    # there must match each other (sampling the query at x + f_τ→0 keeps large motions labelled right).
    weights = 1 + (to1 - to0).norm(dim=1) * matcher.stride / LARGE_MOTION_PX  # (B, h, w)
    cross_entropy = (global_match_cross_entropy(backward_warp(match0, to0), match1, to1, matcher.scale, weights)
                     + global_match_cross_entropy(backward_warp(match1, to1), match0, to0, matcher.scale, weights)) / 2
    prior = matcher.bilateral_prior(match0, match1, batch["time"])
    prior_px = flow_l1(prior, true)
    return (cross_entropy + GLOBAL_PRIOR_WEIGHT * prior_px / scale,
            {"match_ce": cross_entropy.item(), "prior_px": prior_px.item(), "scale": matcher.scale.item()})


def global_matching_loss(model: HFD, batch: dict, generator: torch.Generator, stage: Stage, perceptual=None):
    """Ours: only the global matcher learns, on the frozen encoder's features."""
    with torch.no_grad():
        features0, features1 = model.encode(batch["image0"]), model.encode(batch["image1"])
    return _global_matching_terms(model, batch, features0, features1)


STAGE_LOSSES = {"synthesizer": synthesizer_loss, "diffusion": diffusion_loss, "diffusion_on_path": diffusion_loss,
                "joint": joint_loss,
                "matching": matching_loss, "refine": refine_loss, "refine_mixed": refine_loss,
                "global_matching": global_matching_loss}
