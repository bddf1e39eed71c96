"""hfdinterp: video frame interpolation with Hierarchical Flow Diffusion (HFD, CVPR 2025)."""

import os

from .thread_policy import choose_thread_policy

# Only before torch is first imported does this take effect (thread_policy.py); the user's choice stands.
choose_thread_policy(os.environ)

from .errors import HFDError  # noqa: E402 - after the thread policy
from .inference.interpolator import Interpolator, load_interpolator
from .model import HFD, PRESETS, HFDConfig
from .model.weights import load_weights, save_weights

__version__ = "0.5.0"
__all__ = ["HFD", "HFDConfig", "HFDError", "Interpolator", "PRESETS", "load_interpolator", "load_weights",
           "save_weights", "__version__"]
