import dataclasses

import torch

from hfdinterp import HFD, PRESETS, load_weights, save_weights
from hfdinterp.train.graft import main


def _matching(layers: int, stride: int = 16):
    tiny = PRESETS["tiny"]
    return dataclasses.replace(tiny, denoiser=dataclasses.replace(tiny.denoiser, global_matching=True,
                                                                  matching_layers=layers, matching_stride=stride))


def test_the_base_keeps_everything_but_gains_the_donors_matcher(tmp_path):
    torch.manual_seed(1)
    base = HFD(PRESETS["tiny"])
    torch.manual_seed(2)
    donor = HFD(_matching(1, stride=8))
    donor.encoder.load_state_dict(base.encoder.state_dict())  # trained on the base's frozen encoder
    save_weights(base, tmp_path / "base.safetensors")
    save_weights(donor, tmp_path / "donor.safetensors")
    assert main([str(tmp_path / "base.safetensors"), str(tmp_path / "donor.safetensors"),
                 "--out", str(tmp_path / "out.safetensors")]) == 0
    grafted = load_weights(tmp_path / "out.safetensors")
    assert grafted.config.denoiser.global_matching and grafted.config.denoiser.matching_layers == 1
    assert grafted.config.denoiser.matching_stride == 8  # the donor's grid: its head was trained on it
    mine, theirs, kept = grafted.state_dict(), donor.state_dict(), base.state_dict()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine if k.startswith("matcher."))
    assert all(torch.equal(mine[k], kept[k]) for k in kept)
    denoiser = next(k for k in kept if k.startswith("denoiser.") and kept[k].is_floating_point())
    assert not torch.equal(mine[denoiser], theirs[denoiser])  # the base's denoiser, not the donor's


def test_a_matcher_from_another_encoder_or_none_is_refused_in_one_line(tmp_path, capsys):
    torch.manual_seed(1)
    save_weights(HFD(PRESETS["tiny"]), tmp_path / "base.safetensors")
    torch.manual_seed(2)
    save_weights(HFD(_matching(0)), tmp_path / "other.safetensors")  # its own encoder
    args = [str(tmp_path / "base.safetensors"), "--out", str(tmp_path / "out.safetensors")]
    assert main(args[:1] + [str(tmp_path / "other.safetensors")] + args[1:]) == 1
    assert "different encoders" in capsys.readouterr().err
    assert main(args[:1] + [str(tmp_path / "base.safetensors")] + args[1:]) == 1
    assert "no global matcher" in capsys.readouterr().err
    assert not (tmp_path / "out.safetensors").exists()


def test_an_output_path_that_cannot_be_written_is_one_clear_line(tmp_path, capsys):
    torch.manual_seed(1)
    base = HFD(PRESETS["tiny"])
    donor = HFD(_matching(0))
    donor.encoder.load_state_dict(base.encoder.state_dict())
    save_weights(base, tmp_path / "base.safetensors")
    save_weights(donor, tmp_path / "donor.safetensors")
    for out in (tmp_path / "missing" / "out.safetensors", tmp_path):
        assert main([str(tmp_path / "base.safetensors"), str(tmp_path / "donor.safetensors"), "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "cannot write the weights there" in err
        assert not list(out.parent.glob("*.part"))
