"""The BatchNorm/Dropout MLP of seed 001 inspected in train mode and in eval mode.

``mode="train"`` runs the forward as training would (BatchNorm normalizes with
the batch's statistics, Dropout drops); ``mode="eval"`` (the default) as
inference would. The report says which mode it ran in, and either way the model
comes back exactly as it was: its ``training`` flag and BatchNorm's running
statistics are unchanged (a plain training-mode forward would have updated
them). Last, the seed's own input, ``torch.randn(1, 784)``, in train mode: one
sample gives BatchNorm nothing to average, and inspectnn says so and what to do.

Run it from anywhere::

    python examples/bn_dropout_modes.py --out out

It writes ``bn_dropout_train.png`` and ``bn_dropout_batch1_error.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch
from torch import nn

import inspectnn as inn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed_models import bn_dropout_mlp


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


def _unchanged(model: nn.Module, before: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(before[name], t) for name, t in model.state_dict().items())


def main(argv: list[str] | None = None) -> int:
    """Inspect in both modes, check nothing changed, diagnose the batch of 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out"), help="folder for the PNGs")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = bn_dropout_mlp()  # a fresh module: training=True
    x = torch.randn(8, 784)
    before = _snapshot(model)
    bn = model[1]
    assert isinstance(bn, nn.BatchNorm1d) and bn.running_mean is not None

    print("1. mode='train': BatchNorm uses batch statistics, Dropout is active.")
    train = inn.inspect(model, x, mode="train")
    print(train)
    print(f"report.mode = {train.mode!r}")
    print(f"wrote {train.render(args.out / 'bn_dropout_train.png')}\n")

    print("2. mode='eval': BatchNorm uses its running statistics, Dropout is off.")
    evaluated = inn.inspect(model, x, mode="eval")
    print(evaluated)
    print(f"report.mode = {evaluated.mode!r}\n")

    assert (train.mode, evaluated.mode) == ("train", "eval")
    unchanged = _unchanged(model, before)
    print(
        f"3. After both: model.training = {model.training}, running stats unchanged: "
        f"{unchanged} (1.running_mean[:3] = {bn.running_mean[:3].tolist()})"
    )
    plain = copy.deepcopy(model)
    plain(x)  # a plain train-mode forward, on a copy
    plain_bn = plain[1]
    assert isinstance(plain_bn, nn.BatchNorm1d) and plain_bn.running_mean is not None
    print(
        "   whereas a plain train-mode forward (on a copy) moves them: "
        f"running stats unchanged: {_unchanged(plain, before)} "
        f"(1.running_mean[:3] = {[round(v, 4) for v in plain_bn.running_mean[:3].tolist()]})\n"
    )
    if not (unchanged and model.training):
        return 1

    print("4. The seed's own input, torch.randn(1, 784), in train mode:")
    one = torch.randn(1, 784)
    try:
        inn.inspect(model, one, mode="train")
    except inn.ForwardError as err:
        print(f"{type(err).__name__} in layer {err.layer!r}")
        print(err)
    else:
        print("unexpected: a batch of 1 ran in train mode")
        return 1
    failed = inn.inspect(model, one, mode="train", on_error="report")
    print(f"wrote {failed.render(args.out / 'bn_dropout_batch1_error.png')}")
    ok = inn.inspect(model, one, mode="eval")
    print(f"The same batch of 1 in mode='eval' runs: output {ok.outputs[0].short()}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
