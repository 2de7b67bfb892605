"""MultiInputOutputModel of seed 003: two inputs, a shared layer, two outputs.

``inspect`` takes the inputs as ``model(...)`` does, here
``inn.inspect(model, input1, input2)``. The root row lists both outputs; the
diagram shows the two inputs merging (``x1 + x2``) into ``shared_layer`` and
the shared result feeding both output branches.

Run it from anywhere::

    python examples/two_inputs_two_outputs.py --out out

It writes ``two_inputs_two_outputs.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import inspectnn as inn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed_models import MultiInputOutputModel


def main(argv: list[str] | None = None) -> int:
    """Inspect the two-input, two-output model and draw it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out"), help="folder for the PNGs")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    input1, input2 = torch.randn(4, 10), torch.randn(4, 5)

    print("1. Two inputs, (4, 10) and (4, 5), passed as in model(input1, input2):")
    report = inn.inspect(MultiInputOutputModel(), input1, input2)
    print(report.table(columns=["layer", "input", "output", "params"]))

    root = report.layers[0]
    shared = report.layer("shared_layer")
    print(f"\n2. inputs:  {', '.join(t.short() for t in root.inputs)}")
    print(f"   outputs: {', '.join(t.short() for t in report.outputs)} (out1, out2)")
    print(
        f"   shared_layer takes the merged {shared.inputs[0].short()} and feeds both branches: "
        f"{shared.outputs[0].short()} -> output_branch1, output_branch2"
    )
    assert [t.shape for t in report.outputs] == [(4, 1), (4, 1)]
    print(f"wrote {report.render(args.out / 'two_inputs_two_outputs.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
