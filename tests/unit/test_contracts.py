"""``checks/contracts.py``: each contract's verdict against what torch does with the call.

A contract says, before a layer runs, whether the call can work. Here every contract
is called directly on inputs that torch accepts and inputs it refuses, and must
agree with torch: a violation exactly where the layer then raises.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from inspectnn.checks.contracts import (
    STRICT_DTYPE,
    Violation,
    contract_for,
    contract_for_class,
    fmt_shape,
)

Build = Callable[[], nn.Module]

# (layer, input shapes torch accepts or refuses); each also gets a float64 copy of the first.
CASES: dict[str, tuple[Build, list[tuple[int, ...]]]] = {
    "linear": (lambda: nn.Linear(4, 3), [(2, 4), (4,), (2, 5), (3, 2, 4), (0, 4)]),
    "conv1d": (lambda: nn.Conv1d(2, 4, 3), [(1, 2, 5), (2, 5), (1, 3, 5), (1, 2, 2), (5,),
                                           (1, 2, 5, 5)]),
    "conv2d_padded": (lambda: nn.Conv2d(3, 8, 3, padding=1),
                      [(1, 3, 1, 1), (3, 4, 4), (1, 1, 4, 4), (1, 3, 4), (2, 3, 0, 4)]),
    "conv2d_dilated": (lambda: nn.Conv2d(3, 8, 5, dilation=2),
                       [(1, 3, 9, 9), (1, 3, 8, 9), (1, 3, 9, 20)]),
    "conv_transpose2d": (lambda: nn.ConvTranspose2d(4, 2, 3), [(1, 4, 2, 2), (1, 2, 2, 2),
                                                               (4, 2, 2)]),
    "maxpool2d": (lambda: nn.MaxPool2d(2), [(1, 3, 4, 4), (3, 4, 4), (1, 3, 1, 1), (4, 4),
                                            (1, 1, 3, 4, 4)]),
    "avgpool1d": (lambda: nn.AvgPool1d(3), [(1, 2, 3), (1, 2, 2), (2, 6), (6,)]),
    "batchnorm1d": (lambda: nn.BatchNorm1d(4).eval(), [(2, 4), (2, 4, 5), (2, 3), (4,),
                                                       (2, 4, 5, 6)]),
    "batchnorm2d": (lambda: nn.BatchNorm2d(3).eval(), [(1, 3, 2, 2), (1, 4, 2, 2), (3, 2, 2)]),
    "layernorm": (lambda: nn.LayerNorm(4), [(2, 4), (4,), (2, 5), (2, 4, 4)]),
    "layernorm_2d": (lambda: nn.LayerNorm((3, 4)), [(2, 3, 4), (3, 4), (2, 4, 3), (4,)]),
    "groupnorm": (lambda: nn.GroupNorm(2, 4), [(2, 4), (2, 4, 3), (2, 6, 3), (4,), (2, 3)]),
    "flatten": (lambda: nn.Flatten(), [(2, 3, 4), (2,)]),
    "flatten_2_3": (lambda: nn.Flatten(2, 3), [(1, 2, 3, 4), (1, 2, 3)]),
    "unflatten": (lambda: nn.Unflatten(1, (2, 3)), [(4, 6), (4, 5), (6,)]),
    "pixel_shuffle": (lambda: nn.PixelShuffle(2),
                      [(1, 8, 2, 2), (1, 6, 2, 2), (8, 2, 2), (8, 2), (4,)]),
    "lstm": (lambda: nn.LSTM(4, 6), [(3, 2, 4), (3, 4), (3, 2, 5), (2,)]),
    "gru_batch_first": (lambda: nn.GRU(4, 6, batch_first=True), [(3, 2, 4), (3, 4), (3, 2, 5)]),
    "attention": (lambda: nn.MultiheadAttention(8, 2), [(3, 2, 8), (3, 8), (3, 2, 6)]),
}  # fmt: skip


def _verdict(layer: nn.Module, *args: Tensor, **kwargs: Tensor) -> Violation | None:
    """What ``layer``'s contract says of the call ``layer(*args, **kwargs)``."""
    contract = contract_for(layer)
    assert contract is not None, type(layer).__name__
    return contract(layer, args, kwargs)


def _runs(layer: nn.Module, args: tuple[Tensor, ...]) -> bool:
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            layer(*args)
    except (RuntimeError, ValueError, IndexError, AssertionError):
        return False
    return True


@pytest.mark.parametrize("name", list(CASES))
def test_a_violation_exactly_where_torch_refuses_the_call(name: str) -> None:
    build, shapes = CASES[name]
    layer = build()
    contract = contract_for(layer)
    assert contract is not None
    inputs = [torch.randn(s) for s in shapes] + [torch.randn(shapes[0], dtype=torch.float64)]
    refused = 0
    for x in inputs:
        args = (x, x, x) if name == "attention" else (x,)
        violation = contract(layer, args, {})
        assert (violation is None) == _runs(layer, args), (tuple(x.shape), x.dtype, violation)
        refused += violation is not None
    assert 0 < refused < len(inputs)  # each layer is shown both kinds of input


def test_embedding_indices_in_range_integer_only() -> None:
    emb = nn.Embedding(5, 3)
    for x in (torch.tensor([0, 4]), torch.tensor([5]), torch.tensor([-1]), torch.randn(2),
              torch.tensor([True]), torch.zeros(0, dtype=torch.long)):  # fmt: skip
        assert (_verdict(emb, x) is None) == _runs(emb, (x,)), x


def test_a_linear_violation_says_what_and_how_to_fix() -> None:
    lin = nn.Linear(1024, 10)
    assert _verdict(lin, torch.zeros(1, 4096)) == Violation(
        "shape", "[*, 1024]", "[1, 4096]", "the last dimension must equal in_features=1024",
        dim=1, fix="nn.Linear(4096, 10)",
    )  # fmt: skip
    scalar = _verdict(lin, torch.tensor(1.0))
    assert scalar is not None and scalar.got.startswith("[] (a 0-d tensor")
    # the input may come as a keyword
    assert _verdict(lin, input=torch.zeros(2, 3)) is not None


def test_a_conv_fix_keeps_the_layers_other_settings() -> None:
    conv = nn.Conv2d(1, 16, 3, stride=2, padding=1)
    bad = _verdict(conv, torch.zeros(1, 3, 8, 8))
    assert bad is not None and (bad.kind, bad.dim) == ("shape", 1)
    assert bad.fix == "nn.Conv2d(3, 16, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))"


def test_a_dtype_violation_names_the_cast() -> None:
    lin = nn.Linear(2, 2)
    bad = _verdict(lin, torch.zeros(1, 2, dtype=torch.float64))
    assert bad is not None and (bad.kind, bad.expected, bad.got, bad.param) == (
        "dtype", "float32", "float64", "weight")  # fmt: skip
    assert bad.fix == "cast the input with x.float(), or the model with model.to(torch.float64)"
    ints = _verdict(lin, torch.zeros(1, 2, dtype=torch.long))
    assert ints is not None and "integer tensor cannot enter a float layer" in ints.fix


def test_a_subclass_keeps_its_bases_contract_unless_it_overrides_forward() -> None:
    class Kept(nn.Linear):
        pass

    class Own(nn.Linear):
        def forward(self, x: Tensor) -> Tensor:
            return super().forward(x[..., :4])

    assert contract_for_class(Kept) is contract_for_class(nn.Linear) is not None
    assert contract_for_class(Own) is None
    assert contract_for_class(nn.ReLU) is None


def test_norm_layers_are_not_strict_about_dtype() -> None:
    assert nn.Linear in STRICT_DTYPE and nn.Embedding in STRICT_DTYPE
    assert nn.LayerNorm not in STRICT_DTYPE and nn.BatchNorm2d not in STRICT_DTYPE
    assert fmt_shape(torch.Size([1, 4096])) == "[1, 4096]" and fmt_shape(()) == "[]"
