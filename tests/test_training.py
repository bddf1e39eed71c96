"""Training: exact synthetic flow, each stage learns, checkpoints resume, export round-trips."""

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from hfdinterp import load_weights
from hfdinterp.scores import psnr, ssim
from hfdinterp.train.synthetic import SyntheticConfig, SyntheticTriplets
from hfdinterp.train.trainer import TrainConfig, export, train
from hfdinterp.model.warp import backward_warp
from hfdinterp.io.testclip import scene


@pytest.fixture(scope="module")
def photos():
    """Stand-ins for real photos: generated textures (no test may need ../shared/data)."""
    return [torch.from_numpy((scene(200, 150, i, i % 2) * 255).astype(np.uint8)).permute(2, 0, 1).contiguous()
            for i in range(4)]


def _inside(flow, size):
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    ok = torch.ones(size, size, dtype=torch.bool)
    for dx, dy in ((flow[0], flow[1]), (flow[2], flow[3])):
        ok &= (xs + dx > 1) & (xs + dx < size - 2) & (ys + dy > 1) & (ys + dy < size - 2)
    return ok


def test_synthetic_flow_is_exact_without_occlusion(photos):
    """A background layer only: nothing is occluded, so both warps reproduce I_t wherever they land
    inside the frame (what differs is bilinear resampling)."""
    data = SyntheticTriplets(photos, SyntheticConfig(size=64, layers=(0, 0), noise=0, brightness=0), seed=3)
    for index in range(4):
        item = data[index]
        clean, flow = item["clean"], item["flow"]
        inside = _inside(flow, 64)
        assert inside.float().mean() > 0.3
        for frame, part in ((clean[0:1], flow[None, 0:2]), (clean[2:3], flow[None, 2:4])):
            error = (backward_warp(frame, part)[0] - clean[1]).abs().mean(0)[inside]
            assert error.median() < 0.005 and (error < 0.03).float().mean() > 0.97, error.median()
        right = (backward_warp(clean[0:1], flow[None, 0:2])[0] - clean[1]).abs().mean(0)[inside]
        wrong = (backward_warp(clean[0:1], flow[None, 0:2] + 3)[0] - clean[1]).abs().mean(0)[inside]
        assert wrong.mean() > 3 * right.mean()  # the check can tell a right flow from a wrong one


def test_synthetic_flow_with_layers_reproduces_most_pixels(photos):
    data = SyntheticTriplets(photos, SyntheticConfig(size=64, noise=0, brightness=0), seed=3)
    for index in range(4):
        item = data[index]
        clean, flow = item["clean"], item["flow"][None]
        error0 = (backward_warp(clean[0:1], flow[:, 0:2])[0] - clean[1]).abs().mean(0)
        error1 = (backward_warp(clean[2:3], flow[:, 2:4])[0] - clean[1]).abs().mean(0)
        assert torch.minimum(error0, error1).median() < 0.01  # occluded at most on one side mostly
        assert 0 < float(item["time"]) < 1


def test_synthetic_items_are_reproducible_and_move(photos):
    data = SyntheticTriplets(photos, SyntheticConfig(size=64))
    assert torch.equal(data[5]["image0"], data[5]["image0"])
    magnitudes = [float(data[i]["flow"].abs().max()) for i in range(12)]
    assert max(magnitudes) > 10  # some large motion
    assert not torch.equal(data[1]["image0"], data[2]["image0"])


class Repeat(Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return 10 ** 6

    def __getitem__(self, index):
        return self.items[index % len(self.items)]


@pytest.fixture(scope="module")
def fixed_data(photos):
    data = SyntheticTriplets(photos, SyntheticConfig(size=64, noise=0))
    return Repeat([{k: v for k, v in data[i].items() if k != "clean"} for i in range(4)])


@pytest.mark.parametrize("stage", ["synthesizer", "diffusion", "diffusion_on_path", "matching", "joint", "refine"])
def test_each_stage_lowers_its_loss(stage, fixed_data, tmp_path):
    from torch.utils.data import default_collate

    from hfdinterp import HFD, PRESETS
    from hfdinterp.model.config import HFDConfig
    from hfdinterp.train.stages import STAGE_LOSSES, STAGES

    batch = default_collate([fixed_data[i] for i in range(4)])

    extra = {"level": 0} if stage == "diffusion" else {}  # 1/16, where the estimate starts at zero

    def measured(model):  # the stage's loss on a fixed batch with fixed levels, times and noise
        with torch.no_grad():
            return np.mean([STAGE_LOSSES[stage](model, batch, torch.Generator().manual_seed(s), STAGES[stage],
                                                **extra)[0].item() for s in range(8)])

    torch.manual_seed(0)
    before = measured(HFD(PRESETS["tiny"]).eval())
    torch.manual_seed(0)
    config = TrainConfig(stage=stage, steps=40, out=str(tmp_path), preset="tiny", batch_size=4, workers=0,
                         checkpoint_every=1000, learning_rate=3e-3, warmup_steps=1)
    state = torch.load(train(config, fixed_data), weights_only=False)
    trained = HFD(HFDConfig.from_json(state["config"]))
    trained.load_state_dict(state["model"])
    after = measured(trained.eval())
    assert after < 0.95 * before, (before, after)


def test_refine_changes_only_the_synthesizer(fixed_data, tmp_path):
    from hfdinterp import HFD, PRESETS
    from hfdinterp.model.weights import save_weights

    torch.manual_seed(0)
    start = HFD(PRESETS["tiny"])
    save_weights(start, tmp_path / "start.safetensors")
    config = TrainConfig(stage="refine", steps=3, out=str(tmp_path), init=str(tmp_path / "start.safetensors"),
                         batch_size=2, workers=0, learning_rate=3e-3, warmup_steps=1)
    trained = torch.load(train(config, fixed_data), weights_only=False)["model"]
    moved = {name for name, before in start.state_dict().items() if not torch.equal(before, trained[name])}
    assert moved and all(name.startswith("synthesizer.") for name in moved), sorted(moved)[:5]


def test_checkpoint_resumes_to_the_same_state(fixed_data, tmp_path):
    common = dict(stage="synthesizer", preset="tiny", batch_size=2, workers=0, checkpoint_every=3)
    straight = tmp_path / "straight"
    torch.manual_seed(0)
    train(TrainConfig(steps=6, out=str(straight), **common), fixed_data)
    resumed = tmp_path / "resumed"
    torch.manual_seed(0)

    def kill(progress):
        if progress.step == 3:  # just after the checkpoint of step 3
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(steps=6, out=str(resumed), **common), fixed_data, on_progress=kill)
    torch.manual_seed(123)  # whatever the global state, the run continues where it stopped
    train(TrainConfig(steps=6, out=str(resumed), **common), fixed_data)
    a = torch.load(straight / "synthesizer.ckpt", weights_only=False)
    b = torch.load(resumed / "synthesizer.ckpt", weights_only=False)
    assert a["step"] == b["step"] == 6
    for name in a["model"]:
        assert torch.allclose(a["model"][name], b["model"][name], atol=1e-6), name
        assert torch.allclose(a["ema"][name], b["ema"][name], atol=1e-6), name


def test_export_then_load_gives_the_same_outputs(fixed_data, tmp_path):
    torch.manual_seed(0)
    checkpoint = train(TrainConfig(stage="synthesizer", steps=2, out=str(tmp_path), preset="tiny", batch_size=2,
                                   workers=0), fixed_data)
    export(checkpoint, tmp_path / "w.safetensors")
    loaded = load_weights(tmp_path / "w.safetensors")
    from hfdinterp import HFD
    from hfdinterp.model.config import HFDConfig
    state = torch.load(checkpoint, weights_only=False)
    ema = HFD(HFDConfig.from_json(state["config"]))
    ema.load_state_dict(state["ema"])
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a = ema.eval()(image, image.roll(2, -1), torch.tensor([0.5]), torch.Generator().manual_seed(0))["image"]
        b = loaded(image, image.roll(2, -1), torch.tensor([0.5]), torch.Generator().manual_seed(0))["image"]
    assert torch.equal(a, b)


def test_scores():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    assert psnr(image, image) == float("inf")
    noisy = np.clip(image.astype(int) + 5, 0, 255).astype(np.uint8)
    expected = 10 * np.log10(255 ** 2 / np.mean((noisy.astype(float) - image) ** 2))
    assert psnr(noisy, image) == pytest.approx(expected)
    assert ssim(image, image) == pytest.approx(1.0)
    assert ssim(noisy, image) < 1.0
    assert ssim(255 - image, image) < 0.2


def test_a_finer_level_is_handed_estimates_from_right_to_nothing():
    from hfdinterp.train.stages import handed_over_estimate
    from hfdinterp.model.warp import downsample_flow, upsample_flow

    target = torch.randn(64, 4, 8, 8)
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(handed_over_estimate(target, 0, generator), torch.zeros_like(target))
    true = upsample_flow(downsample_flow(target, 2))
    coarser = torch.full((64, 4, 4, 4), 7.0)  # the coarser level's own x̂_0, easy to recognise
    estimate = handed_over_estimate(target, 1, generator, coarser)
    error = (estimate - true).abs().mean((1, 2, 3))
    from_coarser = (estimate == 7.0).flatten(1).all(1)
    near_true = error < 0.1
    assert from_coarser.sum() > 4 and near_true.sum() > 16  # both kinds appear
    shrunk = ~from_coarser & ~near_true  # the rest: the true flow scaled towards zero
    ratio = (estimate[shrunk] / true[shrunk]).flatten(1)
    assert shrunk.sum() > 4 and torch.allclose(ratio, ratio[:, :1], atol=1e-3)
    assert float(ratio.min()) >= 0 and float(ratio.max()) <= 1


def test_train_command_runs_our_recipe_and_exports(tmp_path):
    from typer.testing import CliRunner

    from hfdinterp.cli import app
    from hfdinterp.io.images import write_image

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        write_image(photos / f"{i}.png", scene(160, 120, i, i % 2))
    out = tmp_path / "run"
    weights = tmp_path / "w.safetensors"
    args = ["train", "--out", str(out), "--photos", str(photos), "--preset", "tiny", "--crop", "64",
            "--batch", "2", "--workers", "0", "--export", str(weights)]
    result = CliRunner().invoke(app, args + ["--steps", "2,2"])
    assert result.exit_code == 0, result.output
    # no joint stage: it has cost 0.3–2.3 dB since 0.3 (weights/README.md)
    assert sorted(p.name for p in out.glob("*.ckpt")) == ["matching.ckpt", "synthesizer.ckpt"]
    assert load_weights(weights).config.denoiser.width == 8
    wrong = CliRunner().invoke(app, args + ["--stage", "paper", "--steps", "2,2"])
    assert wrong.exit_code == 1 and "needs 3 count(s)" in wrong.output


def test_feature_matching_rewards_features_that_tell_places_apart():
    from hfdinterp.train.losses import feature_matching

    distinctive = torch.randn(2, 16, 12, 12, generator=torch.Generator().manual_seed(0))
    flat = torch.ones(2, 16, 12, 12)  # every place looks the same: the window cannot pick the centre
    shifted = torch.roll(distinctive, 1, dims=3)  # aligned wrongly by one pixel
    aligned_loss = float(feature_matching(distinctive, distinctive, 2))
    assert aligned_loss < 0.1 * float(feature_matching(flat, flat, 2))
    assert aligned_loss < 0.1 * float(feature_matching(distinctive, shifted, 2))


def test_refine_trains_on_what_inference_hands_the_synthesizer(fixed_data, monkeypatch):
    """The refine stage polishes the sampled flow as inference does and warps the output frame as
    inference does (cubic); the stages whose loss reaches the flow keep bilinear."""
    from torch.utils.data import default_collate

    import hfdinterp.train.stages as stages
    from hfdinterp import HFD, PRESETS

    warps_by_stage = {name: stage.output_warp for name, stage in stages.STAGES.items()}
    assert warps_by_stage == {"synthesizer": "bilinear", "diffusion": "bilinear", "joint": "bilinear",
                              "matching": "bilinear", "refine": "cubic", "refine_mixed": "cubic",
                              "global_matching": "bilinear", "diffusion_on_path": "bilinear"}
    calls, warps = [], []
    real_refine = stages.refine_flow
    monkeypatch.setattr(stages, "refine_flow", lambda *args: calls.append(args) or real_refine(*args))
    model = HFD(PRESETS["tiny"])
    real_forward = model.synthesizer.forward
    monkeypatch.setattr(model.synthesizer, "forward", lambda *args: warps.append(args[-1]) or real_forward(*args))
    batch = default_collate([fixed_data[i] for i in range(2)])
    stages.refine_loss(model, batch, torch.Generator().manual_seed(0), stages.STAGES["refine"])
    assert len(calls) == 1 and warps == ["cubic"]
    stages.synthesizer_loss(model, batch, torch.Generator().manual_seed(0), stages.STAGES["synthesizer"])
    assert len(calls) == 1 and warps == ["cubic", "bilinear"]
    generator = torch.Generator().manual_seed(0)
    for _ in range(12):  # refine_mixed: some batches polished, the others as `--refine-steps 0` hands them over
        stages.refine_loss(model, batch, generator, stages.STAGES["refine_mixed"])
    assert 1 < len(calls) < 13



def test_on_path_training_denoises_what_the_noise_free_sampler_hands_over(fixed_data, monkeypatch):
    """diffusion_on_path: the call made again with gradient is one of the sampler's own, with the same
    input and so the same x̂_0, and its target is the true flow at that call's level."""
    from torch.utils.data import default_collate

    import hfdinterp.train.stages as stages
    from hfdinterp import HFD, PRESETS
    from hfdinterp.model.levels import LEVELS
    from hfdinterp.model.warp import downsample_flow

    torch.manual_seed(0)
    model = HFD(PRESETS["tiny"]).eval()
    batch = default_collate([fixed_data[i] for i in range(2)])
    with torch.no_grad():
        features0, features1 = model.encode(batch["image0"]), model.encode(batch["image1"])
        outputs = []

        def recording(denoise):
            def recorded(x_t, step, level, estimate):
                outputs.append((level, denoise(x_t, step, level, estimate)))
                return outputs[-1][1]
            return recorded

        model.sample_flows(features0, features1, batch["time"], wrap=recording, noise=0.0)
    assert len(outputs) == sum(model.config.diffusion.steps_per_level)
    generator, seen = torch.Generator().manual_seed(0), set()
    for _ in range(12):
        x0_hat, target, level = stages.on_path_call(model, batch, features0, features1, generator)
        assert x0_hat.requires_grad
        matches = [i for i, (lv, out) in enumerate(outputs) if lv == level and torch.allclose(out, x0_hat, atol=1e-5)]
        assert matches, level
        seen.update(matches)
        scale = model.config.diffusion.flow_scale
        assert torch.equal(target, downsample_flow(batch["flow"], LEVELS.scale(level)) / scale)
    assert len(seen) > 2  # the call is drawn, not always the same one
    kinds = []  # the stage mixes both kinds of batch: on the path and the paper's q_sample; plain diffusion never
    for name in ("on_path_call", "_denoise_level"):
        real = getattr(stages, name)
        monkeypatch.setattr(stages, name, lambda *args, real=real, name=name: kinds.append(name) or real(*args))
    with torch.no_grad():
        for _ in range(12):
            stages.diffusion_loss(model, batch, generator, stages.STAGES["diffusion_on_path"])
        assert 2 < kinds.count("on_path_call") < 10 and len(kinds) == 12
        kinds.clear()
        for _ in range(6):
            stages.diffusion_loss(model, batch, generator, stages.STAGES["diffusion"])
        assert kinds == ["_denoise_level"] * 6
