"""The video planner, without a model: output frames, how each is made, the recursion order, timestamps."""

from fractions import Fraction as F

from hfdinterp.video.planner import CUT, MODEL, SOURCE, UNSHOWN_SEED, Call, chunk_seeds, model_steps, timestamps, window_plan
from hfdinterp.io.timing import Schedule

TIMES = [F(0), F(1, 24), F(2, 24)]  # a window of three source frames at 24 fps


def test_a_window_gives_each_interval_its_source_frame_then_the_new_ones():
    plan = window_plan(Schedule(factor=2), 0, TIMES, None, [False, False])
    assert [(p.time, p.interval, p.tau, p.how) for p in plan] == [
        (F(0), 0, F(0), SOURCE), (F(1, 48), 0, F(1, 2), MODEL),
        (F(1, 24), 1, F(0), SOURCE), (F(3, 48), 1, F(1, 2), MODEL)]  # the last frame opens the next window


def test_the_streams_last_frame_is_held_to_its_end():
    plan = window_plan(Schedule(factor=4), 10, TIMES, F(3, 24), [False, False])
    assert len(plan) == 12 and all(p.how == SOURCE and p.interval == 2 for p in plan[8:])
    assert [p.time for p in plan[8:]] == [F(2, 24) + F(k, 96) for k in range(4)]


def test_frames_across_a_scene_cut_are_not_for_the_model():
    plan = window_plan(Schedule(factor=2), 0, TIMES, None, [True, False])
    assert [p.how for p in plan] == [SOURCE, CUT, SOURCE, MODEL]
    assert [(c.interval, c.tau) for step in model_steps(plan, 1) for c in step] == [(1, F(1, 2))]


def test_recursive_halving_goes_level_by_level_across_the_window():
    plan = window_plan(Schedule(factor=4), 0, TIMES, None, [False, False])
    steps = model_steps(plan, depth=2)
    assert [[(c.interval, c.tau, c.before, c.after) for c in step] for step in steps] == [
        [(0, F(1, 2), F(0), F(1)), (1, F(1, 2), F(0), F(1))],
        [(0, F(1, 4), F(0), F(1, 2)), (0, F(3, 4), F(1, 2), F(1)),
         (1, F(1, 4), F(0), F(1, 2)), (1, F(3, 4), F(1, 2), F(1))]]
    assert all(c.time == F(1, 2) for step in steps for c in step)  # always the middle of two known frames
    assert [c.keep for c in steps[0]] == [True, True] and not any(c.keep for c in steps[1])  # encoded once, for level 2
    shown = {c.output: (c.interval, c.tau) for step in steps for c in step}
    assert shown == {n: (p.interval, p.tau) for n, p in enumerate(plan) if p.how == MODEL}


def test_exact_times_are_one_step_between_the_source_frames():
    plan = window_plan(Schedule(rate=F(60), origin=F(0)), 0, TIMES, None, [False, False])
    (step,) = model_steps(plan, depth=None)
    assert [(c.interval, c.tau, c.before, c.after, c.time) for c in step] == [
        (0, F(2, 5), F(0), F(1), F(2, 5)), (0, F(4, 5), F(0), F(1), F(4, 5)),
        (1, F(1, 5), F(0), F(1), F(1, 5)), (1, F(3, 5), F(0), F(1), F(3, 5))]
    assert [plan[c.output].time for c in step] == [F(k, 60) for k in (1, 2, 3, 4)]


def test_nothing_for_the_model_plans_no_calls():
    assert model_steps(window_plan(Schedule(factor=2), 0, TIMES[:2], F(2, 24), [True]), depth=1) == []


def test_timestamps_never_repeat_on_a_coarse_clock():
    plan = window_plan(Schedule(factor=4), 0, TIMES, None, [False, False])
    kept, last = timestamps(plan, F(1, 48), None)  # four frames per 1/24 s on a 1/48 s clock
    pts = [p for _, p in kept]
    assert pts == sorted(set(pts)) and pts[0] == 0 and last == pts[-1]
    assert timestamps(plan, F(1, 48), last)[0] == []  # nothing after what was written


def test_seeds_are_the_output_index_or_a_place_past_the_shown_ones():
    shown, unshown = Call(0, F(1, 2), F(0), F(1), F(1, 2), 7), Call(0, F(1, 4), F(0), F(1, 2), F(1, 2), None)
    assert chunk_seeds([shown, unshown]) == [7, UNSHOWN_SEED + 1]
