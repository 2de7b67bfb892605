"""Pin a model's architecture in your test suite with inspectnn's pytest plugin.

Copy this file next to your tests; the plugin comes with `pip install torch-inspectnn`.
Run it with `pytest examples/test_with_inspectnn.py --inspectnn-update` once to write
the snapshot under __snapshots__/ (one JSON line per layer call, the same on every
device), then plain `pytest` compares with it. Add `--inspectnn-device=meta` to check
shapes without memory, and `--inspectnn-graphs=graphs/` to get a picture of every
model in a failing test.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from inspectnn.testing import assert_output_shape, assert_params


class SimpleCNN(nn.Module):
    """The seeds' CNN for 28x28 images (with its unused skip path removed)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.fc1 = nn.Linear(32 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 32 * 7 * 7)
        return self.fc2(F.relu(self.fc1(x)))  # type: ignore[no-any-return]


class MyModel(nn.Module):
    """The seeds' 2-5-10-3 network: 108 parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(2, 5)
        self.fc2 = nn.Linear(5, 10)
        self.fc3 = nn.Linear(10, 3)
        self.act = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.fc3(self.act(self.fc2(self.act(self.fc1(x))))))  # type: ignore[no-any-return]


def test_cnn_shapes(inspect_model) -> None:  # type: ignore[no-untyped-def]
    report = inspect_model(SimpleCNN(), torch.randn(64, 1, 28, 28))
    report.assert_shapes({
        ":in": "B 1 H W",            # names bind on first use ...
        "conv1": "B 16 H W",         # ... and must agree everywhere after
        "pool#1": "B 32 7 7",        # the second call of the shared pool
        "fc1": "B 128",
        "": "B 10",
    })  # fmt: skip


def test_parameter_count() -> None:
    assert_params(MyModel(), total=108, trainable=108)


@pytest.mark.inspectnn(device="meta")  # shapes only, no memory
def test_any_batch_size_on_meta(inspect_model) -> None:  # type: ignore[no-untyped-def]
    for batch in (1, 7, 512):
        report = inspect_model(SimpleCNN(), input_size=(batch, 1, 28, 28))
        report.assert_shapes({"": (batch, 10)})
        report.assert_no_findings()


def test_output_shape_helper() -> None:
    assert_output_shape(MyModel(), torch.randn(5, 2), spec="B 3")


def test_architecture_snapshot(inspect_model, model_snapshot) -> None:  # type: ignore[no-untyped-def]
    model_snapshot.assert_match(inspect_model(SimpleCNN(), torch.randn(2, 1, 28, 28)))
