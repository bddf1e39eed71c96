"""A trained global matcher on another model (ours).

    python -m hfdinterp.train.graft weights/hfd-small.safetensors runs/gm/hfd-small.safetensors --out C.safetensors

C is the first model with the second one's matcher (its config's ``global_matching`` and
``matching_layers`` too). The ``global_matching`` stage trains the matcher alone on a frozen encoder,
so a matcher trained on a file's encoder fits every file that shares that encoder, whatever the rest
of its training did: the bundled hfd-small is the plain file with the matcher of a run that started
from it (weights/README.md, "Global matching").
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import torch

from ..errors import HFDError, exit_status
from ..model.hfd import HFD
from ..model.weights import load_weights, save_weights


def graft_matcher(base: str, donor: str, out: str) -> None:
    """Write ``base`` with ``donor``'s global matcher to ``out``; the two encoders must be identical."""
    model, other = load_weights(base), load_weights(donor)
    if other.matcher is None:
        raise HFDError(f"{donor} has no global matcher")
    if any(not torch.equal(a, b) for a, b in zip(model.encoder.state_dict().values(), other.encoder.state_dict().values())) \
            or model.config.encoder != other.config.encoder:
        raise HFDError(f"{base} and {donor} have different encoders: the matcher reads the encoder's features")
    denoiser = dataclasses.replace(model.config.denoiser, global_matching=True,
                                   matching_layers=other.config.denoiser.matching_layers,
                                   matching_stride=other.config.denoiser.matching_stride)
    grafted = HFD(dataclasses.replace(model.config, denoiser=denoiser))
    state = {name: tensor for name, tensor in model.state_dict().items() if not name.startswith("matcher.")}
    state.update({name: tensor for name, tensor in other.state_dict().items() if name.startswith("matcher.")})
    grafted.load_state_dict(state, strict=True)
    save_weights(grafted, out, extra={"stage": "graft", "graft": f"{base} with the matcher of {donor}"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="weights whose encoder, denoiser and synthesizer are kept")
    parser.add_argument("donor", help="weights whose global matcher is taken")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    return exit_status(lambda: graft_matcher(args.base, args.donor, args.out))


if __name__ == "__main__":
    sys.exit(main())
