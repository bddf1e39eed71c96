"""What ``hfdinterp video`` is asked for, and every check that needs nothing but the request, so bad
input fails before any work (no frame decoded, no model loaded, no file opened for writing)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from .. import limits
from ..errors import HFDError
from ..io.scenes import DEFAULT_THRESHOLD
from ..io.codecs import EncodeOptions, check_encode_options
from ..io.source import is_image_sequence
from ..io.timing import parse_rate, recursion_depth

CUT_FILLS = ("hold", "blend")


@dataclass
class VideoRequest:
    input: Path
    output: Path
    factor: int = 2
    fps: str | None = None  # exact target rate; replaces --factor
    input_fps: str | None = None  # for folders / patterns of frames
    batch: int | None = None  # pairs per model call; None = by frame size and device
    seed: int = 0
    scene_threshold: float = DEFAULT_THRESHOLD  # 0 turns detection off
    cut_fill: str = "hold"
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    overwrite: bool = False


def check_paths(request: VideoRequest) -> None:
    source, target = request.input, request.output
    if not source.exists():
        raise HFDError(f"{source}: no such file")
    if target.exists() and source.resolve() == target.resolve():
        raise HFDError(f"{target}: the output would overwrite the input")
    if target.is_dir() and not is_image_sequence(target):
        raise HFDError(f"{target}: is a directory")
    if target.is_file() and not request.overwrite:
        raise HFDError(f"{target}: exists already (use --overwrite to replace it)")
    parent = target.parent if not target.is_dir() else target
    if not parent.exists():
        raise HFDError(f"{parent}: output folder does not exist")
    if not os.access(parent, os.W_OK):
        raise HFDError(f"{parent}: output folder is not writable")


def check_request(request: VideoRequest) -> None:
    """Every check that needs nothing but the request, so bad input fails before any work."""
    check_paths(request)
    check_options(request)


def check_options(request: VideoRequest) -> None:
    """The options, against ``limits`` and the encoder (no paths: ``batch`` checks them once for all files)."""
    if request.cut_fill not in CUT_FILLS:
        raise HFDError(f"--cut-fill must be one of {', '.join(CUT_FILLS)}")
    if not 0 <= request.scene_threshold <= 1:  # also refuses NaN
        raise HFDError(f"--scene-threshold must lie in [0, 1] (scores do; 0 turns detection off), "
                       f"got {request.scene_threshold}")
    if request.batch is not None and not 1 <= request.batch <= limits.MAX_BATCH:
        raise HFDError(f"--batch must lie between 1 and {limits.MAX_BATCH}, got {request.batch}")
    if not 0 <= request.seed <= limits.MAX_SEED:
        raise HFDError(f"--seed must lie between 0 and {limits.MAX_SEED}, got {request.seed}")
    if request.fps is None:
        recursion_depth(request.factor)
    else:
        _check_rate("--fps", parse_rate(request.fps))
    if request.input_fps is not None:
        _check_rate("--input-fps", parse_rate(request.input_fps))
    check_encode_options(request.encode)


def _check_rate(option: str, rate: Fraction) -> None:
    if not limits.MIN_OUTPUT_RATE <= rate <= limits.MAX_OUTPUT_RATE:
        raise HFDError(f"{option} must lie between {limits.MIN_OUTPUT_RATE} and {limits.MAX_OUTPUT_RATE} fps, "
                       f"got {format_rate(rate)}")


def check_rates(rate_in: Fraction, rate_out: Fraction) -> None:
    """The output rate against the input's, once the input is open (see ``limits``)."""
    if rate_out > limits.MAX_OUTPUT_RATE:
        raise HFDError(f"the output would run at {float(rate_out):.6g} fps, above the largest output rate "
                       f"({limits.MAX_OUTPUT_RATE} fps); use a smaller --factor or --fps")
    if rate_out > limits.MAX_FACTOR * rate_in:
        raise HFDError(f"--fps {format_rate(rate_out)} is {float(rate_out / rate_in):.4g}× the input's "
                       f"{format_rate(rate_in)} fps; at most {limits.MAX_FACTOR}× is made")


def format_rate(rate: Fraction) -> str:
    return str(rate.numerator) if rate.denominator == 1 else f"{rate.numerator}/{rate.denominator}"
