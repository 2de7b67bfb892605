"""The dispatch-mode counter: :class:`FlopDispatchMode`, for every op without a fast formula.

It applies ``torch.utils.flop_counter``'s registry as ``FlopCounterMode`` does, plus
``EXTRA_FORMULAS``; composite ops without a formula are decomposed so the matmuls
inside them count; tensor-metadata queries (``_META_QUERIES``, taken from torch) run as
they are; an op that multiplies matrices but has no formula anywhere (:func:`no_formula`)
is reported as uncounted, never silently taken as zero.

May import: :mod:`inspectnn.flops.extra` and torch.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map
from torch.utils.flop_counter import flop_registry

from inspectnn.flops.extra import EXTRA_FORMULAS

__all__ = ["FlopDispatchMode", "local_view", "meta_queries", "no_formula", "op_name"]


def _local(x: Any) -> Any:
    local = getattr(x, "_local_tensor", None)  # a DTensor's shard on this rank
    return local if isinstance(local, torch.Tensor) else x


def local_view(value: Any) -> Any:
    """``value`` with every ``DTensor`` in it replaced by the shard this rank holds.

    A sharded op's work on one rank is the same op on the local shards (a column-
    parallel ``linear`` multiplies this rank's rows of the weight), so FLOPs per rank
    are the formula applied to this view. Nothing is copied and no collective runs.
    """
    return tree_map(_local, value)


def meta_queries() -> frozenset[Any]:
    """The aten ops that read a tensor's metadata (size, strides, device ...), from torch.

    ``FunctionalTensor.metadata_fns`` is torch's list of "aten ops that correspond to
    metadata queries"; ``FlopCounterMode`` skips the same queries (a list inline in its
    ``__torch_dispatch__``, with ``prim.layout`` where ``metadata_fns`` has
    ``prim.device``), so ``prim.layout`` is added. Should a later torch move the
    attribute, the queries ``FlopCounterMode`` skips in torch 2.13 are used instead.
    """
    try:
        from torch._subclasses.functional_tensor import FunctionalTensor

        found: frozenset[Any] = frozenset(FunctionalTensor.metadata_fns)
    except (ImportError, AttributeError):  # pragma: no cover - a torch without the list
        aten = torch.ops.aten
        found = frozenset(
            getattr(getattr(aten, name, None), overload, None)
            for name, overload in _FALLBACK
        ) - {None}
    return found | {torch.ops.prim.layout.default, torch.ops.prim.device.default}


_FALLBACK = (
    ("is_contiguous", "default"), ("is_contiguous", "memory_format"), ("size", "default"),
    ("sym_size", "default"), ("stride", "default"), ("sym_stride", "default"),
    ("storage_offset", "default"), ("numel", "default"), ("sym_numel", "default"),
    ("dim", "default"),
)  # fmt: skip

_META_QUERIES = meta_queries()
"""Run as they are under :class:`FlopDispatchMode`: never decomposed, never reported."""

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

    Attributes:
        local: Count a ``DTensor`` op's FLOPs on this rank's shards (``local_view``),
            set for a sharded model; a plain model's ops never pay for the view.
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
        self.local = False

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
            if self.local:  # this rank's work: the same op on its shards
                args, kwargs, held = local_view((args, kwargs, out))
                flops = int(formula(*args, **kwargs, out_val=held))
            else:
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
