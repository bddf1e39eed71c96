"""The paper's network and nothing else: encoder, flow denoiser, diffusion sampler, synthesizer, warps,
the level geometry and the config; ``weights`` is its file format (safetensors, config inside)."""

from .config import PRESETS, HFDConfig
from .hfd import HFD
from .levels import LEVELS

__all__ = ["HFD", "HFDConfig", "LEVELS", "PRESETS"]
