"""ComplexModel of seed 002: two parallel branches merged with ``torch.cat``.

``torch.cat`` is no module, so it has no row in the table; inspectnn records it
as a functional op of the root's forward (``report.ops``), with the shapes that
went in and where each came from. The diagram draws it as a ``cat`` node that
``branch1`` and ``branch2`` both flow into, and ``combine`` flows out of.

Run it from anywhere::

    python examples/branching_cat.py --out out

It writes ``branching_cat.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import inspectnn as inn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed_models import ComplexModel


def _producer(report: inn.Report, source: str | None) -> str:
    """``"layers[1]"`` -> ``"branch1 (Linear)"``; the model input or an op as they are."""
    if source and source.startswith("layers["):
        rec = report.layers[int(source[len("layers[") : -1])]
        return f"{rec.label} ({rec.type})"
    return source or "a constant"


def main(argv: list[str] | None = None) -> int:
    """Inspect ComplexModel, list its torch.cat, draw the merge."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out"), help="folder for the PNGs")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    print("1. ComplexModel on a (4, 10) batch: the table has the three Linear layers.")
    report = inn.inspect(ComplexModel(), torch.randn(4, 10))
    print(report)

    print("\n2. The functional ops between them (report.ops):")
    cats = [op for op in report.ops if op.name == "torch.cat"]
    for op in report.ops:
        ins = " + ".join(f"{t.short()} from {_producer(report, t.source)}" for t in op.inputs)
        outs = ", ".join(t.short() for t in op.outputs)
        print(f"   {op.name}({op.args}): {ins} -> {outs}")
    if len(cats) != 1:
        print(f"expected one torch.cat, found {len(cats)}")
        return 1
    print(f"wrote {report.render(args.out / 'branching_cat.png')} (branch1 and branch2 -> cat)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
