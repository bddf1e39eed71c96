"""``hfdinterp video --devices``: one model per device, windows of the stream dealt out in turn.

The compute thread still walks the stream window by window: it encodes each window's new frames
on the window's device (the features of the frame a window shares with the one before travel to
it), finds the scene cuts and plans the window's output frames with their timestamps and seeds.
Only then is the window's synthesis, the expensive part, handed to that device's worker. Finished
windows leave in stream order, and at most one window per device is in flight, so memory stays
flat. Every window is computed exactly as on one device (same batches, same seeds), so the output
is identical to one device's.
"""

from __future__ import annotations

import copy
import queue
import threading
from collections import deque
from concurrent.futures import Future

import torch

from ..errors import HFDError
from .executor import Engine
from .planner import timestamps


def parse_devices(text: str) -> list[str]:
    """'cuda:0,cuda:1' -> ['cuda:0', 'cuda:1']; 'all' -> every CUDA GPU. Repeats are allowed ('cpu,cpu')."""
    if text.strip() == "all":
        if not torch.cuda.is_available():
            raise HFDError("--devices all needs CUDA GPUs, and this PyTorch sees none")
        return [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    devices = [part.strip() for part in text.split(",") if part.strip()]
    if not devices:
        raise HFDError("--devices takes a comma-separated list (cuda:0,cuda:1) or 'all'")
    return devices


class _Worker:
    """A daemon thread that runs one device's windows in the order they are given."""

    def __init__(self, device: torch.device):
        self.device = device
        self.jobs: queue.Queue = queue.Queue()
        threading.Thread(target=self._run, daemon=True).start()

    def submit(self, function, *args) -> Future:
        future: Future = Future()
        self.jobs.put((future, function, args))
        return future

    def close(self) -> None:
        self.jobs.put(None)

    def _run(self):
        if self.device.type == "cuda":  # anything that asks for "the current GPU" gets this one
            torch.cuda.set_device(self.device)
        while True:
            job = self.jobs.get()
            if job is None:
                return
            future, function, args = job
            try:
                future.set_result(function(*args))
            except BaseException as error:  # noqa: BLE001 - raised in the compute thread by result()
                future.set_exception(error)


class ParallelEngine(Engine):
    """``Engine`` with each window's synthesis on the next device's model, results in order."""

    def __init__(self, interpolators: list, *args):
        super().__init__(interpolators[0], *args)
        self.interpolators = interpolators
        self.workers = [_Worker(interpolator.device) for interpolator in interpolators]
        self.windows = 0
        self.in_flight: deque = deque()  # (future of the results, [(plan index, pts)])

    def _dispatch(self, plan, frames, prepared) -> list:
        device = self.windows % len(self.interpolators)
        view = copy.copy(self)  # the window's own engine: this device's model, today's seeds and counts
        view.interpolated = 0
        kept = self._admit(plan)
        future = self.workers[device].submit(lambda: (view._synthesise(plan, frames, prepared), view.interpolated))
        self.in_flight.append((future, kept))
        self.windows += 1
        self.interpolator = self.interpolators[self.windows % len(self.interpolators)]  # the next window's
        return self._finished(wait_for=len(self.interpolators) - 1)

    def _process(self, final: bool) -> list:
        out = super()._process(final)
        if self.prepared is not None:  # the shared frame's features and thumbnail go to the next device
            device = self.interpolator.device
            with torch.inference_mode():
                self.prepared = self.prepared.apply(lambda tensor: tensor.to(device))
                self.thumb = self.thumb.to(device)
        return out

    def finish(self) -> list:
        if self.prepared is not None and len(self.window) == 1:  # only the carried frame: hold it
            plan, pixels = self._hold_last()
            done: Future = Future()
            done.set_result((pixels, 0))
            self.in_flight.append((done, self._admit(plan)))
            out = self._finished(wait_for=0)
        else:
            out = super().finish() + self._finished(wait_for=0)
        for worker in self.workers:
            worker.close()
        return out

    def _admit(self, plan) -> list[tuple[int, int]]:
        """``_emit``'s timestamps, decided now: they fix the next window's seeds before any pixel exists."""
        kept, self.last_pts = timestamps(plan, self.time_base, self.last_pts)
        self.frames_out += len(kept)
        return kept

    def _finished(self, wait_for: int) -> list:
        """Results of the oldest windows, in order, until at most ``wait_for`` remain in flight."""
        out = []
        while self.in_flight and (len(self.in_flight) > wait_for or self.in_flight[0][0].done()):
            future, kept = self.in_flight.popleft()
            results, interpolated = future.result()
            self.interpolated += interpolated
            out += [(results[n], pts) for n, pts in kept]
        return out
