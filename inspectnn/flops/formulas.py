"""FLOP formulas from shapes, for the calls the tracer counts without a dispatch mode.

``F.linear``, the convolutions, ``addmm``, ``F.bilinear``, scaled-dot-product attention
and the fused recurrent kernels, seen as torch functions by the op recorder
(:func:`fast_flops`, :func:`rnn_flops`), and torch's own leaf layers, counted from their
recorded shapes after the forward (``LEAF_KINDS``, :func:`leaf_flops`). The formulas are
``torch.utils.flop_counter``'s, so the counts agree with ``FlopCounterMode``.

May import: torch only (a leaf module of inspectnn).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

__all__ = ["LEAF_KINDS", "RNN_KERNELS", "fast_flops", "leaf_flops", "prod", "rnn_flops"]

_CONV = {"conv1d": False, "conv2d": False, "conv3d": False,
         "conv_transpose1d": True, "conv_transpose2d": True, "conv_transpose3d": True}  # fmt: skip


def prod(dims: Any) -> int:
    """The product of ``dims`` as a Python int (1 for none)."""
    n = 1
    for d in dims:
        n *= int(d)
    return n


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], i: int, name: str) -> Any:
    return args[i] if len(args) > i else kwargs.get(name)


def fast_flops(
    name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Callable[[Any], int] | None:
    """For ``F.linear``, a convolution, ``addmm``, scaled-dot-product attention,
    ``F.bilinear`` or a fused recurrent kernel, a function from its output to its FLOPs.

    The formulas are flop_counter's (the recurrent ones: :func:`rnn_flops`;
    bilinear, which it lacks: 2·rows·|W|, as for linear).
    None for any other function, and for unusual forms (a 1-D input to linear),
    which the dispatch mode then counts. Call it with torch-function handling
    disabled.
    """
    if name == "scaled_dot_product_attention":
        return _sdpa(args, kwargs)
    if name in RNN_KERNELS:
        rnn = rnn_flops(args, kwargs)
        return None if rnn is None else lambda out: rnn
    if name == "bilinear":  # one multiply-add per weight element per row, as for linear
        x, w = _arg(args, kwargs, 0, "input1"), _arg(args, kwargs, 2, "weight")
        if isinstance(x, Tensor) and isinstance(w, Tensor) and w.dim() == 3:
            n = 2 * prod(x.shape[:-1]) * w.numel()
            return lambda out: n
        return None
    if name == "addmm":  # Hugging Face's Conv1D: torch.addmm(bias, x, weight)
        m1, m2 = _arg(args, kwargs, 1, "mat1"), _arg(args, kwargs, 2, "mat2")
        if isinstance(m1, Tensor) and isinstance(m2, Tensor) and m1.dim() == m2.dim() == 2:
            n = 2 * int(m1.shape[0]) * int(m1.shape[1]) * int(m2.shape[1])
            return lambda out: n
        return None
    if name != "linear" and name not in _CONV:
        return None
    x, w = _arg(args, kwargs, 0, "input"), _arg(args, kwargs, 1, "weight")
    if not (isinstance(x, Tensor) and isinstance(w, Tensor)):
        return None
    if name == "linear":
        if x.dim() < 2 or w.dim() != 2:
            return None
        flops = 2 * prod(x.shape[:-1]) * w.shape[0] * w.shape[1]
        return lambda out: flops
    spatial = w.dim() - 2
    batch = x.shape[0] if x.dim() == w.dim() else 1
    if _CONV[name]:
        n = 2 * batch * prod(w.shape) * prod(x.shape[-spatial:])
        return lambda out: n
    return lambda out: 2 * batch * prod(w.shape) * prod(out.shape[-spatial:])


def _sdpa(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Callable[[Any], int] | None:
    """flop_counter's ``sdpa_flop_count``: two batched matmuls, q·kᵀ and scores·v.

    Counted here for every backend: FlopCounterMode has no formula for the CPU
    kernel (``_scaled_dot_product_flash_attention_for_cpu``) and counts 0 there,
    while it counts this on CUDA and on meta.
    """
    q, k, v = (_arg(args, kwargs, i, n) for i, n in enumerate(("query", "key", "value")))
    if not all(isinstance(t, Tensor) and t.dim() >= 2 for t in (q, k, v)):
        return None
    batch_heads = prod(q.shape[:-2])
    n = 2 * batch_heads * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1])
    return lambda out: n


RNN_KERNELS = frozenset({"lstm", "gru", "rnn_tanh", "rnn_relu"})
"""The fused recurrent kernels behind ``nn.LSTM``, ``nn.GRU`` and ``nn.RNN``."""


def rnn_flops(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
    """FLOPs of one call of a fused recurrent kernel (``torch.lstm``, ``gru``, ``rnn_tanh``,
    ``rnn_relu``), from shapes alone; None for a call of an unexpected form.

    Every weight matrix of every layer and direction multiplies one row per
    sequence element and time step: the input-hidden ``(G·H, in)`` and
    hidden-hidden ``(G·H, H_out)`` matrices (G = 4 gates for an LSTM, 3 for a GRU,
    1 for an RNN; ``in`` is the layer's input size, ``2·H_out`` above a
    bidirectional layer), and an LSTM's projection ``(proj_size, H)``. So the
    count is ``2 · rows · Σ|W|``, where ``rows`` is T·B for a padded input and,
    for a ``PackedSequence``, the packed rows (``sum(batch_sizes)``): the input's
    leading dimensions either way, so ``batch_sizes`` is never read. Biases are
    added, not multiplied, and the gates are elementwise: like ``flop_counter``'s
    ``addmm`` formula this counts neither. It equals what ``FlopCounterMode``
    counts on torch's reference decomposition of the kernel (what the meta
    device runs), without running it.
    """
    data = _arg(args, kwargs, 0, "input")
    if data is None:
        data = kwargs.get("data")
    second = args[1] if len(args) > 1 else kwargs.get("batch_sizes", kwargs.get("hx"))
    packed = isinstance(second, Tensor) and not second.is_floating_point()
    params = _arg(args, kwargs, 3 if packed else 2, "params")
    if not isinstance(data, Tensor) or data.dim() < 2 or not isinstance(params, Sequence):
        return None
    weights = sum(w.numel() for w in params if isinstance(w, Tensor) and w.dim() == 2)
    return 2 * prod(data.shape[:-1]) * weights


_ZERO_LEAVES = (
    nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.LeakyReLU, nn.ELU, nn.SELU,
    nn.Hardswish, nn.Hardsigmoid, nn.Mish, nn.Softplus, nn.Softmax, nn.LogSoftmax,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.Embedding,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.Flatten, nn.Unflatten, nn.Identity,
    nn.PixelShuffle, nn.PixelUnshuffle, nn.Upsample,
)  # fmt: skip
LEAF_KINDS: dict[type[nn.Module], str] = {
    **{cls: "zero" for cls in _ZERO_LEAVES},
    nn.Linear: "linear",
    nn.Conv1d: "conv", nn.Conv2d: "conv", nn.Conv3d: "conv",
    nn.ConvTranspose1d: "convT", nn.ConvTranspose2d: "convT", nn.ConvTranspose3d: "convT",
}  # fmt: skip
"""torch leaf modules (exact types) whose FLOPs follow from their shapes alone.

The tracer runs these without the op recorder: their insides are one kernel
call that flop_counter's formulas describe (``"linear"``, ``"conv"``,
``"convT"``) or that counts no FLOPs (``"zero"``).
"""


def leaf_flops(kind: str, x: tuple[int, ...], weight: tuple[int, ...], out: tuple[int, ...]) -> int:
    """FLOPs of one call of a ``LEAF_KINDS`` module, as FlopCounterMode counts them.

    Only shapes are needed (the input's, the weight's and the output's), so the
    tracer records them during the forward and counts afterwards.
    """
    if kind == "zero":
        return 0
    if kind == "linear":
        return 2 * prod(x[:-1]) * weight[0] * weight[1]
    spatial = len(weight) - 2
    batch = x[0] if len(x) == len(weight) else 1
    conv_shape = (x if kind == "convT" else out)[-spatial:]
    return 2 * batch * prod(weight) * prod(conv_shape)
