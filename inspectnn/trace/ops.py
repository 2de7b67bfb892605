"""The op recorder: a ``TorchFunctionMode`` that sees every torch function during the
forward, op naming, and in-place detection.

Owns ``_OpRecorder`` (counts an op's FLOPs through a ``FlopRouter``, records it as a
``RawOp`` in the tracer's raw trace, and comes off and back on torch's function-mode
stack as the tracer asks), ``_hidden`` (torch-function handling off for inspectnn's
own reads while a user's mode is on the stack), ``_op_name``/``_op_label`` (an op's
name in records) and ``_in_place``/``_inplace_flag`` (whether an op wrote one of its
arguments). ``_OpRecorder.__torch_function__`` runs once per torch op: hot path.

May import: ``inspectnn.flops``, ``inspectnn.values``, ``inspectnn.trace.flatten`` and
``inspectnn.trace.raw``; the ``Tracer`` it records for, the ``FlopRouter`` and the
``ParameterWatch`` only for typing (``inspectnn.trace.tracer`` and
``inspectnn.trace.counting`` import this module).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

from inspectnn.flops import ZERO_FLOP
from inspectnn.trace.flatten import _flatten_op_args
from inspectnn.trace.raw import INDEX, MODULE, op_code
from inspectnn.values import has_tensor

if TYPE_CHECKING:
    from inspectnn.trace.counting import FlopRouter
    from inspectnn.trace.notes import ParameterWatch
    from inspectnn.trace.tracer import Tracer

_DisableTorchFunction = torch._C.DisableTorchFunction
_len_mode_stack = torch._C._len_torch_function_stack
_NOTHING = contextlib.nullcontext()


def _hidden() -> Any:
    """Torch-function handling off while some mode (a user's) is on the stack:
    inspectnn's own reads of tensors are not the model's calls."""
    return _DisableTorchFunction() if _len_mode_stack() else _NOTHING


def _op_name(func: Callable[..., Any]) -> str:
    name = getattr(func, "__name__", repr(func))
    if name == "__get__":
        owner = getattr(func, "__self__", None)
        return f"Tensor.{getattr(owner, '__name__', '?')}"
    if getattr(func, "__objclass__", None) is not None:
        return f"Tensor.{name}"
    module = getattr(func, "__module__", None) or ""
    if module.startswith("torch.nn.functional") or module == "torch._C._nn":
        return f"F.{name}"
    if module.startswith("torch"):
        return f"torch.{name}"
    return name


_OP_LABELS: dict[Any, str] = {}  # torch function -> its name in records


def _op_label(func: Callable[..., Any]) -> str:
    """``_op_name(func)``, remembered per function (property getters are not: each
    ``__get__`` seen is a new bound object)."""
    try:
        label = _OP_LABELS.get(func)
    except TypeError:  # unhashable
        return _op_name(func)
    if label is None:
        label = _op_name(func)
        if getattr(func, "__name__", "") != "__get__":
            _OP_LABELS[func] = label
    return label


@functools.cache
def _in_place(name: str) -> bool:
    """Whether the op's name says it writes its first argument (``add_``, ``__iadd__``,
    ``__setitem__``)."""
    return (
        (name.endswith("_") and not name.endswith("__"))
        or name.startswith("__i")
        or name == "__setitem__"
    )


_INPLACE_AT: dict[Any, int] = {}  # torch function -> position of its ``inplace`` parameter


def _inplace_flag(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether the call asked for ``inplace=True`` (``F.relu(x, inplace=True)``, ``F.relu(x,
    True)``). Only asked for an op that returned one of its arguments."""
    if kwargs.get("inplace") is True:
        return True
    if getattr(func, "__name__", "") == "__get__":  # a property read (x.real): a new
        return False  # bound object each time, never a write
    try:
        at = _INPLACE_AT.get(func)
    except TypeError:  # unhashable
        return False
    if at is None:
        try:
            params = list(inspect.signature(func).parameters)
        except (TypeError, ValueError):  # a builtin without a signature
            params = []
        at = _INPLACE_AT[func] = params.index("inplace") if "inplace" in params else -1
    return 0 <= at < len(args) and args[at] is True


class _OpRecorder(TorchFunctionMode):
    """Sees every torch function: counts its FLOPs and records it as a ``RawOp``.

    Ops inside torch's own leaf modules (the ``F.linear`` in ``nn.Linear``) are
    counted but not recorded: they are the module, not dataflow between modules.
    The tracer takes it off torch's function-mode stack and puts it back
    (``switch_off``, ``switch_on``) where the need changes.

    Args:
        tracer: The tracer whose raw trace it appends to (its ``_ops``, read with its
            ``_stack``, ``_raw`` and ``_producers``) and whose ``_recording`` says
            whether to record.
        router: Where counted FLOPs go.
        watch: Where parameters that are not the model's are noted.
    """

    def __init__(self, tracer: Tracer, router: FlopRouter, watch: ParameterWatch) -> None:
        super().__init__()
        self.tracer = tracer
        self.run_counted = router.run
        self.watch = watch
        self.ops, self.stack, self.raw = tracer._ops, tracer._stack, tracer._raw
        self.producers = tracer._producers

    def switch_on(self) -> bool:
        """Put it on top of torch's function-mode stack; True (it is on the stack)."""
        torch._C._push_on_torch_function_stack(self)
        return True

    def switch_off(self) -> bool:
        """Take it off torch's function-mode stack; whether it is still there.

        It is on inside modules whose forward runs torch functions worth recording or
        counting, and off inside torch's own leaves (whose FLOPs follow from shapes)
        and plain ``nn.Sequential`` (whose forward only calls its children): an op
        recorder costs a few µs per torch function, and switching only where the need
        changes keeps a stack of leaves free of it. A mode that another piece of code
        pushed above it is left alone, and it stays under that mode.
        """
        n = torch._C._len_torch_function_stack()
        if n and torch._C._get_function_stack_at(n - 1) is self:
            torch._C._pop_torch_function_stack()
            return False
        return True

    def record(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        out: Any,
        *,
        failed: bool,
        inplace: bool = False,
    ) -> None:
        """Append the op's ``RawOp`` (under ``_hidden()``: torch functions not traced)."""
        producers, ops = self.producers, self.ops
        ins, others = _flatten_op_args(args, kwargs, producers.lookup, self._parameter, failed)
        outputs = () if failed else producers.flatten_output(out, op_code(len(ops)))
        parent = self.stack[-1][INDEX]
        label = _op_label(func)
        ops.append((label, parent, len(self.raw), ins, outputs, others, failed, inplace))
        grads = self.tracer.grads
        if grads is not None and not failed:
            grads.watch_op(len(ops) - 1, label, (args, kwargs), out)

    def _parameter(self, p: Tensor, failed: bool) -> None:
        self.watch.check(p, failed, self.stack[-1][MODULE], len(self.ops))

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        # Runs with this mode popped: tensor attributes read here are not traced by
        # it, and _hidden() keeps them from a mode below it (the user's).
        kwargs = kwargs or {}
        tracer = self.tracer
        name = getattr(func, "__name__", "")
        plain = name in ZERO_FLOP or not tracer.count_flops
        if not tracer._recording:
            return func(*args, **kwargs) if plain else self.run_counted(name, func, args, kwargs)
        try:
            out = func(*args, **kwargs) if plain else self.run_counted(name, func, args, kwargs)
        except Exception:
            with _hidden():
                self.record(func, args, kwargs, None, failed=True)
            raise
        inplace = _in_place(name) or "out" in kwargs
        written = out
        if type(out) is Tensor:
            if not inplace:
                for a in args:
                    if a is out:
                        if not _inplace_flag(func, args, kwargs):
                            return out  # x.to(x.dtype), x.contiguous() ...: nothing happened
                        inplace = True
                        break
        elif out is None and name == "__setitem__" and args and isinstance(args[0], Tensor):
            written = args[0]  # x[i] = v: x is written
        elif not has_tensor(out):
            return out
        with _hidden():
            self.record(func, args, kwargs, written, failed=False, inplace=inplace)
        return out
