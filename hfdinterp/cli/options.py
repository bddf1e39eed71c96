"""The options several commands share, each defined once, and the groups that map them onto one object."""

from __future__ import annotations

import functools
import inspect
from typing import Annotated, Optional

import typer

# Options shared by `video` and `batch`: one definition, one help text.
FactorOption = Annotated[int, typer.Option("--factor", "-f", help="2, 4, 8 or 16: frames per source frame (recursive halving).")]
FpsOption = Annotated[Optional[str], typer.Option(help="Exact target rate instead of --factor: 60, 59.94, 60000/1001.")]
CodecOption = Annotated[str, typer.Option(help="libx264, libx265, libvpx-vp9, libsvtav1, prores_ks, ffv1 (or x264, x265, vp9, av1, prores).")]
CrfOption = Annotated[Optional[int], typer.Option(help="Quality for x264/x265/VP9/AV1 (lower is better; x264 default 18).")]
PresetOption = Annotated[Optional[str], typer.Option(help="Encoder speed preset (x264/x265: ultrafast … veryslow).")]
PixFmtOption = Annotated[Optional[str], typer.Option(help="Output pixel format (default: the input's, 10-bit kept).")]
LosslessOption = Annotated[bool, typer.Option(help="Lossless encoding.")]
NoAudioOption = Annotated[bool, typer.Option("--no-audio", help="Leave out audio and subtitle streams.")]
DropAlphaOption = Annotated[bool, typer.Option("--drop-alpha", help="Drop the input's alpha channel even where the "
                                               "output could carry it (VP9 in .webm/.mkv, ProRes 4444, qtrle, PNG, FFV1).")]
SceneThresholdOption = Annotated[float, typer.Option(help="Scene-cut score above which a pair is not interpolated; 0 turns it off.")]
CutFillOption = Annotated[str, typer.Option(help="Frames at a cut: hold (repeat the frame before) or blend.")]
BatchOption = Annotated[Optional[int], typer.Option(help="Pairs per model call (default: by frame size and device).")]
WeightsOption = Annotated[Optional[str], typer.Option("--weights", "-w", help="Weights file or known name (default: the bundled hfd-small).")]
DeviceOption = Annotated[str, typer.Option(help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.")]
PrecisionOption = Annotated[str, typer.Option(help="auto (half on CUDA, fp32 elsewhere), fp32, fp16 or bf16.")]
StepsOption = Annotated[int, typer.Option(help="DDIM steps in all, spread over the three levels (paper: 6).")]
SeedOption = Annotated[int, typer.Option(help="Seed of the diffusion noise (with --noise above 0); the same seed gives the same output.")]
NoiseOption = Annotated[float, typer.Option(help="Scale of the diffusion's sampling noise: 0 samples one deterministic path "
                                                 "from the prior's mean (ours); 1 is the paper's sampler, seeded by --seed.")]
EnsembleOption = Annotated[bool, typer.Option(help="Also sample the time-reversed pair's flow and average the two "
                                                   "(as RIFE's --ensemble); twice the flow-denoising work.")]
RefineOption = Annotated[int, typer.Option(help="Test-time photometric refinement of the sampled flow: Adam steps at most, "
                                               "fewer once a pair stops improving (0: the diffusion's flow as sampled).")]
FlowResolutionOption = Annotated[str, typer.Option(help="Scale of the frames the flow is sampled on, as RIFE's --scale: "
                                                        "auto (0.5 from 854×480 pixels up, else 1; halved again for a pair "
                                                        "whose quick look finds large motion) or a number from 0.25 to 1.")]


def option_group(name: str, options: dict, build):
    """Give a command the ``options`` (parameter name: (annotated type, default)), mapped once by
    ``build(**values)`` onto the one object it receives as the parameter ``name``."""
    def decorate(command):
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != name]
        added = [inspect.Parameter(option, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)
                 for option, (annotation, default) in options.items()]

        @functools.wraps(command)
        def wrapper(*args, **kwargs):
            return command(*args, **{name: build(**{option: kwargs.pop(option) for option in options})}, **kwargs)

        parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + added
        wrapper.__signature__ = inspect.Signature(parameters)
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        return wrapper
    return decorate


def inference_options(device_help: str | None = None):
    """--weights, --device, --precision, --steps, --ensemble, --refine-steps, --flow-resolution, --noise
    as one ``InferenceConfig``."""
    from ..inference.config import SAMPLING_NOISE, InferenceConfig

    device = DeviceOption if device_help is None else Annotated[str, typer.Option(help=device_help)]
    return option_group("inference", {
        "weights": (WeightsOption, None), "device": (device, "auto"), "precision": (PrecisionOption, "auto"),
        "steps": (StepsOption, 6), "ensemble": (EnsembleOption, False), "refine_steps": (RefineOption, InferenceConfig.refine_steps),
        "flow_resolution": (FlowResolutionOption, "auto"), "noise": (NoiseOption, SAMPLING_NOISE)},
        InferenceConfig)


def _encode_options(no_audio: bool, drop_alpha: bool, **options):
    from ..io.codecs import EncodeOptions

    return EncodeOptions(**options, audio=not no_audio, alpha=not drop_alpha)


encode_options = option_group("encode", {
    "codec": (CodecOption, "libx264"), "crf": (CrfOption, None), "preset": (PresetOption, None),
    "pix_fmt": (PixFmtOption, None), "lossless": (LosslessOption, False), "no_audio": (NoAudioOption, False),
    "drop_alpha": (DropAlphaOption, False)}, _encode_options)
