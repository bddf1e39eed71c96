"""Weights as safetensors with the model config as JSON metadata; strict loading.

Where a name resolves to a file is ``weights_registry``'s business.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from safetensors import safe_open

from .config import HFDConfig
from ..errors import HFDError
from .hfd import HFD

FORMAT = "hfdinterp/1"


def save_weights(model: HFD, path: str | os.PathLike, extra: dict[str, str] | None = None) -> None:
    """Write the module's state (no training state) atomically, config in the metadata."""
    path = Path(path)
    metadata = {"format": FORMAT, "config": model.config.to_json(), **(extra or {})}
    state = {name: tensor.detach().to("cpu", torch.float32).contiguous() for name, tensor in model.state_dict().items()}
    tmp = path.with_name(path.name + ".part")
    try:
        save_file(state, str(tmp), metadata=metadata)
        os.replace(tmp, path)
    except (OSError, SafetensorError, ValueError) as error:  # no folder, a folder in the way, no name
        tmp.unlink(missing_ok=True)
        raise HFDError(f"{path}: cannot write the weights there ({error})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise HFDError(f"{path}: not a readable safetensors weights file ({error})") from None


def load_weights(path: str | os.PathLike, device: torch.device | str = "cpu") -> HFD:
    """Build the model from the file's config and load its tensors strictly."""
    path = Path(path)
    if not path.is_file():
        raise HFDError(f"{path}: weights file not found")
    metadata = read_metadata(path)
    if metadata.get("format") != FORMAT or "config" not in metadata:
        raise HFDError(f"{path}: not an hfdinterp weights file (no '{FORMAT}' config in its metadata)")
    try:
        config = HFDConfig.from_json(metadata["config"])
    except (ValueError, KeyError, TypeError) as error:
        raise HFDError(f"{path}: the config in its metadata is not valid ({error})") from None
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise HFDError(f"{path}: the weights file is damaged or truncated ({error})") from None
    model = HFD(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensor(s), e.g. {missing[0]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensor(s), e.g. {unexpected[0]}")
        raise HFDError(f"{path}: does not match its config: " + "; ".join(parts))
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise HFDError(f"{path}: tensor {name} has shape {tuple(tensor.shape)}, "
                           f"the config needs {tuple(expected[name].shape)}")
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()
