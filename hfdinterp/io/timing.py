"""Exact timing: rational rates, and which output frame is made from which source frames.

The frame-count rule
  * ``--factor F``: every source frame is followed by F − 1 new frames between it and the next,
    at τ = 1/F, 2/F, …; after the last source frame, which has no successor, it is held F − 1 times.
    N frames in → N·F frames out, so the duration is exactly the input's and audio stays in sync.
    Timestamps come from the source's own, so variable frame rate input stays in sync too.
  * ``--fps R``: output frame k is shown at start + k/R, for every k with start + k/R < end, where
    end is the last source frame's timestamp plus its duration. That is ⌈duration · R⌉ frames. A frame
    that falls on a source frame copies it; one after the last source frame holds the last frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from ..errors import HFDError
from ..limits import MAX_FACTOR


def parse_rate(text: str | float | int | Fraction) -> Fraction:
    """'60', '59.94', '60000/1001', '24/1' -> an exact positive Fraction (59.94 means 60000/1001)."""
    if isinstance(text, Fraction):
        rate = text
    else:
        value = str(text).strip()
        try:
            if "/" in value:
                numerator, denominator = value.split("/", 1)
                rate = Fraction(int(numerator), int(denominator))
            else:
                rate = Fraction(value)
        except (ValueError, ZeroDivisionError):
            raise HFDError(f"not a frame rate: '{text}' (use e.g. 60, 59.94 or 60000/1001)") from None
        ntsc = {Fraction("23.976"): Fraction(24000, 1001), Fraction("29.97"): Fraction(30000, 1001),
                Fraction("59.94"): Fraction(60000, 1001), Fraction("119.88"): Fraction(120000, 1001)}
        rate = ntsc.get(rate, rate)
    if rate <= 0:
        raise HFDError(f"a frame rate must be positive, got {text}")
    return rate


@dataclass(frozen=True)
class OutputFrame:
    """Output frame at ``time`` (seconds): source frame ``index`` if ``tau`` is 0, else between
    ``index`` and ``index + 1`` at fraction ``tau``."""

    time: Fraction
    index: int
    tau: Fraction


@dataclass(frozen=True)
class Schedule:
    """Streaming form of the rule: which output frames fall in one source frame's interval.

    Exactly one of ``factor`` and ``rate`` is set; ``origin`` is the first source frame's time.
    """

    factor: int | None = None
    rate: Fraction | None = None
    origin: Fraction = Fraction(0)

    def interval(self, index: int, start: Fraction, end: Fraction, last: bool) -> list[OutputFrame]:
        """Output frames in [start, end): source frame ``index`` lasts from start to end."""
        if self.factor is not None:
            return [OutputFrame(start + Fraction(k, self.factor) * (end - start), index,
                                Fraction(0) if last else Fraction(k, self.factor)) for k in range(self.factor)]
        first = math.ceil((start - self.origin) * self.rate)
        stop = math.ceil((end - self.origin) * self.rate)
        out = []
        for k in range(first, stop):
            t = self.origin + Fraction(k) / self.rate
            out.append(OutputFrame(t, index, Fraction(0) if last else (t - start) / (end - start)))
        return out

    def all(self, times: list[Fraction], last_duration: Fraction) -> list[OutputFrame]:
        """Every output frame for source frames at ``times``: the rule in one call (for tests, reports)."""
        out = []
        for i, start in enumerate(times):
            last = i + 1 == len(times)
            out += self.interval(i, start, start + last_duration if last else times[i + 1], last)
        return out


def recursion_depth(factor: int) -> int:
    """2 -> 1, 4 -> 2, 8 -> 3, 16 -> 4: halvings needed; other factors are refused."""
    if factor < 2 or factor > MAX_FACTOR or factor & (factor - 1):
        raise HFDError(f"--factor must be 2, 4, 8 or 16 (recursive halving), got {factor}; "
                       "for other rates use --fps")
    return factor.bit_length() - 1
