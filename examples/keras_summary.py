"""The Keras ``model.summary()`` of seed 003, for the PyTorch twin of the Keras model.

Seed 003 builds ``tf.keras.Sequential([Flatten(input_shape=(28, 28)),
Dense(128, activation='relu'), Dense(10, activation='softmax')])`` and calls
``keras_sequential_model.summary()``; PyTorch's ``print(model)`` lists the
modules but no shapes or counts. ``report.table(columns=["layer", "output",
"params"])`` is the same three columns, and ``report.totals`` has the numbers
for Keras's "Total params / Trainable params / Non-trainable params" lines.
PyTorch has no input layer, so the input is given: ``input_size=(1, 28, 28)``
(one 28x28 image; the batch dimension is part of the shape, where Keras shows
``None``). In PyTorch the ReLU is its own module and the softmax is left to the
loss, so the rows differ from Keras's three, but the 101,770 parameters agree.

Run it from anywhere::

    python examples/keras_summary.py --out out

It writes ``keras_sequential.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import inspectnn as inn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed_models import pytorch_sequential_model

KERAS_TOTAL = 101_770  # 784*128 + 128 + 128*10 + 10, what Keras's summary() reports


def main(argv: list[str] | None = None) -> int:
    """Print the Keras-style summary of pytorch_sequential_model."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out"), help="folder for the PNGs")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    model = pytorch_sequential_model()
    print("print(model), what PyTorch itself shows:")
    print(model)

    print('\nreport.table(columns=["layer", "output", "params"]), like Keras\'s summary():')
    report = inn.inspect(model, input_size=(1, 28, 28))
    print(report.table(columns=["layer", "output", "params"]))
    totals = report.totals
    print(f"Total params: {totals.params:,}")
    print(f"Trainable params: {totals.trainable_params:,}")
    print(f"Non-trainable params: {totals.non_trainable_params:,}")
    if totals.params != KERAS_TOTAL:
        print(f"expected {KERAS_TOTAL:,} parameters, as Keras reports")
        return 1
    print(f"wrote {report.render(args.out / 'keras_sequential.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
