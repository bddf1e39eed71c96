import pytest
import torch
from safetensors.torch import load_file, save_file

from hfdinterp import HFD, PRESETS, load_weights, save_weights
from hfdinterp.errors import HFDError
from hfdinterp.model.weights import FORMAT, read_metadata


def test_round_trip_keeps_config_and_outputs(tmp_path, tiny_model):
    path = tmp_path / "m.safetensors"
    save_weights(tiny_model, path)
    loaded = load_weights(path)
    assert loaded.config == tiny_model.config
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a = tiny_model(image, image.flip(-1), torch.tensor([0.5]), torch.Generator().manual_seed(1))["image"]
        b = loaded(image, image.flip(-1), torch.tensor([0.5]), torch.Generator().manual_seed(1))["image"]
    assert torch.equal(a, b)
    assert read_metadata(path)["format"] == FORMAT


def _rewrite(source, target, change):
    tensors = load_file(str(source))
    from safetensors import safe_open
    with safe_open(str(source), "pt") as handle:
        metadata = handle.metadata()
    change(tensors)
    save_file(tensors, str(target), metadata=metadata)


def test_missing_key_fails_loudly(tmp_path, tiny_weights):
    broken = tmp_path / "missing.safetensors"
    _rewrite(tiny_weights, broken, lambda t: t.pop("denoiser.heads.0.weight"))
    with pytest.raises(HFDError, match="missing 1 tensor.*denoiser.heads.0.weight"):
        load_weights(broken)


def test_extra_key_fails_loudly(tmp_path, tiny_weights):
    broken = tmp_path / "extra.safetensors"
    _rewrite(tiny_weights, broken, lambda t: t.__setitem__("stowaway", torch.zeros(1)))
    with pytest.raises(HFDError, match="unexpected.*stowaway"):
        load_weights(broken)


def test_shape_mismatch_names_the_tensor(tmp_path, tiny_weights):
    broken = tmp_path / "shape.safetensors"
    _rewrite(tiny_weights, broken, lambda t: t.__setitem__("denoiser.heads.0.bias", torch.zeros(5)))
    with pytest.raises(HFDError, match="denoiser.heads.0.bias"):
        load_weights(broken)


def test_truncated_file_names_the_file(tmp_path, tiny_weights):
    data = open(tiny_weights, "rb").read()
    broken = tmp_path / "truncated.safetensors"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(HFDError, match="truncated.safetensors"):
        load_weights(broken)


def test_not_a_weights_file(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"hello, not safetensors at all")
    with pytest.raises(HFDError, match="junk.safetensors"):
        load_weights(junk)
    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(1)}, str(plain))
    with pytest.raises(HFDError, match="not an hfdinterp weights file"):
        load_weights(plain)
    with pytest.raises(HFDError, match="not found"):
        load_weights(tmp_path / "absent.safetensors")


def test_save_is_atomic_and_stores_float32(tmp_path):
    model = HFD(PRESETS["tiny"])
    path = tmp_path / "m.safetensors"
    save_weights(model, path)
    assert not list(tmp_path.glob("*.part"))
    assert all(t.dtype == torch.float32 for t in load_file(str(path)).values())
