"""hfdinterp: video frame interpolation with Hierarchical Flow Diffusion (HFD, CVPR 2025)."""

import os

# PyTorch's CPU threads (libgomp) spin at each barrier by default. When the cores are shared (with
# the video decoder and encoder threads, or anything else running), a spinning thread holds the core
# its partner needs, and this model's many small operations pay for it at every barrier: a 960×540
# pair took 3× as long on two busy cores. Sleeping threads cost little when the cores are free.
# Only before torch is first imported does this take effect; a value set by the user is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .errors import HFDError  # noqa: E402 - after the thread policy
from .inference.interpolator import Interpolator, load_interpolator
from .model import HFD, PRESETS, HFDConfig
from .model.weights import load_weights, save_weights

__version__ = "0.5.0"
__all__ = ["HFD", "HFDConfig", "HFDError", "Interpolator", "PRESETS", "load_interpolator", "load_weights",
           "save_weights", "__version__"]
