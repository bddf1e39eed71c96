"""Large-motion dev tooling: the EPE-by-motion table and the minterpolate baseline, on generated data."""

import numpy as np
import torch

from hfdinterp import HFD, PRESETS
from hfdinterp.io.images import write_image
from hfdinterp.train.dev_sets import minterpolate_middle
from hfdinterp.train.flow_error import flow_error_table, format_tables
from hfdinterp.io.testclip import scene


def _case(folder, flow):
    folder.mkdir(parents=True)
    for name, index in (("i0", 0), ("gt", 1), ("i1", 2)):
        write_image(folder / f"{name}.png", scene(64, 48, index))
    np.save(folder / "flow.npy", flow.astype(np.float16))


def test_epe_lands_in_the_bucket_of_the_reference_motion(tmp_path):
    flow = np.zeros((4, 48, 64), np.float32)
    flow[0], flow[2] = -5, 5  # 10 px between the frames: the 8–32 bucket
    flow[:, :24] *= 8  # top half: 80 px, the 64–128 bucket
    _case(tmp_path / "set" / "a", flow)
    torch.manual_seed(0)
    model = HFD(PRESETS["tiny"]).eval()  # the paper's variant with zero heads samples exactly zero flow
    table = flow_error_table(model, tmp_path)["set"]
    assert table["share"] == {"<8": 0.0, "8–32": 0.5, "32–64": 0.0, "64–128": 0.5, ">128": 0.0}
    for level in ("1/16", "1/8", "1/4"):
        assert abs(table[level]["8–32"] - 5) < 1e-3 and abs(table[level]["64–128"] - 40) < 1e-3
    assert np.isnan(table["1/4"]["<8"])
    assert "| 1/16 |" in format_tables({"set": table}, "tiny")


def test_minterpolate_middle_of_a_still_pair_is_the_frame():
    frame = (scene(64, 48, 0) * 255).astype(np.uint8)
    middle = minterpolate_middle(frame, frame)
    assert middle.shape == frame.shape
    assert np.abs(middle.astype(int) - frame).mean() < 2


def test_flow_error_at_half_resolution_reports_every_level_in_full_resolution_pixels(tmp_path):
    flow = np.zeros((4, 48, 64), np.float32)
    flow[0], flow[2] = -5, 5
    _case(tmp_path / "set" / "a", flow)
    torch.manual_seed(0)
    model = HFD(PRESETS["tiny"]).eval()  # zero flow at any resolution: the error is the reference's size
    table = flow_error_table(model, tmp_path, refine_steps=0, resolution=0.5)["set"]
    for level in ("1/16", "1/8", "1/4"):
        assert abs(table[level]["8–32"] - 5) < 1e-3


def test_trusted_pixels_drop_flat_regions_and_references_that_do_not_match():
    from hfdinterp.train.flow_error import trusted_pixels

    rng = np.random.default_rng(0)
    texture = rng.random((48, 64, 3)).astype(np.float32)
    texture[:, 32:] = 0.5  # right half flat: any flow fits it
    still = torch.zeros(4, 48, 64)
    kept = trusted_pixels(texture, texture, texture, still)
    assert kept[:, :20].all() and not kept[:, 44:].any()
    wrong = still.clone()
    wrong[0] = 3  # a flow that moves textured pixels where the frames did not
    assert trusted_pixels(texture, texture, texture, wrong)[:, :20].float().mean() < 0.05


def test_the_trusted_table_counts_only_trusted_pixels(tmp_path):
    flow = np.zeros((4, 48, 64), np.float32)
    _case(tmp_path / "set" / "a", flow)
    flat = tmp_path / "set" / "b"
    flat.mkdir()
    for name in ("i0", "gt", "i1"):
        write_image(flat / f"{name}.png", np.full((48, 64, 3), 0.5, np.float32))
    np.save(flat / "flow.npy", flow.astype(np.float16))
    model = HFD(PRESETS["tiny"]).eval()
    everything = flow_error_table(model, tmp_path)["set"]
    trusted = flow_error_table(model, tmp_path, trusted=True)["set"]
    assert trusted["kept"]["<8"] < 0.6  # the flat case and the scene's own flat parts are out
    assert trusted["share"]["<8"] == everything["share"]["<8"] == 1.0
    assert "| kept (of the bucket's pixels) |" in format_tables({"set": trusted}, "tiny")


def test_linear_pixels_keep_a_middle_frame_halfway_and_drop_one_that_is_not():
    from hfdinterp.train.flow_error import linear_pixels

    flow = torch.zeros(4, 8, 8)
    flow[0], flow[2] = -40, 40  # 80 px, the middle frame halfway: linear
    flow[0, :4] = -70  # top half: 110 px, the middle frame 15 px off the midpoint (14 % of the motion)
    kept = linear_pixels(flow)
    assert kept[4:].all() and not kept[:4].any()
    assert linear_pixels(torch.full((4, 8, 8), 0.4)).all()  # still within a pixel: kept


def test_the_linear_table_and_the_teacher_row(tmp_path):
    from hfdinterp.train.teacher import RifeIFNet

    flow = np.zeros((4, 48, 64), np.float32)
    flow[0], flow[2] = -20, 20  # 40 px, linear
    flow[0, :24] = -34  # top half: 54 px, the middle frame 7 px off the midpoint: not linear
    _case(tmp_path / "set" / "a", flow)
    torch.manual_seed(0)
    model = HFD(PRESETS["tiny"]).eval()
    table = flow_error_table(model, tmp_path, linear=True, teacher=RifeIFNet().eval())["set"]
    assert table["kept"]["32–64"] == 0.5  # the bottom half
    assert abs(table["1/4"]["32–64"] - 20) < 1e-3  # zero flow against ±20 px, the top half left out
    assert set(table["teacher (I0, I1)"]) == set(table["1/4"]) and np.isfinite(table["teacher (I0, I1)"]["32–64"])


def test_the_correlation_of_a_still_pair_peaks_at_zero_motion(tmp_path):
    from hfdinterp.train.flow_error import correlation_hits

    folder = tmp_path / "set" / "still"
    folder.mkdir(parents=True)
    frame = scene(64, 48, 0)
    for name in ("i0", "gt", "i1"):
        write_image(folder / f"{name}.png", frame)
    np.save(folder / "flow.npy", np.zeros((4, 48, 64), np.float16))
    torch.manual_seed(0)
    shares = correlation_hits(HFD(PRESETS["tiny"]).eval(), tmp_path)["set"]
    assert shares["<8"] == 1.0  # a feature is most like itself
    assert np.isnan(shares["64–128"])


def test_the_textured_synthetic_dev_set_has_textured_backgrounds_and_seeds_of_its_own(tmp_path):
    from hfdinterp.io.images import read_image
    from hfdinterp.train.dev_sets import build_synthetic
    from hfdinterp.train.texture import smaller_eigenvalue

    photos = tmp_path / "photos"
    photos.mkdir()
    write_image(photos / "flat.png", np.full((96, 128, 3), 0.5, np.float32))
    write_image(photos / "textured.png", scene(128, 96, 0))

    def texture(case):  # of the first frame, whose background fills most of it
        image = torch.from_numpy(np.ascontiguousarray(read_image(case / "i0.png").pixels[..., :3]))
        return float(smaller_eigenvalue(image.permute(2, 0, 1)[None].float(), 15).mean())

    sets = {}
    for name, min_texture in (("plain", 0.0), ("textured", 6e-4)):
        build_synthetic(str(photos), tmp_path / name, count=6, size=48, max_motion=0.3, min_texture=min_texture)
        sets[name] = sorted((tmp_path / name).iterdir())
        assert len(sets[name]) == 6 and all((case / "flow.npy").is_file() for case in sets[name])
    assert min(map(texture, sets["textured"])) > 3 * min(map(texture, sets["plain"]))
    first = lambda case: read_image(case / "i0.png").pixels  # noqa: E731
    assert not np.array_equal(first(sets["plain"][0]), first(sets["textured"][0]))  # other seeds


def test_the_flow_table_with_auto_resolution_follows_the_motion_probe_as_inference_does():
    from hfdinterp.inference.interpolator import PROBE_SEED
    from hfdinterp.train.flow_error import case_flows

    from .conftest import make_moving_model, moving_square

    image0, image1 = moving_square(64, 96), moving_square(64, 96, shift=2)
    for flow, switched in (((-1.0, 0.0, 1.0, 0.0), False), ((-40.0, 0.0, 40.0, 0.0), True)):
        model = make_moving_model(flow)  # 64×96: auto is 1 by size; ±40 px at the probe's 0.5 is large
        auto = case_flows(model, image0, image1, refine_steps=0, seed=3, resolution=None, noise=1.0)  # seeds matter
        fixed = case_flows(model, image0, image1, refine_steps=0, seed=3 + PROBE_SEED if switched else 3,
                           resolution=0.5 if switched else 1.0, noise=1.0)
        for name in ("1/16", "1/4", "output"):
            assert torch.equal(auto[name], fixed[name])


def test_the_matcher_hits_a_pure_translation_and_counts_by_motion(tmp_path):
    """A texture translated by 40 px: a matcher whose features are the frames themselves (pooled to its
    grid) finds every match; the pixels land in the 32–64 bucket, and none in the others."""
    import dataclasses

    from hfdinterp.train.flow_error import matcher_hits

    folder = tmp_path / "set" / "pan"
    folder.mkdir(parents=True)
    big = scene(160, 64, 1)
    frame0, frame1 = big[:, 40:136], big[:, :96]  # what I0 shows at x, I1 shows at x + 40
    flow = np.zeros((4, 64, 96), np.float32)
    flow[0], flow[2] = -20.0, 20.0  # content at x in I0 is at x + 40 in I1
    write_image(folder / "i0.png", frame0)
    write_image(folder / "gt.png", frame0)
    write_image(folder / "i1.png", frame1)
    np.save(folder / "flow.npy", flow)
    config = dataclasses.replace(PRESETS["tiny"], denoiser=dataclasses.replace(PRESETS["tiny"].denoiser, global_matching=True))
    model = HFD(config).eval()
    model.encode = lambda image: [image]  # the matcher sees the frame itself: each 16×16 patch, centred

    def patches(pyramid):
        unfolded = torch.nn.functional.pixel_unshuffle(pyramid[0], 16)
        return unfolded - unfolded.mean(1, keepdim=True)

    model.matcher.pair_features = lambda pyramid0, pyramid1: (patches(pyramid0), patches(pyramid1))
    shares = matcher_hits(model, tmp_path)["set"]
    assert np.isnan(shares["<8"]) and np.isnan(shares["64–128"])
    assert shares["32–64"] > 0.9


def test_fast_windows_are_decoded_where_asked_and_each_gap_keeps_its_best_triplet(tmp_path, monkeypatch):
    from hfdinterp.io.testclip import make_test_clip
    from hfdinterp.train import dev_sets
    from hfdinterp.train.dev_sets import _windows, build_fast
    from hfdinterp.train.teacher import RifeIFNet

    clip = make_test_clip(tmp_path / "film.mp4", width=96, height=64, frames=40, audio=False)
    windows = list(_windows(clip, first=4, last=34, every=12, window=6, long_side=48))
    assert [start for start, _ in windows] == [4, 16, 28]
    assert all(frames.shape == (6, 32, 48, 3) for _, frames in windows)
    # A window of 6 frames has gap-2 candidates at its frames 0 and 2 and a gap-4 one at 0; the
    # second gap-2 candidate moves the most, in every window.
    shares = iter([0.1, 0.3, 0.2] * 3)
    monkeypatch.setattr(dev_sets, "fast_share", lambda teacher, image0, image1: next(shares))
    torch.manual_seed(0)
    teacher = RifeIFNet().eval()  # untrained: only its pseudo flow is written
    build_fast(str(clip), tmp_path / "dev" / "fast", first=4, last=34, every=12, window=6, gaps=[2, 4],
               min_share=0.15, long_side=48, teacher=teacher)
    cases = sorted(p.name for p in (tmp_path / "dev" / "fast").iterdir())
    assert cases == ["film-f00004-gap04", "film-f00006-gap02", "film-f00016-gap04", "film-f00018-gap02",
                     "film-f00028-gap04", "film-f00030-gap02"]
    assert np.load(tmp_path / "dev" / "fast" / cases[0] / "flow.npy").shape == (4, 32, 48)
    shares = iter([0.1, 0.14, 0.2] * 3)  # under min_share the gap-2 triplets are left out
    build_fast(str(clip), tmp_path / "dev" / "some", first=4, last=34, every=12, window=6, gaps=[2, 4],
               min_share=0.15, long_side=48, teacher=teacher)
    assert all(p.name.endswith("gap04") for p in (tmp_path / "dev" / "some").iterdir())


def test_baselines_score_minterpolate_the_average_and_with_a_teacher_its_frame(tmp_path):
    from hfdinterp.train.dev_sets import score_baselines
    from hfdinterp.train.teacher import RifeIFNet

    _case(tmp_path / "set" / "a", np.zeros((4, 48, 64), np.float32))
    plain = score_baselines(tmp_path)["set"]
    assert set(plain) == {"minterpolate", "average", "count"} and plain["count"] == 1
    torch.manual_seed(0)
    with_teacher = score_baselines(tmp_path, teacher=RifeIFNet().eval())["set"]
    assert set(with_teacher) == {"minterpolate", "average", "teacher", "count"}
    assert with_teacher["average"] == plain["average"] and np.isfinite(with_teacher["teacher"]["psnr"])
