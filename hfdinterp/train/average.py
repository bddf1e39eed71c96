"""Weight-space averaging of two models of one config (ours; "model soup", WiSE-FT).

    python -m hfdinterp.train.average A.safetensors B.safetensors --weight 0.35 --out C.safetensors

C = (1 − w)·A + w·B, tensor by tensor. For a model and a fine-tuned descendant of it, the average
keeps much of what each is good at: the matching campaign's weights find large motion better but
lost PSNR on small motion; 0.65 × hfd-small 0.5 + 0.35 × the campaign at step 1,000 is the bundled
hfd-small (weights/README.md, "Weight averaging"). Both files must hold the same config.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import HFDError, exit_status
from ..model.weights import load_weights, save_weights


def average_weights(first: str, second: str, weight: float, out: str) -> None:
    """Write (1 − ``weight``)·``first`` + ``weight``·``second`` to ``out``."""
    if not 0.0 <= weight <= 1.0:
        raise HFDError(f"--weight must lie in [0, 1], got {weight}")
    model, other = load_weights(first), load_weights(second)
    if model.config != other.config:
        raise HFDError(f"{first} and {second} hold different configs: they cannot be averaged")
    theirs = other.state_dict()
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            tensor.lerp_(theirs[name], weight)
    save_weights(model, out, extra={"stage": "average", "average": f"{1 - weight:g} x {first} + {weight:g} x {second}"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("--weight", type=float, required=True, help="share of the second model, in [0, 1]")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    return exit_status(lambda: average_weights(args.first, args.second, args.weight, args.out))


if __name__ == "__main__":
    sys.exit(main())
