"""FLOP formulas for aten ops that ``torch.utils.flop_counter`` has none for: ``EXTRA_FORMULAS``.

Matrix products it lacks (grouped, in-place and accumulating matmuls, matrix-vector
products), the CPU flash-attention kernel and the fused fast paths of
``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer``. Each is called as
``flop_counter``'s are (the op's arguments, ``out_val=`` its output) by
:class:`inspectnn.flops.dispatch.FlopDispatchMode`.

May import: :mod:`inspectnn.flops.formulas` (``prod``) and torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.utils.flop_counter import flop_registry

from inspectnn.flops.formulas import prod

__all__ = ["EXTRA_FORMULAS"]

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
    batch, lq, lk = prod(q.shape[:-2]), int(q.shape[-2]), int(k.shape[-2])
    projections = 2 * e * e * batch * (lq + 2 * lk) + 2 * e * e * batch * lq
    return projections + 2 * 2 * batch * lq * lk * e


def _native_mha_flop(q: Tensor, k: Tensor, v: Tensor, embed_dim: int, *args: Any, **kw: Any) -> int:
    """``nn.MultiheadAttention``'s inference fast path (``_native_multi_head_attention``)."""
    return _attention_flops(q, k, embed_dim)


def _encoder_layer_flop(src: Tensor, embed_dim: int, *args: Any, **kwargs: Any) -> int:
    """``nn.TransformerEncoderLayer``'s fast path: self-attention plus the two
    feed-forward linears (``ffn_weight_1`` and ``_2``, arguments 14 and 16)."""
    ffn = int(args[12].numel()) + int(args[14].numel())
    return _attention_flops(src, src, embed_dim) + 2 * prod(src.shape[:-1]) * ffn


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
