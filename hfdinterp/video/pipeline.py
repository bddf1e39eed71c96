"""``hfdinterp video``: decode → pairs in batches → model → encode, overlapped and streaming.

Three threads joined by bounded queues, so memory stays flat whatever the length:
  reader  — PyAV demux/decode, RGB conversion; audio/subtitle packets passed along in order
  compute — (this thread) scene cuts, batches of pairs through the model, recursive halving
  writer  — RGB → the output's pixel format, encode, mux (and the copied packets)

Each source frame is padded and encoded by the network once, in the window it arrives in, and the
window's last frame carries its features over to the next window.
"""

from __future__ import annotations

import errno
import os
import queue
import threading
import time as clock
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import numpy as np
import torch

from .. import limits
from ..errors import HFDError
from ..interpolate import Interpolator, Prepared, batch_for_memory, is_out_of_memory
from ..warp import carry_alpha
from .scenes import DEFAULT_THRESHOLD, cut_scores, thumbnail
from .sink import EncodeOptions, alpha_refused, check_encode_options, open_sink
from .source import Frame, Passthrough, is_image_sequence, open_source
from .timing import OutputFrame, Schedule, parse_rate, recursion_depth

CUT_FILLS = ("hold", "blend")
_END = object()


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
class Progress:
    frames_out: int
    total_out: int | None
    frames_per_second: float


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
                       f"got {_rate(rate)}")


def check_rates(rate_in: Fraction, rate_out: Fraction) -> None:
    """The output rate against the input's, once the input is open (see ``limits``)."""
    if rate_out > limits.MAX_OUTPUT_RATE:
        raise HFDError(f"the output would run at {float(rate_out):.6g} fps, above the largest output rate "
                       f"({limits.MAX_OUTPUT_RATE} fps); use a smaller --factor or --fps")
    if rate_out > limits.MAX_FACTOR * rate_in:
        raise HFDError(f"--fps {_rate(rate_out)} is {float(rate_out / rate_in):.4g}× the input's "
                       f"{_rate(rate_in)} fps; at most {limits.MAX_FACTOR}× is made")


def auto_batch(interpolator: Interpolator, width: int, height: int) -> int:
    """Pairs per model call. On CUDA: from one pair's peak memory, measured by running one, and the free
    memory; elsewhere by frame size. Too many after all is caught: the engine halves on out-of-memory."""
    if interpolator.device.type == "cuda":
        pair = interpolator.pair_memory(width, height)
        free, _ = torch.cuda.mem_get_info(interpolator.device)
        return batch_for_memory(free, pair)
    return int(max(1, min(4, 600_000 // max(width * height, 1))))


class _Threaded:
    """A worker thread that reports its exception to the compute thread."""

    def __init__(self, target):
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(target,), daemon=True)

    def _run(self, target):
        try:
            target()
        except BaseException as error:  # noqa: BLE001 - handed to the compute thread and raised there
            self.error = error


def _put(q: queue.Queue, item, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def interpolate_video(interpolator: Interpolator | list[Interpolator] | Callable[[], Interpolator | list[Interpolator]],
                      request: VideoRequest,
                      on_progress: Callable[[Progress], None] | None = None,
                      on_warning: Callable[[str], None] | None = None) -> Summary:
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
    depth = None if target_rate else recursion_depth(request.factor)

    with open_source(request.input, input_fps, with_streams=request.encode.audio) as source:
        info = source.info
        for message in source.warnings:
            warn(message)
        alpha = info.has_alpha and _keep_alpha(source, request, warn)
        rate_out = target_rate or info.rate * request.factor
        check_rates(info.rate, rate_out)
        if not isinstance(interpolator, (Interpolator, list)):
            interpolator = interpolator()
        models = interpolator if isinstance(interpolator, list) else [interpolator]  # one per device
        interpolator = models[0]
        time_base = (1 / target_rate) if target_rate else source.time_base / request.factor
        batch = request.batch or auto_batch(interpolator, info.width, info.height)
        estimated = None
        if info.frame_count:
            estimated = info.frame_count * request.factor if not target_rate else (
                int(info.duration * target_rate + 1) if info.duration else None)

        stop = threading.Event()
        decoded: queue.Queue = queue.Queue(maxsize=2 * batch + 8)
        encoded: queue.Queue = queue.Queue(maxsize=2 * batch * (request.factor if not target_rate else 3) + 8)

        def read():
            for item in source.items(alpha):
                if stop.is_set():
                    return
                _put(decoded, item, stop)
            _put(decoded, _END, stop)

        written = {"count": 0}

        def write():
            while True:
                item = encoded.get()
                if item is _END:
                    return
                if isinstance(item, Passthrough):
                    sink.passthrough(item.packet)
                else:
                    pixels, pts = item
                    sink.write(pixels, pts)
                    written["count"] += 1

        reader, writer = _Threaded(read), _Threaded(write)
        sink = open_sink(request.output, info, rate_out, time_base, request.encode, request.overwrite, warn, alpha)
        try:  # from here on, whatever happens (a signal included), the partial output is removed
            reader.thread.start()
            writer.thread.start()
            if len(models) == 1:
                engine = _Engine(interpolator, request, info, batch, depth, target_rate, time_base, warn)
            else:
                from .devices import ParallelEngine
                engine = ParallelEngine(models, request, info, batch, depth, target_rate, time_base, warn)

            def emit(item) -> None:
                while True:
                    if writer.error:
                        raise writer.error
                    try:
                        encoded.put(item, timeout=0.1)
                        return
                    except queue.Full:
                        continue

            while True:
                try:
                    item = decoded.get(timeout=0.1)
                except queue.Empty:
                    if reader.error:
                        raise reader.error
                    if not reader.thread.is_alive() and decoded.empty():
                        raise reader.error or HFDError("the reader stopped unexpectedly")
                    continue
                if item is _END:
                    break
                if isinstance(item, Passthrough):
                    emit(item)
                    continue
                for out in engine.push(item):
                    emit(out)
                if on_progress:
                    elapsed = max(clock.time() - started, 1e-9)
                    on_progress(Progress(engine.frames_out, estimated, engine.frames_out / elapsed))
            for out in engine.finish():
                emit(out)
            emit(_END)
            writer.thread.join()
            if writer.error:
                raise writer.error
            if engine.frames_in < 2:
                raise HFDError(f"{request.input}: has {engine.frames_in} frame(s); interpolation needs at least two")
            sink.commit()
        except BaseException as error:
            stop.set()
            _drain(encoded)
            encoded.put(_END) if not encoded.full() else None
            if writer.thread.ident is not None:
                writer.thread.join(timeout=5)
            sink.abort()
            if getattr(error, "errno", None) == errno.ENOSPC:
                raise HFDError(f"{request.output}: no space left on device; the partial output was removed, "
                               "the input is untouched") from None
            if isinstance(error, av.error.FFmpegError):
                raise HFDError(f"encoding failed: {getattr(error, 'strerror', None) or error}") from None
            raise
        finally:
            stop.set()
            _drain(decoded)
            if reader.thread.ident is not None:
                reader.thread.join(timeout=5)

    elapsed = clock.time() - started
    if on_progress:
        on_progress(Progress(engine.frames_out, engine.frames_out, engine.frames_out / max(elapsed, 1e-9)))
    duration_in = float(engine.end_time - engine.origin) if engine.origin is not None else 0.0
    return Summary(
        input=str(request.input), output=str(request.output), frames_in=engine.frames_in,
        frames_out=engine.frames_out, interpolated=engine.interpolated, rate_in=_rate(info.rate),
        rate_out=_rate(rate_out), duration_in=duration_in, duration_out=float(engine.frames_out / rate_out)
        if not info.duration or target_rate else duration_in, scene_cuts=engine.cuts, seconds=elapsed,
        frames_per_second=engine.frames_out / max(elapsed, 1e-9), width=info.width, height=info.height,
        warnings=warnings,
    )


def _keep_alpha(source, request: VideoRequest, warn) -> bool:
    """Whether the input's alpha is read, interpolated and encoded; if not, a warning says why."""
    reason = alpha_refused(request.output, request.encode) or source.alpha_unreadable()
    if reason:
        warn(f"the input's alpha channel is dropped ({reason})")
    return reason is None


def _rate(rate: Fraction) -> str:
    return str(rate.numerator) if rate.denominator == 1 else f"{rate.numerator}/{rate.denominator}"


def _drain(q: queue.Queue) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return


class _Engine:
    """The compute side: windows of frames in, (pixels, pts) out in presentation order."""

    def __init__(self, interpolator: Interpolator, request: VideoRequest, info, batch: int, depth: int | None,
                 target_rate: Fraction | None, time_base: Fraction, warn):
        self.interpolator, self.request, self.info = interpolator, request, info
        self.batch, self.depth, self.time_base = batch, depth, time_base
        self.target_rate, self.warn = target_rate, warn
        self.deep = info.bit_depth > 8
        self.window: list[Frame] = []
        self.prepared: Prepared | None = None  # features of window[0], carried over
        self.thumb: torch.Tensor | None = None
        self.origin: Fraction | None = None
        self.end_time: Fraction | None = None
        self.schedule: Schedule | None = None
        self.frames_in = self.frames_out = self.interpolated = self.cuts = 0
        self.last_pts = None

    # -- windows -------------------------------------------------------------------------------
    def push(self, frame: Frame) -> list:
        if self.origin is None:
            self.origin = frame.time
            self.schedule = Schedule(factor=self.request.factor if not self.target_rate else None,
                                     rate=self.target_rate, origin=frame.time)
        if self.window and frame.time <= self.window[-1].time:
            return []  # a duplicate or out-of-order timestamp: drop it, keep time monotonic
        self.frames_in += 1
        self.window.append(frame)
        if len(self.window) <= self.batch:
            return []
        return self._process(final=False)

    def finish(self) -> list:
        if not self.window:
            return []
        if self.prepared is not None and len(self.window) == 1:  # only the carried frame: hold it
            frame = self.window[0]
            self.end_time = frame.time + (frame.duration or 1 / self.info.rate)
            plan = self.schedule.interval(self.frames_in - 1, frame.time, self.end_time, True)
            return self._emit([(0, o) for o in plan], [frame.pixels] * len(plan))
        return self._process(final=True)

    def _process(self, final: bool) -> list:
        frames = self.window
        count = len(frames)
        fresh = frames[0 if self.prepared is None else 1:]
        new = self.interpolator.prepare(self._tensors([f.pixels[..., :3] for f in fresh]))
        prepared = new if self.prepared is None else Prepared.cat([self.prepared, new])
        # scene-cut scores between consecutive frames of the window
        padder = self.interpolator.padder
        thumbs = thumbnail(padder.unpad(new.images).float())
        thumbs = thumbs if self.thumb is None else torch.cat((self.thumb, thumbs))
        scores = cut_scores(thumbs.cpu()) if self.request.scene_threshold > 0 else np.zeros(count - 1)
        cuts = [bool(s > self.request.scene_threshold) for s in scores]
        self.cuts += sum(cuts)

        pairs = count if final else count - 1  # intervals handled now (the last one, if final, holds)
        plan: list[tuple[int, OutputFrame]] = []
        for i in range(pairs):
            last = final and i == count - 1
            start = frames[i].time
            end = frames[i + 1].time if not last else start + (frames[i].duration or 1 / self.info.rate)
            plan += [(i, o) for o in self.schedule.interval(self.frames_in - count + i, start, end, last)]
        if final:
            self.end_time = frames[-1].time + (frames[-1].duration or 1 / self.info.rate)
        out = self._dispatch(plan, frames, prepared, cuts)
        if not final:
            self.window = frames[-1:]
            self.prepared = prepared[count - 1]
            self.thumb = thumbs[-1:]
        else:
            self.window, self.prepared, self.thumb = [], None, None
        return out

    def _dispatch(self, plan, frames: list[Frame], prepared: Prepared, cuts: list[bool]) -> list:
        """Synthesise the window's plan and emit it (``--devices``: on the next device, in order)."""
        return self._emit(plan, self._synthesise(plan, frames, prepared, cuts))

    def _emit(self, plan, results) -> list:
        out = []
        for (i, o), pixels in zip(plan, results):
            pts = round((o.time) / self.time_base)
            if self.last_pts is not None and pts <= self.last_pts:
                continue  # rounding collision on a very fine clock: never write a non-increasing pts
            self.last_pts = pts
            out.append((pixels, pts))
            self.frames_out += 1
        return out

    # -- synthesis -----------------------------------------------------------------------------
    def _tensors(self, arrays: list[np.ndarray]) -> torch.Tensor:
        """(H, W, C) uint8/uint16 arrays -> (B, C, H, W), uint8 or float in [0, 1]."""
        tensors = torch.from_numpy(np.stack(arrays).astype(np.int32 if self.deep else np.uint8)).permute(0, 3, 1, 2)
        return tensors.float() / 65535 if self.deep else tensors

    def _alphas(self, frames: list[Frame]) -> torch.Tensor | None:
        """The frames' alpha as (B, 1, H, W) floats on the model's device; None without alpha."""
        if frames[0].pixels.shape[2] < 4:
            return None
        return self.interpolator.to_device(self._tensors([f.pixels[..., 3:] for f in frames]))

    def _seed(self, plan_index: int) -> int:
        return self.request.seed * 1_000_003 + self.frames_out + plan_index

    def _between(self, first: Prepared, second: Prepared, times: torch.Tensor, seeds: list[int]) -> dict:
        """``interpolator.between``, halving the batch on out-of-memory (for this call and the rest of
        the video) down to one pair; seeds are per pair, so the frames are the same either way."""
        try:
            return self.interpolator.between(first, second, times, seeds)
        except RuntimeError as error:  # torch.OutOfMemoryError is a RuntimeError
            if not is_out_of_memory(error):
                raise
            if len(seeds) == 1:
                raise HFDError(f"out of memory on {self.interpolator.device} with one pair per batch at "
                               f"{self.info.width}×{self.info.height}") from None
        self.interpolator.release_memory()
        half = len(seeds) // 2
        self.batch = min(self.batch, half)
        self.warn(f"out of memory with {len(seeds)} pairs per batch: continuing with {half}")
        parts, start = [], 0
        while start < len(seeds):  # in chunks of the batch that fits, which a failing chunk shrinks again
            index = slice(start, start + self.batch)
            parts.append(self._between(first[index], second[index], times[index], seeds[index]))
            start = index.stop
        return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}

    def _synthesise(self, plan, frames: list[Frame], prepared: Prepared, cuts: list[bool]) -> list[np.ndarray]:
        results: list[np.ndarray | None] = [None] * len(plan)
        jobs = []
        for n, (i, o) in enumerate(plan):
            if o.tau == 0:
                results[n] = frames[i].pixels
            elif cuts[i]:
                results[n] = frames[i].pixels if self.request.cut_fill == "hold" else self._blend(
                    frames[i].pixels, frames[i + 1].pixels, float(o.tau))
            else:
                jobs.append((n, i, o.tau))
        if not jobs:
            return results
        alphas = self._alphas(frames)
        if self.depth is not None:
            images = self._recursive(jobs, prepared, alphas)
        else:
            images = {}
            pending = []  # downloads overlap the next chunk's compute
            for chunk in range(0, len(jobs), self.batch):
                part = jobs[chunk:chunk + self.batch]
                first = Prepared.cat([prepared[i] for _, i, _ in part])
                second = Prepared.cat([prepared[i + 1] for _, i, _ in part])
                times = torch.tensor([float(tau) for _, _, tau in part])
                out = self._between(first, second, times, [self._seed(n) for n, _, _ in part])
                if alphas is not None:
                    ends = [i for _, i, _ in part]
                    out["alpha"] = self._carry(alphas[ends], alphas[[i + 1 for i in ends]], out)
                pending.append(([n for n, _, _ in part], self._download(out)))
            for numbers, frames in pending:
                images.update(zip(numbers, frames.get()))
        for n, image in images.items():
            results[n] = image
            self.interpolated += 1
        return results

    @torch.inference_mode()
    def _carry(self, alpha0: torch.Tensor, alpha1: torch.Tensor, out: dict) -> torch.Tensor:
        return carry_alpha(alpha0, alpha1, out["flow"], out["mask"])

    def _download(self, out: dict):
        """The frames of a ``between`` result to the host, with their alpha as a fourth channel if any."""
        images = out["image"] if "alpha" not in out else torch.cat((out["image"], out["alpha"]), dim=1)
        return self.interpolator.download(images, self.deep)

    def _recursive(self, jobs, prepared: Prepared, alphas: torch.Tensor | None = None) -> dict[int, np.ndarray]:
        """Recursive halving, level by level across all pairs of the window: τ = 1/2, then 1/4 and
        3/4 from the new middles, and so on. Each new frame is encoded once for the next level, and
        its alpha (if any) kept for it."""
        factor = 2 ** self.depth
        wanted = {(i, Fraction(tau)): n for n, i, tau in jobs}
        pairs = sorted({i for _, i, _ in jobs})
        # known[(i, τ)] = Prepared of the frame at τ inside interval i; τ = 0 and 1 are the sources
        known: dict[tuple[int, Fraction], Prepared] = {}
        known_alpha: dict[tuple[int, Fraction], torch.Tensor] = {}  # (1, 1, H, W) alongside
        for i in pairs:
            known[(i, Fraction(0))] = prepared[i]
            known[(i, Fraction(1))] = prepared[i + 1]
            if alphas is not None:
                known_alpha[(i, Fraction(0))], known_alpha[(i, Fraction(1))] = alphas[i:i + 1], alphas[i + 1:i + 2]
        pending = []  # (keys, frames on their way to the host): downloads overlap the next chunk
        for level in range(1, self.depth + 1):
            step = Fraction(1, 2 ** level)
            targets = [(i, step * (2 * k + 1)) for i in pairs for k in range(2 ** (level - 1))]
            for chunk in range(0, len(targets), self.batch):
                part = targets[chunk:chunk + self.batch]
                first = Prepared.cat([known[(i, tau - step)] for i, tau in part])
                second = Prepared.cat([known[(i, tau + step)] for i, tau in part])
                seeds = [self._seed(wanted.get((i, tau), 10_000 + n)) for n, (i, tau) in enumerate(part)]
                out = self._between(first, second, torch.full((len(part),), 0.5), seeds)
                if alphas is not None:
                    out["alpha"] = self._carry(torch.cat([known_alpha[(i, tau - step)] for i, tau in part]),
                                               torch.cat([known_alpha[(i, tau + step)] for i, tau in part]), out)
                if level < self.depth:
                    middles = self.interpolator.prepare_padded(out["padded"])
                    for n, key in enumerate(part):
                        known[key] = middles[n]
                        if alphas is not None:
                            known_alpha[key] = out["alpha"][n:n + 1]
                pending.append((part, self._download(out)))
        images: dict[int, np.ndarray] = {}
        for part, frames in pending:
            for key, image in zip(part, frames.get()):
                if key in wanted and key[1].denominator <= factor:
                    images[wanted[key]] = image
        return images

    def _blend(self, a: np.ndarray, b: np.ndarray, tau: float) -> np.ndarray:
        mixed = (1 - tau) * a.astype(np.float32) + tau * b.astype(np.float32)
        return np.rint(mixed).astype(a.dtype)
