"""Two dtype problems: one that stops the forward, one that runs and is only a warning.

1. A float64 batch (what ``torch.from_numpy`` gives for a NumPy float array) fed to
   the float32 ``SimpleNet`` of seed 000. PyTorch would fail inside ``F.linear``
   with "mat1 and mat2 must have the same dtype"; inspectnn checks before the call
   and raises ``DtypeMismatchError`` naming the layer, the parameter it compared
   with and the fix. With ``on_error="report"`` the diagram marks the layer.
2. A float32 model with ONE float16 parameter: the learned scale of an
   RMSNorm-style layer, left in half precision (say, loaded from a half
   checkpoint). ``float16 * float32`` promotes to float32, so the forward runs on
   CPU and every output is float32, but the scale was rounded to half precision.
   inspectnn reports a ``mixed-dtypes`` warning finding.

Run it from anywhere::

    python examples/dtype_problems.py --out out

It writes ``dtype_float64_error.png`` and ``dtype_mixed.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

import inspectnn as inn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed_models import SimpleNet


class ScaleNorm(nn.Module):
    """RMS norm with a learned per-feature scale, ``weight * x / rms(x)``."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalizes the last dimension; the result has the promoted dtype."""
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


class HalfScaleMLP(nn.Module):
    """A float32 MLP whose ``norm.weight`` was left in float16."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 128)
        self.norm = ScaleNorm(128)
        self.fc2 = nn.Linear(128, 10)
        self.norm.half()  # the one float16 parameter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Maps ``(batch, 784)`` to ``(batch, 10)``."""
        out: torch.Tensor = self.fc2(torch.relu(self.norm(self.fc1(x))))
        return out


def main(argv: list[str] | None = None) -> int:
    """Diagnose the float64 input, then show the mixed-dtypes warning."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out"), help="folder for the PNGs")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    print("1. A float64 batch into the float32 SimpleNet:")
    model = SimpleNet()
    x64 = torch.randn(4, 784, dtype=torch.float64)
    try:
        inn.inspect(model, x64)
    except inn.DtypeMismatchError as err:
        print(
            f"{type(err).__name__} in layer {err.layer!r}: expected {err.expected}, "
            f"got {err.got}; fix: {err.fix}"
        )
        print(err)
    else:
        print("unexpected: the float64 forward ran")
        return 1
    failed = inn.inspect(model, x64, on_error="report")
    print(f"wrote {failed.render(args.out / 'dtype_float64_error.png')}")
    fixed = inn.inspect(model, x64.float())
    print(f"With x.float() it runs: output {fixed.outputs[0].short()} {fixed.outputs[0].dtype}.\n")

    print("2. A float32 model with one float16 parameter (norm.weight): it runs.")
    mixed = inn.inspect(HalfScaleMLP(), torch.randn(4, 784))
    print(mixed.table(columns=["layer", "output", "dtype", "params"]))
    print("findings:")
    for finding in mixed.findings:
        print(f"   {finding.kind} [{finding.severity}] in {finding.layer!r}: {finding.message}")
        print(f"   fix: {finding.fix}")
    if not any(f.kind == "mixed-dtypes" and f.severity == "warning" for f in mixed.findings):
        print("expected a mixed-dtypes warning")
        return 1
    print(f"wrote {mixed.render(args.out / 'dtype_mixed.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
