"""Frozen configuration of the network, one dataclass per box of the paper's figure.

Named presets are entries in ``PRESETS``; the config travels with the weights as JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from .levels import LEVELS


@dataclass(frozen=True)
class EncoderConfig:
    widths: tuple[int, ...] = (16, 24, 32, 48)  # channels at 1/2, 1/4, 1/8, 1/16


@dataclass(frozen=True)
class DenoiserConfig:
    width: int = 32  # U-Net channels at the level's own resolution
    mults: tuple[int, ...] = (1, 2, 2)  # channel multiplier per U-Net stage (len-1 downsamplings)
    time_dim: int = 64  # sinusoidal embedding size for the diffusion step and the target time
    corr_radius: int = 4  # local correlation of the two warped feature maps, ±radius feature pixels; 0: none
    # Ours: all-pairs matching at 1/16 gives the coarsest level its starting estimate (global_matching.py);
    # False is the paper's plain variant (and what files written before 0.6 hold).
    global_matching: bool = False
    # Ours: GMFlow-style transformer layers (self-attention in each frame, cross-attention to the other)
    # on the matcher's features before the all-pairs match; 0: the matcher's convolutional head alone.
    matching_layers: int = 0
    # Ours: full-resolution pixels per pixel of the all-pairs match: 16 (the coarsest level's grid) or
    # 8 (twice as fine: 4× the pixels, 16× the similarity; the prior is averaged to 1/16 for the start).
    matching_stride: int = 16
    # Ours: how the matches become the bilateral flow at τ. False: Super SloMo's approximation, both
    # frames' motion read at the pixel itself (what files written before it hold); True: where the motion
    # is large (global_matching.SPLAT_BEYOND), each frame's pixels carried forward to where they are at τ
    # (summation splatting), so a small object that moves farther than its own size gets its motion
    # where it is at τ, not the background's.
    prior_splatting: bool = False

    def __post_init__(self):
        if self.matching_stride not in (8, 16):
            raise ValueError(f"matching_stride must be 8 or 16, got {self.matching_stride}")


@dataclass(frozen=True)
class DiffusionConfig:
    train_steps: int = 1000  # T
    beta_start: float = 1e-4
    beta_end: float = 0.02
    steps_per_level: tuple[int, ...] = (2, 2, 2)  # DDIM steps at 1/16, 1/8, 1/4: 6 in all
    flow_scale: float = 32.0  # full-resolution pixels per unit of diffused flow


@dataclass(frozen=True)
class SynthesizerConfig:
    widths: tuple[int, ...] = (16, 24, 32, 48)  # decoder channels at 1/2, 1/4, 1/8, 1/16
    # How the two frames are warped for the output frame: "cubic" (Catmull–Rom) or "bilinear".
    # Training stages may override it (train.stages.Stage.output_warp).
    image_warp: str = "cubic"

    def __post_init__(self):
        if self.image_warp not in ("cubic", "bilinear"):
            raise ValueError(f"image_warp must be 'cubic' or 'bilinear', got {self.image_warp!r}")


@dataclass(frozen=True)
class HFDConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    synthesizer: SynthesizerConfig = field(default_factory=SynthesizerConfig)

    @property
    def pad_multiple(self) -> int:
        """Input sides are padded to this: 1/16 for the pyramid, times the U-Net's downsamplings."""
        return LEVELS.stride * 2 ** (len(self.denoiser.mults) - 1)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "HFDConfig":
        raw = json.loads(text)
        return cls(
            encoder=EncoderConfig(**_tuples(raw["encoder"])),
            denoiser=DenoiserConfig(**_tuples(raw["denoiser"])),
            diffusion=DiffusionConfig(**_tuples(raw["diffusion"])),
            # Files written before 0.5 have no image_warp: they were made, and measured, with bilinear.
            synthesizer=SynthesizerConfig(**{"image_warp": "bilinear", **_tuples(raw["synthesizer"])}),
        )


def _tuples(section: dict) -> dict:
    return {key: tuple(value) if isinstance(value, list) else value for key, value in section.items()}


PRESETS: dict[str, HFDConfig] = {
    # Meant for a CPU: what ships in weights/ and what every command uses by default. With the global
    # matcher since the bundled file has one (weights/README.md, "Global matching on the bundled file"),
    # its large motion splatted (weights/README.md, "Splatting the prior").
    "small": HFDConfig(denoiser=DenoiserConfig(global_matching=True, prior_splatting=True)),
    # Sized like the paper's model (IFRNet-like encoder widths, a wider shared U-Net).
    "base": HFDConfig(
        encoder=EncoderConfig(widths=(32, 48, 72, 96)),
        denoiser=DenoiserConfig(width=96, mults=(1, 2, 2), time_dim=128, global_matching=True, prior_splatting=True),
        synthesizer=SynthesizerConfig(widths=(32, 48, 72, 96)),
    ),
    # For tests only: as small as the architecture allows.
    "tiny": HFDConfig(
        encoder=EncoderConfig(widths=(4, 6, 8, 8)),
        denoiser=DenoiserConfig(width=8, mults=(1, 2), time_dim=16, corr_radius=1),
        synthesizer=SynthesizerConfig(widths=(4, 6, 8, 8)),
    ),
}
