"""The MNIST MLP of seed 000, built twice: as an ``nn.Sequential`` and as an ``nn.Module``.

Shows that both builds have the same shapes at every layer and the same 101,770
parameters, that the Module's functional ``F.relu`` is no layer of its own (it
shows as a ``relu`` op in the diagram, not as a table row), and what inspectnn
says about the seed's warning that "the out_features of one Linear layer must
match the in_features of the next".

Run it from anywhere::

    python examples/mnist_mlp.py --out out

It prints the tables and writes ``mnist_mlp_sequential.png`` and
``mnist_mlp_module.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import inspectnn as inn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed_models import SimpleNet, mismatched_mlp, mnist_mlp_sequential

BATCH = 64


def main(argv: list[str] | None = None) -> int:
    """Inspect both builds, compare them, and diagnose the mis-wired variant."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out"), help="folder for the PNGs")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    x = torch.randn(BATCH, 784)  # a batch of flattened 28x28 images

    print("1. The MLP as nn.Sequential(Linear, ReLU, Linear): every layer is a row.")
    seq = inn.inspect(mnist_mlp_sequential(), x)
    print(seq)
    print(f"wrote {seq.render(args.out / 'mnist_mlp_sequential.png')}\n")

    print("2. The same MLP as SimpleNet(nn.Module): F.relu is a function, so it has no row.")
    mod = inn.inspect(SimpleNet(), x)
    print(mod)
    print(f"wrote {mod.render(args.out / 'mnist_mlp_module.png')}\n")

    seq_linears = [layer.outputs[0].short() for layer in seq.layers if layer.type == "Linear"]
    mod_linears = [layer.outputs[0].short() for layer in mod.layers if layer.type == "Linear"]
    assert seq_linears == mod_linears, (seq_linears, mod_linears)
    assert seq.totals.params == mod.totals.params == 101_770
    assert seq.outputs[0].shape == mod.outputs[0].shape == (BATCH, 10)
    print(
        f"Same network: Linear outputs {', '.join(mod_linears)} in both, "
        f"{mod.totals.params:,} parameters in both.\n"
    )

    print("3. Linear(784, 128) -> ReLU -> Linear(64, 10): 128 features out, 64 expected in.")
    try:
        inn.inspect(mismatched_mlp(), x)
    except inn.ShapeMismatchError as err:
        print(
            f"{type(err).__name__} in layer {err.layer!r}: expected {err.expected}, "
            f"got {err.got}; fix: {err.fix}"
        )
        print(err)
    else:
        print("unexpected: the mis-wired MLP ran")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
