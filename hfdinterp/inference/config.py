"""How to run the model, frozen: what every command's inference options map to, once."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import HFDError
from ..limits import MAX_REFINE_STEPS, MAX_SAMPLING_NOISE, MAX_STEPS
from .flow_resolution import parse_flow_resolution
from .refinement import FlowRefinement

# Ours: the scale of the diffusion's sampling noise by default (model/diffusion.py, sample_hierarchical).
# 0 samples one deterministic path from the prior's mean; measured against the paper's 1 on the bundled
# file (weights/README.md, "Sampling noise"): higher PSNR on every real set, in both settings.
SAMPLING_NOISE = 0.0


@dataclass(frozen=True)
class InferenceConfig:
    weights: str | None = None  # a path or a known name; None: the bundled weights
    device: str = "auto"  # auto: CUDA, then MPS, then the CPU
    precision: str = "auto"  # auto: half on CUDA, fp32 elsewhere
    steps: int = 6  # DDIM steps in all, spread over the levels (the paper's 6)
    ensemble: bool = False  # also sample the time-reversed pair's flow and average the two
    refine_steps: int = FlowRefinement.steps  # test-time flow refinement, Adam steps at most; 0: off
    flow_resolution: str | float = "auto"  # scale of the frames the flow is sampled on; auto: by frame size and motion
    noise: float = SAMPLING_NOISE  # scale of the sampling noise: 0 deterministic, 1 the paper's sampler

    def check(self) -> None:
        """The bounds that need no weights (the least number of steps is the model's number of levels)."""
        if self.steps > MAX_STEPS:
            raise HFDError(f"--steps must be at most {MAX_STEPS}, got {self.steps}")
        if self.refine_steps < 0:
            raise HFDError(f"--refine-steps must be 0 or more, got {self.refine_steps}")
        if self.refine_steps > MAX_REFINE_STEPS:
            raise HFDError(f"--refine-steps must be at most {MAX_REFINE_STEPS}, got {self.refine_steps}")
        if not 0 <= self.noise <= MAX_SAMPLING_NOISE:
            raise HFDError(f"--noise must be from 0 to {MAX_SAMPLING_NOISE:g}, got {self.noise!r}")
        parse_flow_resolution(self.flow_resolution)
