"""Provenance through a sharded model's hooks: which call made each tensor, when the
tensors a layer hands on are not the ones its forward returned.

Tensor parallelism (``parallelize_module``) works in module hooks: a pre-hook wraps a
layer's local input as a ``DTensor`` (``DTensor.from_local``: a new tensor viewing the
local one), and an output hook makes the layer's ``DTensor`` output local again
(``to_local()``) or all-reduces a partial sum into a new tensor. The tracer records a
call's inputs after its pre-hooks and its outputs before its hooks, so without help
every tensor-parallel layer would look fed from nowhere and its output unused.

``is_sharded`` says whether a model holds ``DTensor`` parameters (the tracer then
counts FLOPs per rank and uses the two helpers below); ``ShardedProducers`` looks a
tensor's producer up through the tensor it wraps (a ``DTensor``'s local shard) or
views (``_base``), and gives a collective's result its input's producer
(``carry``); ``HookedOutputs`` marks what a module's own forward hooks return as
that call's outputs, with a forward hook of its own appended after theirs (removed
when the trace ends). A ``DTensor`` output's shard is marked with it: an input hook
that redistributes a ``DTensor`` it is given (a ``SequenceParallel`` norm's ``Shard(1)``
output all-gathered by the ``ColwiseParallel`` layer after it) works on the shard.

May import: ``trace/flatten.py``, ``trace/raw.py`` and ``values.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from inspectnn.trace.flatten import _Producers, sharding
from inspectnn.trace.raw import NO_SOURCE, Source, layer_code
from inspectnn.values import walk

__all__ = ["HookedOutputs", "ShardedProducers", "is_sharded"]

_HOPS = 3  # a DTensor's shard, a view of it, its base: enough for from_local / to_local


def is_sharded(model: nn.Module) -> bool:
    """Whether ``model`` holds a ``DTensor`` parameter; False at once while
    ``torch.distributed.tensor`` was never loaded."""
    if "torch.distributed.tensor" not in sys.modules:
        return False
    return any(sharding(p) is not None for p in model.parameters())


class ShardedProducers(_Producers):
    """``_Producers`` that, for a tensor of unknown origin, looks up the tensor it wraps
    (a ``DTensor``'s ``_local_tensor``) or views (``_base``), a few hops deep."""

    def lookup(self, t: Tensor) -> Source:
        found = _Producers.lookup(self, t)
        hops = 0
        while found == NO_SOURCE and hops < _HOPS:
            inner = getattr(t, "_local_tensor", None)
            nxt = inner if isinstance(inner, Tensor) else t._base
            if nxt is None:
                return NO_SOURCE
            t, hops = nxt, hops + 1
            found = _Producers.lookup(self, t)
        return found

    def _mark(self, t: Tensor, source: Source) -> Source:
        """Record ``source`` as ``t``'s producer and, for a ``DTensor``, its shard's: an
        input hook that redistributes a ``DTensor`` it was given (``SequenceParallel``'s
        output, all-gathered by the ``ColwiseParallel`` after it) works on the shard."""
        previous = _Producers._mark(self, t, source)
        inner = getattr(t, "_local_tensor", None)
        if isinstance(inner, Tensor):
            _Producers._mark(self, inner, source)
        return previous

    def carry(self, out: object, inp: Tensor) -> None:
        """Give ``out`` (a collective's result, not seen before) ``inp``'s producer."""
        if isinstance(out, Tensor) and _Producers.lookup(self, out) == NO_SOURCE:
            found = self.lookup(inp)
            if found != NO_SOURCE:
                self._mark(out, found)


class HookedOutputs:
    """Marks what the forward hooks of ``modules`` return as their call's outputs, and
    which call a module's hooks run for (``pending``: their collectives are that call's).

    Args:
        producers: Where tensors' producers are recorded.
        modules: The traced modules; those with forward hooks get one more first and
            one last, those with forward pre-hooks one first and one last.
        next_index: The index the next call will get (its pre-hooks run just before).

    Attributes:
        last: ``id(module)`` -> index of its latest finished call, set by the tracer.
        pending: While a module's hooks run, the index of the call they belong to;
            else None.
    """

    def __init__(
        self, producers: _Producers, modules: Iterable[nn.Module], next_index: Callable[[], int]
    ) -> None:
        self._producers = producers
        self._next_index = next_index
        self.last: dict[int, int] = {}
        self.pending: int | None = None
        self._handles: list[RemovableHandle] = []
        for m in modules:
            if m._forward_pre_hooks:
                self._handles.append(m.register_forward_pre_hook(self._pre_first, prepend=True))
                self._handles.append(m.register_forward_pre_hook(self._pre_last))
            if m._forward_hooks:
                self._handles.append(m.register_forward_hook(self._first, prepend=True))
                self._handles.append(m.register_forward_hook(self._after))

    def _pre_first(self, module: nn.Module, args: Any) -> None:
        self.pending = self._next_index()

    def _pre_last(self, module: nn.Module, args: Any) -> None:
        self.pending = None

    def _first(self, module: nn.Module, args: Any, output: Any) -> None:
        self.pending = self.last.get(id(module))

    def _after(self, module: nn.Module, args: Any, output: Any) -> None:
        self.pending = None
        idx = self.last.get(id(module))
        if idx is None:
            return
        code, n = layer_code(idx), 0

        def mark(_: str, leaf: object) -> None:
            nonlocal n
            if isinstance(leaf, Tensor):
                self._producers._mark(leaf, (code, n))
            n += 1

        walk(output, mark)

    def remove(self) -> None:
        """Take the hooks off again."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
