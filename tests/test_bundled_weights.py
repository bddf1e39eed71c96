"""The weights that ship: present, loadable, and recorded correctly in the registry."""

from hfdinterp import load_weights
from hfdinterp.inference.registry import DEFAULT_NAME, KNOWN_WEIGHTS, bundled_path, resolve_weights, sha256_of


def test_default_weights_are_bundled_and_load():
    path = bundled_path(DEFAULT_NAME)
    assert path.is_file(), "weights/hfd-small.safetensors must ship with the package"
    assert resolve_weights(None) == path
    model = load_weights(path)
    assert sum(p.numel() for p in model.parameters()) > 100_000


def test_registry_records_the_bundled_file():
    entry = KNOWN_WEIGHTS[DEFAULT_NAME]
    path = bundled_path(DEFAULT_NAME)
    assert entry.sha256 == sha256_of(path)
    assert entry.size == path.stat().st_size


def test_the_bundled_file_is_the_small_preset():
    """What ``--preset small`` trains is what ships: the same architecture and the same prior rules."""
    from hfdinterp.model.config import PRESETS

    assert load_weights(bundled_path(DEFAULT_NAME)).config == PRESETS["small"]
