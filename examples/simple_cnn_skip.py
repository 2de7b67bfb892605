"""SimpleCNN of seed 003 on a (64, 1, 28, 28) batch, and its unused skip path.

The seed computes ``skip_path = self.conv_skip_adjust(x1_pool)`` and
``skip_path_pooled = self.pool(skip_path)`` but never adds them to the main path
(the ``combined = ...`` line is commented out). The forward runs and the output
shape is right, so nothing in PyTorch tells you; inspectnn traces where every
tensor goes and reports a ``dead-computation`` finding: the skip path's work
never reaches the output and ``conv_skip_adjust``'s 544 parameters would get no
gradient. The diagram draws that path grey.

Run it from anywhere::

    python examples/simple_cnn_skip.py --out out

It writes ``simple_cnn.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import inspectnn as inn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed_models import SimpleCNN


def main(argv: list[str] | None = None) -> int:
    """Inspect SimpleCNN, print its findings, draw it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out"), help="folder for the PNGs")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    print("1. SimpleCNN on 64 28x28 images: pool is one module called three times.")
    report = inn.inspect(SimpleCNN(), torch.randn(64, 1, 28, 28))
    print(report)
    assert report.outputs[0].shape == (64, 10)

    print("\n2. The findings: the skip path is computed and never used.")
    dead = [f for f in report.findings if f.kind == "dead-computation"]
    for finding in report.findings:
        print(f"   {finding.kind} [{finding.severity}] in {finding.layer!r}: {finding.message}")
        print(f"   fix: {finding.fix}")
    if not any(f.layer == "conv_skip_adjust" for f in dead):
        print("expected a dead-computation finding on conv_skip_adjust")
        return 1
    print(f"wrote {report.render(args.out / 'simple_cnn.png')} (the skip path in grey)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
