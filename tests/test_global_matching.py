"""The global matching prior: it finds motion far beyond the local window, ambiguous matches shrink to
zero motion, the bilateral formula, and the sampler really starts from it."""

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

from hfdinterp import HFD, PRESETS
from hfdinterp.model.config import HFDConfig
from hfdinterp.model.global_matching import expected_motion, global_bilateral_prior


def test_a_large_shift_is_found_across_the_frame():
    torch.manual_seed(0)
    features = torch.randn(1, 16, 20, 40)
    moved = torch.roll(features, shifts=(3, -13), dims=(2, 3))  # content moves 13 feature px left, 3 down
    motion = expected_motion(features, moved, torch.tensor(30.0))
    inner = motion[0, :, 4:16, 14:26]  # away from the wrap-around seams
    # a clear match gives its position; the confidence (mass near the peak) shrinks a few a little
    assert (inner[0] + 13).abs().median() < 0.02 and (inner[0] + 13).abs().max() < 1
    assert (inner[1] - 3).abs().median() < 0.02 and (inner[1] - 3).abs().max() < 1


def test_nothing_recognisable_means_no_motion_not_the_frame_centre():
    flat = torch.ones(1, 8, 24, 24)  # every pixel matches every pixel equally well
    motion = expected_motion(flat, flat, torch.tensor(10.0))
    # a plain softmax mean would move every pixel to the centre, 11.5 px for the corners
    assert motion.abs().max() < 0.5


def test_chunked_queries_give_the_same_motion(monkeypatch):
    import hfdinterp.model.global_matching as gm

    torch.manual_seed(1)
    a, b = torch.randn(2, 8, 9, 11), torch.randn(2, 8, 9, 11)
    whole = expected_motion(a, b, torch.tensor(12.0))
    monkeypatch.setattr(gm, "SIMILARITY_BLOCK", 7 * 2 * 9 * 11)  # 7 query rows at a time
    assert torch.allclose(expected_motion(a, b, torch.tensor(12.0)), whole, atol=1e-6)


@pytest.mark.parametrize("tau", [0.5, 0.25])
def test_bilateral_prior_of_a_uniform_motion(tau):
    torch.manual_seed(2)
    features = torch.randn(1, 16, 16, 32)
    moved = torch.roll(features, shifts=-5, dims=3)  # frame 1 shows the content 5 feature px left
    prior = global_bilateral_prior(features, moved, torch.tensor([tau]), torch.tensor(30.0), pixel_scale=16)
    inner = prior[0, :, 4:12, 8:24]
    d = -5 * 16  # full-resolution pixels from I0 to I1
    assert (inner[0] + tau * d).abs().median() < 0.5  # f_τ→0 = −τ d
    assert (inner[2] - (1 - tau) * d).abs().median() < 0.5  # f_τ→1 = (1 − τ) d
    assert inner[1].abs().median() < 0.5 and inner[3].abs().median() < 0.5


def test_the_sampler_starts_the_coarsest_level_from_the_prior():
    config = PRESETS["tiny"]
    config = dataclasses.replace(config, denoiser=dataclasses.replace(config.denoiser, global_matching=True))
    torch.manual_seed(0)
    model = HFD(config).eval()  # output heads start at zero: x̂_0 is the estimate it is handed
    # A random matcher's matches are mostly unsure and dropped; this test is about where sampling starts.
    fixed = torch.randn(1, 4, 4, 4) * 20
    model.matcher.forward = lambda pyramid0, pyramid1, time: fixed
    image0 = torch.rand(1, 3, 64, 64)
    image1 = torch.roll(image0, 16, dims=3)
    time = torch.tensor([0.5])
    with torch.no_grad():
        features0, features1 = model.encode(image0), model.encode(image1)
        flows = model.sample_flows(features0, features1, time, torch.Generator().manual_seed(0))
        prior = model.starting_estimate(features0, features1, time) * config.diffusion.flow_scale
    assert prior.abs().max() > 0
    assert torch.allclose(flows[0], prior, atol=1e-5)
    plain = HFD(PRESETS["tiny"]).eval()
    with torch.no_grad():  # the paper's variant starts from zero flow
        assert plain.sample_flows(plain.encode(image0), plain.encode(image1), time)[0].abs().max() == 0


def test_global_matching_is_a_config_field_old_files_load_without_it():
    assert PRESETS["base"].denoiser.global_matching and PRESETS["small"].denoiser.global_matching
    raw = json.loads(PRESETS["base"].to_json())
    del raw["denoiser"]["global_matching"]  # a weights file written before 0.6
    assert HFDConfig.from_json(json.dumps(raw)).denoiser.global_matching is False
    assert "matcher.log_scale" in HFD(PRESETS["base"]).state_dict()
    assert not any(k.startswith("matcher.") for k in HFD(HFDConfig.from_json(json.dumps(raw))).state_dict())


@pytest.mark.parametrize("layers, stride", [(0, 16), (1, 16), (0, 8)])
def test_the_global_matching_stage_trains_the_matcher_and_nothing_else(layers, stride):
    """On translating textures the matcher's all-pairs matching loss falls; no other part moves."""
    from hfdinterp.train.stages import STAGE_LOSSES, STAGES

    config = dataclasses.replace(PRESETS["tiny"], denoiser=dataclasses.replace(PRESETS["tiny"].denoiser,
                                                                              global_matching=True,
                                                                              matching_layers=layers,
                                                                              matching_stride=stride))
    torch.manual_seed(0)
    model = HFD(config)
    for name, module in model.named_children():
        module.requires_grad_(name in STAGES["global_matching"].trains)
    texture = F.interpolate(torch.rand(2, 3, 32, 64), scale_factor=4, mode="bilinear")  # (2, 3, 128, 256)
    shifts = [48, -64]  # pixels from I0 to I1: 3 and 4 pixels at 1/16
    image0 = texture[:, :, :, 64:192]
    image1 = torch.stack([texture[i, :, :, 64 - s:192 - s] for i, s in enumerate(shifts)])
    flow = torch.zeros(2, 4, 128, 128)
    for i, s in enumerate(shifts):
        flow[i, 0], flow[i, 2] = -s / 2, s / 2
    batch = {"image0": image0, "image1": image1, "image_t": image0, "flow": flow, "time": torch.full((2,), 0.5)}
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for step in range(15 if stride == 16 else 40):  # four times the candidates at stride 8
        loss, metrics = STAGE_LOSSES["global_matching"](model, batch, None, STAGES["global_matching"])
        losses.append(metrics["match_ce"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[-1] < 0.9 * losses[0], losses  # stride 16: 0.7 after 15 steps; stride 8: 0.85 after 40
    torch.manual_seed(0)
    untouched = HFD(config)
    for name in ("encoder", "denoiser", "synthesizer"):
        for a, b in zip(getattr(model, name).parameters(), getattr(untouched, name).parameters()):
            assert torch.equal(a, b)
    assert not torch.equal(model.matcher.head[0].weight, untouched.matcher.head[0].weight)
    if layers:  # the zero-initialised output projections learn too
        assert model.matcher.layers[0].cross_out.weight.abs().max() > 0


def _with_layers(config, layers):
    return dataclasses.replace(config, denoiser=dataclasses.replace(config.denoiser, global_matching=True,
                                                                    matching_layers=layers))


def test_new_transformer_layers_start_as_the_identity_and_old_files_load_without_them():
    """A matcher trained without layers gives the same prior once layers are added; files written
    before the field have none."""
    torch.manual_seed(0)
    plain, layered = HFD(_with_layers(PRESETS["tiny"], 0)).eval(), HFD(_with_layers(PRESETS["tiny"], 2)).eval()
    missing, unexpected = layered.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("matcher.layers.") for k in missing)
    image0, image1, time = torch.rand(1, 3, 64, 96), torch.rand(1, 3, 64, 96), torch.tensor([0.5])
    with torch.no_grad():
        features0, features1 = plain.encode(image0), plain.encode(image1)
        assert torch.equal(plain.matcher(features0, features1, time), layered.matcher(features0, features1, time))
    raw = json.loads(_with_layers(PRESETS["small"], 2).to_json())
    del raw["denoiser"]["matching_layers"]
    assert HFDConfig.from_json(json.dumps(raw)).denoiser.matching_layers == 0


def test_with_layers_each_frames_match_features_depend_on_the_other_frame_and_are_symmetric():
    torch.manual_seed(0)
    model = HFD(_with_layers(PRESETS["tiny"], 1)).eval()
    for parameter in model.matcher.layers.parameters():  # past the identity start
        torch.nn.init.normal_(parameter, std=0.3)
    a, b, c = (model.encode(torch.rand(1, 3, 64, 96)) for _ in range(3))
    with torch.no_grad():
        ab0, ab1 = model.matcher.pair_features(a, b)
        ac0, _ = model.matcher.pair_features(a, c)
        ba0, ba1 = model.matcher.pair_features(b, a)
    assert not torch.allclose(ab0, ac0)  # frame a's features saw frame b, or c
    assert torch.allclose(ab0, ba1, atol=1e-6) and torch.allclose(ab1, ba0, atol=1e-6)  # same layers both ways



def test_a_match_without_a_clear_peak_gives_no_motion():
    """Three equally good candidates far apart: a third of the mass lies near each, so no motion."""
    queries = torch.zeros(1, 2, 1, 13)
    queries[0, 0] = 1.0  # every query pixel is the same feature
    keys = torch.zeros(1, 2, 1, 13)
    keys[0, 1] = 1.0
    for x in (1, 6, 11):  # three exact copies of it
        keys[0, :, 0, x] = torch.tensor([1.0, 0.0])
    motion = expected_motion(queries, keys, torch.tensor(50.0))
    assert motion.abs().max() == 0
    for x in (6, 11):  # one copy left: a clear match, kept
        keys[0, :, 0, x] = torch.tensor([0.0, 1.0])
    assert (expected_motion(queries, keys, torch.tensor(50.0))[0, 0, 0] - (1 - torch.arange(13.0))).abs().max() < 0.01


def test_motion_that_aligns_no_better_than_standing_still_is_dropped():
    """A pattern repeating every 4 px: a jump of one period aligns exactly as well as zero motion, so
    it is not kept; a true shift of a random pattern is."""
    from hfdinterp.model.global_matching import aligns_better

    stripes = torch.cos(torch.arange(24.0) * torch.pi / 2).expand(1, 1, 8, 24)
    periodic = torch.cat((stripes, torch.sin(torch.arange(24.0) * torch.pi / 2).expand(1, 1, 8, 24)), 1)
    jump = torch.zeros(1, 4, 8, 24)
    jump[:, 2] = 4.0  # f_τ→1 = one period right: the same features as standing still
    assert not aligns_better(periodic, periodic, jump)[..., 2:-6].any()
    torch.manual_seed(0)
    texture = torch.randn(1, 8, 8, 24)
    moved = torch.roll(texture, -4, dims=3)  # I1 shows it 4 px left: f_τ→0 = +2, f_τ→1 = −2
    shift = torch.zeros(1, 4, 8, 24)
    shift[:, 0], shift[:, 2] = 2.0, -2.0
    assert aligns_better(texture, moved, shift)[..., 4:-4].all()


def test_a_stride_8_match_is_twice_as_fine_and_still_starts_the_coarsest_level():
    tiny = PRESETS["tiny"]
    config = dataclasses.replace(tiny, denoiser=dataclasses.replace(tiny.denoiser, global_matching=True,
                                                                    matching_stride=8))
    torch.manual_seed(0)
    model = HFD(config).eval()
    image0 = F.interpolate(torch.rand(1, 3, 16, 24), scale_factor=8, mode="bilinear")  # (1, 3, 128, 192)
    image1 = torch.roll(image0, 24, dims=3)
    with torch.no_grad():
        features0, features1 = model.encode(image0), model.encode(image1)
        match0, _ = model.matcher.pair_features(features0, features1)
        start = model.starting_estimate(features0, features1, torch.tensor([0.5]))
    assert match0.shape[-2:] == (16, 24)  # 1/8
    assert start.shape == (1, 4, 8, 12)  # 1/16, the coarsest level's grid
    with pytest.raises(ValueError, match="matching_stride"):
        dataclasses.replace(tiny.denoiser, matching_stride=4)


def test_the_matching_loss_weighs_each_pixel_by_its_share():
    """Weights move the mean towards the pixels they favour; equal weights are the plain mean, and a
    pixel whose match leaves the frame counts for nothing whatever its weight."""
    from hfdinterp.train.losses import global_match_cross_entropy

    torch.manual_seed(3)
    queries, keys = torch.randn(1, 8, 4, 6), torch.randn(1, 8, 4, 6)
    to_keys = torch.zeros(1, 2, 4, 6)
    to_keys[0, 0, 0, 5] = 3.0  # this pixel's match lies outside the frame
    scale = torch.tensor(5.0)
    plain = global_match_cross_entropy(queries, keys, to_keys, scale)
    assert torch.allclose(global_match_cross_entropy(queries, keys, to_keys, scale, torch.full((1, 4, 6), 2.0)), plain)
    logits = torch.einsum("bcn,bcm->bnm", F.normalize(queries, dim=1).flatten(2), F.normalize(keys, dim=1).flatten(2)) * scale
    per_pixel = F.cross_entropy(logits[0], torch.arange(24), reduction="none")
    weights = torch.ones(1, 4, 6)
    weights[0, 1, 2] = 1000.0  # one pixel all but alone
    weights[0, 0, 5] = 1e6  # the one that leaves the frame
    weighted = global_match_cross_entropy(queries, keys, to_keys, scale, weights)
    assert abs(float(weighted) - float(per_pixel[1 * 6 + 2])) < 0.05 * float(per_pixel.std())


def test_the_matcher_stage_counts_large_motion_more(monkeypatch):
    """``LARGE_MOTION_PX``: a pixel moving 96 px weighs 4× a still one in the matcher's loss."""
    import hfdinterp.train.stages as stages

    seen = []
    monkeypatch.setattr(stages, "global_match_cross_entropy",
                        lambda q, k, t, s, weights=None: seen.append(weights) or q.sum() * 0)
    model = HFD(dataclasses.replace(PRESETS["tiny"], denoiser=dataclasses.replace(PRESETS["tiny"].denoiser,
                                                                                 global_matching=True)))
    flow = torch.zeros(1, 4, 64, 64)
    flow[..., :32] = torch.tensor([-48.0, 0.0, 48.0, 0.0]).view(1, 4, 1, 1)  # left half: 96 px between the frames
    batch = {"image0": torch.rand(1, 3, 64, 64), "image1": torch.rand(1, 3, 64, 64), "flow": flow,
             "time": torch.full((1,), 0.5)}
    stages.global_matching_loss(model, batch, None, stages.STAGES["global_matching"])
    assert len(seen) == 2
    weights = seen[0][0]  # (h, w) on the 1/16 grid
    assert torch.allclose(weights[:, :2], torch.tensor(1 + 96 / stages.LARGE_MOTION_PX))
    assert torch.allclose(weights[:, 2:], torch.tensor(1.0))


@pytest.mark.parametrize("tau", [0.5, 0.25])
def test_a_small_object_moving_far_gets_its_motion_where_it_is_at_tau_when_splatted(tau):
    """A 2×2-pixel object crosses 8 feature pixels of a still background. Super SloMo's approximation
    reads the background's (zero) motion where the object is at τ; the splatted prior gives its own."""
    torch.manual_seed(4)
    background = torch.randn(1, 16, 12, 24)
    frame0, frame1 = background.clone(), background.clone()
    thing = torch.randn(16, 2, 2) * 3
    frame0[0, :, 5:7, 4:6] = thing
    frame1[0, :, 5:7, 12:14] = thing  # 8 feature px right: 128 px at stride 16
    x = 4 + round(8 * tau)  # the object's left column at τ
    for splatting, expected in ((False, 0.0), (True, 8 * 16)):
        prior = global_bilateral_prior(frame0, frame1, torch.tensor([tau]), torch.tensor(30.0), 16, splatting)
        motion = prior[0, 2:, 5:7, x:x + 2] - prior[0, :2, 5:7, x:x + 2]  # f_τ→1 − f_τ→0: the motion I0 → I1
        if splatting:
            assert (motion[0] - expected).abs().max() < 4 and motion[1].abs().max() < 4
        else:
            assert motion[0].abs().max() < 0.5 * 8 * 16  # not the object's motion
    # elsewhere the background stands still, but for a few pixels an occlusion leaves without a true match
    for splatting in (False, True):
        prior = global_bilateral_prior(frame0, frame1, torch.tensor([tau]), torch.tensor(30.0), 16, splatting)
        moving = prior[0].abs().amax(0) > 1.0
        moving[5:7, x:x + 2] = False
        assert moving.float().mean() < 0.08  # measured 14 of 288 pixels splatted, 5 not


def test_splatting_is_a_config_field_that_reaches_the_matcher_and_old_files_load_without_it():
    config = dataclasses.replace(PRESETS["tiny"], denoiser=dataclasses.replace(PRESETS["tiny"].denoiser,
                                                                              global_matching=True, prior_splatting=True))
    assert HFD(config).matcher.splatting
    raw = json.loads(config.to_json())
    del raw["denoiser"]["prior_splatting"]
    assert not HFD(HFDConfig.from_json(json.dumps(raw))).matcher.splatting


def test_a_match_that_does_not_come_back_is_not_consistent():
    from hfdinterp.model.global_matching import consistent

    forward, backward = torch.zeros(1, 2, 6, 8), torch.zeros(1, 2, 6, 8)
    forward[0, 0, 2, 1] = 4.0  # p = (x 1, y 2) goes to x 5 ...
    backward[0, 0, 2, 5] = -4.0  # ... and x 5 comes back to x 1: consistent
    forward[0, 0, 4, 2] = 3.0  # (x 2, y 4) goes to x 5, where nothing moves back
    kept = consistent(forward, backward)[0, 0]
    assert kept[2, 1] and not kept[4, 2]
    assert not kept[2, 5]  # said to stand still, but where it stands I1's pixel came from x 1
    assert kept.sum() == 6 * 8 - 2  # everywhere else standing still comes back to itself


def test_splatting_leaves_small_motion_to_the_check_at_tau():
    """Below ``SPLAT_BEYOND`` the prior with splatting is the one without, to the bit; only the new
    column at the edge, whose match is anywhere, may differ."""
    torch.manual_seed(5)
    features = torch.randn(1, 16, 12, 20)
    moved = torch.cat((features[..., 1:], torch.randn(1, 16, 12, 1)), 3)  # 1 feature px: 16 px at stride 16
    plain, splatted = (global_bilateral_prior(features, moved, torch.tensor([0.5]), torch.tensor(30.0), 16, s)
                       for s in (False, True))
    assert (plain[0, 0, :, 2:-2] - 8).abs().max() < 0.5  # it does find the motion
    same = (plain == splatted).all(1)[0]
    assert same[:, 2:-2].all() and same.float().mean() > 0.9
