"""The hierarchy, stated once: the encoder's pyramid and the diffusion levels that run on it.

    pyramid entry p        0      1      2      3
    resolution            1/2    1/4    1/8    1/16
    diffusion level ℓ             2      1      0       (sampled coarse to fine: 1/16 → 1/8 → 1/4)

Flows are in full-resolution pixels at every level; a scale is how many full-resolution pixels one
feature pixel spans, which is what a warp at that resolution divides the flow by.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Levels:
    scales: tuple[int, ...] = (2, 4, 8, 16)  # full-resolution pixels per feature pixel of pyramid entry 0..3
    diffusion: tuple[int, ...] = (3, 2, 1)  # the pyramid entry of each diffusion level, coarse to fine

    @property
    def count(self) -> int:
        """How many diffusion levels there are."""
        return len(self.diffusion)

    def entry(self, level: int) -> int:
        """The pyramid entry that diffusion level ``level`` works on."""
        return self.diffusion[level]

    def scale(self, level: int) -> int:
        """Full-resolution pixels per feature pixel at diffusion level ``level``: 16, 8, 4."""
        return self.scales[self.diffusion[level]]

    @property
    def level_scales(self) -> tuple[int, ...]:
        return tuple(self.scale(level) for level in range(self.count))

    @property
    def coarsest(self) -> int:
        """The pyramid entry of the coarsest level (1/16), where sampling starts."""
        return self.diffusion[0]

    @property
    def stride(self) -> int:
        """The coarsest entry's scale: input sides must divide by it (before the U-Net's own downsamplings)."""
        return self.scales[-1]


LEVELS = Levels()
