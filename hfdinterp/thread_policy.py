"""How PyTorch's CPU threads wait at a barrier: set before torch is first imported, never over the user's.

PyTorch's default (libgomp's) is to spin about 3 ms at every barrier before sleeping. When the cores
are shared (with the video decoder and encoder threads, or another program), a spinning thread holds
the core its partner needs, and this model's many small operations (the diffusion and the refinement
work on 1/16–1/4 maps) pay for it at every barrier: 0.90–0.97 s for a 960×540 pair beside one busy
loop, against 0.49–0.56 s for threads that sleep at once (``OMP_WAIT_POLICY=PASSIVE``). But a sleeping
thread costs a wake-up per operation, and on an idle machine that was 0.41–0.45 s against 0.29 s.

The middle: libgomp spins for 1,000 rounds (about 10 µs, long enough to catch the next operation
when Python issues it at once, far too short to hold a core another program wants), then sleeps.
Measured (README, "CPU threads"): idle 0.31–0.33 s, beside a busy loop 0.64 s, beside a niced one
0.49–0.60 s. Longer spins (2,000 and up) lose more under contention, shorter ones (500) on an idle
machine. ``GOMP_SPINCOUNT`` is libgomp's (it outranks the wait policy there); other OpenMP runtimes
(LLVM's libomp on macOS) read only ``OMP_WAIT_POLICY`` and sleep.
"""

from __future__ import annotations

from collections.abc import MutableMapping

SPIN_ROUNDS = "1000"


def choose_thread_policy(environ: MutableMapping[str, str]) -> None:
    """Fill in the wait policy unless the user chose one (either variable set: theirs stands)."""
    if "OMP_WAIT_POLICY" in environ or "GOMP_SPINCOUNT" in environ:
        return
    environ["GOMP_SPINCOUNT"] = SPIN_ROUNDS
    environ["OMP_WAIT_POLICY"] = "PASSIVE"
