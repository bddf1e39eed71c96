"""The compute side of ``hfdinterp video``: windows of source frames in, (pixels, pts) out, in order.

Each window's new frames are padded and encoded once; the window's last frame carries its features
(and its scene-cut thumbnail) over to the next window. ``planner`` decides what each output frame is
and which model calls make it; this module runs those calls through the ``Interpolator``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch

from ..errors import HFDError
from ..inference.devices import batch_for_memory, is_out_of_memory
from ..inference.interpolator import Interpolator, PreparedFrames
from ..model.warp import carry_alpha
from .planner import CUT, SOURCE, Call, Planned, chunk_seeds, end_of, model_steps, timestamps, window_plan
from ..io.source import Frame, VideoInfo
from ..io.scenes import cut_scores, thumbnail
from ..io.timing import Schedule


@dataclass(frozen=True)
class EngineSettings:
    """What the engine needs of a request, decided once it is checked and the input is open."""

    batch: int  # pairs per model call (halved for the rest of the video on out-of-memory)
    depth: int | None  # recursive halvings (--factor), or None: exact times (--fps)
    target_rate: Fraction | None  # --fps
    factor: int  # --factor (ignored with --fps)
    seed: int
    scene_threshold: float  # 0: no detection
    cut_fill: str  # hold or blend


def auto_batch(interpolator: Interpolator, width: int, height: int) -> int:
    """Pairs per model call. On CUDA: from one pair's peak memory, measured by running one, and the free
    memory; elsewhere by frame size. Too many after all is caught: the engine halves on out-of-memory."""
    if interpolator.device.type == "cuda":
        pair = interpolator.pair_memory(width, height)
        free, _ = torch.cuda.mem_get_info(interpolator.device)
        return batch_for_memory(free, pair)
    return int(max(1, min(4, 600_000 // max(width * height, 1))))


class Engine:
    """Windows of frames in, (pixels, pts) out in presentation order."""

    def __init__(self, interpolator: Interpolator, settings: EngineSettings, info: VideoInfo, time_base: Fraction,
                 warn):
        self.interpolator, self.settings, self.batch = interpolator, settings, settings.batch
        self.rate, self.deep, self.size = info.rate, info.bit_depth > 8, f"{info.width}×{info.height}"
        self.time_base, self.warn = time_base, warn
        self.window: list[Frame] = []
        self.prepared: PreparedFrames | None = None  # features of window[0], carried over
        self.thumb: torch.Tensor | None = None
        self.origin: Fraction | None = None
        self.end_time: Fraction | None = None
        self.schedule: Schedule | None = None
        self.frames_in = self.frames_out = self.interpolated = self.cuts = 0
        self.last_pts: int | None = None

    # -- windows -------------------------------------------------------------------------------
    def push(self, frame: Frame) -> list:
        if self.origin is None:
            self.origin = frame.time
            settings = self.settings
            self.schedule = Schedule(factor=settings.factor if not settings.target_rate else None,
                                     rate=settings.target_rate, origin=frame.time)
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
            return self._emit(*self._hold_last())
        return self._process(final=True)

    def _hold_last(self) -> tuple[list[Planned], list[np.ndarray]]:
        """The plan of the stream's last frame when it is all that is left: itself, held to its end."""
        frame = self.window[0]
        self.end_time = end_of(frame.time, frame.duration, self.rate)
        plan = window_plan(self.schedule, self.frames_in - 1, [frame.time], self.end_time, [])
        self.window, self.prepared, self.thumb = [], None, None
        return plan, [frame.pixels] * len(plan)

    def _process(self, final: bool) -> list:
        frames = self.window
        count = len(frames)
        fresh = frames[0 if self.prepared is None else 1:]
        new = self.interpolator.prepare(self._tensors([f.pixels[..., :3] for f in fresh]))
        prepared = new if self.prepared is None else PreparedFrames.cat([self.prepared, new])
        thumbs = thumbnail(new.unpadded().float())
        thumbs = thumbs if self.thumb is None else torch.cat((self.thumb, thumbs))
        cuts = self._cuts(thumbs, count)
        if final:
            self.end_time = end_of(frames[-1].time, frames[-1].duration, self.rate)
        plan = window_plan(self.schedule, self.frames_in - count, [f.time for f in frames],
                           self.end_time if final else None, cuts)
        out = self._dispatch(plan, frames, prepared)
        if not final:
            self.window, self.prepared, self.thumb = frames[-1:], prepared[count - 1], thumbs[-1:]
        else:
            self.window, self.prepared, self.thumb = [], None, None
        return out

    def _tensors(self, arrays: list[np.ndarray]) -> torch.Tensor:
        """(H, W, C) uint8/uint16 arrays -> (B, C, H, W), uint8 or float in [0, 1]."""
        tensors = torch.from_numpy(np.stack(arrays).astype(np.int32 if self.deep else np.uint8)).permute(0, 3, 1, 2)
        return tensors.float() / 65535 if self.deep else tensors

    def _alphas(self, frames: list[Frame]) -> torch.Tensor | None:
        """The frames' alpha as (B, 1, H, W) floats on the model's device; None without alpha."""
        if frames[0].pixels.shape[2] < 4:
            return None
        return self.interpolator.to_device(self._tensors([f.pixels[..., 3:] for f in frames]))

    def _cuts(self, thumbs: torch.Tensor, count: int) -> list[bool]:
        """A scene cut between window frames i and i + 1, from their thumbnails."""
        threshold = self.settings.scene_threshold
        scores = cut_scores(thumbs.cpu()) if threshold > 0 else np.zeros(count - 1)
        cuts = [bool(s > threshold) for s in scores]
        self.cuts += sum(cuts)
        return cuts

    def _dispatch(self, plan: list[Planned], frames: list[Frame], prepared: PreparedFrames) -> list:
        """Synthesise the window's plan and emit it (``--devices``: on the next device, in order)."""
        return self._emit(plan, self._synthesise(plan, frames, prepared))

    def _emit(self, plan: list[Planned], results) -> list:
        kept, self.last_pts = timestamps(plan, self.time_base, self.last_pts)
        self.frames_out += len(kept)
        return [(results[n], pts) for n, pts in kept]

    # -- synthesis -----------------------------------------------------------------------------
    def _synthesise(self, plan: list[Planned], frames: list[Frame], prepared: PreparedFrames) -> list[np.ndarray]:
        results: list[np.ndarray | None] = [None] * len(plan)
        for n, planned in enumerate(plan):
            if planned.how == SOURCE:
                results[n] = frames[planned.interval].pixels
            elif planned.how == CUT:
                before = frames[planned.interval].pixels
                results[n] = before if self.settings.cut_fill == "hold" else _blend(
                    before, frames[planned.interval + 1].pixels, float(planned.tau))
        steps = model_steps(plan, self.settings.depth)
        for n, image in self._run(steps, prepared, self._alphas(frames) if steps else None).items():
            results[n] = image
            self.interpolated += 1
        return results

    def _run(self, steps: list[list[Call]], prepared: PreparedFrames, alphas: torch.Tensor | None) -> dict[int, np.ndarray]:
        """The planned calls, step by step, in batches; each new frame a later step reads is encoded once
        (and its alpha, if any, kept for it)."""
        intervals = sorted({call.interval for step in steps for call in step})
        known = {(i, Fraction(0)): prepared[i] for i in intervals}  # (interval, τ) -> its frame, prepared
        known.update({(i, Fraction(1)): prepared[i + 1] for i in intervals})
        known_alpha = {}  # (interval, τ) -> its (1, 1, H, W) alpha
        if alphas is not None:
            known_alpha.update({(i, Fraction(0)): alphas[i:i + 1] for i in intervals})
            known_alpha.update({(i, Fraction(1)): alphas[i + 1:i + 2] for i in intervals})
        pending = []  # (calls, frames on their way to the host): downloads overlap the next batch
        for step in steps:
            for start in range(0, len(step), self.batch):
                chunk = step[start:start + self.batch]
                first = PreparedFrames.cat([known[(call.interval, call.before)] for call in chunk])
                second = PreparedFrames.cat([known[(call.interval, call.after)] for call in chunk])
                times = torch.tensor([float(call.time) for call in chunk])
                out = self._between(first, second, times, [self._seed(index) for index in chunk_seeds(chunk)])
                if alphas is not None:
                    out["alpha"] = self._carry(torch.cat([known_alpha[(call.interval, call.before)] for call in chunk]),
                                               torch.cat([known_alpha[(call.interval, call.after)] for call in chunk]), out)
                if chunk[0].keep:
                    middles = self.interpolator.prepare_padded(out["padded"], first.padder)
                    known.update({(call.interval, call.tau): middles[n] for n, call in enumerate(chunk)})
                    if alphas is not None:
                        known_alpha.update({(call.interval, call.tau): out["alpha"][n:n + 1] for n, call in enumerate(chunk)})
                pending.append((chunk, self._download(out)))
        images = {}
        for chunk, downloaded in pending:
            images.update({call.output: image for call, image in zip(chunk, downloaded.get()) if call.output is not None})
        return images

    @torch.inference_mode()
    def _carry(self, alpha0: torch.Tensor, alpha1: torch.Tensor, out: dict) -> torch.Tensor:
        return carry_alpha(alpha0, alpha1, out["flow"], out["mask"])

    def _download(self, out: dict):
        """The frames of a ``between`` result to the host, with their alpha as a fourth channel if any."""
        images = out["image"] if "alpha" not in out else torch.cat((out["image"], out["alpha"]), dim=1)
        return self.interpolator.download(images, self.deep)

    def _seed(self, plan_index: int) -> int:
        return self.settings.seed * 1_000_003 + self.frames_out + plan_index

    def _between(self, first: PreparedFrames, second: PreparedFrames, times: torch.Tensor, seeds: list[int]) -> dict:
        """``interpolator.between``, halving the batch on out-of-memory (for this call and the rest of
        the video) down to one pair; seeds are per pair, so the frames are the same either way."""
        try:
            return self.interpolator.between(first, second, times, seeds)
        except RuntimeError as error:  # torch.OutOfMemoryError is a RuntimeError
            if not is_out_of_memory(error):
                raise
            if len(seeds) == 1:
                raise HFDError(f"out of memory on {self.interpolator.device} with one pair per batch at "
                               f"{self.size}") from None
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

def _blend(a: np.ndarray, b: np.ndarray, tau: float) -> np.ndarray:
    mixed = (1 - tau) * a.astype(np.float32) + tau * b.astype(np.float32)
    return np.rint(mixed).astype(a.dtype)
