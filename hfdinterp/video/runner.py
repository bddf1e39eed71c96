"""Three stages joined by bounded queues: a reader thread, the caller's thread, a writer thread.

The reader drains an iterator into the input queue; the caller takes items with ``inputs`` and hands
results to ``output``; the writer hands each one to a function. Either thread's exception is raised in
the caller's thread. Bounded queues keep memory flat whatever the length of the stream.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterable, Iterator

from ..errors import HFDError

_END = object()
POLL = 0.1  # seconds between looks at the other threads while a queue is empty or full


class _Threaded:
    """A worker thread that keeps its exception for the caller's thread."""

    def __init__(self, target: Callable[[], None]):
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(target,), daemon=True)

    def _run(self, target):
        try:
            target()
        except BaseException as error:  # noqa: BLE001 - handed to the caller's thread and raised there
            self.error = error

    def join(self, timeout: float | None = None) -> None:
        if self.thread.ident is not None:
            self.thread.join(timeout)


class StageRunner:
    def __init__(self, source: Iterable, write: Callable[[object], None], in_size: int, out_size: int):
        self.stop = threading.Event()
        self.decoded: queue.Queue = queue.Queue(maxsize=in_size)
        self.encoded: queue.Queue = queue.Queue(maxsize=out_size)
        self.reader = _Threaded(lambda: self._read(source))
        self.writer = _Threaded(lambda: self._write(write))

    def start(self) -> None:
        self.reader.thread.start()
        self.writer.thread.start()

    def _read(self, source: Iterable) -> None:
        for item in source:
            if self.stop.is_set():
                return
            self._put(self.decoded, item)
        self._put(self.decoded, _END)

    def _put(self, q: queue.Queue, item) -> None:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=POLL)
                return
            except queue.Full:
                continue

    def _write(self, write: Callable[[object], None]) -> None:
        while True:
            item = self.encoded.get()
            if item is _END:
                return
            write(item)

    def inputs(self) -> Iterator:
        """The reader's items, in order, until the end of the source."""
        while True:
            try:
                item = self.decoded.get(timeout=POLL)
            except queue.Empty:
                if self.reader.error:
                    raise self.reader.error
                if not self.reader.thread.is_alive() and self.decoded.empty():
                    raise self.reader.error or HFDError("the reader stopped unexpectedly")
                continue
            if item is _END:
                return
            yield item

    def output(self, item) -> None:
        """Queue an item for the writer (waiting while the queue is full)."""
        while True:
            if self.writer.error:
                raise self.writer.error
            try:
                self.encoded.put(item, timeout=POLL)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        """Wait for the writer to write everything; raise its error if it failed."""
        self.output(_END)
        self.writer.thread.join()
        if self.writer.error:
            raise self.writer.error

    def abort(self) -> None:
        """Stop both threads, dropping what is queued for the writer (bounded waits)."""
        self.stop.set()
        _drain(self.encoded)
        if not self.encoded.full():
            self.encoded.put(_END)
        self.writer.join(timeout=5)

    def close(self) -> None:
        """Stop the reader (always, after success or failure)."""
        self.stop.set()
        _drain(self.decoded)
        self.reader.join(timeout=5)


def _drain(q: queue.Queue) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return
