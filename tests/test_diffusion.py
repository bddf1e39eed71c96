import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from hfdinterp.model.config import DiffusionConfig
from hfdinterp.model.diffusion import (alpha_bar, ddim_step, gaussian, level_segments, level_timesteps, q_sample,
                                 sample_hierarchical, split_steps)
from hfdinterp.model.warp import upsample_flow


def test_golden_timesteps_per_level():
    config = DiffusionConfig()
    assert level_segments(config) == [(999, 666), (666, 333), (333, 0)]
    assert level_timesteps(config) == [[999, 833], [666, 500], [333, 167]]
    assert level_timesteps(config, (3, 2, 1)) == [[999, 888, 777], [666, 500], [333]]
    assert sum(len(level) for level in level_timesteps(config)) == 6


def test_step_split_is_a_config_field():
    assert split_steps(6) == (2, 2, 2)
    assert split_steps(4) == (2, 1, 1)
    assert split_steps(9) == (3, 3, 3)
    with pytest.raises(ValueError):
        split_steps(2)
    with pytest.raises(ValueError):
        level_timesteps(DiffusionConfig(), (2, 0, 2))


def test_schedule_endpoints():
    abar = alpha_bar(DiffusionConfig())
    assert abar.shape == (1000,)
    assert abar[0] == pytest.approx(1 - 1e-4)
    assert abar[-1] < 1e-4  # x_T is (almost) pure noise
    assert torch.all(abar[1:] < abar[:-1])


def test_ddim_step_is_exact_for_the_true_x0():
    abar = alpha_bar(DiffusionConfig())
    x0, noise = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    x_t = q_sample(x0, 900, noise, abar)
    # σ = 0: stepping with the true x0 lands on q(x_t' | x0) with the same noise
    assert torch.allclose(ddim_step(x_t, x0, 900, 500, abar), q_sample(x0, 500, noise, abar), atol=1e-5)


def _pyramid(batch=2, size=4):
    coarse = torch.randn(batch, 4, size, size)
    return [coarse, torch.randn(batch, 4, 2 * size, 2 * size), torch.randn(batch, 4, 4 * size, 4 * size)]


def test_perfect_denoiser_recovers_x0_at_every_level():
    truth = _pyramid()
    seen = []

    def perfect(x_t, t, level, estimate):
        seen.append((t, level, tuple(x_t.shape)))
        return truth[level]

    out = sample_hierarchical(perfect, tuple(truth[0].shape), DiffusionConfig(), torch.Generator().manual_seed(0))
    for estimate, target in zip(out, truth):
        assert torch.equal(estimate, target)
    assert [(t, level) for t, level, _ in seen] == [(999, 0), (833, 0), (666, 1), (500, 1), (333, 2), (167, 2)]
    assert seen[2][2] == (2, 4, 8, 8) and seen[4][2] == (2, 4, 16, 16)  # ×2 per level


def test_between_levels_the_estimate_is_upsampled_and_renoised():
    truth = _pyramid()
    handed = {}

    def perfect(x_t, t, level, estimate):
        handed[t] = (x_t, estimate)
        return truth[level]

    sample_hierarchical(perfect, tuple(truth[0].shape), DiffusionConfig(), torch.Generator().manual_seed(0))
    x_t, estimate = handed[666]
    assert torch.allclose(estimate, upsample_flow(truth[0]))
    abar = alpha_bar(DiffusionConfig())
    implied_noise = (x_t - abar[666].sqrt() * estimate) / (1 - abar[666]).sqrt()
    assert 0.8 < implied_noise.std() < 1.2  # re-noised with fresh N(0, 1) by q(x_t | x0)


def test_without_noise_the_sampler_starts_at_zero_draws_nothing_and_renoises_with_none(monkeypatch):
    truth = _pyramid()
    handed = {}

    def perfect(x_t, t, level, estimate):
        handed[t] = x_t
        return truth[level]

    monkeypatch.setattr(torch, "randn", lambda *a, **k: pytest.fail("noise 0 drew noise"))
    first = sample_hierarchical(perfect, tuple(truth[0].shape), DiffusionConfig(), torch.Generator().manual_seed(0),
                                noise=0.0)
    abar = alpha_bar(DiffusionConfig())
    assert torch.equal(handed[999], torch.zeros_like(truth[0]))  # x_T = 0, the prior's mean
    assert torch.allclose(handed[666], abar[666].sqrt().float() * upsample_flow(truth[0]))  # √ᾱ_t · x̂_0, nothing added
    again = sample_hierarchical(perfect, tuple(truth[0].shape), DiffusionConfig(), None, noise=0.0)
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_noise_scales_both_draws():
    def denoise(x_t, t, level, estimate):
        return 0.5 * x_t + 0.1 * estimate

    run = lambda noise: sample_hierarchical(denoise, (1, 4, 2, 2), DiffusionConfig(), torch.Generator().manual_seed(3),  # noqa
                                            noise=noise)
    assert all(torch.equal(a, b) for a, b in zip(run(1.0), sample_hierarchical(
        denoise, (1, 4, 2, 2), DiffusionConfig(), torch.Generator().manual_seed(3))))  # 1 is the default: the paper's
    assert 0 < (run(0.5)[-1] - run(0.0)[-1]).abs().sum() < (run(1.0)[-1] - run(0.0)[-1]).abs().sum()


def test_seeded_sampling_is_deterministic_and_seed_dependent():
    def denoise(x_t, t, level, estimate):
        return 0.5 * x_t + 0.1 * estimate

    run = lambda seed: sample_hierarchical(denoise, (1, 4, 2, 2), DiffusionConfig(), torch.Generator().manual_seed(seed))  # noqa
    assert all(torch.equal(a, b) for a, b in zip(run(3), run(3)))
    assert not torch.equal(run(3)[-1], run(4)[-1])


def test_per_sample_generators_make_noise_independent_of_the_batch():
    def denoise(x_t, t, level, estimate):
        return 0.5 * x_t

    both = sample_hierarchical(denoise, (2, 4, 2, 2), DiffusionConfig(),
                               [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)])
    second = sample_hierarchical(denoise, (1, 4, 2, 2), DiffusionConfig(), [torch.Generator().manual_seed(2)])
    assert torch.equal(both[-1][1:], second[-1])


class _HostTraffic(TorchDispatchMode):
    """Records every op that moves a host tensor onto another device, and every read of a device value."""

    def __init__(self):
        super().__init__()
        self.uploads, self.reads = [], []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        tensors = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
        outputs = [o for o in tree_flatten(out)[0] if isinstance(o, torch.Tensor)]
        if any(t.device.type == "cpu" for t in tensors) and any(o.device.type != "cpu" for o in outputs):
            self.uploads.append(str(func))
        if func is torch.ops.aten._local_scalar_dense.default and tensors[0].device.type != "cpu":
            self.reads.append(str(func))
        return out


def test_the_sampler_sends_nothing_to_the_device_and_keeps_float32_state():
    """On a fake device ("meta": tensors without data), no op of the sampler copies a host tensor to the
    device (noise, schedule tables) or reads one back, and a half-precision network's answers are widened."""
    calls = []

    def half_precision_network(x_t, t, level, estimate):
        calls.append((t, x_t.device.type, x_t.dtype, estimate.dtype))
        return (0.5 * x_t + estimate).to(torch.bfloat16)

    with _HostTraffic() as traffic:
        out = sample_hierarchical(half_precision_network, (2, 4, 3, 5), DiffusionConfig(), device="meta")
    assert traffic.uploads == [] and traffic.reads == []
    assert [c[1:] for c in calls] == [("meta", torch.float32, torch.float32)] * 6
    assert [(x.device.type, x.dtype, tuple(x.shape)) for x in out] == [
        ("meta", torch.float32, (2, 4, 3, 5)), ("meta", torch.float32, (2, 4, 6, 10)),
        ("meta", torch.float32, (2, 4, 12, 20))]


def test_noise_is_drawn_on_the_generators_device():
    generator = torch.Generator(device="cpu").manual_seed(5)
    noise = gaussian((2, 4, 3, 3), [generator, torch.Generator().manual_seed(6)], device="cpu")
    assert noise.dtype == torch.float32
    assert torch.equal(noise[:1], torch.randn((1, 4, 3, 3), generator=torch.Generator().manual_seed(5)))
