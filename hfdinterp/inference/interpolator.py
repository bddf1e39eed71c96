"""The library's inference API: load a model, prepare frames once, interpolate between them.

    >>> from hfdinterp import load_interpolator
    >>> interp = load_interpolator()                        # bundled weights, best device
    >>> middle = interp.interpolate(image0, image1)         # (H, W, 3) float arrays in [0, 1]

Video uses the lower level: ``prepare`` pads and encodes a batch of frames once into ``PreparedFrames``
(which carry their own padding), and ``between`` synthesises frames between prepared frames, so each
video frame is encoded a single time; ``download`` brings results to the host while the next batch
computes. ``between`` is the network's figure with the optional flow steps in the middle: sample the
flow (both ways round with the ensemble), polish it (the test-time refinement), synthesize.

Precision policy (the one place it is stated): the network's convolutions run under autocast in the
interpolator's ``dtype`` (bf16/fp16 on GPUs by default, fp32 on the CPU); flows, the DDIM state, the
noise, the flow refinement and every warp are float32 always: the sampler widens what the
denoiser returns, warps sample at float32 positions, and the refinement runs with autocast off.
A half-precision flow above 128 px could only hold whole pixels.

Devices: noise comes from generators on the model's device (seeded per pair, so a pair's frame does
not depend on its batch; the numbers differ between a CPU and a GPU run of the same seed); weights
and inputs are ``channels_last`` on CUDA, which cuDNN's half-precision convolutions prefer (on the
CPU it measured 2–5 %, within the noise of a shared machine, so tensors stay contiguous there), and
``cudnn.benchmark`` is on, since a video's frames all have one size.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import HFDError
from ..io.images import full_scale
from ..limits import MAX_SAMPLING_NOISE
from ..model import HFD
from ..model.diffusion import split_steps
from ..model.warp import InputPadder
from ..model.weights import load_weights
from .config import SAMPLING_NOISE, InferenceConfig
from .devices import pick_device, pick_dtype
from .ensemble import sample_both_ways
from .flow_resolution import (auto_resolution, content, downscaled, full_resolution_flows, motion_is_large,
                              parse_flow_resolution, small_padder)
from .host_memory import keep_freed_memory
from .refinement import FlowRefinement, refine_flow
from .registry import resolve_weights

PROBE_SEED = 1_000_003  # added to a pair's seed for the motion probe's noise


def _fresh(generators):
    """Copies of the generators at their current state, so that two draws from them see the same noise."""
    if generators is None:
        return None
    copies = []
    for generator in generators:
        copy = torch.Generator(device=generator.device)
        copy.set_state(generator.get_state())
        copies.append(copy)
    return copies


def probe_finds_large_motion(model: HFD, features0, features1, times: torch.Tensor, generators, steps_per_level,
                             size: tuple[int, int], resolution: float, noise: float = 1.0) -> torch.Tensor:
    """(B,) bool: the motion probe's verdict (flow_resolution.py) from the coarsest level of the pass
    on the frames (padded ``size``) at half the flow ``resolution``, whose pyramids are ``features0/1``."""
    coarsest = model.sample_flows(features0, features1, times, generators, steps_per_level, levels=1, noise=noise)[0]
    probe_padder = small_padder(size, resolution / 2, model.config.pad_multiple)
    return motion_is_large(content(coarsest, probe_padder), 2.0)  # the probe's pixels are two of the pass's


@dataclass(frozen=True)
class PreparedFrames:
    """Frames padded to the model's multiple, with their encoder pyramid and the padder that crops
    them (and every frame made between them) back to their own size; with a flow resolution below 1,
    also the pyramid of the downscaled frames that the flow is sampled on; with the ``auto`` flow
    resolution, also that of the frames at half that scale, for the motion probe."""

    images: torch.Tensor  # (B, 3, Hp, Wp), on the model's device, compute dtype
    features: list[torch.Tensor]  # F^1..F^4, 1/2 … 1/16 of (Hp, Wp)
    padder: InputPadder
    flow_features: list[torch.Tensor] | None = None  # of the frames downscaled; None: sampled on ``features``
    probe_features: list[torch.Tensor] | None = None  # of the frames at half the flow resolution; None: no probe

    def __getitem__(self, index) -> "PreparedFrames":
        index = index if isinstance(index, slice) else slice(index, index + 1)
        return self.apply(lambda tensor: tensor[index])

    def apply(self, change) -> "PreparedFrames":
        """The same frames with ``change`` applied to every tensor (slicing, moving to a device)."""
        pyramid = lambda features: None if features is None else [change(f) for f in features]  # noqa: E731
        return PreparedFrames(change(self.images), pyramid(self.features), self.padder, pyramid(self.flow_features),
                              pyramid(self.probe_features))

    def unpadded(self) -> torch.Tensor:
        return self.padder.unpad(self.images)

    @staticmethod
    def cat(parts: Sequence["PreparedFrames"]) -> "PreparedFrames":
        def pyramid(of):
            if of(parts[0]) is None:
                return None
            return [torch.cat([of(p)[k] for p in parts]) for k in range(len(of(parts[0])))]
        return PreparedFrames(torch.cat([p.images for p in parts]), pyramid(lambda p: p.features), parts[0].padder,
                              pyramid(lambda p: p.flow_features), pyramid(lambda p: p.probe_features))


class PendingFrames:
    """Output frames on their way to the host as (H, W, 3) uint8 or uint16 arrays.

    On CUDA they are quantised on the device (a quarter of the bytes), copied into pinned memory on a
    side stream and only waited for in ``get``, so the copy overlaps the next batch's compute."""

    def __init__(self, images: torch.Tensor, deep: bool, stream=None):
        quantised = (images.float().clamp(0, 1) * full_scale(16 if deep else 8)).round()
        quantised = quantised.to(torch.int32 if deep else torch.uint8).permute(0, 2, 3, 1).contiguous()
        self.deep, self.event = deep, None
        if stream is None:
            self.host = quantised.cpu()
            return
        stream.wait_stream(torch.cuda.current_stream(quantised.device))
        with torch.cuda.stream(stream):
            self.host = torch.empty(quantised.shape, dtype=quantised.dtype, pin_memory=True)
            self.host.copy_(quantised, non_blocking=True)
            self.event = torch.cuda.Event()
            self.event.record(stream)
        quantised.record_stream(stream)  # not reused by the allocator before the copy is done

    def get(self) -> list[np.ndarray]:
        if self.event is not None:
            self.event.synchronize()
        frames = self.host.numpy()
        return list(frames.astype(np.uint16) if self.deep else frames)


class Interpolator:
    def __init__(self, model: HFD, device: torch.device, dtype: torch.dtype, steps: int = 6,
                 ensemble: bool = False, refinement: FlowRefinement | None = FlowRefinement(),
                 flow_resolution: float | None = None, noise: float = SAMPLING_NOISE):
        if not 0 <= noise <= MAX_SAMPLING_NOISE:  # the bound InferenceConfig.check gives the command line
            raise ValueError(f"noise must be from 0 to {MAX_SAMPLING_NOISE:g}, got {noise!r}")
        self.model = model.to(device).eval()
        if device.type == "cuda":  # cuDNN's half-precision kernels want NHWC; on the CPU it measured within noise
            self.model.to(memory_format=torch.channels_last)
            torch.backends.cudnn.benchmark = True
        self.memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
        self._copy_stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self.device, self.dtype = device, dtype
        self.ensemble = ensemble  # also sample the time-reversed pair's flow and average the two
        self.refinement = refinement if refinement is not None and refinement.steps > 0 else None
        self.steps_per_level = split_steps(steps, len(model.config.diffusion.steps_per_level))
        # Scale of the frames the flow is sampled on (flow_resolution.py); None: ``auto``, by frame size
        # and the motion probe.
        self.flow_resolution = flow_resolution
        self.noise = noise  # scale of the diffusion's sampling noise (0: deterministic; 1: the paper's sampler)

    def resolution_for(self, padder: InputPadder) -> float:
        """The flow resolution of frames that ``padder`` pads (their own size decides ``auto``)."""
        if self.flow_resolution is not None:
            return self.flow_resolution
        return auto_resolution(padder.height, padder.width)

    def _autocast(self):
        enabled = self.dtype != torch.float32
        return torch.autocast(device_type=self.device.type, dtype=self.dtype, enabled=enabled)

    def to_device(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) uint8/uint16/float CPU tensor -> float in [0, 1] on the device; pinned for CUDA copies."""
        if self.device.type == "cuda" and not frames.is_pinned():
            frames = frames.pin_memory()
        frames = frames.to(self.device, non_blocking=True)
        if frames.dtype == torch.uint8:
            return frames.float() / full_scale(8)
        if frames.dtype in (torch.int32, torch.uint16):
            return frames.float() / full_scale(16)
        return frames.float()

    @torch.inference_mode()
    def prepare(self, frames: torch.Tensor) -> PreparedFrames:
        """Pad and encode a batch of frames, (B, 3, H, W) in [0, 1] (or uint8) on any device."""
        images = self.to_device(frames) if frames.device != self.device or frames.dtype != torch.float32 else frames
        padder = InputPadder(*images.shape[-2:], self.model.config.pad_multiple)
        return self.prepare_padded(padder.pad(images).contiguous(memory_format=self.memory_format), padder)

    @torch.inference_mode()
    def prepare_padded(self, images: torch.Tensor, padder: InputPadder) -> PreparedFrames:
        """Encode frames that are already padded by ``padder`` (the model's own outputs, for recursion)."""
        resolution = self.resolution_for(padder)

        def encode_at(scale: float) -> list[torch.Tensor]:
            small = downscaled(images.float(), scale, self.model.config.pad_multiple)
            return self.model.encode(small.contiguous(memory_format=self.memory_format))

        with self._autocast():
            features = self.model.encode(images)
            flow_features = encode_at(resolution) if resolution < 1 else None
            probe_features = encode_at(resolution / 2) if self.flow_resolution is None else None
            return PreparedFrames(images, features, padder, flow_features, probe_features)

    @torch.inference_mode()
    def between(self, first: PreparedFrames, second: PreparedFrames, times: torch.Tensor,
                seeds: Sequence[int]) -> dict:
        """Frames at ``times`` (B,) between prepared frames; one seed per pair. Cropped, in [0, 1];
        ``padded``: the frames as the model made them, for ``prepare_padded``."""
        generators = [torch.Generator(device=self.device).manual_seed(int(seed)) for seed in seeds]
        # The probe draws its own noise, so a pair it leaves alone gets the same flow as without it.
        probe_generators = [torch.Generator(device=self.device).manual_seed(int(seed) + PROBE_SEED) for seed in seeds]
        times = times.to(self.device)
        with self._autocast():
            flows = self.flows(first, second, times, generators, probe_generators)
            out = self.model.synthesizer(first.images, second.images, first.features, second.features, flows, times)
        crop = first.padder.unpad
        return {"image": crop(out["image"].float().clamp(0, 1)), "flow": crop(out["flow"].float()),
                "mask": crop(out["mask"].float()), "padded": out["image"].clamp(0, 1)}

    def flows(self, first: PreparedFrames, second: PreparedFrames, times: torch.Tensor, generators,
              probe_generators=None) -> list[torch.Tensor]:
        """The sampled bilateral flows at 1/16, 1/8, 1/4 after the optional steps: sampled on the
        downscaled frames (``flow_resolution``; with ``auto``, at half that scale for pairs the motion
        probe finds large) and brought to the full frames' levels, both ways round (``ensemble``), then
        the 1/4 flow polished photometrically (``refinement``)."""
        sample = functools.partial(sample_both_ways, self.model) if self.ensemble else self.model.sample_flows
        size = tuple(first.images.shape[-2:])
        resolution = self.resolution_for(first.padder)

        def sampled_at(scale: float, features0, features1, pair_generators) -> list[torch.Tensor]:
            sampled = sample(features0, features1, times, pair_generators, self.steps_per_level, noise=self.noise)
            if scale >= 1:
                return sampled
            return full_resolution_flows(sampled[-1], small_padder(size, scale, self.model.config.pad_multiple), size)

        large = None
        if first.probe_features is not None:  # ours: the motion probe (flow_resolution.py), on its 1/16 level
            large = probe_finds_large_motion(self.model, first.probe_features, second.probe_features, times,
                                             _fresh(probe_generators), self.steps_per_level, size, resolution,
                                             self.noise)
            if bool(large.any()):  # the whole probe pass, its first level drawn again with the same noise
                probe = sampled_at(resolution / 2, first.probe_features, second.probe_features, _fresh(probe_generators))
        if large is not None and bool(large.all()):
            flows = probe
        else:
            flows = sampled_at(resolution, first.flow_features or first.features,
                               second.flow_features or second.features, generators)
            if large is not None and bool(large.any()):
                flows = [torch.where(large.view(-1, 1, 1, 1), p, f) for p, f in zip(probe, flows)]
        if self.refinement is not None:  # ours: polish the 1/4 flow photometrically before synthesis
            flows = flows[:2] + [refine_flow(first.images, second.images, flows[2], times, self.refinement)]
        return flows

    def download(self, images: torch.Tensor, deep: bool = False) -> PendingFrames:
        """Start bringing (B, 3, H, W) frames in [0, 1] to the host; ``.get()`` gives the arrays."""
        return PendingFrames(images, deep, self._copy_stream)

    def pair_memory(self, width: int, height: int) -> int:
        """Peak device bytes of one pair at this size, measured by running one (CUDA only)."""
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        before = torch.cuda.memory_allocated(self.device)
        prepared = self.prepare(torch.zeros(2, 3, height, width, dtype=torch.uint8))
        self.between(prepared[0], prepared[1], torch.tensor([0.5]), [0])
        torch.cuda.synchronize(self.device)
        return torch.cuda.max_memory_allocated(self.device) - before

    def release_memory(self) -> None:
        """Hand cached device blocks back after an out-of-memory error."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def interpolate(self, image0: np.ndarray, image1: np.ndarray, time: float = 0.5, seed: int = 0,
                    return_all: bool = False):
        """One frame between two (H, W, 3) float arrays in [0, 1].

        With ``return_all``, a dict of numpy arrays: image (H, W, 3), flow (4, H, W), mask (1, H, W).
        """
        if image0.shape != image1.shape:
            raise HFDError(f"the two images differ in size: {image0.shape[1]}×{image0.shape[0]} "
                           f"and {image1.shape[1]}×{image1.shape[0]}")
        if not 0.0 < time < 1.0:
            raise HFDError(f"time must lie strictly between 0 and 1, got {time}")
        tensors = [torch.from_numpy(np.ascontiguousarray(a[..., :3].transpose(2, 0, 1)))[None].float()
                   for a in (image0, image1)]
        prepared = self.prepare(torch.cat(tensors))
        out = self.between(prepared[0], prepared[1], torch.tensor([time]), [seed])
        image = out["image"][0].permute(1, 2, 0).cpu().numpy()
        if not return_all:
            return image
        return {"image": image, "flow": out["flow"][0].cpu().numpy(), "mask": out["mask"][0].cpu().numpy()}


def load_interpolator(weights: str | Path | None = None, device: str = "auto", precision: str = "auto",
                      steps: int = 6, ensemble: bool = False,
                      refine_steps: int = FlowRefinement.steps, flow_resolution: str | float = "auto",
                      noise: float = SAMPLING_NOISE) -> Interpolator:
    """The model from ``weights`` (a path or a known name; default: the bundled file), ready to run.

    ``refine_steps``: Adam steps of test-time photometric flow refinement (0: the diffusion's flow as sampled).
    ``flow_resolution``: scale of the frames the flow is sampled on ("auto": by frame size, halved for
    pairs whose motion probe finds large motion; 1: the paper).
    ``noise``: scale of the diffusion's sampling noise (0: deterministic, the default; 1: the paper's sampler).
    """
    return load(InferenceConfig(weights, device, precision, steps, ensemble, refine_steps, flow_resolution, noise))


def load(config: InferenceConfig) -> Interpolator:
    """The interpolator ``config`` describes (checked before the weights are read)."""
    config.check()
    keep_freed_memory()  # once per process: frame-sized tensors reuse freed memory (host_memory.py)
    torch_device = pick_device(config.device)
    dtype = pick_dtype(torch_device, config.precision)
    model = load_weights(resolve_weights(config.weights), torch_device)
    levels = len(model.config.diffusion.steps_per_level)
    if config.steps < levels:
        raise HFDError(f"--steps must be at least {levels} (one per level), got {config.steps}")
    return Interpolator(model, torch_device, dtype, config.steps, config.ensemble,
                        FlowRefinement(steps=config.refine_steps), parse_flow_resolution(config.flow_resolution),
                        config.noise)
