"""``flops.py``'s formulas against ``torch.utils.flop_counter.FlopCounterMode`` on the same op."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from inspectnn.flops import LEAF_KINDS, ZERO_FLOP, fast_flops, leaf_flops, no_formula, rnn_flops


def _counted(fn: Callable[[], Any]) -> tuple[int, Any]:
    """What FlopCounterMode counts for ``fn()``, and its result."""
    with FlopCounterMode(display=False) as counter:
        out = fn()
    return counter.get_total_flops(), out


def _fast(name: str, *args: Any, **kwargs: Any) -> tuple[int, int]:
    """(inspectnn's count, FlopCounterMode's) for ``F.<name>(*args, **kwargs)``."""
    fn = getattr(F, name) if hasattr(F, name) else getattr(torch, name)
    want, out = _counted(lambda: fn(*args, **kwargs))
    formula = fast_flops(name, args, kwargs)
    assert formula is not None, name
    return formula(out), want


@pytest.mark.parametrize(
    ("x", "w"),
    [((3, 4), (5, 4)), ((2, 7, 4), (5, 4)), ((0, 4), (5, 4))],
)
def test_linear(x: tuple[int, ...], w: tuple[int, ...]) -> None:
    got, want = _fast("linear", torch.randn(x), torch.randn(w))
    assert got == want == 2 * (torch.Size(x).numel() // x[-1]) * w[0] * w[1]


def test_linear_keyword_arguments_and_unusual_forms() -> None:
    got, want = _fast("linear", input=torch.randn(3, 4), weight=torch.randn(5, 4))
    assert got == want == 120
    assert fast_flops("linear", (torch.randn(4), torch.randn(5, 4)), {}) is None  # 1-D: dispatch
    assert fast_flops("relu", (torch.randn(4),), {}) is None


@pytest.mark.parametrize(
    ("name", "x", "w", "kwargs"),
    [
        ("conv1d", (2, 3, 9), (4, 3, 3), {}),
        ("conv1d", (3, 9), (4, 3, 3), {"stride": 2}),  # unbatched
        ("conv2d", (2, 4, 8, 8), (6, 2, 3, 3), {"groups": 2, "padding": 1}),
        ("conv2d", (1, 3, 9, 9), (2, 3, 3, 3), {"dilation": 2, "stride": 2}),
        ("conv3d", (1, 2, 4, 4, 4), (3, 2, 2, 2, 2), {}),
        ("conv_transpose1d", (2, 3, 5), (3, 4, 3), {"stride": 2}),
        ("conv_transpose2d", (1, 4, 3, 3), (4, 2, 3, 3), {"padding": 1}),
        ("conv_transpose2d", (4, 3, 3), (4, 2, 2, 2), {}),  # unbatched
    ],
)
def test_convolutions(
    name: str, x: tuple[int, ...], w: tuple[int, ...], kwargs: dict[str, Any]
) -> None:
    got, want = _fast(name, torch.randn(x), torch.randn(w), **kwargs)
    assert got == want > 0


def test_addmm_as_hugging_faces_conv1d_uses_it() -> None:
    got, want = _fast("addmm", torch.randn(5), torch.randn(3, 4), torch.randn(4, 5))
    assert got == want == 2 * 3 * 4 * 5


def test_attention_on_meta_where_flop_counter_has_a_formula() -> None:
    q, k, v = (torch.empty(2, 3, s, 8, device="meta") for s in (5, 7, 7))
    got, want = _fast("scaled_dot_product_attention", q, k, v)
    assert got == want == 2 * 2 * 3 * 5 * 7 * (8 + 8)


def test_attention_on_cpu_counted_where_flop_counter_counts_none() -> None:
    q, k, v = (torch.randn(2, 3, s, 8) for s in (5, 7, 7))
    got, _ = _fast("scaled_dot_product_attention", q, k, v)
    assert got == 2 * 2 * 3 * 5 * 7 * (8 + 8)


def test_bilinear_counts_every_weight_per_row_as_linear_does() -> None:
    x1, x2, w = torch.randn(6, 3), torch.randn(6, 4), torch.randn(5, 3, 4)
    formula = fast_flops("bilinear", (x1, x2, w), {})
    assert formula is not None and formula(None) == 2 * 6 * w.numel()


def _rnn_args(layer: nn.RNNBase, x: Tensor) -> tuple[Any, ...]:
    """The positional arguments ``nn.LSTM``/``GRU``/``RNN`` pass their fused kernel."""
    hidden = torch.zeros(layer.num_layers * (2 if layer.bidirectional else 1), x.shape[1],
                         layer.proj_size or layer.hidden_size)  # fmt: skip
    hx: Any = (hidden, torch.zeros((*hidden.shape[:-1], layer.hidden_size)))
    hx = list(hx) if isinstance(layer, nn.LSTM) else hidden
    return (x, hx, layer._flat_weights, layer.bias, layer.num_layers, 0.0, False,
            layer.bidirectional, layer.batch_first)  # fmt: skip


@pytest.mark.parametrize(
    "build",
    [
        lambda: nn.LSTM(4, 6),
        lambda: nn.LSTM(4, 6, num_layers=2, bidirectional=True),
        lambda: nn.LSTM(4, 6, proj_size=3),
        lambda: nn.GRU(4, 5, num_layers=2),
        lambda: nn.RNN(4, 5, bidirectional=True),
    ],
)
def test_recurrent_kernels_equal_the_reference_decomposition_on_meta(build: Any) -> None:
    layer = build().to("meta")
    x = torch.empty(7, 2, 4, device="meta")
    want, _ = _counted(lambda: layer(x))  # meta runs torch's decomposition: matmuls counted
    assert rnn_flops(_rnn_args(layer, x), {}) == want > 0


def test_rnn_flops_of_an_unexpected_form_is_none() -> None:
    assert rnn_flops((torch.randn(4),), {}) is None
    assert rnn_flops((torch.randn(3, 2, 4), torch.zeros(1), None), {}) is None


@pytest.mark.parametrize(
    ("layer", "x"),
    [
        (nn.Linear(4, 5), (3, 4)),
        (nn.Linear(4, 5, bias=False), (2, 6, 4)),
        (nn.Conv2d(3, 8, 3, stride=2, padding=1, groups=1), (2, 3, 9, 9)),
        (nn.Conv1d(4, 4, 3, groups=2), (4, 10)),  # unbatched
        (nn.ConvTranspose2d(4, 2, 3, stride=2), (1, 4, 5, 5)),
        (nn.ReLU(), (3, 4)),
        (nn.BatchNorm1d(4).eval(), (3, 4)),
        (nn.MaxPool2d(2), (1, 1, 4, 4)),
        (nn.Embedding(5, 3), None),
    ],
)
def test_leaf_layers_from_their_shapes(layer: nn.Module, x: tuple[int, ...] | None) -> None:
    kind = LEAF_KINDS[type(layer)]
    inp = torch.randn(x) if x is not None else torch.tensor([[0, 4]])
    want, out = _counted(lambda: layer(inp))
    weight = tuple(layer.weight.shape) if hasattr(layer, "weight") else ()
    assert leaf_flops(kind, tuple(inp.shape), weight, tuple(out.shape)) == want
    assert (kind == "zero") == (want == 0)


ZERO_CALLS: dict[str, Callable[[Tensor], Any]] = {
    "relu": F.relu,
    "gelu": F.gelu,
    "softmax": lambda x: F.softmax(x, -1),
    "layer_norm": lambda x: F.layer_norm(x, (4,)),
    "batch_norm": lambda x: F.batch_norm(x, None, None, training=True),
    "avg_pool1d": lambda x: F.avg_pool1d(x[None], 2),
    "dropout": lambda x: F.dropout(x, 0.5),
    "cross_entropy": lambda x: F.cross_entropy(x, torch.tensor([0, 1, 2])),
    "mse_loss": lambda x: F.mse_loss(x, x),
    "cat": lambda x: torch.cat([x, x]),
    "add": lambda x: torch.add(x, x),
    "__mul__": lambda x: x * x,
    "__getitem__": lambda x: x[1:],
    "view": lambda x: x.view(-1),
    "transpose": lambda x: x.transpose(0, 1),
    "sum": torch.sum,
    "mean": lambda x: x.mean(-1),
    "clamp": lambda x: x.clamp(0, 1),
    "where": lambda x: torch.where(x > 0, x, -x),
    "cosine_similarity": lambda x: F.cosine_similarity(x, x),
}


def test_functions_listed_zero_flop_count_none_in_flop_counter() -> None:
    for name, call in ZERO_CALLS.items():
        assert name in ZERO_FLOP
        assert _counted(lambda call=call: call(torch.randn(3, 4)))[0] == 0, name


def test_no_matrix_product_is_listed_zero_flop() -> None:
    assert not {"linear", "matmul", "mm", "bmm", "einsum", "conv2d", "addmm", "bilinear",
                "scaled_dot_product_attention", "__matmul__"} & ZERO_FLOP  # fmt: skip


def test_uncounted_is_matrix_work_without_a_formula() -> None:
    assert no_formula(torch.ops.aten.linalg_qr.default)
    assert no_formula(torch.ops.aten._fft_r2c.default)
    assert not no_formula(torch.ops.aten.add.Tensor)  # elementwise: zero by convention
    assert not no_formula(torch.ops.aten.linalg_vector_norm.default)  # a reduction
