"""Contracts of the layers with a weight matrix: ``Linear``, ``Bilinear``, the convolutions
(and transposed ones), ``Embedding``/``EmbeddingBag``.

May import: ``inspectnn.checks.contracts.base`` and torch.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from inspectnn.checks.contracts.base import (
    Violation,
    _arg,
    _device_violation,
    _dtype,
    _input,
    _weight_fits,
    check_device_dtype,
    fmt_shape,
)


def _linear(m: nn.Linear, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Violation | None:
    x = args[0] if args else kwargs.get("input")
    if type(x) is Tensor and _weight_fits(m, x):
        shape = x.shape
        if shape and shape[-1] == m.in_features:
            return None
    if not isinstance(x, Tensor):
        return None
    bad = check_device_dtype(m, x)
    if bad is not None:
        return bad
    if x.dim() == 0:
        return Violation(
            "shape", f"[*, {m.in_features}]", "[] (a 0-d tensor: a single number)",
            "the input has no dimensions, so no feature dimension of in_features="
            f"{m.in_features}",
            fix=f"give the model a tensor with its features last, e.g. shape (1, {m.in_features})",
        )  # fmt: skip
    if x.shape[-1] != m.in_features:
        return Violation(
            "shape", f"[*, {m.in_features}]", fmt_shape(x.shape),
            f"the last dimension must equal in_features={m.in_features}",
            dim=x.dim() - 1,
            fix=f"nn.Linear({int(x.shape[-1])}, {m.out_features})",
        )  # fmt: skip
    return None


def _bilinear(m: nn.Bilinear, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Violation | None:
    x1, x2 = _arg(args, kwargs, 0, "input1"), _arg(args, kwargs, 1, "input2")
    if not (isinstance(x1, Tensor) and isinstance(x2, Tensor)):
        return None
    for x, want, arg in ((x1, m.in1_features, "input1"), (x2, m.in2_features, "input2")):
        bad = check_device_dtype(m, x, arg)
        if bad is not None:
            return bad
        if x.dim() == 0 or x.shape[-1] != want:
            return Violation(
                "shape", f"[*, {want}]", fmt_shape(x.shape),
                f"the last dimension of {arg} must equal in{arg[-1]}_features={want}",
                dim=max(x.dim() - 1, 0), arg=arg,
                fix=f"nn.Bilinear({int(x1.shape[-1])}, {int(x2.shape[-1])}, {m.out_features})",
            )  # fmt: skip
    return None


def _channels(
    m: Any, x: Tensor, n_spatial: int, want: int, kind: str
) -> tuple[int, Violation | None]:
    """Checks rank and channel count; returns (channel dim, violation)."""
    if x.dim() not in (n_spatial + 1, n_spatial + 2):
        rank = f"{n_spatial + 2}-D (batch, channels, {n_spatial} spatial) or {n_spatial + 1}-D"
        return 0, Violation(
            "shape", rank, fmt_shape(x.shape),
            f"{type(m).__name__} takes {rank} input",
            fix="add the batch dimension with x.unsqueeze(0)" if x.dim() == n_spatial
            else f"reshape the input to (batch, {want}, ...)",
        )  # fmt: skip
    cdim = 1 if x.dim() == n_spatial + 2 else 0
    got = int(x.shape[cdim])
    if got != want:
        return cdim, Violation(
            "shape", f"{want} channels in dimension {cdim}", fmt_shape(x.shape),
            f"dimension {cdim} must equal {kind}={want}", dim=cdim, fix="",
        )  # fmt: skip
    return cdim, None


def _with_first_arg(m: nn.Module, value: int) -> str:
    """``nn.Conv2d(3, 16, kernel_size=(3, 3), stride=(2, 2))`` with the first argument replaced.

    Built from the layer's own ``extra_repr`` so that stride, padding, dilation,
    groups and flags all carry over into the suggested fix.
    """
    rest = m.extra_repr().split(",", 1)
    tail = f",{rest[1]}" if len(rest) > 1 else ""
    return f"nn.{type(m).__name__}({value}{tail})"


def _conv_fix(m: Any, got_c: int) -> str:
    return _with_first_arg(m, got_c)


def _conv(m: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Violation | None:
    x = args[0] if args else kwargs.get("input")
    if type(x) is Tensor and _weight_fits(m, x) and _conv_fits(m, x.shape):
        return None
    if not isinstance(x, Tensor):
        return None
    bad = check_device_dtype(m, x)
    if bad is not None:
        return bad
    if _conv_fits(m, x.shape):
        return None
    n = len(m.kernel_size)
    cdim, bad = _channels(m, x, n, m.in_channels, "in_channels")
    if bad is not None:
        if bad.dim is not None:
            return replace(bad, fix=_conv_fix(m, int(x.shape[cdim])))
        return bad
    if m.transposed or isinstance(m.padding, str):
        return None
    for i in range(n):
        size = int(x.shape[cdim + 1 + i])
        need = m.dilation[i] * (m.kernel_size[i] - 1) + 1
        if size + 2 * m.padding[i] < need:
            return Violation(
                "shape", f">= {need - 2 * m.padding[i]} in dimension {cdim + 1 + i}",
                fmt_shape(x.shape),
                f"spatial size {size} (+2*padding {m.padding[i]}) is smaller than the "
                f"kernel ({need} with dilation)",
                dim=cdim + 1 + i,
                fix=f"give the layer a larger input, or padding={(need - size + 1) // 2}",
            )  # fmt: skip
    return None


def _conv_fits(m: Any, shape: torch.Size) -> bool:
    """The common case in one pass: right rank, channels and room for the kernel."""
    k = m.kernel_size
    n = len(k)
    rank = len(shape)
    cdim = rank - n - 1
    if cdim not in (0, 1) or shape[cdim] != m.in_channels:
        return False
    if m.transposed or isinstance(m.padding, str):
        return True
    pad, dil = m.padding, m.dilation
    for i in range(n):  # noqa: SIM110  # a loop: all() of a generator costs ~0.5 µs more
        if shape[cdim + 1 + i] + 2 * pad[i] < dil[i] * (k[i] - 1) + 1:
            return False
    return True


def _embedding(m: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Violation | None:
    x = _input(args, kwargs)
    if x is None:
        return None
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        return Violation(
            "dtype", "int64 (or int32) indices", _dtype(x.dtype),
            f"{type(m).__name__} looks rows up by integer index",
            fix="pass token ids as integers: x.long(); to feed float features use nn.Linear",
            param="weight",
        )  # fmt: skip
    w = m.weight
    if x.device != w.device:
        moved = _device_violation(m, "weight", w, x, "input")
        if moved is not None:
            return moved
    if x.device.type == "meta" or x.numel() == 0:
        return None
    lo, hi = int(x.min()), int(x.max())
    if lo < 0:
        return Violation(
            "shape", f"indices in [0, {m.num_embeddings - 1}]", f"index {lo}",
            "indices are row numbers: a negative index is never valid (it does not count "
            "from the end as in Python lists)",
            fix="make the indices non-negative where they are made (see 'input from'): map a "
                "-1 'ignore'/padding marker to a real row, e.g. x.masked_fill(x < 0, 0) "
                f"(and padding_idx=0 in nn.{type(m).__name__}), or fix the code that "
                "computed them",
        )  # fmt: skip
    if hi >= m.num_embeddings:
        bad = hi
        return Violation(
            "shape", f"indices in [0, {m.num_embeddings - 1}]", f"index {bad}",
            f"every index must be < num_embeddings={m.num_embeddings}",
            fix=f"nn.{type(m).__name__}({max(hi + 1, m.num_embeddings)}, {m.embedding_dim}), "
                "or check the tokenizer's vocabulary size",
        )  # fmt: skip
    return None
