"""Contracts of the normalization layers: ``BatchNorm*``, ``InstanceNorm*``, ``LayerNorm``,
``GroupNorm``.

May import: ``inspectnn.checks.contracts.base`` and torch.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from inspectnn.checks.contracts.base import (
    Violation,
    _input,
    check_device_dtype,
    fmt_shape,
)

_NORM_RANK = {
    nn.BatchNorm1d: (2, 3), nn.BatchNorm2d: (4,), nn.BatchNorm3d: (5,),
    nn.InstanceNorm1d: (2, 3), nn.InstanceNorm2d: (3, 4), nn.InstanceNorm3d: (4, 5),
}  # fmt: skip


def _batchnorm(m: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Violation | None:
    x = _input(args, kwargs)
    if x is None:
        return None
    bad = check_device_dtype(m, x)
    if bad is not None:
        return bad
    ranks = _NORM_RANK[type(m)]
    if x.dim() not in ranks:
        want = " or ".join(f"{r}-D" for r in ranks)
        return Violation(
            "shape", want, fmt_shape(x.shape), f"{type(m).__name__} takes {want} input",
            fix="use BatchNorm1d for (N, C) or (N, C, L), BatchNorm2d for (N, C, H, W)",
        )  # fmt: skip
    cdim = 0 if isinstance(m, nn.modules.instancenorm._InstanceNorm) and x.dim() == ranks[0] else 1
    checks_channels = not isinstance(m, nn.modules.instancenorm._InstanceNorm) or m.affine
    if checks_channels and int(x.shape[cdim]) != m.num_features:
        return Violation(
            "shape", f"{m.num_features} channels in dimension {cdim}", fmt_shape(x.shape),
            f"dimension {cdim} must equal num_features={m.num_features}", dim=cdim,
            fix=_norm_fix(m, int(x.shape[cdim])),
        )  # fmt: skip
    training = m.training or not getattr(m, "track_running_stats", True)
    if isinstance(m, nn.modules.batchnorm._BatchNorm) and training and x.dim() >= 2:
        per_channel = x.numel() // max(int(x.shape[1]), 1)
        if per_channel == 1:
            return Violation(
                "shape", "more than 1 value per channel", fmt_shape(x.shape),
                "train-mode batch statistics need a batch of 2 or more",
                dim=0, fix="use a batch of 2 or more, or inspect with mode='eval'",
            )  # fmt: skip
    return None


def _norm_fix(m: Any, channels: int) -> str:
    """The same norm layer for ``channels``, keeping the flags that differ from the default."""
    flags = []
    instance = isinstance(m, nn.modules.instancenorm._InstanceNorm)
    if m.affine == instance:  # BatchNorm defaults to affine=True, InstanceNorm to False
        flags.append(f"affine={m.affine}")
    if m.track_running_stats == instance:
        flags.append(f"track_running_stats={m.track_running_stats}")
    return f"nn.{type(m).__name__}({', '.join([str(channels), *flags])})"


def _layernorm(m: nn.LayerNorm, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Violation | None:
    x = _input(args, kwargs)
    if x is None:
        return None
    bad = check_device_dtype(m, x)
    if bad is not None:
        return bad
    ns = tuple(m.normalized_shape)
    if x.dim() < len(ns) or tuple(x.shape[x.dim() - len(ns) :]) != ns:
        trail = fmt_shape(x.shape[max(x.dim() - len(ns), 0) :])
        return Violation(
            "shape", "[*, " + fmt_shape(ns)[1:], fmt_shape(x.shape),
            f"the trailing dimensions must equal normalized_shape={list(ns)} (got {trail})",
            dim=x.dim() - len(ns) if x.dim() >= len(ns) else None,
            fix=f"nn.LayerNorm({_trailing(x, len(ns))})",
        )  # fmt: skip
    return None


def _trailing(x: Tensor, n: int) -> str:
    dims = [int(d) for d in x.shape[max(x.dim() - n, 0) :]]
    return str(dims[0]) if n == 1 and dims else str(dims)


def _groupnorm(m: nn.GroupNorm, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Violation | None:
    x = _input(args, kwargs)
    if x is None:
        return None
    bad = check_device_dtype(m, x) if m.affine else None
    if bad is not None:
        return bad
    if x.dim() < 2 or int(x.shape[1]) != m.num_channels:
        got_c = int(x.shape[1]) if x.dim() >= 2 else 0
        return Violation(
            "shape", f"{m.num_channels} channels in dimension 1", fmt_shape(x.shape),
            f"dimension 1 must equal num_channels={m.num_channels}", dim=1,
            fix=f"nn.GroupNorm({m.num_groups}, {got_c})" if got_c % m.num_groups == 0
            else f"a channel count divisible by num_groups={m.num_groups}",
        )  # fmt: skip
    return None
