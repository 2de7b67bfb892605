"""MyModel and MyModel2 of seed 002: the same 2-5-10-3 network written two ways.

``MyModel`` names its layers ``fc1``/``fc2``/``fc3`` and calls ONE ``Sigmoid``
module, ``act``, three times: the report has a row per call (``act``,
``act#1``, ``act#2``). ``MyModel2`` nests an ``nn.Sequential`` in
``self.linear``, so its layers are ``linear.0`` ... ``linear.5``; the seed's
``model2.linear[-2]`` is ``linear.4``, and ``report.layer("linear.4")`` is its
row. Both have the 108 parameters the seed counts with
``sum(p.numel() for p in model.parameters() if p.requires_grad)``. The seed draws
each with torchviz's ``make_dot``; ``inn.autograd_graph`` is that view.

Run it from anywhere::

    python examples/my_model.py --out out

It writes ``my_model.png``, ``my_model2.png`` and ``my_model_autograd.png``
into ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

import inspectnn as inn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed_models import MyModel, MyModel2


def main(argv: list[str] | None = None) -> int:
    """Inspect both models, show linear[-2]'s row, check the 108 parameters."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out"), help="folder for the PNGs")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    x = torch.randn(5, 2)  # 5 samples with 2 features each

    print("1. MyModel: one Sigmoid module called three times, so three act rows.")
    model = MyModel()
    report = inn.inspect(model, x)
    print(report)
    print(f"wrote {report.render(args.out / 'my_model.png')}")
    autograd = inn.autograd_graph(model, x)
    written = autograd.render(
        filename="my_model_autograd", directory=str(args.out), format="png", cleanup=True
    )
    print(f"wrote {written} (the autograd view, like the seed's make_dot(y))\n")

    print("2. MyModel2: the same layers in a nested nn.Sequential.")
    model2 = MyModel2()
    report2 = inn.inspect(model2, x)
    print(report2)
    print(f"wrote {report2.render(args.out / 'my_model2.png')}\n")

    second_to_last = model2.linear[-2]
    assert isinstance(second_to_last, nn.Linear)
    name = next(n for n, m in model2.named_modules() if m is second_to_last)
    row = report2.layer(name)
    inputs = ", ".join(str(list(t.shape or ())) for t in row.inputs)
    outputs = ", ".join(str(list(t.shape or ())) for t in row.outputs)
    print(f"3. model2.linear[-2] is {second_to_last}; its dotted path is {name!r}:")
    print(
        f"   report.layer({name!r}): {row.type}({row.extra}), input {inputs} -> "
        f"output {outputs}, params {row.params}, FLOPs {row.flops}"
    )
    bias = [round(v, 4) for v in second_to_last.bias.tolist()]
    print(f"   its bias, which the seed prints: {bias}\n")

    seed_count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    seed_count2 = sum(p.numel() for p in model2.parameters() if p.requires_grad)
    assert report.totals.params == report2.totals.params == seed_count == seed_count2 == 108
    assert report.totals.trainable_params == 108
    print(
        f"4. Parameters: MyModel {report.totals.params}, MyModel2 {report2.totals.params}, "
        f"the seed's sum(p.numel() ...) {seed_count}: all 108."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
