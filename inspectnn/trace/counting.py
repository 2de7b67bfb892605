"""FLOP routing: every FLOP counted during the forward goes to the call running it.

Owns ``FlopRouter``: an op run and counted (``run``: a fast formula from
``inspectnn.flops.fast_flops`` where one applies, else the op run under a
``FlopDispatchMode``, made on first use), FLOPs added to the innermost running call's
``FLOPS`` slot or, outside every call, to ``outside``, and the ``(op, call index)``
pairs whose FLOPs could not be counted (``uncounted``). The op recorder calls ``run``
once per torch function (hot path); a torch leaf's FLOPs are not routed here but
computed from shapes in ``inspectnn.trace.build``.

May import: ``inspectnn.flops``, ``inspectnn.trace.ops`` (``_hidden``, ``_op_label``)
and ``inspectnn.trace.raw``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from inspectnn.flops import FlopDispatchMode, fast_flops, local_view
from inspectnn.trace.ops import _hidden, _op_label
from inspectnn.trace.raw import FLOPS, INDEX, RunningCall

__all__ = ["FlopRouter"]


class FlopRouter:
    """Routes FLOPs to the innermost running call of ``stack``.

    Args:
        stack: The tracer's running calls, innermost last (the same list, read live).
    """

    def __init__(self, stack: list[RunningCall]) -> None:
        self._stack = stack
        self.outside = 0  # FLOPs counted outside any module call
        # (op or type name, call index or -1) whose FLOPs are missing, in first-seen order
        self.uncounted: dict[tuple[str, int], None] = {}
        self._mode: FlopDispatchMode | None = None
        self.local = False  # a sharded model: count each DTensor op on this rank's shards

    def run(
        self, name: str, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """``func(*args, **kwargs)``, its FLOPs counted.

        Counting never fails a forward that would run: where it cannot count, the op
        is noted as uncounted (a finding) and the forward goes on.
        """
        local = self.local
        with _hidden():
            try:
                if local:
                    formula = fast_flops(name, local_view(args), local_view(kwargs))
                else:
                    formula = fast_flops(name, args, kwargs)
            except Exception:
                formula = None
        if formula is None:
            with self.mode():
                return func(*args, **kwargs)
        out = func(*args, **kwargs)
        with _hidden():
            try:
                self.add(formula(local_view(out) if local else out))
            except Exception:
                self.uncounted_op(_op_label(func))
        return out

    def mode(self) -> FlopDispatchMode:
        """The dispatch mode that counts aten ops into this router."""
        if self._mode is None:
            self._mode = FlopDispatchMode(self.add, self.uncounted_op)
            self._mode.local = self.local
        return self._mode

    def uncounted_op(self, name: str) -> None:
        """Note that op ``name``'s FLOPs are missing from the current call's count."""
        stack = self._stack
        self.uncounted.setdefault((name, stack[-1][INDEX] if stack else -1), None)

    def add(self, flops: int) -> None:
        """Add ``flops`` to the innermost running call, or to ``outside``."""
        stack = self._stack
        if stack:
            stack[-1][FLOPS] += flops
        else:
            self.outside += flops

    def release(self) -> None:
        """Drop the dispatch mode (it holds the router, and torch's mode state)."""
        self._mode = None
