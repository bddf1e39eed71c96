"""The video plan, pure: which output frames a window of source frames gives, how each one is made,
in which order the model makes them, and their timestamps. No model, no threads, no pixels.

A window is consecutive source frames; interval ``i`` runs from window frame ``i`` to ``i + 1``.
Each output frame of an interval is the source frame itself (τ = 0), a frame at a scene cut (held or
blended, no model), or a model frame at τ. Model frames are made by ``Call``s in ``steps``: all calls
of a step may share batches, and a step only reads frames that earlier steps made. With ``--fps`` there
is one step, every call between the two source frames at its own τ. With ``--factor 2^d`` there are d
steps of recursive halving: τ = 1/2, then 1/4 and 3/4 between the new middles and the sources, and so
on, each call at τ = 1/2 between its two neighbours, level by level across the whole window so that
batches stay large.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from ..io.timing import Schedule

SOURCE, CUT, MODEL = "source", "cut", "model"
UNSHOWN_SEED = 10_000  # seed offset of a recursion frame that no output shows


@dataclass(frozen=True)
class Planned:
    """Output frame shown at ``time`` (seconds): window frame ``interval`` (``how`` is SOURCE), or at
    ``tau`` of the way to the next one, across a scene cut (CUT) or made by the model (MODEL)."""

    time: Fraction
    interval: int
    tau: Fraction
    how: str


@dataclass(frozen=True)
class Call:
    """One pair through the model: the frame at ``tau`` of ``interval``, made at time ``time`` between
    the frames at ``before`` and ``after`` (0 and 1 are the interval's source frames). ``output`` is the
    planned frame it becomes (None: needed only by a later step); ``keep``: a later step reads it."""

    interval: int
    tau: Fraction
    before: Fraction
    after: Fraction
    time: Fraction
    output: int | None
    keep: bool = False


def end_of(time: Fraction, duration: Fraction | None, rate: Fraction) -> Fraction:
    """When a source frame stops showing: its own duration, else the nominal rate's."""
    return time + (duration or 1 / rate)


def window_plan(schedule: Schedule, first_index: int, times: list[Fraction], last_end: Fraction | None,
                cuts: list[bool]) -> list[Planned]:
    """The output frames of a window's intervals, in presentation order.

    ``times``: the window's source frames; ``first_index``: the stream index of the first. Without
    ``last_end`` the last frame only closes the window's last interval (the next window starts at it);
    with it, the last frame is the stream's last and is held until ``last_end``. ``cuts[i]``: a scene cut
    between frames ``i`` and ``i + 1``."""
    final = last_end is not None
    plan = []
    for i in range(len(times) if final else len(times) - 1):
        last = final and i == len(times) - 1
        end = last_end if last else times[i + 1]
        for frame in schedule.interval(first_index + i, times[i], end, last):
            how = SOURCE if frame.tau == 0 else CUT if cuts[i] else MODEL
            plan.append(Planned(frame.time, i, frame.tau, how))
    return plan


def model_steps(plan: list[Planned], depth: int | None) -> list[list[Call]]:
    """The model calls that make the plan's MODEL frames: one step with exact times (``depth`` None),
    else ``depth`` steps of recursive halving."""
    wanted = {(p.interval, p.tau): n for n, p in enumerate(plan) if p.how == MODEL}
    if not wanted:
        return []
    if depth is None:
        return [[Call(i, tau, Fraction(0), Fraction(1), tau, n) for (i, tau), n in wanted.items()]]
    intervals = sorted({i for i, _ in wanted})
    steps = []
    for level in range(1, depth + 1):
        half = Fraction(1, 2 ** level)
        targets = [(i, half * (2 * k + 1)) for i in intervals for k in range(2 ** (level - 1))]
        steps.append([Call(i, tau, tau - half, tau + half, Fraction(1, 2), wanted.get((i, tau)), keep=level < depth)
                      for i, tau in targets])
    return steps


def chunk_seeds(chunk: list[Call]) -> list[int]:
    """Seed indices of one batch of calls: a shown frame's plan index; an unshown one's place in the batch
    past ``UNSHOWN_SEED`` (so that no two frames of a batch share noise)."""
    return [call.output if call.output is not None else UNSHOWN_SEED + n for n, call in enumerate(chunk)]


def timestamps(plan: list[Planned], time_base: Fraction, last_pts: int | None) -> tuple[list[tuple[int, int]], int | None]:
    """(plan index, pts) of the frames to write, and the last pts. On a very fine clock two times may
    round to one pts: a frame whose pts would not increase is left out."""
    kept = []
    for n, planned in enumerate(plan):
        pts = round(planned.time / time_base)
        if last_pts is not None and pts <= last_pts:
            continue
        last_pts = pts
        kept.append((n, pts))
    return kept, last_pts
