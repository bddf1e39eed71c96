"""hfdinterp: video frame interpolation with Hierarchical Flow Diffusion (HFD, CVPR 2025)."""

from .config import PRESETS, HFDConfig
from .errors import HFDError
from .interpolate import Interpolator, load_interpolator
from .model import HFD
from .weights_file import load_weights, save_weights

__version__ = "0.5.0"
__all__ = ["HFD", "HFDConfig", "HFDError", "Interpolator", "PRESETS", "load_interpolator", "load_weights",
           "save_weights", "__version__"]
