"""The 32x32 CNN of seed 001, then the same CNN fed 64x64 images.

The seed's ``Linear(32 * 8 * 8, 10)`` only fits 32x32 images ("be careful about
the input shape"). With 64x64 images the forward fails; inspectnn raises
``ShapeMismatchError`` naming the layer (``7``), what it got, what it expected,
where the input came from and what to change. Inspecting again with
``on_error="report"`` returns the partial report instead, and its diagram draws
the failing layer in red with got/expected on its input edge.

Run it from anywhere::

    python examples/cnn32.py --out out

It writes ``cnn32.png`` (the working model) and ``cnn32_64x64_error.png`` (the
failure) into ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import inspectnn as inn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed_models import cnn32


def main(argv: list[str] | None = None) -> int:
    """Inspect the CNN on 32x32 images, then diagnose and draw the 64x64 failure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out"), help="folder for the PNGs")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = cnn32()

    print("1. The seed's input, one 32x32 RGB image: two poolings leave 32x8x8 = 2048 features.")
    report = inn.inspect(model, torch.randn(1, 3, 32, 32))
    print(report)
    print(f"wrote {report.render(args.out / 'cnn32.png')}\n")

    print("2. The same CNN fed a 64x64 image: 32x16x16 = 8192 features reach Linear(2048, 10).")
    big = torch.randn(1, 3, 64, 64)
    try:
        inn.inspect(model, big)
    except inn.ShapeMismatchError as err:
        print(
            f"{type(err).__name__} in layer {err.layer!r}: expected {err.expected}, got {err.got}"
        )
        print(err)
    else:
        print("unexpected: the 64x64 forward ran")
        return 1

    print('\n3. on_error="report" returns the partial report; the failing layer is marked.')
    failed = inn.inspect(model, big, on_error="report")
    assert failed.error is not None
    print(failed)
    print(f"wrote {failed.render(args.out / 'cnn32_64x64_error.png')} (layer 7 drawn red)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
