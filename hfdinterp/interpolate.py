"""The library's inference API: load a model, prepare frames once, interpolate between them.

    >>> from hfdinterp import load_interpolator
    >>> interp = load_interpolator()                        # bundled weights, best device
    >>> middle = interp.interpolate(image0, image1)         # (H, W, 3) float arrays in [0, 1]

Video uses the lower level: ``prepare`` pads and encodes a batch of frames once, and ``between``
synthesises frames between prepared frames, so each video frame is encoded a single time;
``download`` brings results to the host while the next batch computes.

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

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .device import pick_device, pick_dtype
from .diffusion import split_steps
from .errors import HFDError
from .flow_refinement import FlowRefinement
from .limits import MAX_REFINE_STEPS, MAX_STEPS
from .model import HFD
from .warp import InputPadder
from .weights_file import load_weights
from .weights_registry import resolve_weights


@dataclass
class Prepared:
    """Frames padded to the model's multiple, with their encoder pyramid."""

    images: torch.Tensor  # (B, 3, Hp, Wp), on the model's device, compute dtype
    features: list[torch.Tensor]

    def __getitem__(self, index) -> "Prepared":
        index = index if isinstance(index, slice) else slice(index, index + 1)
        return Prepared(self.images[index], [f[index] for f in self.features])

    @staticmethod
    def cat(parts: Sequence["Prepared"]) -> "Prepared":
        return Prepared(torch.cat([p.images for p in parts]),
                        [torch.cat([p.features[k] for p in parts]) for k in range(len(parts[0].features))])


def is_out_of_memory(error: BaseException) -> bool:
    """A device (or host) allocation failure, as CUDA, MPS and the CPU allocator report it."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and any(
        text in str(error) for text in ("out of memory", "can't allocate memory", "Cannot allocate memory"))


def batch_for_memory(free_bytes: int, pair_bytes: int, most: int = 16, share: float = 0.6) -> int:
    """Pairs per model call that fit in ``share`` of the free memory, given one pair's measured peak."""
    return int(max(1, min(most, share * free_bytes // max(pair_bytes, 1))))


class PendingFrames:
    """Output frames on their way to the host as (H, W, 3) uint8 or uint16 arrays.

    On CUDA they are quantised on the device (a quarter of the bytes), copied into pinned memory on a
    side stream and only waited for in ``get``, so the copy overlaps the next batch's compute."""

    def __init__(self, images: torch.Tensor, deep: bool, stream=None):
        quantised = (images.float().clamp(0, 1) * (65535 if deep else 255)).round()
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
                 ensemble: bool = False, refinement: FlowRefinement | None = FlowRefinement()):
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
        self.padder: InputPadder | None = None

    def _padder(self, height: int, width: int) -> InputPadder:
        if self.padder is None or (self.padder.height, self.padder.width) != (height, width):
            self.padder = InputPadder(height, width, self.model.config.pad_multiple)
        return self.padder

    def _autocast(self):
        enabled = self.dtype != torch.float32
        return torch.autocast(device_type=self.device.type, dtype=self.dtype, enabled=enabled)

    def to_device(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) uint8/uint16/float CPU tensor -> float on the device; pinned for CUDA copies."""
        if self.device.type == "cuda" and not frames.is_pinned():
            frames = frames.pin_memory()
        frames = frames.to(self.device, non_blocking=True)
        if frames.dtype == torch.uint8:
            return frames.float() / 255
        if frames.dtype in (torch.int32, torch.uint16):
            return frames.float() / 65535
        return frames.float()

    @torch.inference_mode()
    def prepare(self, frames: torch.Tensor) -> Prepared:
        """Pad and encode a batch of frames, (B, 3, H, W) in [0, 1] (or uint8) on any device."""
        images = self.to_device(frames) if frames.device != self.device or frames.dtype != torch.float32 else frames
        images = self._padder(*images.shape[-2:]).pad(images).contiguous(memory_format=self.memory_format)
        with self._autocast():
            features = self.model.encode(images)
        return Prepared(images, features)

    @torch.inference_mode()
    def prepare_padded(self, images: torch.Tensor) -> Prepared:
        """Encode frames that are already padded (the model's own outputs, for recursion)."""
        with self._autocast():
            return Prepared(images, self.model.encode(images))

    @torch.inference_mode()
    def between(self, first: Prepared, second: Prepared, times: torch.Tensor, seeds: Sequence[int]) -> dict:
        """Frames at ``times`` (B,) between prepared frames; one seed per pair. Cropped, in [0, 1]."""
        generators = [torch.Generator(device=self.device).manual_seed(int(seed)) for seed in seeds]
        with self._autocast():
            out = self.model(first.images, second.images, times.to(self.device), generator=generators,
                             steps_per_level=self.steps_per_level, features=(first.features, second.features),
                             ensemble=self.ensemble, refinement=self.refinement)
        padder = self.padder
        return {"image": padder.unpad(out["image"].float().clamp(0, 1)), "flow": padder.unpad(out["flow"].float()),
                "mask": padder.unpad(out["mask"].float()), "padded": out["image"].clamp(0, 1)}

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
                      refine_steps: int = FlowRefinement.steps) -> Interpolator:
    """The model from ``weights`` (a path or a known name; default: the bundled file), ready to run.

    ``refine_steps``: Adam steps of test-time photometric flow refinement (0: the paper's pipeline as is).
    """
    if steps > MAX_STEPS:
        raise HFDError(f"--steps must be at most {MAX_STEPS}, got {steps}")
    if refine_steps < 0:
        raise HFDError(f"--refine-steps must be 0 or more, got {refine_steps}")
    if refine_steps > MAX_REFINE_STEPS:
        raise HFDError(f"--refine-steps must be at most {MAX_REFINE_STEPS}, got {refine_steps}")
    torch_device = pick_device(device)
    dtype = pick_dtype(torch_device, precision)
    model = load_weights(resolve_weights(weights), torch_device)
    levels = len(model.config.diffusion.steps_per_level)
    if steps < levels:
        raise HFDError(f"--steps must be at least {levels} (one per level), got {steps}")
    return Interpolator(model, torch_device, dtype, steps, ensemble, FlowRefinement(steps=refine_steps))
