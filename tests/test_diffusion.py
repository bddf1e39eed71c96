import pytest
import torch

from hfdinterp.config import DiffusionConfig
from hfdinterp.diffusion import (alpha_bar, ddim_step, level_segments, level_timesteps, q_sample,
                                 sample_hierarchical, split_steps)
from hfdinterp.warp import upsample_flow


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
