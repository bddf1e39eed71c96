"""HFD: Hierarchical Flow Diffusion for frame interpolation.

Conventions
  * images: RGB float in [0, 1], (B, 3, H, W), H and W divisible by ``config.pad_multiple``
    (``hfdinterp.inference.interpolator`` pads any size and crops back);
  * flow: bilateral, channels (f_τ→0 x, y, f_τ→1 x, y), in full-resolution pixels at every level;
    the diffusion works on flow / ``flow_scale``;
  * pyramid: entry 0..3 = 1/2, 1/4, 1/8, 1/16; diffusion levels 0, 1, 2 run 1/16 → 1/8 → 1/4 on entries
    3, 2, 1 (``levels.LEVELS``, the one statement of this geometry);
  * time τ in (0, 1): 0 is I0, 1 is I1; the paper's model is τ = 0.5;
  * precision: convolutions may run under autocast (half precision on GPUs); flows, the DDIM state,
    the noise and every warp are float32 always (``hfdinterp.inference.interpolator`` states the
    whole policy).

The network is the paper's and nothing else: the inference extras (the ensemble, the test-time flow
refinement) are steps of ``hfdinterp.inference`` applied to what ``sample_flows`` returns.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from .config import HFDConfig
from .denoiser import FlowDenoiser
from .diffusion import Denoise, sample_hierarchical
from .encoder import FeatureEncoder
from .global_matching import GlobalMatcher
from .levels import LEVELS
from .synthesizer import Synthesizer


class HFD(nn.Module):
    def __init__(self, config: HFDConfig):
        super().__init__()
        self.config = config
        widths = config.encoder.widths
        scale = config.diffusion.flow_scale
        self.encoder = FeatureEncoder(config.encoder)
        self.denoiser = FlowDenoiser(config.denoiser, tuple(widths[LEVELS.entry(level)] for level in range(LEVELS.count)), scale)
        self.synthesizer = Synthesizer(config.synthesizer, widths, scale)
        # Ours: a global matching prior as the coarsest level's starting estimate; None is the paper.
        options = config.denoiser  # the matcher's options live beside the denoiser it starts
        self.matcher = (GlobalMatcher(widths[LEVELS.coarsest - 1], widths[LEVELS.coarsest], layers=options.matching_layers,
                                      stride=options.matching_stride, splatting=options.prior_splatting)
                        if options.global_matching else None)

    def encode(self, image: torch.Tensor) -> list[torch.Tensor]:
        return self.encoder(image)

    def denoise_fn(self, features0, features1, time):
        """The callable the sampler sees: (x_t, t, level, estimate) -> x̂_0."""
        def denoise(x_t, step, level, estimate):
            k = LEVELS.entry(level)
            steps = torch.full((x_t.shape[0],), step, device=x_t.device)
            return self.denoiser(x_t, steps, level, estimate, features0[k], features1[k], time)
        return denoise

    def starting_estimate(self, features0, features1, time) -> torch.Tensor:
        """Where the coarsest level's sampling starts (scaled units, (B, 4, H/16, W/16)): the global
        matching prior, or zero flow as in the paper."""
        coarsest = features0[LEVELS.coarsest]
        if self.matcher is None:
            return coarsest.new_zeros(coarsest.shape[0], 4, *coarsest.shape[-2:], dtype=torch.float32)
        prior = self.matcher(features0, features1, time)  # float32, like every flow
        return prior / self.config.diffusion.flow_scale

    def sample_flows(self, features0, features1, time, generator=None, steps_per_level=None,
                     wrap: Callable[[Denoise], Denoise] | None = None, levels: int | None = None,
                     noise: float = 1.0) -> list[torch.Tensor]:
        """Bilateral flow at 1/16, 1/8, 1/4 in full-resolution pixels, by coarse-to-fine DDIM.

        ``wrap`` wraps the denoiser callable the sampler sees (training truncates gradients with it);
        ``levels``: stop after that many levels (the motion probe looks at 1/16 only); ``noise``: the
        scale of the sampling noise (1: the paper's sampler; 0: deterministic, ``sample_hierarchical``)."""
        coarsest = features0[LEVELS.coarsest]
        batch, _, height, width = coarsest.shape
        denoise = self.denoise_fn(features0, features1, time)
        x0 = sample_hierarchical(
            denoise if wrap is None else wrap(denoise), (batch, 4, height, width), self.config.diffusion,
            generator=generator, steps_per_level=steps_per_level, device=coarsest.device,
            start_estimate=self.starting_estimate(features0, features1, time), levels=levels, noise=noise,
        )  # float32 whatever the features' precision
        return [x * self.config.diffusion.flow_scale for x in x0]

    def forward(
        self,
        image0: torch.Tensor,  # (B, 3, H, W)
        image1: torch.Tensor,
        time: torch.Tensor,  # (B,) τ
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        steps_per_level: Sequence[int] | None = None,
    ) -> dict[str, torch.Tensor]:
        """The paper's figure: encode both frames, sample the bilateral flow coarse to fine, synthesize."""
        features0, features1 = self.encode(image0), self.encode(image1)  # F^1..F^4 each, 1/2 … 1/16
        flows = self.sample_flows(features0, features1, time, generator, steps_per_level)  # 1/16, 1/8, 1/4
        return self.synthesizer(image0, image1, features0, features1, flows, time)  # image (B, 3, H, W), …
