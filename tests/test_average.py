import pytest
import torch

from hfdinterp import HFD, PRESETS, load_weights, save_weights
from hfdinterp.model.config import DenoiserConfig, HFDConfig
from hfdinterp.train.average import main


def _weights(path, seed: int, config=PRESETS["tiny"]) -> str:
    torch.manual_seed(seed)
    save_weights(HFD(config), path)
    return str(path)


def test_the_average_is_the_weighted_sum_of_every_tensor(tmp_path):
    first, second = _weights(tmp_path / "a.safetensors", 1), _weights(tmp_path / "b.safetensors", 2)
    assert main([first, second, "--weight", "0.25", "--out", str(tmp_path / "c.safetensors")]) == 0
    a, b, c = (load_weights(tmp_path / f"{n}.safetensors").state_dict() for n in "abc")
    assert set(c) == set(a)
    assert all(torch.allclose(c[k], 0.75 * a[k] + 0.25 * b[k], atol=1e-6) for k in a)
    assert any(not torch.equal(c[k], a[k]) for k in a)


def test_models_of_two_configs_are_refused_in_one_line(tmp_path, capsys):
    other = HFDConfig(**{**PRESETS["tiny"].__dict__,
                         "denoiser": DenoiserConfig(**{**PRESETS["tiny"].denoiser.__dict__, "corr_radius": 2})})
    first = _weights(tmp_path / "a.safetensors", 1)
    second = _weights(tmp_path / "b.safetensors", 2, other)
    assert main([first, second, "--weight", "0.5", "--out", str(tmp_path / "c.safetensors")]) == 1
    assert "different configs" in capsys.readouterr().err
    assert not (tmp_path / "c.safetensors").exists()


@pytest.mark.parametrize("weight", ["-0.1", "1.5"])
def test_a_weight_outside_0_1_is_refused(tmp_path, weight):
    first = _weights(tmp_path / "a.safetensors", 1)
    assert main([first, first, "--weight", weight, "--out", str(tmp_path / "c.safetensors")]) == 1


def test_an_output_that_cannot_be_written_is_one_line_and_leaves_nothing(tmp_path, capsys):
    first = _weights(tmp_path / "a.safetensors", 1)
    assert main([first, first, "--weight", "0.5", "--out", str(tmp_path / "missing" / "c.safetensors")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write the weights there" in err
    assert main([first, first, "--weight", "0.5", "--out", str(tmp_path)]) == 1  # a folder in the way
    assert "cannot write the weights there" in capsys.readouterr().err
    assert not list(tmp_path.parent.glob("*.part")) and not list(tmp_path.glob("*.part"))
