"""The collectives a sharded model's forward ran, per module call.

``CollectiveMode`` is a ``TorchDispatchMode`` the tracer pushes for the whole forward
of a sharded model only (``trace/sharded.py``'s ``is_sharded``), so a plain model's
ops never pass through it. It lets a ``DTensor`` op through to ``DTensor``'s own
dispatch first (as torch's ``CommDebugMode`` does: returning ``NotImplemented``), so
the collectives a redistribution runs on the local shards (``_c10d_functional.*``,
and ``c10d.*`` from ``torch.distributed`` called directly) reach it, and notes each
one against the call running it: the innermost running call, or, while a module's
forward hooks run (a ``RowwiseParallel`` output hook's all-reduce), that module's
call (``pending``, set by the tracer after the call's post step and cleared by
``trace/sharded.py``'s ``HookedOutputs`` when its last hook ran).

Why not torch's ``CommDebugMode`` itself (tried, torch 2.13): it counts per module
path (``comm_module_counts["Sequential.2"]``), summed up the tree and over every call
of a module, not per call; it adds a second module tracker (global hooks) beside the
tracer's wrappers; the tracer already knows the running call. This mode is its
dispatch half, keyed by call index instead.

May import: ``trace/raw.py`` and ``records.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from inspectnn.records import Collective

__all__ = ["CollectiveMode", "is_collective"]

_NAMESPACES = frozenset({"_c10d_functional", "c10d", "_c10d_functional_autograd"})
# not collectives: waiting on one, and the bookkeeping ops of those namespaces
_NOT_COLLECTIVES = frozenset({"wait_tensor", "wait", "monitored_barrier_", "barrier"})


def _first_tensor(args: tuple[Any, ...]) -> torch.Tensor | None:
    for a in args:
        if isinstance(a, torch.Tensor):
            return a
    return None


def is_collective(func: Any) -> bool:
    """Whether aten-level op ``func`` is a collective (``_c10d_functional.all_reduce``,
    ``c10d.allreduce_``), not a wait or a functional op's bookkeeping
    (``_c10d_functional._wrap_tensor_autograd``)."""
    namespace = func.namespace
    if namespace not in _NAMESPACES:
        return False
    name = func._overloadpacket.__name__
    if name in _NOT_COLLECTIVES:
        return False
    return namespace == "c10d" or not name.startswith("_")


# c10d's eager ops take (outputs, inputs) but these, which take their tensors first
_C10D_INPUT_FIRST = frozenset({"allreduce_", "allreduce_coalesced_", "broadcast_", "reduce_",
                               "send", "recv_", "recv_any_source_"})  # fmt: skip


def _sent_bytes(func: Any, args: tuple[Any, ...]) -> int:
    """The bytes of the tensors this rank gives the collective: its input (for
    ``c10d``'s ``(outputs, inputs)`` ops the second argument, not the output buffer)."""
    if func.namespace == "c10d" and func._overloadpacket.__name__ not in _C10D_INPUT_FIRST:
        args = args[1:]
    return _first_tensor_bytes(args)


def _first_tensor_bytes(args: tuple[Any, ...]) -> int:
    """The bytes of the first tensor (or the tensors of the first list) in ``args``."""
    for a in args:
        if isinstance(a, torch.Tensor):
            return a.numel() * a.element_size()
        if isinstance(a, (list, tuple)) and a:
            if isinstance(a[0], (list, tuple)):  # c10d's list of lists: one rank's tensors
                a = a[0]
            return sum(t.numel() * t.element_size() for t in a if isinstance(t, torch.Tensor))
    return 0


class CollectiveMode(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """Notes every collective op against the call ``current()`` names.

    Args:
        current: The index of the call a collective running now belongs to, or -1
            (none: before or after the model's forward).
        carry: Called with a collective's (or a wait's) result and its input tensor:
            the result is what the input's producer made, gathered or reduced (so a
            tensor-parallel pre-hook's all-gather of the model's input still comes
            from the input); None to skip.

    Attributes:
        seen: Call index -> op name -> ``[count, bytes]``, in first-seen order.
    """

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # as FlopDispatchMode: no torch._dynamo import on the first op

    def __init__(
        self,
        current: Callable[[], int],
        carry: Callable[[Any, torch.Tensor], None] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._current = current
        self._carry = carry
        self.seen: dict[int, dict[str, list[int]]] = {}
        self._dtensor: type | None = None
        try:
            from torch.distributed.tensor import DTensor

            self._dtensor = DTensor
        except ImportError:  # pragma: no cover - a build without torch.distributed
            pass

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if self._dtensor is not None and any(t is self._dtensor for t in types):
            return NotImplemented  # DTensor first: its redistributions' collectives come back
        if not isinstance(func, torch._ops.OpOverload) or func.namespace not in _NAMESPACES:
            return func(*args, **kwargs)
        if is_collective(func):
            name = f"{func.namespace}.{func._overloadpacket.__name__}"
            entry = self.seen.setdefault(self._current(), {}).setdefault(name, [0, 0])
            entry[0] += 1
            entry[1] += _sent_bytes(func, args)
        out = func(*args, **kwargs)
        first = _first_tensor(args)
        if self._carry is not None and first is not None:
            self._carry(out, first)
        return out

    def of(self, index: int) -> tuple[Collective, ...]:
        """The collectives call ``index`` ran, as records."""
        found = self.seen.get(index)
        if not found:
            return ()
        return tuple(Collective(op, n, b) for op, (n, b) in found.items())
