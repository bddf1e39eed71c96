"""How to run the model, frozen: what every command's inference options map to, once."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import HFDError
from ..limits import MAX_REFINE_STEPS, MAX_STEPS
from .flow_resolution import parse_flow_resolution
from .refinement import FlowRefinement


@dataclass(frozen=True)
class InferenceConfig:
    weights: str | None = None  # a path or a known name; None: the bundled weights
    device: str = "auto"  # auto: CUDA, then MPS, then the CPU
    precision: str = "auto"  # auto: half on CUDA, fp32 elsewhere
    steps: int = 6  # DDIM steps in all, spread over the levels (the paper's 6)
    ensemble: bool = False  # also sample the time-reversed pair's flow and average the two
    refine_steps: int = FlowRefinement.steps  # test-time flow refinement, Adam steps at most; 0: off
    flow_resolution: str | float = "auto"  # scale of the frames the flow is sampled on; auto: by frame size and motion

    def check(self) -> None:
        """The bounds that need no weights (the least number of steps is the model's number of levels)."""
        if self.steps > MAX_STEPS:
            raise HFDError(f"--steps must be at most {MAX_STEPS}, got {self.steps}")
        if self.refine_steps < 0:
            raise HFDError(f"--refine-steps must be 0 or more, got {self.refine_steps}")
        if self.refine_steps > MAX_REFINE_STEPS:
            raise HFDError(f"--refine-steps must be at most {MAX_REFINE_STEPS}, got {self.refine_steps}")
        parse_flow_resolution(self.flow_resolution)
