"""The demo: the seeds' SimpleCNN (skip path and all), its table and its diagram.

Run it with ``inspectnn demo`` or ``python -m inspectnn demo``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from inspectnn.api import inspect
from inspectnn.report import Report

__all__ = ["SimpleCNN", "run_demo"]


class SimpleCNN(nn.Module):
    """The SimpleCNN of seed 003: two conv blocks, an unused skip path, two linears.

    Input ``(batch, 1, 28, 28)``; output ``(batch, num_classes)``.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=3, stride=1, padding=1)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2, padding=0)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, stride=1, padding=1)
        self.conv_skip_adjust = nn.Conv2d(16, 32, kernel_size=1)
        self.fc1 = nn.Linear(32 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1_pool = self.pool(F.relu(self.conv1(x)))
        x2_pool = self.pool(F.relu(self.conv2(x1_pool)))
        skip_path = self.conv_skip_adjust(x1_pool)
        skip_path_pooled = self.pool(skip_path)  # computed, never used (as in the seed)
        del skip_path_pooled
        x_flat = x2_pool.view(-1, 32 * 7 * 7)
        x_fc1 = F.relu(self.fc1(x_flat))
        out: torch.Tensor = self.fc2(x_fc1)
        return out


def run_demo(path: str | Path | None = "simple_cnn.png") -> Report:
    """Inspect SimpleCNN on a (64, 1, 28, 28) batch, print the table, draw the diagram.

    Args:
        path: Where to write the diagram (.png, .svg, .pdf or .dot); None skips it.

    Returns:
        The report.
    """
    torch.manual_seed(0)
    report = inspect(SimpleCNN(), input_size=(64, 1, 28, 28))
    print(report)
    if path is not None:
        written = report.render(path)
        print(f"\nwrote {written}")
    return report
