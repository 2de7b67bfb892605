"""The Tracer: a pre/post step around every submodule's forward, plus modes for ops
and FLOPs.

Hot path notes (the steps run once per module call, so every microsecond shows on
models of many small layers):

* each module's ``forward`` is wrapped for the call (the wrapper sits in the
  instance ``__dict__`` and is removed afterwards): it does what a forward
  pre-hook plus an always-call forward hook would, without torch's general
  hooked-call path, which costs more than the work itself on small layers;
* one shared pre/post pair (bound methods) keyed by ``id(module)``; module
  names, types, contracts and leaf kinds are looked up once before the forward;
* metadata is kept as small tuples of plain values (shape tuples,
  ``torch.dtype``, ``torch.device``) and turned into records lazily;
* a plain single-tensor argument skips the generic flattening;
* the garbage collector is paused for the duration of the call (by ``api._gc_paused``,
  around the whole of ``inspect``);
* the pre/post bookkeeping runs with torch-function handling disabled, so the op
  recorder does not trace it; the op recorder itself is off the mode stack inside
  torch's own leaf layers and plain ``nn.Sequential``.

The context manager always removes every wrapper and mode it installed, even when
the forward raises (``KeyboardInterrupt`` included).

Owns the ``Tracer`` context manager: installing and removing the wrappers and the op
recorder, when the recorder sits on torch's function-mode stack (``_switch_mode``), the
pre/post steps that fill the raw trace (layout: ``raw.py``), ``detach``, and ``build``
(``build.py``). Elsewhere in the package: value flattening and provenance
(``flatten.py``), the op recorder (``ops.py``), FLOP routing (``counting.py``), what
it notes besides values (``notes.py``: contracts, numerics, buffer writes,
unregistered parameters) and forward wrapping (``wrap.py``).

May import: the rest of ``inspectnn.trace``, ``inspectnn.checks.contracts``,
``inspectnn.params`` and ``inspectnn.records``.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from inspectnn.checks.contracts import Violation
from inspectnn.params import ModelCounts
from inspectnn.records import LayerCall, OpCall
from inspectnn.trace.build import build_records
from inspectnn.trace.collectives import CollectiveMode
from inspectnn.trace.counting import FlopRouter
from inspectnn.trace.flatten import _flatten_call, _Producers, flatten_values
from inspectnn.trace.notes import (
    BufferState,
    ContractBreach,
    NonFinite,
    ParameterWatch,
    buffer_state,
    buffers_written,
    enforce,
    nonfinite_note,
)
from inspectnn.trace.ops import _hidden, _OpRecorder
from inspectnn.trace.raw import (
    CALL,
    FAILED,
    FLOPS,
    INDEX,
    INPUTS,
    LEAF,
    MODULE,
    OUTPUTS,
    PARENT,
    WAS_ON,
    RawCall,
    RawMeta,
    RawOp,
    RunningCall,
    finished,
    layer_code,
)
from inspectnn.trace.sharded import HookedOutputs, ShardedProducers, is_sharded
from inspectnn.trace.wrap import (
    _PLANS,
    Plan,
    RecursionRoom,
    Saved,
    _plan_for,
    install,
    remove,
    safe_extra_repr,
    weight_shape,
)
from inspectnn.values import tensors

__all__ = ["ContractBreach", "Tracer", "flatten_values"]

if TYPE_CHECKING:
    from inspectnn.trace.grads import GradWatch


class Tracer:
    """Context manager that records every submodule call of ``model``.

    Args:
        model: The module to trace; its and every submodule's forward is wrapped.
        record_ops: Record functional ops between modules (a TorchFunctionMode).
        count_flops: Count FLOPs per call (a TorchDispatchMode).

    Example:
        >>> import torch
        >>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
        >>> with Tracer(model) as tracer:
        ...     _ = model(torch.randn(2, 4))
        >>> [name for name, *_ in tracer.calls()]
        ['', '0', '1']
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        record_ops: bool = True,
        count_flops: bool = True,
        named: list[tuple[str, nn.Module]] | None = None,
        check_numerics: bool = False,
        grads: GradWatch | None = None,
        device_as: str | None = None,
    ) -> None:
        self.model = model
        self.device_as = device_as  # the device records name (fake CPU tensors: "meta")
        self.grads = grads  # backward hooks and graph cuts, for a training step
        self.record_ops = record_ops
        self.count_flops = count_flops
        self.check_numerics = check_numerics
        # The notes (inspectnn.trace.notes), read by inspectnn.checks after the forward:
        self.violations: dict[int, Violation] = {}  # call index -> broken contract
        # call index -> (names of the buffers its forward wrote, the module was training)
        self.buffer_writes: dict[int, tuple[tuple[str, ...], bool]] = {}
        self.nonfinite: NonFinite | None = None  # the first call with a non-finite output
        self._buffers_before: dict[int, BufferState] = {}  # running calls with buffers
        self._room = RecursionRoom()
        self._deep = self._room.deep  # nesting at which the recursion limit is raised next
        # The raw trace (layout in inspectnn.trace.raw):
        self._ncalls: dict[int, int] = {}
        self._raw: list[RawCall | RunningCall] = []  # a RunningCall until its post step
        self._ops: list[RawOp] = []
        self._stack: list[RunningCall] = []  # the calls running now, innermost last
        # a sharded model: FLOPs per rank, provenance through its hooks (trace/sharded.py)
        self._sharded = is_sharded(model)
        self._producers = ShardedProducers() if self._sharded else _Producers()
        self._hooked: HookedOutputs | None = None
        self._comms: CollectiveMode | None = None  # a sharded model's collectives, per call
        self._recording = False  # record ops now: inside a module that is not a torch leaf
        self._mode: _OpRecorder | None = None
        self._mode_on = False  # the op recorder is on torch's function-mode stack now
        self._modules: dict[int, tuple[str, str, nn.Module]] = {}  # id -> (name, type, module)
        # torch's own leaves record no ops (their ops are the module); a plain Sequential
        # runs no torch function of its own, so the op recorder can stay off in it.
        self._plan: dict[int, Plan] = {}
        plans = _PLANS
        for name, mod in named if named is not None else model.named_modules():
            key = (type(mod), record_ops, not mod._modules)
            type_name, plan = plans.get(key) or _plan_for(*key)
            mid = id(mod)
            self._modules[mid] = (name, type_name, mod)
            self._plan[mid] = plan
        self._first_failure: dict[int, int] = {}
        self._saved_forward: Saved = []
        self._modes: list[Any] = []
        self._router = FlopRouter(self._stack)
        self._router.local = self._sharded
        self._watch = ParameterWatch(self._modules)
        # id -> [holder path, holder type, shape, device, module whose forward used it,
        #        op index, an op using it failed] of each parameter an op used that is not
        #        the model's: a module held in a plain list, dict or attribute
        self.unregistered = self._watch.entries
        # (op, call index or -1) whose FLOPs could not be counted, in first-seen order
        self.uncounted = self._router.uncounted
        self._info: dict[int, tuple[str, str, str]] | None = None  # set by detach()
        self._weights: dict[int, tuple[int, ...]] = {}  # leaf module id -> weight shape

    # -- context manager ---------------------------------------------------------

    def __enter__(self) -> Tracer:
        try:
            modules = [m for _, _, m in self._modules.values()]
            install(modules, self._pre, self._post, self._opaque, self._saved_forward)
            if self._sharded:
                self._hooked = HookedOutputs(self._producers, modules, self._raw.__len__)
                assert isinstance(self._producers, ShardedProducers)
                self._comms = CollectiveMode(self._comm_call, self._producers.carry)
                self._enter_mode(self._comms)
            if self.record_ops or self.count_flops:
                self._mode = _OpRecorder(self, self._router, self._watch)
                self._enter_mode(self._mode)
                self._mode_on = True
        except BaseException:
            self._cleanup()
            raise
        return self

    def _comm_call(self) -> int:
        """The call a collective running now belongs to (``trace/collectives.py``)."""
        hooked = self._hooked
        if hooked is not None and hooked.pending is not None:
            return hooked.pending
        return self._stack[-1][INDEX] if self._stack else -1

    def _opaque(self, forward: Callable[..., Any]) -> Callable[..., Any]:
        """A TorchScript module's forward, traced as one call (the caller leaves its
        submodules out): its ops are not recorded, as TorchScript runs them (on meta
        some decompose in Python, which the op recorder would see), and its FLOPs are
        counted at the dispatcher, which TorchScript's ops do pass through."""

        def scripted_forward(*args: Any, **kwargs: Any) -> Any:
            off = self._mode_on
            if off:
                self._switch_mode(False)
                off = not self._mode_on  # a mode pushed above ours stays, and so does ours
            try:
                if not self.count_flops:
                    return forward(*args, **kwargs)
                with self._router.mode():
                    return forward(*args, **kwargs)
            finally:
                if off:
                    self._switch_mode(True)

        return scripted_forward

    def _enter_mode(self, mode: Any) -> None:
        mode.__enter__()
        self._modes.append(mode)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        if self._mode is not None and not self._mode_on and self._mode in self._modes:
            self._switch_mode(True)  # switched off inside a module whose post step never ran
        while self._modes:
            self._modes.pop().__exit__(None, None, None)
        remove(self._saved_forward)
        if self._hooked is not None:
            self._hooked.remove()
            self._hooked = None
        self._room.restore()

    # -- pre/post steps (hot path) -----------------------------------------------

    # The steps read tensor attributes under _hidden(): no torch-function mode (ours
    # or a user's) sees them, and with the stack empty (the op recorder is off
    # inside leaves and Sequentials) they skip DisableTorchFunction's ~0.4 µs.

    def _pre(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        with _hidden():
            rec, need = self._pre_step(module, args, kwargs)
        if need is not None and need != self._mode_on:
            self._switch_mode(need)
            if self._mode_on and rec[LEAF] is not None:
                rec[LEAF] = None  # another mode sat above ours: ours counts the FLOPs

    def _pre_step(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[RunningCall, bool | None]:
        """Record the call's inputs, check its contract; whether it needs the op recorder."""
        mid = id(module)
        n = self._ncalls.get(mid, 0)
        self._ncalls[mid] = n + 1
        stack = self._stack
        producers = self._producers
        if not stack:
            producers.mark_inputs(args, kwargs)
        elif len(stack) >= self._deep:
            self._deep = self._room.widen()
        inputs: tuple[RawMeta, ...]
        if not kwargs and len(args) == 1 and type(args[0]) is Tensor and not args[0].is_nested:
            a = args[0]
            code, pos = producers.lookup(a)
            inputs = (("[0]", tuple(a.shape), a.dtype, a.device, None, code, pos, None),)
        else:
            inputs = _flatten_call(args, kwargs, producers.lookup, not stack)
        raw = self._raw
        idx = len(raw)
        parent = stack[-1][INDEX] if stack else -1
        # slots MODULE, CALL, PARENT, INPUTS, OUTPUTS, FLOPS, FAILED, LEAF, INDEX, WAS_ON
        rec = [mid, n, parent, inputs, None, 0, False, None, idx, self._mode_on]
        stack.append(rec)
        raw.append(rec)
        if self.grads is not None:
            self.grads.watch_inputs(idx, args, kwargs)
        if module._buffers and type(module._buffers) is dict:  # not a scripted module's
            self._buffers_before[idx] = buffer_state(module)
        records, contract, kind, transparent = self._plan[mid]
        self._recording = records
        if contract is not None:
            enforce(contract, module, args, kwargs, self.violations, idx)
        if self._mode is None:
            return rec, None
        if kind is None:
            return rec, not transparent
        if kind == "zero":
            return rec, False
        x = args[0] if args else None
        if not isinstance(x, Tensor) or (kind == "linear" and x.dim() < 2):
            return rec, True
        rec[LEAF] = kind  # its FLOPs follow from the shapes, counted in build()
        return rec, False

    def _post(
        self, module: nn.Module, args: tuple[Any, ...], output: Any, exc: BaseException | None
    ) -> None:
        if not self._stack:
            return
        with _hidden():
            if self._buffers_before:  # which of its buffers the forward wrote
                idx = self._stack[-1][INDEX]
                before = self._buffers_before.pop(idx, None)
                written = None if before is None else buffers_written(module, before)
                if written is not None:
                    self.buffer_writes[idx] = written
            was_on = self._post_step(args, output, exc)
        if was_on != self._mode_on:
            self._switch_mode(was_on)

    def _post_step(self, args: tuple[Any, ...], output: Any, exc: BaseException | None) -> bool:
        """Record the call's outputs; whether the op recorder was on before the call."""
        stack = self._stack
        rec = stack.pop()
        idx = rec[INDEX]
        self._recording = bool(stack) and self._plan[stack[-1][MODULE]].records
        if exc is not None:
            rec[FAILED] = True
            self._first_failure.setdefault(id(exc), idx)
        else:
            rec[OUTPUTS] = self._producers.flatten_output(output, layer_code(idx))
            if self._hooked is not None:
                self._hooked.last[rec[MODULE]] = idx
            if self.grads is not None:
                self.grads.watch_outputs(idx, self._modules[rec[MODULE]][0], tensors(args),
                                         output)  # fmt: skip
            if self.check_numerics and self.nonfinite is None:
                self.nonfinite = nonfinite_note(idx, args, output)
        # A finished call becomes a tuple of plain values (a RawCall), which the garbage
        # collector stops tracking: thousands of kept records would otherwise make its
        # full collections come sooner.
        self._raw[idx] = (rec[MODULE], rec[CALL], rec[PARENT], rec[INPUTS], rec[OUTPUTS] or (),
                          rec[FLOPS], rec[FAILED], rec[LEAF])  # fmt: skip
        return bool(rec[WAS_ON])

    def _switch_mode(self, on: bool) -> None:
        """Put the op recorder on torch's function-mode stack, or take it off (where a mode
        pushed above ours lets it: ``_OpRecorder.switch_off``)."""
        assert self._mode is not None
        self._mode_on = self._mode.switch_on() if on else self._mode.switch_off()

    @property
    def outside_flops(self) -> int:
        """FLOPs counted outside any module call."""
        return self._router.outside

    # -- results -----------------------------------------------------------------

    def calls(self) -> list[tuple[str, str, int]]:
        """``(name, type, call number)`` of each traced call, in call order."""
        names: dict[int, Any] = self._info if self._info is not None else self._modules
        out = []
        for r in self._raw:
            name, type_name, _ = names[r[MODULE]]
            out.append((name, type_name, r[CALL]))
        return out

    def failed_call(self, exc: BaseException) -> int | None:
        """Index of the innermost call that ``exc`` escaped from, or None."""
        if id(exc) in self._first_failure:
            return self._first_failure[id(exc)]
        return self._stack[-1][INDEX] if self._stack else None

    def called(self) -> set[int]:
        """``id`` of every module that was called."""
        return set(self._ncalls)

    def path_of(self, module_id: int) -> str:
        """The path of a traced module, by ``id``."""
        names: dict[int, Any] = self._info if self._info is not None else self._modules
        return str(names[module_id][0])

    def current_path(self) -> str:
        """The path of the module running now; in a backward, whose gradient came last."""
        if self._stack:
            return self._modules[self._stack[-1][MODULE]][0]
        return self.grads.current if self.grads is not None else ""

    def raw_calls(self) -> tuple[RawCall, ...]:
        """The finished calls (``inspectnn.trace.raw``'s layout), in call order; a call
        whose post step never ran is given as finished from what it had."""
        return tuple(r if isinstance(r, tuple) else finished(r) for r in self._raw)

    def detach(self) -> None:
        """Keep only metadata: drop every module, mode and tensor the tracer holds.

        Reads each called module's ``extra_repr`` first. After this the tracer can
        outlive the model (a Report builds its records from it lazily); ``build``
        still works; the tracer cannot be entered again.
        """
        if self._info is not None:
            return
        info: dict[int, tuple[str, str, str]] = {}
        weights: dict[int, tuple[int, ...]] = {}
        ncalls, plan = self._ncalls, self._plan
        for mid, (name, type_name, mod) in self._modules.items():
            if mid in ncalls:
                info[mid] = (name, type_name, safe_extra_repr(mod))
                kind = plan[mid].leaf
                if kind is not None and kind != "zero":  # a torch leaf with a weight
                    shape = weight_shape(mod)
                    if shape is not None:
                        weights[mid] = shape
        self._info, self._weights = info, weights
        self.model = None  # type: ignore[assignment]
        self._modules = {}
        self._plan = {}  # holds contracts, which may close over module state
        self._producers = _Producers()
        self._watch.release()
        self._buffers_before = {}
        self._mode = None
        self._modes = []
        self._router.release()

    def build(self, counts: ModelCounts) -> tuple[tuple[LayerCall, ...], tuple[OpCall, ...]]:
        """Turn the raw trace into records. Runs after the forward, off the hot path."""
        self.detach()
        info = self._info
        assert info is not None
        raw, writes = self.raw_calls(), self.buffer_writes
        comms = self._comms
        return build_records(
            raw, self._ops, info, self._weights, writes, self.uncounted, counts, self.device_as,
            None if comms is None else comms.of,
        )  # fmt: skip
