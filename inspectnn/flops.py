"""FLOP counting that agrees with ``torch.utils.flop_counter.FlopCounterMode``.

``FlopCounterMode`` is a dispatch mode: it sees every aten op in Python, which
costs ~10 µs an op and would triple the time of a model of small layers. The
tracer already sees every torch function once (its op recorder), so FLOPs are
counted at that level in three ways:

* functions that can never reach a counted aten op (elementwise math, views,
  norms, pooling ...) count zero without further work;
* ``F.linear`` and the convolutions, the bulk of the FLOPs, use the same
  formulas as ``flop_counter`` (2·m·n·k; 2·batch·|w|·|spatial out|);
* anything else runs under :class:`FlopDispatchMode`, which applies
  ``flop_counter``'s own registry exactly as ``FlopCounterMode`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

__all__ = ["LEAF_KINDS", "ZERO_FLOP", "FlopDispatchMode", "fast_flops", "leaf_flops"]

ZERO_FLOP = frozenset(
    {
        "__get__",
        "size",
        "dim",
        "numel",
        "item",
        "tolist",
        "stride",
        "is_contiguous",
        "element_size",
        "nelement",
        "__len__",
        "__bool__",
        "__format__",
        "__repr__",
        "__hash__",
        "__iter__",
        "__setitem__",
        "__getitem__",
        "__contains__",
        "add",
        "sub",
        "mul",
        "div",
        "true_divide",
        "floor_divide",
        "remainder",
        "fmod",
        "rsub",
        "neg",
        "abs",
        "pow",
        "exp",
        "log",
        "log2",
        "log1p",
        "sqrt",
        "rsqrt",
        "reciprocal",
        "sin",
        "cos",
        "tan",
        "tanh",
        "sigmoid",
        "erf",
        "sign",
        "floor",
        "ceil",
        "round",
        "trunc",
        "__add__",
        "__radd__",
        "__iadd__",
        "__sub__",
        "__rsub__",
        "__isub__",
        "__mul__",
        "__rmul__",
        "__imul__",
        "__truediv__",
        "__rtruediv__",
        "__itruediv__",
        "__floordiv__",
        "__rfloordiv__",
        "__mod__",
        "__neg__",
        "__pow__",
        "__rpow__",
        "__ipow__",
        "__abs__",
        "__eq__",
        "__ne__",
        "__lt__",
        "__le__",
        "__gt__",
        "__ge__",
        "__and__",
        "__or__",
        "__xor__",
        "__invert__",
        "__rand__",
        "__ror__",
        "__lshift__",
        "__rshift__",
        "add_",
        "sub_",
        "mul_",
        "div_",
        "pow_",
        "clamp_",
        "fill_",
        "zero_",
        "copy_",
        "masked_fill_",
        "relu_",
        "dropout_",
        "eq",
        "ne",
        "lt",
        "le",
        "gt",
        "ge",
        "logical_not",
        "logical_and",
        "logical_or",
        "isnan",
        "isinf",
        "isfinite",
        "relu",
        "relu6",
        "gelu",
        "silu",
        "elu",
        "selu",
        "celu",
        "leaky_relu",
        "hardtanh",
        "hardswish",
        "hardsigmoid",
        "softplus",
        "softsign",
        "mish",
        "logsigmoid",
        "tanhshrink",
        "threshold",
        "glu",
        "prelu",
        "rrelu",
        "softmax",
        "log_softmax",
        "softmin",
        "dropout",
        "dropout1d",
        "dropout2d",
        "dropout3d",
        "alpha_dropout",
        "feature_alpha_dropout",
        "layer_norm",
        "batch_norm",
        "group_norm",
        "instance_norm",
        "rms_norm",
        "local_response_norm",
        "normalize",
        "embedding",
        "embedding_bag",
        "one_hot",
        "max_pool1d",
        "max_pool2d",
        "max_pool3d",
        "avg_pool1d",
        "avg_pool2d",
        "avg_pool3d",
        "lp_pool1d",
        "lp_pool2d",
        "adaptive_avg_pool1d",
        "adaptive_avg_pool2d",
        "adaptive_avg_pool3d",
        "adaptive_max_pool1d",
        "adaptive_max_pool2d",
        "adaptive_max_pool3d",
        "max_pool1d_with_indices",
        "max_pool2d_with_indices",
        "max_pool3d_with_indices",
        "pixel_shuffle",
        "pixel_unshuffle",
        "interpolate",
        "upsample",
        "pad",
        "unfold",
        "fold",
        "channel_shuffle",
        "cat",
        "concat",
        "concatenate",
        "stack",
        "hstack",
        "vstack",
        "view",
        "view_as",
        "reshape",
        "reshape_as",
        "permute",
        "transpose",
        "t",
        "contiguous",
        "flatten",
        "unflatten",
        "squeeze",
        "unsqueeze",
        "expand",
        "expand_as",
        "repeat",
        "repeat_interleave",
        "split",
        "split_with_sizes",
        "chunk",
        "unbind",
        "narrow",
        "select",
        "index_select",
        "gather",
        "scatter",
        "masked_fill",
        "masked_select",
        "where",
        "clamp",
        "clip",
        "mean",
        "sum",
        "prod",
        "max",
        "min",
        "amax",
        "amin",
        "argmax",
        "argmin",
        "var",
        "std",
        "norm",
        "cumsum",
        "cumprod",
        "logsumexp",
        "sort",
        "argsort",
        "topk",
        "any",
        "all",
        "type_as",
        "to",
        "float",
        "half",
        "double",
        "long",
        "int",
        "bool",
        "bfloat16",
        "cpu",
        "cuda",
        "detach",
        "clone",
        "zeros_like",
        "ones_like",
        "empty_like",
        "full_like",
        "rand_like",
        "randn_like",
        "arange",
        "zeros",
        "ones",
        "full",
        "empty",
        "tril",
        "triu",
        "roll",
        "flip",
        "new_zeros",
        "new_ones",
        "new_empty",
        "new_full",
        "new_tensor",
        "cross_entropy",
        "nll_loss",
        "mse_loss",
        "l1_loss",
        "smooth_l1_loss",
        "binary_cross_entropy",
        "binary_cross_entropy_with_logits",
        "kl_div",
        "cosine_similarity",
        "tensor",
        "as_tensor",
    }
)

_CONV = {"conv1d": False, "conv2d": False, "conv3d": False,
         "conv_transpose1d": True, "conv_transpose2d": True, "conv_transpose3d": True}  # fmt: skip


def _prod(dims: Any) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    return n


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], i: int, name: str) -> Any:
    return args[i] if len(args) > i else kwargs.get(name)


def fast_flops(
    name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Callable[[Any], int] | None:
    """For ``F.linear`` or a convolution, a function from its output to its FLOPs.

    The formulas are flop_counter's. None for any other function, and for
    unusual forms (a 1-D input to linear), which the dispatch mode then counts.
    Call it with torch-function handling disabled.
    """
    if name == "scaled_dot_product_attention":
        return _sdpa(args, kwargs)
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
        flops = 2 * _prod(x.shape[:-1]) * w.shape[0] * w.shape[1]
        return lambda out: flops
    spatial = w.dim() - 2
    batch = x.shape[0] if x.dim() == w.dim() else 1
    if _CONV[name]:
        n = 2 * batch * _prod(w.shape) * _prod(x.shape[-spatial:])
        return lambda out: n
    return lambda out: 2 * batch * _prod(w.shape) * _prod(out.shape[-spatial:])


def _sdpa(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Callable[[Any], int] | None:
    """flop_counter's ``sdpa_flop_count``: two batched matmuls, q·kᵀ and scores·v.

    Counted here for every backend: FlopCounterMode has no formula for the CPU
    kernel (``_scaled_dot_product_flash_attention_for_cpu``) and counts 0 there,
    while it counts this on CUDA and on meta.
    """
    q, k, v = (_arg(args, kwargs, i, n) for i, n in enumerate(("query", "key", "value")))
    if not all(isinstance(t, Tensor) and t.dim() >= 2 for t in (q, k, v)):
        return None
    batch_heads = _prod(q.shape[:-2])
    n = 2 * batch_heads * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1])
    return lambda out: n


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
        return 2 * _prod(x[:-1]) * weight[0] * weight[1]
    spatial = len(weight) - 2
    batch = x[0] if len(x) == len(weight) else 1
    conv_shape = (x if kind == "convT" else out)[-spatial:]
    return 2 * batch * _prod(weight) * _prod(conv_shape)


_META_QUERIES = frozenset(
    {
        torch.ops.aten.is_contiguous.default,
        torch.ops.aten.is_contiguous.memory_format,
        torch.ops.aten.size.default,
        torch.ops.aten.sym_size.default,
        torch.ops.aten.stride.default,
        torch.ops.aten.sym_stride.default,
        torch.ops.aten.storage_offset.default,
        torch.ops.aten.numel.default,
        torch.ops.aten.sym_numel.default,
        torch.ops.aten.dim.default,
        torch.ops.prim.layout.default,
        torch.ops.prim.device.default,
    }
)


class FlopDispatchMode(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """Counts FLOPs of aten ops exactly as ``FlopCounterMode`` does.

    Ops with a registered formula are counted; other composite ops are
    decomposed first so that the matmuls inside them count.

    Args:
        sink: Called with the FLOPs of each counted op.
    """

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch wraps a mode's __torch_dispatch__ in _disable_dynamo by default, and
        # the first call then imports torch._dynamo (~800 modules, ~80 MB, ~1 s).
        return False

    def __init__(self, sink: Callable[[int], None]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.sink = sink

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if isinstance(func, torch._ops.HigherOrderOperator):
            return NotImplemented
        formula = flop_registry.get(func._overloadpacket)
        if formula is None:
            if func not in _META_QUERIES:
                with self:
                    result = func.decompose(*args, **kwargs)
                if result is not NotImplemented:
                    return result
            return func(*args, **kwargs)
        out = func(*args, **kwargs)
        self.sink(int(formula(*args, **kwargs, out_val=out)))
        return out
