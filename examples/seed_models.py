"""The models of the seed documents, importable by the examples, the notebook and the CLI.

Every model here is copied layer for layer from one of the textbook scenarios in
``/work/shared/seeds/`` (each docstring names its seed); plain ``torch.nn`` only,
no downloads. Classes construct with no arguments and factories take none, so
the command line can load any of them by name::

    inspectnn examples/seed_models.py:SimpleCNN --input-size 64,1,28,28
    inspectnn examples/seed_models.py:cnn32 --input-size 1,3,32,32

:data:`EXAMPLE_INPUT_SIZES` lists an input shape that works for each one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "EXAMPLE_INPUT_SIZES",
    "ComplexModel",
    "MultiInputOutputModel",
    "MyModel",
    "MyModel2",
    "SimpleCNN",
    "SimpleNet",
    "bn_dropout_mlp",
    "cnn32",
    "mismatched_mlp",
    "mnist_mlp_sequential",
    "pytorch_sequential_model",
    "sequential_linears",
    "simple_sequential",
    "softmax_mlp",
]

# ---------------------------------------------------------------------------
# Seed 000_3a1cd0fcc5b85a9c.txt: the MNIST MLP, as a Sequential and as a Module
# ---------------------------------------------------------------------------


def mnist_mlp_sequential() -> nn.Sequential:
    """The MNIST MLP 784-128-10 built with ``nn.Sequential``.

    Seed: ``000_3a1cd0fcc5b85a9c.txt``. Input ``(batch, 784)`` (a flattened
    28x28 image), output ``(batch, 10)`` raw scores; 101,770 parameters.
    """
    return nn.Sequential(
        nn.Linear(in_features=784, out_features=128),  # Input layer (784) to Hidden layer (128)
        nn.ReLU(),  # Activation for hidden layer
        nn.Linear(in_features=128, out_features=10),  # Hidden layer (128) to Output layer (10)
    )


class SimpleNet(nn.Module):
    """The same MNIST MLP as an ``nn.Module`` subclass, with a functional ``F.relu``.

    Seed: ``000_3a1cd0fcc5b85a9c.txt``. The seed builds it as
    ``SimpleNet(784, 128, 10)``; those are the defaults here. Same shapes and
    parameters as :func:`mnist_mlp_sequential`, but the ReLU is not a module.
    """

    def __init__(self, input_size: int = 784, hidden_size: int = 128, output_size: int = 10):
        super().__init__()
        self.layer1 = nn.Linear(input_size, hidden_size)
        self.layer2 = nn.Linear(hidden_size, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Maps ``(batch, input_size)`` to ``(batch, output_size)``."""
        x = self.layer1(x)
        x = F.relu(x)
        x = self.layer2(x)
        return x


def mismatched_mlp() -> nn.Sequential:
    """The seed-000 MLP with the wiring bug the seed warns about: 128 out, 64 in.

    Seed: ``000_3a1cd0fcc5b85a9c.txt`` ("the out_features of one Linear layer
    must match the in_features of the next"). Any forward fails in ``"2"``.
    """
    return nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(64, 10))


# ---------------------------------------------------------------------------
# Seed 001_42925b31147046b1.txt: Sequential MLP, 32x32 CNN, BatchNorm/Dropout MLP
# ---------------------------------------------------------------------------


def softmax_mlp() -> nn.Sequential:
    """Sequential MLP 784-128-64-10 ending in ``Softmax(dim=1)``.

    Seed: ``001_42925b31147046b1.txt`` (Example 1). Input ``(1, 784)``, output
    ``(1, 10)`` probabilities.
    """
    return nn.Sequential(
        nn.Linear(784, 128),
        nn.ReLU(),
        nn.Linear(128, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
        nn.Softmax(dim=1),
    )


def cnn32() -> nn.Sequential:
    """Sequential CNN for 32x32 RGB images, ending in ``Linear(32 * 8 * 8, 10)``.

    Seed: ``001_42925b31147046b1.txt`` (Example 2). Input ``(1, 3, 32, 32)``,
    output ``(1, 10)``. Any other image size breaks the ``Linear`` at ``"7"``
    ("be careful about the input shape").
    """
    return nn.Sequential(
        nn.Conv2d(3, 16, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=2, stride=2),
        nn.Conv2d(16, 32, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(32 * 8 * 8, 10),
        nn.Softmax(dim=1),
    )


def bn_dropout_mlp() -> nn.Sequential:
    """MLP 784-256-128-10 with ``BatchNorm1d`` and ``Dropout(0.5)``, then Softmax.

    Seed: ``001_42925b31147046b1.txt`` (Example 3). A fresh module is in train
    mode, where ``BatchNorm1d`` needs more than one sample: the seed's own
    ``torch.randn(1, 784)`` fails in ``"1"``. Batches of 2 or more work, and so
    does a batch of 1 in eval mode.
    """
    return nn.Sequential(
        nn.Linear(784, 256),
        nn.BatchNorm1d(256),  # Batch Normalization for 256 neurons
        nn.ReLU(),
        nn.Dropout(0.5),  # Dropout rate of 0.5
        nn.Linear(256, 128),
        nn.BatchNorm1d(128),  # Batch Normalization for 128 neurons
        nn.ReLU(),
        nn.Dropout(0.5),  # Dropout rate of 0.5
        nn.Linear(128, 10),
        nn.Softmax(dim=1),
    )


# ---------------------------------------------------------------------------
# Seed 002_85685506704311f3.txt: nn.Linear stacks, MyModel, MyModel2, branches
# ---------------------------------------------------------------------------


def sequential_linears() -> nn.Sequential:
    """Three stacked linears 2-5-10-3 with no activations; 108 parameters.

    Seed: ``002_85685506704311f3.txt`` ("Building models with nn.Sequential").
    Input ``(5, 2)``, output ``(5, 3)``.
    """
    return nn.Sequential(nn.Linear(2, 5), nn.Linear(5, 10), nn.Linear(10, 3))


class MyModel(nn.Module):
    """fc1/fc2/fc3 and ONE ``Sigmoid`` module, ``act``, called three times.

    Seed: ``002_85685506704311f3.txt`` (Method 1: explicit layer definition).
    Input ``(5, 2)``, output ``(5, 3)``; 108 parameters.
    """

    def __init__(self) -> None:
        super().__init__()

        self.fc1 = nn.Linear(2, 5)
        self.fc2 = nn.Linear(5, 10)
        self.fc3 = nn.Linear(10, 3)
        self.act = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Maps ``(..., 2)`` to ``(..., 3)`` in (0, 1)."""
        x = self.fc1(x)
        x = self.act(x)
        x = self.fc2(x)
        x = self.act(x)
        x = self.fc3(x)
        x = self.act(x)
        return x


class MyModel2(nn.Module):
    """The network of :class:`MyModel` as a ``nn.Sequential`` held in ``self.linear``.

    Seed: ``002_85685506704311f3.txt`` (Method 2: nn.Sequential inside
    nn.Module). Its layers are ``linear.0`` ... ``linear.5``; the seed indexes
    ``model2.linear[0]`` and ``model2.linear[-2]`` (that is ``linear.4``).
    Input ``(5, 2)``, output ``(5, 3)``; 108 parameters.
    """

    def __init__(self) -> None:
        super().__init__()

        self.linear = nn.Sequential(
            nn.Linear(2, 5),
            nn.Sigmoid(),
            nn.Linear(5, 10),
            nn.Sigmoid(),
            nn.Linear(10, 3),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Maps ``(..., 2)`` to ``(..., 3)`` in (0, 1)."""
        x = self.linear(x)
        return x


def simple_sequential() -> nn.Sequential:
    """Sequential MLP 10-20-10-1 with ReLUs.

    Seed: ``002_85685506704311f3.txt`` ("When to use nn.Sequential"). Input
    ``(batch, 10)``, output ``(batch, 1)``.
    """
    return nn.Sequential(
        nn.Linear(10, 20),
        nn.ReLU(),
        nn.Linear(20, 10),
        nn.ReLU(),
        nn.Linear(10, 1),
    )


class ComplexModel(nn.Module):
    """Two parallel branches merged with ``torch.cat``, then ``combine``.

    Seed: ``002_85685506704311f3.txt`` ("When to use custom nn.Module").
    Input ``(batch, 10)``, output ``(batch, 1)``; the ``torch.cat`` runs in this
    module's own forward, between the child calls.
    """

    def __init__(self) -> None:
        super().__init__()
        self.branch1 = nn.Linear(10, 5)
        self.branch2 = nn.Linear(10, 5)
        self.combine = nn.Linear(10, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Maps ``(batch, 10)`` to ``(batch, 1)``."""
        b1 = self.branch1(x)
        b2 = self.branch2(x)
        combined = torch.cat([b1, b2], dim=1)
        out: torch.Tensor = self.combine(combined)
        return out


# ---------------------------------------------------------------------------
# Seed 003_aea1db1a7337e366.txt: Keras vs PyTorch
# ---------------------------------------------------------------------------


def pytorch_sequential_model() -> nn.Sequential:
    """PyTorch twin of the Keras ``Sequential([Flatten, Dense(128), Dense(10)])``.

    Seed: ``003_aea1db1a7337e366.txt`` (the ``keras_sequential_model.summary()``
    comparison). Input ``(batch, 28, 28)``, output ``(batch, 10)`` logits;
    101,770 parameters, as Keras reports.
    """
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(28 * 28, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
        # Softmax is often applied as part of the loss function (e.g., nn.CrossEntropyLoss)
        # or explicitly in the forward pass if needed for inference.
    )


class SimpleCNN(nn.Module):
    """Two conv blocks, a skip path that is computed and never used, two linears.

    Seed: ``003_aea1db1a7337e366.txt``, line for line. Input ``(64, 1, 28, 28)``,
    output ``(64, 10)``. ``pool`` is one module called three times;
    ``conv_skip_adjust`` and the third ``pool`` call produce
    ``skip_path_pooled``, which nothing uses; ``x2_pool.view(-1, 32 * 7 * 7)``
    only fits 28x28 images.
    """

    def __init__(self, num_classes: int = 10):
        super().__init__()
        # Define layers
        self.conv1 = nn.Conv2d(in_channels=1, out_channels=16, kernel_size=3, stride=1, padding=1)
        # (Batch, 1, 28, 28) -> (Batch, 16, 28, 28)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2, padding=0)
        # (Batch, 16, 28, 28) -> (Batch, 16, 14, 14)
        self.conv2 = nn.Conv2d(in_channels=16, out_channels=32, kernel_size=3, stride=1, padding=1)
        # (Batch, 16, 14, 14) -> (Batch, 32, 14, 14)
        # After another pooling: (Batch, 32, 7, 7)
        # Placeholder for a layer that might be used in a skip connection path
        self.conv_skip_adjust = nn.Conv2d(in_channels=16, out_channels=32, kernel_size=1)
        # Flattened size: 32 channels * 7x7 image
        self.fc1 = nn.Linear(32 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Maps ``(batch, 1, 28, 28)`` to ``(batch, num_classes)``."""
        # x shape: (batch_size, 1, 28, 28)
        # First conv block
        x1_conv = F.relu(self.conv1(x))
        x1_pool = self.pool(x1_conv)  # (Batch, 16, 14, 14)
        # Second conv block
        x2_conv = F.relu(self.conv2(x1_pool))
        x2_pool = self.pool(x2_conv)  # (Batch, 32, 7, 7)
        # Example of a simple "skip" or parallel path
        # For a true skip, dimensions must match for addition/concatenation.
        # Here, we'll just process it and show how it could be combined.
        # Let's imagine we wanted to incorporate x1_pool (16 channels) with x2_pool (32 channels).
        # We might need to adjust x1_pool's channels.
        skip_path = self.conv_skip_adjust(x1_pool)  # (Batch, 32, 14, 14)
        skip_path_pooled = self.pool(skip_path)  # (Batch, 32, 7, 7)  # noqa: F841
        # For demonstration, let's assume we want to add x2_pool and skip_path_pooled
        # This requires them to have the same shape.
        # combined = x2_pool + skip_path_pooled # This is where a skip connection would happen
        # For this example, we'll proceed with x2_pool as the main path
        # Flatten the output for the fully connected layers
        x_flat = x2_pool.view(-1, 32 * 7 * 7)  # .view is like reshape, -1 infers batch size
        x_fc1 = F.relu(self.fc1(x_flat))
        # No softmax here if using nn.CrossEntropyLoss
        output: torch.Tensor = self.fc2(x_fc1)
        return output


class MultiInputOutputModel(nn.Module):
    """Two inputs, two outputs, and one ``shared_layer`` that both inputs flow through.

    Seed: ``003_aea1db1a7337e366.txt``. ``forward(input1 (B, 10), input2 (B, 5))``
    returns ``(out1 (B, 1), out2 (B, 1))``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.layer1_input1 = nn.Linear(10, 20)
        self.layer1_input2 = nn.Linear(5, 20)
        self.shared_layer = nn.Linear(20, 30)
        self.output_branch1 = nn.Linear(30, 1)
        self.output_branch2 = nn.Linear(30, 1)

    def forward(
        self, input1: torch.Tensor, input2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(out1, out2)``, each ``(batch, 1)``."""
        x1 = F.relu(self.layer1_input1(input1))
        x2 = F.relu(self.layer1_input2(input2))
        # Example: Concatenate or add processed inputs
        merged = x1 + x2  # Assuming shapes match for addition
        shared_out = F.relu(self.shared_layer(merged))
        out1 = self.output_branch1(shared_out)
        out2 = self.output_branch2(shared_out)
        return out1, out2


EXAMPLE_INPUT_SIZES: dict[str, list[tuple[int, ...]]] = {
    "mnist_mlp_sequential": [(64, 784)],
    "SimpleNet": [(64, 784)],
    "mismatched_mlp": [(64, 784)],  # fails on purpose
    "softmax_mlp": [(1, 784)],
    "cnn32": [(1, 3, 32, 32)],
    "bn_dropout_mlp": [(4, 784)],
    "sequential_linears": [(5, 2)],
    "MyModel": [(5, 2)],
    "MyModel2": [(5, 2)],
    "simple_sequential": [(4, 10)],
    "ComplexModel": [(4, 10)],
    "pytorch_sequential_model": [(1, 28, 28)],
    "SimpleCNN": [(64, 1, 28, 28)],
    "MultiInputOutputModel": [(4, 10), (4, 5)],
}
"""Model name -> the input shape(s) the seed uses (one per forward argument)."""
