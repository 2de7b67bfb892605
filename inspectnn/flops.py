"""FLOP counting that agrees with ``torch.utils.flop_counter.FlopCounterMode``.

``FlopCounterMode`` is a dispatch mode: it sees every aten op in Python, which
costs ~10 µs an op and would triple the time of a model of small layers. The
tracer already sees every torch function once (its op recorder), so FLOPs are
counted at that level in three ways:

* functions that can never reach a counted aten op (elementwise math, views,
  norms, pooling ...) count zero without further work;
* ``F.linear`` and the convolutions, the bulk of the FLOPs, use the same
  formulas as ``flop_counter`` (2·m·n·k; 2·batch·|w|·|spatial out|), and the
  fused kernels that ``FlopCounterMode`` counts as 0 on the CPU get formulas of
  their own: scaled-dot-product attention (``flop_counter``'s) and the
  recurrent kernels (:func:`rnn_flops`);
* anything else runs under :class:`FlopDispatchMode`, which applies
  ``flop_counter``'s own registry as ``FlopCounterMode`` does, plus formulas
  for the matrix products it lacks (``EXTRA_FORMULAS``: grouped and in-place
  matmuls, matrix-vector products).

Everything else is zero by ``FlopCounterMode``'s convention (elementwise math,
reductions, norms, views, copies, indexing), except the aten ops that multiply
matrices but have no formula anywhere (``no_formula``): those are reported as
uncounted, never silently taken as zero.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

__all__ = [
    "EXTRA_FORMULAS",
    "LEAF_KINDS",
    "RNN_KERNELS",
    "ZERO_FLOP",
    "FlopDispatchMode",
    "fast_flops",
    "leaf_flops",
    "no_formula",
    "op_name",
    "rnn_flops",
]

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
            n = 2 * _prod(x.shape[:-1]) * w.numel()
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
    return 2 * _prod(data.shape[:-1]) * weights


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


def _grouped_mm_flop(a: Tensor, b: Tensor, *args: Any, out_val: Any = None, **kwargs: Any) -> int:
    """``torch._grouped_mm`` (and ``_scaled_grouped_mm``): the mixture-of-experts matmul.

    2-D x 3-D (tokens sorted by expert x one weight per expert), 3-D x 3-D and
    3-D x 2-D: each output element is a dot product over ``a``'s last dimension,
    2·|out|·K. 2-D x 2-D (groups along K): 2·M·K·N, the K slices adding up to K.
    From shapes only: ``offs`` holds data (reading it would wait for the GPU),
    so rows past ``offs[-1]``, which the kernel skips, would count too; the
    experts of ``transformers`` pass exactly the routed rows.
    """
    if a.dim() == 2 and b.dim() == 2:
        return 2 * int(a.shape[0]) * int(a.shape[1]) * int(b.shape[1])
    out = out_val[0] if isinstance(out_val, (tuple, list)) else out_val
    return 2 * int(out.numel()) * int(a.shape[-1])


def _mm_flop(a: Tensor, b: Tensor) -> int:
    """2·|a|·n for a @ b: a matrix, a batch of them, or a vector (``dot``)."""
    return 2 * a.numel() * (int(b.shape[-1]) if b.dim() >= 2 else 1)


def _self_mm(a: Tensor, b: Tensor, *args: Any, **kwargs: Any) -> int:
    return _mm_flop(a, b)  # mv, dot, vdot, bmm-like (a, b)


def _acc_mm(acc: Tensor, a: Tensor, b: Tensor, *args: Any, **kwargs: Any) -> int:
    return _mm_flop(a, b)  # addmm_, addmv, addbmm, baddbmm_ ...: acc + a @ b


def _sdpa_cpu_flop(*args: Any, out_val: Any = None, **kwargs: Any) -> int:
    """The CPU flash-attention kernel: flop_counter's formula for the CUDA one."""
    formula = flop_registry[torch.ops.aten._scaled_dot_product_flash_attention]
    return int(formula(*args, out_val=out_val, **kwargs))


def _attention_flops(q: Tensor, k: Tensor, embed_dim: int) -> int:
    """Multi-head attention as the unfused code runs it (``F.multi_head_attention_forward``).

    Projections of q, k and v (one ``(E, 3E)`` gemm in self-attention), q·kᵀ and
    scores·v over all heads (2·B·L·S·E each, whatever the number of heads), and
    the output projection.
    """
    e = int(embed_dim)
    batch, lq, lk = _prod(q.shape[:-2]), int(q.shape[-2]), int(k.shape[-2])
    projections = 2 * e * e * batch * (lq + 2 * lk) + 2 * e * e * batch * lq
    return projections + 2 * 2 * batch * lq * lk * e


def _native_mha_flop(q: Tensor, k: Tensor, v: Tensor, embed_dim: int, *args: Any, **kw: Any) -> int:
    """``nn.MultiheadAttention``'s inference fast path (``_native_multi_head_attention``)."""
    return _attention_flops(q, k, embed_dim)


def _encoder_layer_flop(src: Tensor, embed_dim: int, *args: Any, **kwargs: Any) -> int:
    """``nn.TransformerEncoderLayer``'s fast path: self-attention plus the two
    feed-forward linears (``ffn_weight_1`` and ``_2``, arguments 14 and 16)."""
    ffn = int(args[12].numel()) + int(args[14].numel())
    return _attention_flops(src, src, embed_dim) + 2 * _prod(src.shape[:-1]) * ffn


def _ops(*names: str) -> list[Any]:
    return [getattr(torch.ops.aten, n) for n in names if hasattr(torch.ops.aten, n)]


EXTRA_FORMULAS: dict[Any, Callable[..., int]] = {
    **dict.fromkeys(_ops("_grouped_mm", "_scaled_grouped_mm"), _grouped_mm_flop),
    **dict.fromkeys(_ops("mv", "dot", "vdot", "_int_mm"), _self_mm),
    **dict.fromkeys(
        _ops("addmm_", "baddbmm_", "addmv", "addmv_", "addbmm", "addbmm_", "_addmm_activation"),
        _acc_mm,
    ),
    **dict.fromkeys(_ops("_scaled_dot_product_flash_attention_for_cpu"), _sdpa_cpu_flop),
    **dict.fromkeys(_ops("_native_multi_head_attention"), _native_mha_flop),
    **dict.fromkeys(_ops("_transformer_encoder_layer_fwd"), _encoder_layer_flop),
}
"""aten ops (overload packets) with no ``flop_counter`` formula that multiply
matrices, and their FLOPs: called like flop_counter's (tensors, ``out_val=``)."""

# aten ops whose names say they multiply matrices (or solve, factor, transform) ...
_MATRIX_WORK = re.compile(
    r"mm|mv|conv|attention|lstm|gru|rnn|linalg|fft|linear|dot|einsum|cdist|cholesky|svd"
    r"|solve|matrix|gemm|qr|^lu|_lu|inverse|householder|^addr"
)
# ... but do not, or are views, elementwise or reductions by another name
_NOT_MATRIX_WORK = re.compile(
    r"backward|^cumm|_standard_gamma|upsample|_convert_|vector_norm|linalg_cross|lu_unpack|check_errors"
)
_NO_FORMULA: dict[Any, bool] = {}  # aten op -> no_formula(op), decided once per op


def no_formula(func: Any) -> bool:
    """Whether an aten op that has no FLOP formula does work that should have one.

    ``FlopCounterMode`` counts matrix products, convolutions and attention and
    nothing else: elementwise ops, reductions, norms, views, copies and indexing
    are zero by that convention. An op without a formula is "uncounted" (its
    FLOPs are missing from the total, not zero) when its name says it multiplies
    matrices, solves, factors or transforms them (``_grouped_mm`` before it had a
    formula, ``linalg_*``, ``_fft_*``, ``mkldnn_rnn_layer``, the fused attention
    kernels) and it is neither elementwise nor a view.
    """
    known = _NO_FORMULA.get(func)
    if known is None:
        name = func._overloadpacket.__name__
        known = bool(
            _MATRIX_WORK.search(name)
            and not _NOT_MATRIX_WORK.search(name)
            and torch.Tag.pointwise not in func.tags
            and not func.is_view
        )
        _NO_FORMULA[func] = known
    return known


def op_name(func: Any) -> str:
    """``"aten._grouped_mm"``: how an aten op is named in the report."""
    return str(func._overloadpacket)


class FlopDispatchMode(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """Counts FLOPs of aten ops as ``FlopCounterMode`` does, plus ``EXTRA_FORMULAS``.

    Ops with a formula are counted; other composite ops are decomposed first so
    that the matmuls inside them count. Counting never fails the forward: an op
    whose formula or decomposition raises is run as it is, and reported with the
    ops that have no formula (``no_formula``) to ``missing``.

    Args:
        sink: Called with the FLOPs of each counted op.
        missing: Called with the name of each op whose FLOPs went uncounted.
    """

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch wraps a mode's __torch_dispatch__ in _disable_dynamo by default, and
        # the first call then imports torch._dynamo (~800 modules, ~80 MB, ~1 s).
        return False

    def __init__(self, sink: Callable[[int], None], missing: Callable[[str], None]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.sink = sink
        self.missing = missing

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
        packet = func._overloadpacket
        formula = flop_registry.get(packet) or EXTRA_FORMULAS.get(packet)
        if formula is None:
            return self._uncounted(func, args, kwargs)
        out = func(*args, **kwargs)
        try:
            flops = int(formula(*args, **kwargs, out_val=out))
        except Exception:  # a formula must never break a forward that would run
            self.missing(op_name(func))
        else:
            self.sink(flops)
        return out

    def _uncounted(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run an op that has no formula: decomposed where it can be, so the matmuls
        inside count, else as it is (reported when it should have had a formula)."""
        if func in _META_QUERIES:
            return func(*args, **kwargs)
        try:
            with self:
                result = func.decompose(*args, **kwargs)
        except Exception:
            out = func(*args, **kwargs)  # undecomposed: raises here if the op itself fails
            self.missing(op_name(func))
            return out
        if result is not NotImplemented:
            return result
        out = func(*args, **kwargs)
        if no_formula(func):
            self.missing(op_name(func))
        return out
