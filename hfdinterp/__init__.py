"""hfdinterp: video frame interpolation with Hierarchical Flow Diffusion (HFD, CVPR 2025)."""

from .errors import HFDError
from .inference.interpolator import Interpolator, load_interpolator
from .model import HFD, PRESETS, HFDConfig
from .model.weights import load_weights, save_weights

__version__ = "0.5.0"
__all__ = ["HFD", "HFDConfig", "HFDError", "Interpolator", "PRESETS", "load_interpolator", "load_weights",
           "save_weights", "__version__"]
