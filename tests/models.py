"""Model zoo for inspectnn's tests, examples and benchmarks.

Plain ``torch.nn`` only: no network access, no downloaded weights.

The first half reproduces, layer for layer, every model in the seed documents
(``/work/shared/seeds/*.txt``); their example inputs are in :data:`SEED_MODELS`
and the output shapes the seeds print are in :data:`SEED_OUTPUT_SHAPES`.

The second half holds the extra models the core tests need: tied weights, a
module called several times, dict / dataclass / ``ModelOutput``-like inputs and
outputs, recurrent and transformer layers, keyword-only arguments, models that
fail on purpose (:data:`BROKEN_MODELS`), full-size ResNet-50, GPT-2 small and
LLaMA-2-7B shapes (the last built on the meta device), and a deep stack for hook
overhead benchmarks. Their example inputs are in :data:`EXTRA_MODELS`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BROKEN_MODELS",
    "EXTRA_MODELS",
    "EXTRA_OUTPUT_SHAPES",
    "GPT2MLP",
    "SEED_MODELS",
    "SEED_OUTPUT_SHAPES",
    "Bottleneck",
    "BrokenCase",
    "BrokenFlattenCNN",
    "BrokenViewCNN",
    "ClassifierOutput",
    "ComplexModel",
    "DataclassOutputModel",
    "DictInputModel",
    "DictOutputModel",
    "GPT2Attention",
    "GPT2Block",
    "GPT2Like",
    "KwargsModel",
    "LSTMModel",
    "LlamaAttention",
    "LlamaDecoderLayer",
    "LlamaLike",
    "LlamaMLP",
    "MLPStack",
    "ModelOutputLike",
    "MultiInputOutputModel",
    "MyModel",
    "MyModel2",
    "RMSNorm",
    "RepeatedCall",
    "ResNet50Like",
    "RotaryEmbedding",
    "SimpleCNN",
    "SimpleNet",
    "TiedLM",
    "TinyModelOutput",
    "apply_rotary",
    "bn_dropout_mlp",
    "cnn32",
    "gpt2_tiny",
    "linear_1_1",
    "linear_2_3",
    "llama_tiny",
    "mismatched_mlp",
    "mnist_mlp_sequential",
    "pytorch_sequential_model",
    "sequential_linears",
    "simple_sequential",
    "softmax_mlp",
    "transformer_encoder_layer",
    "two_linear",
]

ModelFactory = Callable[[], nn.Module]
InputFactory = Callable[[], tuple[torch.Tensor, ...]]

# ---------------------------------------------------------------------------
# Seed 000: nn.Sequential MNIST MLP and the same network as a Module subclass
# ---------------------------------------------------------------------------


def mnist_mlp_sequential() -> nn.Sequential:
    """MNIST MLP 784-128-10 built with ``nn.Sequential``.

    Seed: ``000_3a1cd0fcc5b85a9c.txt``. Takes ``(batch, 784)``, returns
    ``(batch, 10)`` raw scores (no softmax).

    Returns:
        ``Sequential(Linear(784, 128), ReLU(), Linear(128, 10))``.
    """
    return nn.Sequential(
        nn.Linear(in_features=784, out_features=128),
        nn.ReLU(),
        nn.Linear(in_features=128, out_features=10),
    )


class SimpleNet(nn.Module):
    """The MNIST MLP as an ``nn.Module`` subclass using ``F.relu``.

    Seed: ``000_3a1cd0fcc5b85a9c.txt``. Same parameters as
    :func:`mnist_mlp_sequential` but the activation is functional, so it has no
    module of its own.

    Args:
        input_size: Input features (784 in the seed).
        hidden_size: Hidden units (128 in the seed).
        output_size: Output classes (10 in the seed).
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
    """The seed-000 MLP with the classic wiring bug: 128 out, 64 in.

    Seed: ``000_3a1cd0fcc5b85a9c.txt`` ("the out_features of one Linear layer
    must match the in_features of the next"). On ``(batch, 784)`` the forward
    raises ``RuntimeError`` (mat1 and mat2 shapes cannot be multiplied) in the
    submodule at dotted path ``"2"``.

    Returns:
        ``Sequential(Linear(784, 128), ReLU(), Linear(64, 10))``.
    """
    return nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(64, 10))


# ---------------------------------------------------------------------------
# Seed 001: Sequential MLP with Softmax, Sequential CNN, BatchNorm/Dropout MLP
# ---------------------------------------------------------------------------


def softmax_mlp() -> nn.Sequential:
    """Sequential MLP 784-128-64-10 ending in ``Softmax(dim=1)``.

    Seed: ``001_42925b31147046b1.txt`` (Example 1). Input ``(1, 784)`` gives
    ``(1, 10)`` probabilities.

    Returns:
        The six-layer ``nn.Sequential``.
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
    """Sequential CNN for 32x32 RGB images with ``Linear(32 * 8 * 8, 10)``.

    Seed: ``001_42925b31147046b1.txt`` (Example 2). Input ``(1, 3, 32, 32)``
    gives ``(1, 10)``. Any other spatial size breaks the ``Linear`` at dotted
    path ``"7"`` ("be careful about the input shape").

    Returns:
        The nine-layer ``nn.Sequential``.
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

    Seed: ``001_42925b31147046b1.txt`` (Example 3). In train mode (the default)
    it needs a batch of at least 2: the seed's own ``torch.randn(1, 784)`` raises
    ``ValueError`` ("Expected more than 1 value per channel when training") in
    ``"1"`` (the first ``BatchNorm1d``). :data:`SEED_MODELS` therefore feeds
    ``(4, 784)``; the seed's batch of 1 is in :data:`BROKEN_MODELS`.

    Returns:
        The ten-layer ``nn.Sequential``.
    """
    return nn.Sequential(
        nn.Linear(784, 256),
        nn.BatchNorm1d(256),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(256, 128),
        nn.BatchNorm1d(128),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(128, 10),
        nn.Softmax(dim=1),
    )


# ---------------------------------------------------------------------------
# Seed 002: nn.Linear basics, nested Sequential, parameter counting, branches
# ---------------------------------------------------------------------------


def linear_1_1() -> nn.Linear:
    """A single ``nn.Linear(1, 1)``: one weight, one bias.

    Seed: ``002_85685506704311f3.txt``. The seed feeds the 1-D
    ``torch.tensor([1.])`` and gets a shape ``(1,)`` output.

    Returns:
        ``nn.Linear(1, 1)``.
    """
    return nn.Linear(1, 1)


def two_linear() -> nn.Sequential:
    """The seed's ``fc1 = Linear(1, 3)`` then ``fc2 = Linear(3, 1)``, kept by name.

    Seed: ``002_85685506704311f3.txt`` ("Multi-layer networks"). The seed calls
    the two layers by hand; here they sit in a ``Sequential`` whose children are
    named ``fc1`` and ``fc2``. Input ``torch.tensor([1.])``, output ``(1,)``;
    10 parameters.

    Returns:
        ``Sequential(fc1=Linear(1, 3), fc2=Linear(3, 1))``.
    """
    return nn.Sequential(OrderedDict([("fc1", nn.Linear(1, 3)), ("fc2", nn.Linear(3, 1))]))


def linear_2_3() -> nn.Linear:
    """``nn.Linear(2, 3)`` from the seed's batching section.

    Seed: ``002_85685506704311f3.txt``. Works on any leading shape: ``(2,)`` ->
    ``(3,)``, ``(5, 2)`` -> ``(5, 3)``, ``(4, 5, 2)`` -> ``(4, 5, 3)``.

    Returns:
        ``nn.Linear(2, 3)``.
    """
    return nn.Linear(2, 3)


def sequential_linears() -> nn.Sequential:
    """Three stacked linears 2-5-10-3 with no activations.

    Seed: ``002_85685506704311f3.txt`` ("Building models with nn.Sequential").
    Input ``(5, 2)``, output ``(5, 3)``; 108 parameters.

    Returns:
        ``Sequential(Linear(2, 5), Linear(5, 10), Linear(10, 3))``.
    """
    return nn.Sequential(nn.Linear(2, 5), nn.Linear(5, 10), nn.Linear(10, 3))


class MyModel(nn.Module):
    """fc1/fc2/fc3 with ONE ``Sigmoid`` module (``act``) called three times.

    Seed: ``002_85685506704311f3.txt`` (Method 1). Input ``(5, 2)``, output
    ``(5, 3)``; 108 parameters. ``act`` runs three times per forward, so a
    per-call trace has more rows than the module tree.
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
    """The same network as :class:`MyModel` nested in ``self.linear`` (a Sequential).

    Seed: ``002_85685506704311f3.txt`` (Method 2). Layers are reached as
    ``linear.0`` ... ``linear.5`` (the seed indexes ``linear[0]`` and
    ``linear[-2]``). Input ``(5, 2)``, output ``(5, 3)``; 108 parameters.
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

    Returns:
        The five-layer ``nn.Sequential``.
    """
    return nn.Sequential(
        nn.Linear(10, 20),
        nn.ReLU(),
        nn.Linear(20, 10),
        nn.ReLU(),
        nn.Linear(10, 1),
    )


class ComplexModel(nn.Module):
    """Two parallel branches joined with ``torch.cat`` then ``combine``.

    Seed: ``002_85685506704311f3.txt`` ("When to use custom nn.Module").
    Input ``(batch, 10)``, output ``(batch, 1)``. The ``torch.cat`` happens in
    the root module's own forward, between child calls.
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
        return self.combine(combined)  # type: ignore[no-any-return]  # verbatim seed line


# ---------------------------------------------------------------------------
# Seed 003: Keras vs PyTorch: Sequential, SimpleCNN, multi-input/output
# ---------------------------------------------------------------------------


def pytorch_sequential_model() -> nn.Sequential:
    """PyTorch twin of the Keras ``Sequential([Flatten, Dense(128), Dense(10)])``.

    Seed: ``003_aea1db1a7337e366.txt``. Input ``(batch, 28, 28)`` (or
    ``(batch, 1, 28, 28)``), output ``(batch, 10)`` logits.

    Returns:
        ``Sequential(Flatten(), Linear(784, 128), ReLU(), Linear(128, 10))``.
    """
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(28 * 28, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


class SimpleCNN(nn.Module):
    """Two conv blocks, an unused skip path and ``x2_pool.view(-1, 32 * 7 * 7)``.

    Seed: ``003_aea1db1a7337e366.txt``, reproduced line for line. Input
    ``(64, 1, 28, 28)`` gives ``(64, 10)``. Points of interest:

    * ``pool`` is one module called three times per forward.
    * ``conv_skip_adjust`` runs (and ``pool`` after it) but its result,
      ``skip_path_pooled``, is never used: wasted compute in the output graph.
    * The ``.view`` is in the root module's own forward, so with a 32x32 input
      the failure is reported at the root (dotted path ``""``), not in a child.

    Args:
        num_classes: Output classes.
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
        # Example of a simple "skip" or parallel path; its result is not used below.
        skip_path = self.conv_skip_adjust(x1_pool)  # (Batch, 32, 14, 14)
        skip_path_pooled = self.pool(skip_path)  # (Batch, 32, 7, 7)  # noqa: F841
        # combined = x2_pool + skip_path_pooled  # This is where a skip connection would happen
        # Flatten the output for the fully connected layers
        x_flat = x2_pool.view(-1, 32 * 7 * 7)  # .view is like reshape, -1 infers batch size
        x_fc1 = F.relu(self.fc1(x_flat))
        # No softmax here if using nn.CrossEntropyLoss
        output = self.fc2(x_fc1)
        return output  # type: ignore[no-any-return]  # verbatim seed line


class MultiInputOutputModel(nn.Module):
    """Two inputs, two outputs, one shared layer.

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


# ---------------------------------------------------------------------------
# Seed models: example inputs and the output shapes the seeds state
# ---------------------------------------------------------------------------

SEED_MODELS: dict[str, tuple[ModelFactory, InputFactory]] = {
    # 000
    "mnist_mlp_sequential": (mnist_mlp_sequential, lambda: (torch.randn(4, 784),)),
    "simple_net": (SimpleNet, lambda: (torch.randn(4, 784),)),
    # 001
    "softmax_mlp": (softmax_mlp, lambda: (torch.randn(1, 784),)),
    "cnn32": (cnn32, lambda: (torch.randn(1, 3, 32, 32),)),
    "bn_dropout_mlp": (bn_dropout_mlp, lambda: (torch.randn(4, 784),)),
    # 002
    "linear_1_1": (linear_1_1, lambda: (torch.tensor([1.0]),)),
    "two_linear": (two_linear, lambda: (torch.tensor([1.0]),)),
    "linear_2_3_single": (linear_2_3, lambda: (torch.randn(2),)),
    "linear_2_3_batch": (linear_2_3, lambda: (torch.randn(5, 2),)),
    "linear_2_3_grouped": (linear_2_3, lambda: (torch.randn(4, 5, 2),)),
    "sequential_linears": (sequential_linears, lambda: (torch.randn(5, 2),)),
    "my_model": (MyModel, lambda: (torch.randn(5, 2),)),
    "my_model2": (MyModel2, lambda: (torch.randn(5, 2),)),
    "simple_sequential": (simple_sequential, lambda: (torch.randn(4, 10),)),
    "complex_model": (ComplexModel, lambda: (torch.randn(4, 10),)),
    # 003
    "pytorch_sequential_model": (pytorch_sequential_model, lambda: (torch.randn(4, 28, 28),)),
    "simple_cnn": (SimpleCNN, lambda: (torch.randn(64, 1, 28, 28),)),
    "multi_input_output": (
        MultiInputOutputModel,
        lambda: (torch.randn(4, 10), torch.randn(4, 5)),
    ),
}
"""Seed model name -> (model factory, factory of the positional example inputs)."""

SEED_OUTPUT_SHAPES: dict[str, tuple[tuple[int, ...], ...]] = {
    "mnist_mlp_sequential": ((4, 10),),
    "simple_net": ((4, 10),),
    "softmax_mlp": ((1, 10),),
    "cnn32": ((1, 10),),
    "bn_dropout_mlp": ((4, 10),),
    "linear_1_1": ((1,),),
    "two_linear": ((1,),),
    "linear_2_3_single": ((3,),),
    "linear_2_3_batch": ((5, 3),),
    "linear_2_3_grouped": ((4, 5, 3),),
    "sequential_linears": ((5, 3),),
    "my_model": ((5, 3),),
    "my_model2": ((5, 3),),
    "simple_sequential": ((4, 1),),
    "complex_model": ((4, 1),),
    "pytorch_sequential_model": ((4, 10),),
    "simple_cnn": ((64, 10),),
    "multi_input_output": ((4, 1), (4, 1)),
}
"""Seed model name -> shapes of its output tensors, in return order."""


# ---------------------------------------------------------------------------
# Extra models: weight tying, repeated calls, structured inputs and outputs
# ---------------------------------------------------------------------------


class TiedLM(nn.Module):
    """Tiny language model whose output head shares the embedding weight.

    ``head.weight is embed.weight``: ``parameters()`` yields it once, so the
    unique count is ``vocab * dim + (dim * dim + dim) + 2 * dim`` (1,904 for the
    defaults) while counting per module would add ``vocab * dim`` again.
    Input LongTensor ``(2, 7)``, output ``(2, 7, vocab)``.

    Args:
        vocab: Vocabulary size.
        dim: Embedding width.
    """

    def __init__(self, vocab: int = 100, dim: int = 16):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.proj = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Maps token ids ``(batch, seq)`` to logits ``(batch, seq, vocab)``."""
        x = self.embed(ids)
        x = self.norm(F.gelu(self.proj(x)))
        result: torch.Tensor = self.head(x)
        return result


class RepeatedCall(nn.Module):
    """One ``nn.Linear(8, 8)`` (``fc``) called three times in a row.

    Input ``(2, 8)``, output ``(2, 8)``. Three calls, one module, 72 parameters.
    """

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Applies ``fc`` three times, with a ReLU after the first two."""
        x = F.relu(self.fc(x))
        x = F.relu(self.fc(x))
        x = self.fc(x)
        return x


class DictInputModel(nn.Module):
    """Takes one dict argument with ``"image"`` and ``"meta"`` tensors.

    ``forward({"image": (B, 3, 8, 8), "meta": (B, 5)})`` returns ``(B, 3)``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.image_encoder = nn.Sequential(
            nn.Conv2d(3, 4, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.meta_encoder = nn.Linear(5, 4)
        self.head = nn.Linear(8, 3)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Encodes both entries, concatenates them, returns ``(B, 3)`` logits."""
        img = self.image_encoder(batch["image"])
        meta = F.relu(self.meta_encoder(batch["meta"]))
        result: torch.Tensor = self.head(torch.cat([img, meta], dim=1))
        return result


class DictOutputModel(nn.Module):
    """Returns ``{"logits": (B, 3), "features": (B, 16)}`` for input ``(B, 8)``."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Returns the logits and the features they were computed from."""
        features = self.backbone(x)
        return {"logits": self.head(features), "features": features}


@dataclass
class ClassifierOutput:
    """Plain dataclass output of :class:`DataclassOutputModel`.

    Attributes:
        logits: ``(B, 3)`` scores.
        features: ``(B, 16)`` penultimate features.
        aux_loss: Always ``None`` here (an optional field left empty).
    """

    logits: torch.Tensor
    features: torch.Tensor
    aux_loss: torch.Tensor | None = None


class DataclassOutputModel(nn.Module):
    """Returns a :class:`ClassifierOutput` dataclass; input ``(B, 8)``."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> ClassifierOutput:
        """Returns logits ``(B, 3)``, features ``(B, 16)`` and ``aux_loss=None``."""
        features = self.backbone(x)
        return ClassifierOutput(logits=self.head(features), features=features)


class _ModelOutput(OrderedDict[str, Any]):
    """Tiny imitation of Hugging Face ``transformers.utils.ModelOutput``.

    Subclasses are ``@dataclass``es. After ``__init__`` the non-``None`` fields
    are also the dict's keys, in field order; ``out["logits"]``,
    ``out.logits`` and ``out[0]`` all give the first one, and fields that are
    ``None`` are attributes but not keys.
    """

    def __post_init__(self) -> None:
        for field in fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if value is not None:
                super().__setitem__(field.name, value)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return super().__getitem__(key)
        return self.to_tuple()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        super().__setattr__(key, value)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.keys() and value is not None:
            super().__setitem__(name, value)
        super().__setattr__(name, value)

    def to_tuple(self) -> tuple[Any, ...]:
        """Returns the non-``None`` fields as a tuple, in field order."""
        return tuple(self[k] for k in self.keys())


@dataclass
class TinyModelOutput(_ModelOutput):
    """``ModelOutput``-style result of :class:`ModelOutputLike`.

    Attributes:
        logits: ``(B, 3)`` scores.
        hidden_states: ``(B, 16)`` features.
        attentions: Always ``None`` (so not a key).
    """

    logits: torch.Tensor | None = None
    hidden_states: torch.Tensor | None = None
    attentions: torch.Tensor | None = None


class ModelOutputLike(nn.Module):
    """Returns a :class:`TinyModelOutput` (an ``OrderedDict`` that is also a dataclass).

    Input ``(B, 8)``; output keys ``["logits", "hidden_states"]`` with shapes
    ``(B, 3)`` and ``(B, 16)``; ``attentions`` is ``None``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(8, 16), nn.Tanh())
        self.classifier = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> TinyModelOutput:
        """Returns the ``ModelOutput``-like result."""
        hidden = self.backbone(x)
        return TinyModelOutput(logits=self.classifier(hidden), hidden_states=hidden)


class LSTMModel(nn.Module):
    """Embedding -> ``nn.LSTM(batch_first=True)`` -> Linear on the last step.

    The ``lstm`` child returns a nested tuple ``(output, (h_n, c_n))``.
    Input LongTensor ``(2, 7)``, output ``(2, num_classes)``.

    Args:
        vocab: Vocabulary size.
        embed_dim: Embedding width.
        hidden: LSTM hidden size.
        num_classes: Output classes.
    """

    def __init__(
        self, vocab: int = 50, embed_dim: int = 16, hidden: int = 32, num_classes: int = 5
    ):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Maps token ids ``(batch, seq)`` to logits ``(batch, num_classes)``."""
        x = self.embedding(ids)
        output, (_h_n, _c_n) = self.lstm(x)
        result: torch.Tensor = self.fc(output[:, -1, :])
        return result


def transformer_encoder_layer() -> nn.TransformerEncoderLayer:
    """``nn.TransformerEncoderLayer(d_model=32, nhead=4, batch_first=True)``.

    Input ``(2, 5, 32)``, output ``(2, 5, 32)``. In eval mode under
    ``torch.no_grad()`` PyTorch may take its fused "fast path", which skips the
    ``self_attn`` / ``linear1`` / ``linear2`` submodule calls entirely.

    Returns:
        The encoder layer (default ``dim_feedforward=2048``).
    """
    return nn.TransformerEncoderLayer(d_model=32, nhead=4, batch_first=True)


class KwargsModel(nn.Module):
    """Has keyword-only arguments: ``forward(x, *, scale=1.0, mask=None)``.

    ``x`` is ``(B, 8)``; ``mask`` is an optional bool ``(B, 4)`` (False entries
    are zeroed). Output ``(B, 4)``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(
        self, x: torch.Tensor, *, scale: float = 1.0, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Returns ``fc(x) * scale``, zeroed where ``mask`` is False."""
        out: torch.Tensor = self.fc(x) * scale
        if mask is not None:
            out = out.masked_fill(~mask, 0.0)
        return out


# ---------------------------------------------------------------------------
# Models that fail on purpose
# ---------------------------------------------------------------------------


class BrokenFlattenCNN(nn.Module):
    """CNN sized for 32x32 input whose ``classifier`` breaks on 64x64.

    ``features`` halves the spatial size twice and ends with 16 channels, so
    32x32 gives ``16 * 8 * 8 = 1024`` features and works (output ``(B, 10)``),
    while ``(1, 3, 64, 64)`` gives 4096 features and the forward raises
    ``RuntimeError`` (mat1 and mat2 shapes cannot be multiplied (1x4096 and
    1024x10)) in dotted path ``"classifier.1"`` (the ``Linear(1024, 10)``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(1024, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Maps ``(B, 3, 32, 32)`` to ``(B, 10)``; fails for other sizes."""
        result: torch.Tensor = self.classifier(self.features(x))
        return result


class BrokenViewCNN(SimpleCNN):
    """:class:`SimpleCNN` unchanged, kept under a name for the 32x32 failure.

    Seed: ``003_aea1db1a7337e366.txt``. With ``(64, 1, 32, 32)`` the pooled map
    is ``(64, 32, 8, 8)`` = 131072 values, not a multiple of ``32 * 7 * 7``, so
    ``x2_pool.view(-1, 32 * 7 * 7)`` raises ``RuntimeError`` in the root
    module's own forward (dotted path ``""``), after every child has run.
    """


class BrokenCase(NamedTuple):
    """A model with an input that makes its forward raise.

    Attributes:
        model: Model factory.
        inputs: Factory of the positional inputs that trigger the failure.
        layer: Dotted path of the innermost module running when it raises
            (``""`` for the root module's own code).
        error: Exception type the plain forward raises.
    """

    model: ModelFactory
    inputs: InputFactory
    layer: str
    error: type[Exception]


BROKEN_MODELS: dict[str, BrokenCase] = {
    "broken_flatten_cnn": BrokenCase(
        BrokenFlattenCNN, lambda: (torch.randn(1, 3, 64, 64),), "classifier.1", RuntimeError
    ),
    "broken_view_cnn": BrokenCase(
        BrokenViewCNN, lambda: (torch.randn(64, 1, 32, 32),), "", RuntimeError
    ),
    "cnn32_on_28x28": BrokenCase(cnn32, lambda: (torch.randn(1, 3, 28, 28),), "7", RuntimeError),
    "mismatched_mlp": BrokenCase(mismatched_mlp, lambda: (torch.randn(4, 784),), "2", RuntimeError),
    # Seed 001's own example input: a batch of 1 through BatchNorm1d in train mode.
    "bn_dropout_mlp_batch1": BrokenCase(
        bn_dropout_mlp, lambda: (torch.randn(1, 784),), "1", ValueError
    ),
}
"""Name -> :class:`BrokenCase` (model in its default train mode)."""


# ---------------------------------------------------------------------------
# ResNet-50 (torchvision layout, written here)
# ---------------------------------------------------------------------------


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck block (stride on the 3x3 conv), expansion 4.

    Args:
        inplanes: Input channels.
        planes: Bottleneck width; the block outputs ``planes * 4`` channels.
        stride: Stride of ``conv2``.
        downsample: Projection for the identity path, or ``None``.
    """

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block: ``relu(bn3(conv3(...)) + identity)``."""
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out = out + identity
        result: torch.Tensor = self.relu(out)
        return result


class ResNet50Like(nn.Module):
    """ResNet-50 with torchvision's module names and 25,557,032 parameters.

    Stem ``conv1/bn1/relu/maxpool``, ``layer1``-``layer4`` of
    :class:`Bottleneck` blocks ``[3, 4, 6, 3]`` (widths 64-512, outputs
    256-2048), ``avgpool`` and ``fc``. Input ``(1, 3, 224, 224)``, output
    ``(1, 1000)``. ``relu`` modules are ``inplace=True`` and called more than
    once per block.

    Args:
        layers: Blocks per stage.
        num_classes: Output classes.
    """

    def __init__(self, layers: tuple[int, int, int, int] = (3, 4, 6, 3), num_classes: int = 1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * Bottleneck.expansion, num_classes)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample: nn.Module | None = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(
                    self.inplanes,
                    planes * Bottleneck.expansion,
                    kernel_size=1,
                    stride=stride,
                    bias=False,
                ),
                nn.BatchNorm2d(planes * Bottleneck.expansion),
            )
        block_list: list[nn.Module] = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * Bottleneck.expansion
        block_list.extend(Bottleneck(self.inplanes, planes) for _ in range(1, blocks))
        return nn.Sequential(*block_list)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Maps ``(B, 3, H, W)`` images to ``(B, num_classes)`` logits."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        result: torch.Tensor = self.fc(x)
        return result


# ---------------------------------------------------------------------------
# GPT-2 small (Hugging Face module names, written here)
# ---------------------------------------------------------------------------


class GPT2Attention(nn.Module):
    """Causal self-attention with fused ``c_attn`` (q, k, v) and ``c_proj``.

    Args:
        n_embd: Model width.
        n_head: Attention heads.
    """

    def __init__(self, n_embd: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.n_embd = n_embd
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Maps ``(B, T, C)`` to ``(B, T, C)``."""
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        hd = c // self.n_head
        q = q.view(b, t, self.n_head, hd).transpose(1, 2)
        k = k.view(b, t, self.n_head, hd).transpose(1, 2)
        v = v.view(b, t, self.n_head, hd).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(b, t, c)
        result: torch.Tensor = self.c_proj(y)
        return result


class GPT2MLP(nn.Module):
    """``c_fc`` (4x wider) -> tanh-GELU ``act`` -> ``c_proj``.

    Args:
        n_embd: Model width.
    """

    def __init__(self, n_embd: int):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.act = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Maps ``(B, T, C)`` to ``(B, T, C)``."""
        result: torch.Tensor = self.c_proj(self.act(self.c_fc(x)))
        return result


class GPT2Block(nn.Module):
    """Pre-norm transformer block: ``ln_1``, ``attn``, ``ln_2``, ``mlp``.

    Args:
        n_embd: Model width.
        n_head: Attention heads.
    """

    def __init__(self, n_embd: int, n_head: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = GPT2Attention(n_embd, n_head)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = GPT2MLP(n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Two residual sub-layers."""
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT2Like(nn.Module):
    """GPT-2 decoder; the defaults are GPT-2 small (124,439,808 unique parameters).

    Modules ``wte``, ``wpe``, ``h.<i>.{ln_1, attn.c_attn, attn.c_proj, ln_2,
    mlp.c_fc, mlp.act, mlp.c_proj}``, ``ln_f`` and ``lm_head`` (no bias, its
    weight IS ``wte.weight``). Input LongTensor ``(B, T)`` with
    ``T <= n_positions``; output logits ``(B, T, vocab)``. Use
    :func:`gpt2_tiny` for fast tests.

    Args:
        n_layer: Number of blocks.
        n_embd: Model width.
        n_head: Attention heads.
        vocab: Vocabulary size.
        n_positions: Maximum sequence length.
    """

    def __init__(
        self,
        n_layer: int = 12,
        n_embd: int = 768,
        n_head: int = 12,
        vocab: int = 50257,
        n_positions: int = 1024,
    ):
        super().__init__()
        self.wte = nn.Embedding(vocab, n_embd)
        self.wpe = nn.Embedding(n_positions, n_embd)
        self.h = nn.ModuleList(GPT2Block(n_embd, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Maps ``(B, T)`` token ids to ``(B, T, vocab)`` logits."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.wte(input_ids) + self.wpe(positions)
        for block in self.h:
            x = block(x)
        x = self.ln_f(x)
        result: torch.Tensor = self.lm_head(x)
        return result


def gpt2_tiny() -> GPT2Like:
    """A 2-layer, 32-wide :class:`GPT2Like` with a 64-token vocabulary.

    Input LongTensor ``(1, 8)`` (values < 64), output ``(1, 8, 64)``.

    Returns:
        The tiny model.
    """
    return GPT2Like(n_layer=2, n_embd=32, n_head=4, vocab=64, n_positions=16)


# ---------------------------------------------------------------------------
# LLaMA-2-7B (Hugging Face module names, written here)
# ---------------------------------------------------------------------------


class RMSNorm(nn.Module):
    """Root-mean-square layer norm with a learned scale (no bias).

    Args:
        dim: Normalized width.
        eps: Added to the mean square.
    """

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalizes the last dimension in float32, returns ``x``'s dtype."""
        dtype = x.dtype
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)


class RotaryEmbedding(nn.Module):
    """Computes rotary ``(cos, sin)`` tables for given positions.

    ``inv_freq`` is a non-persistent buffer: it is not in ``state_dict()``.

    Args:
        head_dim: Per-head width (even).
        base: Frequency base.
    """

    inv_freq: torch.Tensor

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Maps ``(T,)`` positions to ``(cos, sin)``, each ``(T, head_dim)``."""
        freqs = torch.outer(positions.float(), self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotates ``(B, H, T, D)`` queries or keys by ``(T, D)`` tables.

    Args:
        x: Queries or keys.
        cos: Cosine table.
        sin: Sine table.

    Returns:
        The rotated tensor, same shape and dtype as ``x``.
    """
    return (x * cos.to(x.dtype)) + (_rotate_half(x) * sin.to(x.dtype))


class LlamaAttention(nn.Module):
    """Multi-head causal attention with rotary embeddings and no biases.

    Args:
        dim: Model width.
        n_heads: Attention heads.
    """

    def __init__(self, dim: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = dim // n_heads
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.o_proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Maps ``(B, T, dim)`` to ``(B, T, dim)``."""
        b, t, c = x.shape
        q = self.q_proj(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        q = apply_rotary(q, cos, sin)
        k = apply_rotary(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).reshape(b, t, c)
        result: torch.Tensor = self.o_proj(y)
        return result


class LlamaMLP(nn.Module):
    """SwiGLU feed-forward: ``down_proj(silu(gate_proj(x)) * up_proj(x))``.

    Args:
        dim: Model width.
        ffn_dim: Hidden width.
    """

    def __init__(self, dim: int, ffn_dim: int):
        super().__init__()
        self.gate_proj = nn.Linear(dim, ffn_dim, bias=False)
        self.up_proj = nn.Linear(dim, ffn_dim, bias=False)
        self.down_proj = nn.Linear(ffn_dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Maps ``(B, T, dim)`` to ``(B, T, dim)``."""
        result: torch.Tensor = self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))
        return result


class LlamaDecoderLayer(nn.Module):
    """Pre-norm block: ``input_layernorm``, ``self_attn``, ``post_attention_layernorm``, ``mlp``.

    Args:
        dim: Model width.
        n_heads: Attention heads.
        ffn_dim: MLP hidden width.
        eps: RMSNorm epsilon.
    """

    def __init__(self, dim: int, n_heads: int, ffn_dim: int, eps: float = 1e-5):
        super().__init__()
        self.input_layernorm = RMSNorm(dim, eps)
        self.self_attn = LlamaAttention(dim, n_heads)
        self.post_attention_layernorm = RMSNorm(dim, eps)
        self.mlp = LlamaMLP(dim, ffn_dim)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Two residual sub-layers; takes the rotary tables as extra inputs."""
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x


class LlamaLike(nn.Module):
    """LLaMA decoder; the defaults are LLaMA-2-7B (6,738,415,616 parameters).

    Modules ``embed_tokens``, ``rotary_emb`` (buffer ``inv_freq``, not
    persistent), ``layers.<i>.{input_layernorm, self_attn.{q,k,v,o}_proj,
    post_attention_layernorm, mlp.{gate,up,down}_proj}``, ``norm`` and an
    untied ``lm_head``. Build the full size on the meta device
    (``with torch.device("meta"): LlamaLike()``) - it allocates nothing and a
    forward on a meta LongTensor ``(1, 16)`` returns meta logits
    ``(1, 16, 32000)``. Use :func:`llama_tiny` for real CPU forwards.

    Args:
        n_layers: Number of decoder layers.
        dim: Model width.
        n_heads: Attention heads.
        ffn_dim: MLP hidden width.
        vocab: Vocabulary size.
        eps: RMSNorm epsilon.
        rope_base: Rotary frequency base.
    """

    def __init__(
        self,
        n_layers: int = 32,
        dim: int = 4096,
        n_heads: int = 32,
        ffn_dim: int = 11008,
        vocab: int = 32000,
        eps: float = 1e-5,
        rope_base: float = 10000.0,
    ):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, dim)
        self.rotary_emb = RotaryEmbedding(dim // n_heads, rope_base)
        self.layers = nn.ModuleList(
            LlamaDecoderLayer(dim, n_heads, ffn_dim, eps) for _ in range(n_layers)
        )
        self.norm = RMSNorm(dim, eps)
        self.lm_head = nn.Linear(dim, vocab, bias=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Maps ``(B, T)`` token ids to ``(B, T, vocab)`` logits."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        cos, sin = self.rotary_emb(positions)
        x = self.embed_tokens(input_ids)
        for layer in self.layers:
            x = layer(x, cos, sin)
        x = self.norm(x)
        result: torch.Tensor = self.lm_head(x)
        return result


def llama_tiny() -> LlamaLike:
    """A 2-layer, 64-wide :class:`LlamaLike` with a 128-token vocabulary.

    Input LongTensor ``(1, 16)`` (values < 128), output ``(1, 16, 128)``.

    Returns:
        The tiny model.
    """
    return LlamaLike(n_layers=2, dim=64, n_heads=4, ffn_dim=172, vocab=128)


# ---------------------------------------------------------------------------
# Deep stack for hook-overhead benchmarks
# ---------------------------------------------------------------------------


class MLPStack(nn.Module):
    """``n_blocks`` blocks of ``Sequential(Linear(width, width), ReLU())``.

    With the defaults that is 1,202 modules (root, ``blocks``, 400 blocks of
    three modules each) and tiny compute, so per-module overhead dominates.
    Input ``(2, width)``, output ``(2, width)``.

    Args:
        n_blocks: Number of blocks.
        width: Feature width.
    """

    def __init__(self, n_blocks: int = 400, width: int = 16):
        super().__init__()
        self.blocks = nn.Sequential(
            *(nn.Sequential(nn.Linear(width, width), nn.ReLU()) for _ in range(n_blocks))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Runs every block in order."""
        result: torch.Tensor = self.blocks(x)
        return result


# ---------------------------------------------------------------------------
# Extra models: example inputs
# ---------------------------------------------------------------------------

EXTRA_MODELS: dict[str, tuple[ModelFactory, Callable[[], tuple[Any, ...]]]] = {
    "tied_lm": (TiedLM, lambda: (torch.randint(0, 100, (2, 7)),)),
    "repeated_call": (RepeatedCall, lambda: (torch.randn(2, 8),)),
    "dict_input": (
        DictInputModel,
        lambda: ({"image": torch.randn(2, 3, 8, 8), "meta": torch.randn(2, 5)},),
    ),
    "dict_output": (DictOutputModel, lambda: (torch.randn(2, 8),)),
    "dataclass_output": (DataclassOutputModel, lambda: (torch.randn(2, 8),)),
    "model_output_like": (ModelOutputLike, lambda: (torch.randn(2, 8),)),
    "lstm": (LSTMModel, lambda: (torch.randint(0, 50, (2, 7)),)),
    "transformer_encoder_layer": (transformer_encoder_layer, lambda: (torch.randn(2, 5, 32),)),
    "kwargs_model": (KwargsModel, lambda: (torch.randn(2, 8),)),
    "broken_flatten_cnn_ok": (BrokenFlattenCNN, lambda: (torch.randn(1, 3, 32, 32),)),
    "gpt2_tiny": (gpt2_tiny, lambda: (torch.randint(0, 64, (1, 8)),)),
    "llama_tiny": (llama_tiny, lambda: (torch.randint(0, 128, (1, 16)),)),
    "mlp_stack": (MLPStack, lambda: (torch.randn(2, 16),)),
}
"""Fast extra models: name -> (model factory, positional inputs; may hold a dict).

Not included: the full-size :class:`ResNet50Like` (input ``(1, 3, 224, 224)``),
:class:`GPT2Like` (input ``(1, T)`` ids < 50257) and :class:`LlamaLike`
(meta device, input ``(1, 16)`` ids on meta), and :class:`KwargsModel`'s keyword
arguments (``scale=2.0, mask=torch.rand(2, 4) > 0.5``).
"""

EXTRA_OUTPUT_SHAPES: dict[str, tuple[tuple[int, ...], ...]] = {
    "tied_lm": ((2, 7, 100),),
    "repeated_call": ((2, 8),),
    "dict_input": ((2, 3),),
    "dict_output": ((2, 3), (2, 16)),
    "dataclass_output": ((2, 3), (2, 16)),
    "model_output_like": ((2, 3), (2, 16)),
    "lstm": ((2, 5),),
    "transformer_encoder_layer": ((2, 5, 32),),
    "kwargs_model": ((2, 4),),
    "broken_flatten_cnn_ok": ((1, 10),),
    "gpt2_tiny": ((1, 8, 64),),
    "llama_tiny": ((1, 16, 128),),
    "mlp_stack": ((2, 16),),
}
"""Extra model name -> shapes of the output's tensors, in order (None fields skipped)."""
