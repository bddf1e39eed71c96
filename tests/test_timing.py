from fractions import Fraction

import pytest

from hfdinterp.errors import HFDError
from hfdinterp.io.timing import Schedule, parse_rate, recursion_depth


def test_rates_are_exact_fractions():
    assert parse_rate("60") == 60
    assert parse_rate("60000/1001") == Fraction(60000, 1001)
    assert parse_rate("59.94") == Fraction(60000, 1001)
    assert parse_rate("23.976") == Fraction(24000, 1001)
    assert parse_rate("24/1") == 24
    assert parse_rate("12.5") == Fraction(25, 2)
    for bad in ("abc", "0", "-5", "1/0"):
        with pytest.raises(HFDError):
            parse_rate(bad)


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_factor_rule_n_frames_make_n_times_factor(factor):
    times = [Fraction(i, 24) for i in range(10)]
    out = Schedule(factor=factor).all(times, Fraction(1, 24))
    assert len(out) == 10 * factor
    assert [o.time for o in out] == [Fraction(k, 24 * factor) for k in range(10 * factor)]
    assert all(o.tau == 0 for o in out[::factor])  # every source frame is kept, in place
    assert all(o.tau == 0 and o.index == 9 for o in out[-factor:])  # the last frame is held


def test_factor_rule_follows_variable_timestamps():
    times = [Fraction(0), Fraction(1, 24), Fraction(3, 24), Fraction(4, 24)]
    out = Schedule(factor=2).all(times, Fraction(1, 24))
    assert [o.time for o in out] == [0, Fraction(1, 48), Fraction(1, 24), Fraction(2, 24), Fraction(3, 24),
                                     Fraction(7, 48), Fraction(4, 24), Fraction(9, 48)]


def test_rate_rule_24_to_60():
    times = [Fraction(i, 24) for i in range(24)]  # one second
    out = Schedule(rate=Fraction(60)).all(times, Fraction(1, 24))
    assert len(out) == 60
    assert [o.time for o in out] == [Fraction(k, 60) for k in range(60)]
    copies = [o for o in out if o.tau == 0 and o.index < 23]
    assert len(copies) == 12  # 0, 1/12, 2/12 … fall exactly on source frames
    assert [o.time for o in out if o.index == 23] == [Fraction(58, 60), Fraction(59, 60)]  # held
    assert out[1].index == 0 and out[1].tau == Fraction(2, 5)


def test_rate_rule_ntsc_keeps_the_duration():
    times = [Fraction(1001 * i, 24000) for i in range(2400)]
    out = Schedule(rate=Fraction(60000, 1001)).all(times, Fraction(1001, 24000))
    assert len(out) == 6000  # 2400 frames at 23.976 last exactly as long as 6000 at 59.94


def test_recursion_depth():
    assert [recursion_depth(f) for f in (2, 4, 8, 16)] == [1, 2, 3, 4]
    for bad in (0, 1, 3, 6):
        with pytest.raises(HFDError):
            recursion_depth(bad)
