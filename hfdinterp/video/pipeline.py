"""``hfdinterp video``: decode → pairs in batches → model → encode, overlapped and streaming.

Three stages joined by bounded queues (``runner``), so memory stays flat whatever the length:
  reader  — PyAV demux/decode, RGB conversion; audio/subtitle packets passed along in order
  compute — (this thread) scene cuts, batches of pairs through the model, recursive halving
            (``executor``, which follows the pure ``planner``)
  writer  — RGB → the output's pixel format, encode, mux (and the copied packets)
"""

from __future__ import annotations

import errno
import time as clock
from dataclasses import asdict, dataclass
from typing import Callable

import av

from ..errors import HFDError
from ..inference.interpolator import Interpolator
from .executor import Engine, EngineSettings, auto_batch
from .request import VideoRequest, check_options, check_paths, check_rates, check_request, format_rate
from .runner import StageRunner
from ..io.codecs import alpha_refused
from ..io.sink import open_sink
from ..io.source import Passthrough, open_source
from ..io.timing import parse_rate, recursion_depth

__all__ = ["VideoProgress", "Summary", "VideoRequest", "check_options", "check_paths", "interpolate_video"]
Loader = Interpolator | list[Interpolator] | Callable[[], Interpolator | list[Interpolator]]


@dataclass
class Summary:
    input: str
    output: str
    frames_in: int
    frames_out: int
    interpolated: int
    rate_in: str
    rate_out: str
    duration_in: float
    duration_out: float
    scene_cuts: int
    seconds: float
    frames_per_second: float
    width: int
    height: int
    warnings: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class VideoProgress:
    frames_out: int
    total_out: int | None
    frames_per_second: float


def interpolate_video(interpolator: Loader, request: VideoRequest,
                      on_progress: Callable[[VideoProgress], None] | None = None,
                      on_warning: Callable[[str], None] | None = None) -> Summary:
    """Interpolate ``request.input`` into ``request.output``; ``interpolator`` may be a loader, called
    once the request is checked and the input is open (``--devices``: one interpolator per device)."""
    check_request(request)
    started = clock.time()
    warnings: list[str] = []

    def warn(message: str) -> None:
        if message not in warnings:
            warnings.append(message)
            if on_warning:
                on_warning(message)

    input_fps = parse_rate(request.input_fps) if request.input_fps else None
    target_rate = parse_rate(request.fps) if request.fps else None
    with open_source(request.input, input_fps, with_streams=request.encode.audio) as source:
        info = source.info
        for message in source.warnings:
            warn(message)
        alpha = info.has_alpha and _keep_alpha(source, request, warn)
        rate_out = target_rate or info.rate * request.factor
        check_rates(info.rate, rate_out)
        models = interpolator if isinstance(interpolator, (Interpolator, list)) else interpolator()
        models = models if isinstance(models, list) else [models]  # one per device
        time_base = (1 / target_rate) if target_rate else source.time_base / request.factor
        settings = _settings(request, target_rate, request.batch or auto_batch(models[0], info.width, info.height))
        estimated = _estimated_frames(info, request.factor, target_rate)
        sink = open_sink(request.output, info, rate_out, time_base, request.encode, request.overwrite, warn, alpha)
        runner = StageRunner(source.items(alpha), lambda item: _write(sink, item), 2 * settings.batch + 8,
                             2 * settings.batch * (request.factor if not target_rate else 3) + 8)
        try:  # from here on, whatever happens (a signal included), the partial output is removed
            runner.start()
            if len(models) == 1:
                engine = Engine(models[0], settings, info, time_base, warn)
            else:
                from .devices import ParallelEngine
                engine = ParallelEngine(models, settings, info, time_base, warn)
            for item in runner.inputs():
                if isinstance(item, Passthrough):
                    runner.output(item)
                    continue
                for out in engine.push(item):
                    runner.output(out)
                if on_progress:
                    speed = engine.frames_out / max(clock.time() - started, 1e-9)
                    on_progress(VideoProgress(engine.frames_out, estimated, speed))
            for out in engine.finish():
                runner.output(out)
            runner.finish()
            if engine.frames_in < 2:
                raise HFDError(f"{request.input}: has {engine.frames_in} frame(s); interpolation needs at least two")
            sink.commit()
        except BaseException as error:
            runner.abort()
            sink.abort()
            translated = _user_error(error, request)
            if translated is error:
                raise
            raise translated from None
        finally:
            runner.close()
    return _summary(request, info, engine, rate_out, target_rate, clock.time() - started, warnings, on_progress)


def _settings(request: VideoRequest, target_rate, batch: int) -> EngineSettings:
    return EngineSettings(batch=batch, depth=None if target_rate else recursion_depth(request.factor),
                          target_rate=target_rate, factor=request.factor, seed=request.seed,
                          scene_threshold=request.scene_threshold, cut_fill=request.cut_fill)


def _keep_alpha(source, request: VideoRequest, warn) -> bool:
    """Whether the input's alpha is read, interpolated and encoded; if not, a warning says why."""
    reason = alpha_refused(request.output, request.encode) or source.alpha_unreadable()
    if reason:
        warn(f"the input's alpha channel is dropped ({reason})")
    return reason is None


def _write(sink, item) -> None:
    if isinstance(item, Passthrough):
        sink.passthrough(item.packet)
    else:
        pixels, pts = item
        sink.write(pixels, pts)


def _estimated_frames(info, factor: int, target_rate) -> int | None:
    """Output frames, for the progress bar, when the container knows the input's length."""
    if not info.frame_count:
        return None
    if not target_rate:
        return info.frame_count * factor
    return int(info.duration * target_rate + 1) if info.duration else None


def _user_error(error: BaseException, request: VideoRequest) -> BaseException:
    """A full disk or an encoder's failure as one line; anything else as it is."""
    if getattr(error, "errno", None) == errno.ENOSPC:
        return HFDError(f"{request.output}: no space left on device; the partial output was removed, "
                        "the input is untouched")
    if isinstance(error, av.error.FFmpegError):
        return HFDError(f"encoding failed: {getattr(error, 'strerror', None) or error}")
    return error


def _summary(request, info, engine, rate_out, target_rate, elapsed, warnings, on_progress) -> Summary:
    speed = engine.frames_out / max(elapsed, 1e-9)
    if on_progress:
        on_progress(VideoProgress(engine.frames_out, engine.frames_out, speed))
    duration_in = float(engine.end_time - engine.origin) if engine.origin is not None else 0.0
    duration_out = float(engine.frames_out / rate_out) if not info.duration or target_rate else duration_in
    return Summary(
        input=str(request.input), output=str(request.output), frames_in=engine.frames_in,
        frames_out=engine.frames_out, interpolated=engine.interpolated, rate_in=format_rate(info.rate),
        rate_out=format_rate(rate_out), duration_in=duration_in, duration_out=duration_out, scene_cuts=engine.cuts,
        seconds=elapsed, frames_per_second=speed, width=info.width, height=info.height, warnings=warnings,
    )
