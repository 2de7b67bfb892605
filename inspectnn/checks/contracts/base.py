"""What every contract is made of: ``Violation``, the ``Contract`` type, and the shared checks.

``check_device_dtype`` (the input against a layer's first parameter: device, float
dtype, with the meta exceptions of ``_META_MIX``), ``fmt_shape``, and the small readers
the per-family contracts use (``_arg``, ``_input``, ``_weight_fits``).

May import: torch only (no inspectnn module).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["Contract", "Violation", "check_device_dtype", "fmt_shape"]


@dataclass(frozen=True, slots=True)
class Violation:
    """Why one call of a layer cannot work.

    Attributes:
        kind: ``"shape"``, ``"dtype"`` or ``"device"``.
        expected: What the layer needs, e.g. ``"[*, 1024]"`` or ``"float32"``.
        got: What it was given, e.g. ``"[1, 4096]"``.
        rule: The rule in words: ``"the last dimension must equal in_features=1024"``.
        dim: The dimension at fault, counted from 0, or None.
        fix: A concrete change, e.g. ``"nn.Linear(4096, 10)"``.
        param: The parameter compared against (dtype/device), e.g. ``"weight"``.
        arg: Which argument was wrong: ``"input"``, ``"key"``, ``"hx"`` ...
    """

    kind: str
    expected: str
    got: str
    rule: str
    dim: int | None = None
    fix: str = ""
    param: str | None = None
    arg: str = "input"


Contract = Callable[[Any, tuple[Any, ...], dict[str, Any]], "Violation | None"]


_CAST = {
    torch.float32: "x.float()",
    torch.float64: "x.double()",
    torch.float16: "x.half()",
    torch.bfloat16: "x.bfloat16()",
}


def fmt_shape(shape: Any) -> str:
    """``torch.Size([1, 4096])`` -> ``"[1, 4096]"``."""
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def _dtype(d: torch.dtype) -> str:
    return str(d).removeprefix("torch.")


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], i: int, name: str) -> Any:
    return args[i] if len(args) > i else kwargs.get(name)


def _first_param(m: nn.Module) -> tuple[str, Tensor] | None:
    for name, p in m._parameters.items():
        if p is not None:
            return name, p
    return None


_META_MIX = (nn.modules.conv._ConvNd, nn.Embedding, nn.EmbeddingBag)
"""Layers that torch (2.13) runs with the weights on meta and the input elsewhere, or the
other way round: their kernels check no device there (a meta embedding looks CPU
indices up on purpose). Every other contracted layer raises on such a mix, as every
layer does on two real devices. tests/test_meta_diagnoses.py holds the table."""


def _device_violation(m: nn.Module, name: str, w: Tensor, x: Tensor, arg: str) -> Violation | None:
    """A device mismatch that torch itself would refuse; None for any other pair."""
    if x.device == w.device:
        return None
    if "meta" in (x.device.type, w.device.type) and isinstance(m, _META_MIX):
        return None
    return Violation(
        "device", str(w.device), str(x.device),
        f"the {arg} must be on the same device as {name} ({w.device})",
        fix=f"move the input with x.to('{w.device}')",  # the diagnosis adds the model's side
        param=name, arg=arg,
    )  # fmt: skip


def check_device_dtype(m: nn.Module, x: Tensor, arg: str = "input") -> Violation | None:
    """The input against the layer's first parameter: same device, same float dtype.

    A device mismatch is a violation only where torch refuses it (see ``_META_MIX``).
    """
    first = _first_param(m)
    if first is None:
        return None
    name, w = first
    bad = _device_violation(m, name, w, x, arg)
    if bad is not None:
        return bad
    if w.is_floating_point() and x.dtype != w.dtype:
        if x.is_floating_point() or x.is_complex():
            fix = f"cast the input with {_CAST.get(w.dtype, f'x.to({w.dtype})')}"
            fix += f", or the model with model.to({x.dtype})"
        else:
            fix = f"cast the input with {_CAST.get(w.dtype, f'x.to({w.dtype})')}: an "
            fix += "integer tensor cannot enter a float layer"
        return Violation(
            "dtype", _dtype(w.dtype), _dtype(x.dtype),
            f"the {arg} must have the dtype of {name} ({_dtype(w.dtype)})",
            fix=fix, param=name, arg=arg,
        )  # fmt: skip
    return None


def _input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Tensor | None:
    x = _arg(args, kwargs, 0, "input")
    return x if isinstance(x, Tensor) else None


def _weight_fits(m: nn.Module, x: Tensor) -> bool:
    """The common case in one step: ``x`` has the dtype and device of ``m.weight``
    (the first parameter of the layers that use this)."""
    w = m._parameters.get("weight")
    return w is not None and x.dtype is w.dtype and x.device == w.device
