"""Contracts of the layers that only rearrange or pool: ``Flatten``, ``Unflatten``,
``MaxPool*``/``AvgPool*``, ``PixelShuffle``.

May import: ``inspectnn.checks.contracts.base`` and torch.
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor, nn

from inspectnn.checks.contracts.base import (
    Violation,
    _input,
    fmt_shape,
)


def _rank_needed(*dims: int) -> int:
    return max(d + 1 if d >= 0 else -d for d in dims)


def _flatten(m: nn.Flatten, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Violation | None:
    x = _input(args, kwargs)
    if x is None:
        return None
    n = max(x.dim(), 1)
    for d in (m.start_dim, m.end_dim):
        if not -n <= d < n:
            return Violation(
                "shape", f"at least {_rank_needed(m.start_dim, m.end_dim)}-D",
                fmt_shape(x.shape),
                f"start_dim={m.start_dim} and end_dim={m.end_dim} must lie in the input's "
                f"{x.dim()} dimensions",
                fix=f"nn.Flatten(start_dim={min(m.start_dim, n - 1)})",
            )  # fmt: skip
    return None


def _unflatten(m: nn.Unflatten, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Violation | None:
    x = _input(args, kwargs)
    if x is None or not isinstance(m.dim, int):
        return None
    if not -x.dim() <= m.dim < x.dim():
        return Violation(
            "shape",
            f"a dimension {m.dim}",
            fmt_shape(x.shape),
            f"dim={m.dim} must lie in the input's {x.dim()} dimensions",
        )
    sizes = [int(s) for s in m.unflattened_size]
    size = int(x.shape[m.dim])
    known = math.prod(s for s in sizes if s != -1)
    ok = size % known == 0 if -1 in sizes else size == known
    if not ok:
        tail = math.prod(sizes[1:]) if -1 not in sizes[1:] else 0
        better = (size // tail, *sizes[1:]) if tail and size % tail == 0 else (size,)
        return Violation(
            "shape", f"{known} in dimension {m.dim % x.dim()}", fmt_shape(x.shape),
            f"unflattened_size={tuple(sizes)} must multiply to dimension {m.dim % x.dim()} "
            f"(size {size})",
            dim=m.dim % x.dim(),
            fix=f"nn.Unflatten({m.dim}, {better})",
        )  # fmt: skip
    return None


def _pool(m: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Violation | None:
    x = args[0] if args else kwargs.get("input")
    if not isinstance(x, Tensor):
        return None
    n = _POOL_DIMS.get(type(m)) or int(type(m).__name__[-2])
    shape = x.shape
    k, pad, dil = m.kernel_size, m.padding, getattr(m, "dilation", 1)
    if len(shape) in (n + 1, n + 2) and type(k) is int and type(pad) is int and type(dil) is int:
        need = dil * (k - 1) + 1 - 2 * pad
        for i in range(-n, 0):
            if shape[i] < need:
                break
        else:
            return None  # the common case: one int window fits every spatial size
    if x.dim() not in (n + 1, n + 2):
        return Violation(
            "shape",
            f"{n + 2}-D or {n + 1}-D",
            fmt_shape(x.shape),
            f"{type(m).__name__} takes (batch, channels, {n} spatial) input",
        )
    ks = _tuple(m.kernel_size, n)
    pads = _tuple(m.padding, n)
    dil = _tuple(getattr(m, "dilation", 1), n)
    for i in range(n):
        d = x.dim() - n + i
        size = int(x.shape[d])
        need = dil[i] * (ks[i] - 1) + 1
        if size + 2 * pads[i] < need:
            return Violation(
                "shape", f">= {need - 2 * pads[i]} in dimension {d}", fmt_shape(x.shape),
                f"the pooling window ({need}) is larger than the input ({size}"
                + (f" + 2*padding {pads[i]})" if pads[i] else ")"),
                dim=d,
                fix=f"a smaller kernel_size (<= {size + 2 * pads[i]}), a larger input, or "
                    f"nn.Adaptive{type(m).__name__} to pool to a fixed size",
            )  # fmt: skip
    return None


_POOL_DIMS: dict[type, int] = {
    nn.MaxPool1d: 1, nn.MaxPool2d: 2, nn.MaxPool3d: 3,
    nn.AvgPool1d: 1, nn.AvgPool2d: 2, nn.AvgPool3d: 3,
}  # fmt: skip


def _tuple(value: Any, n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value),) * n


def _pixel_shuffle(
    m: nn.PixelShuffle, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Violation | None:
    x = _input(args, kwargs)
    if x is None:
        return None
    if x.dim() < 3:
        return Violation(
            "shape", "[*, C, H, W] (3-D or more)", fmt_shape(x.shape),
            f"PixelShuffle needs at least 3 dimensions, got {x.dim()}",
            fix="unsqueeze the input to [C, H, W] or [N, C, H, W]",
        )  # fmt: skip
    r2 = m.upscale_factor**2
    c = int(x.shape[-3])
    if c % r2:
        return Violation(
            "shape", f"channels divisible by {r2}", fmt_shape(x.shape),
            f"dimension {x.dim() - 3} must be divisible by upscale_factor**2={r2}",
            dim=x.dim() - 3, fix=f"{(c // r2 + 1) * r2} channels before the shuffle",
        )  # fmt: skip
    return None
