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

Owns the ``Tracer`` context manager (installing and removing wrappers and modes,
the pre/post steps, contract enforcement and ``ContractBreach``, the numerics check,
buffer-write and unregistered-parameter notes, FLOP routing, the recursion-limit
raise, ``detach``) and ``build()`` (raw trace to ``LayerCall``/``OpCall``).

May import: the rest of ``inspectnn.trace`` (``flatten``, ``ops``, ``wrap``),
``inspectnn.checks.contracts``, ``inspectnn.flops``, ``inspectnn.params``,
``inspectnn.records`` and ``inspectnn.values``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _NormBase

from inspectnn.checks.contracts import STRICT_DTYPE, Contract, Violation
from inspectnn.flops import FlopDispatchMode, fast_flops, leaf_flops
from inspectnn.params import ModelCounts
from inspectnn.records import LayerCall, OpCall
from inspectnn.trace.flatten import (
    _SIMPLE,
    RawMeta,
    _args_text,
    _flatten_call,
    _MetaConverter,
    _Producers,
    _value_text,
    flatten_values,
)
from inspectnn.trace.ops import _PATHS, _hidden, _op_label, _OpRecorder
from inspectnn.trace.wrap import (
    _CLASS_FACTS,
    _NO_FORWARD,
    _buffer_state,
    _class_facts,
    _device_type,
    _holder_of,
    _version,
    _wrap,
    safe_extra_repr,
)
from inspectnn.values import has_tensor, tensors

__all__ = ["ContractBreach", "Tracer", "flatten_values"]

# [module id, call number, parent index, inputs, outputs, self flops, failed,
#  leaf kind (run without the op recorder: FLOPs from shapes, in build()) or None,
#  whether the op recorder was on before the call]
# (a list while the call runs, then a tuple of its first eight fields)
RawCall = Any

_DEPTH_STEP = 32  # nesting levels per raise of the recursion limit
_FRAME_MARGIN = 50  # for the frames of inspect itself and of a pre/post step
_LIMIT_LOCK = threading.Lock()


class ContractBreach(RuntimeError):
    """Raised before a layer's call when it cannot run correctly: a device mismatch, or a
    dtype mismatch into a matmul/conv layer. Turned into a diagnosed error by the API."""

    def __init__(self, violation: Violation) -> None:
        super().__init__(
            f"inspectnn: {violation.arg} {violation.got}, expected {violation.expected}"
        )
        self.violation = violation


class Tracer:
    """Context manager that records every submodule call of ``model``.

    Args:
        model: The module to trace; its and every submodule's forward is wrapped.
        record_ops: Record functional ops between modules (a TorchFunctionMode).
        count_flops: Count FLOPs per call (a TorchDispatchMode).

    Example:
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
    ) -> None:
        self.model = model
        self.record_ops = record_ops
        self.count_flops = count_flops
        self.check_numerics = check_numerics
        self.violations: dict[int, Violation] = {}  # call index -> broken contract
        # id -> [holder path, holder type, shape, device, module whose forward used it,
        #        op index, an op using it failed] of each parameter an op used that is not
        #        the model's: a module held in a plain list, dict or attribute
        self.unregistered: dict[int, list[Any]] = {}
        # call index -> (names of the buffers its forward wrote, the module was training)
        self.buffer_writes: dict[int, tuple[tuple[str, ...], bool]] = {}
        self._buffers_before: dict[int, list[tuple[str, Tensor, int]]] = {}  # running calls
        self._deep = _DEPTH_STEP  # nesting at which the recursion limit is raised next
        self._raised = 0  # added to the recursion limit so far
        self._known_params: set[int] | None = None
        # (call index, has NaN, (min, max) of each float input) of the first non-finite output
        self.nonfinite: tuple[int, bool, list[tuple[float, float]]] | None = None
        self._ncalls: dict[int, int] = {}
        self._raw: list[RawCall] = []
        self._ops: list[tuple[Any, ...]] = []
        self._stack: list[int] = []
        self._producers = _Producers()
        self._recording = False  # record ops now: inside a module that is not a torch leaf
        self._mode: _OpRecorder | None = None
        self._mode_on = False  # the op recorder is on torch's function-mode stack now
        self._modules: dict[int, tuple[str, str, nn.Module]] = {}
        # module id -> (record its ops, contract, leaf kind, plain nn.Sequential). torch's
        # own leaves record no ops (their ops are the module); a plain Sequential runs
        # no torch function of its own, so the op recorder can stay off in it.
        self._plan: dict[int, tuple[bool, Contract | None, str | None, bool]] = {}
        for name, mod in named if named is not None else model.named_modules():
            cls = type(mod)
            facts = _CLASS_FACTS.get(cls) or _class_facts(cls)
            mid = id(mod)
            self._modules[mid] = (name, facts[0], mod)
            quiet = facts[1] and not mod._modules
            self._plan[mid] = (record_ops and not quiet, facts[2], facts[3], cls is nn.Sequential)
        self._first_failure: dict[int, int] = {}
        self._saved_forward: list[tuple[nn.Module, object]] = []
        self._modes: list[Any] = []
        self.outside_flops = 0
        # (op, call index or -1) whose FLOPs could not be counted, in first-seen order
        self.uncounted: dict[tuple[str, int], None] = {}
        self._flop_mode: FlopDispatchMode | None = None  # made on first use
        self._info: dict[int, tuple[str, str, str]] | None = None  # set by detach()
        self._weights: dict[int, tuple[int, ...]] = {}  # leaf module id -> weight shape

    # -- context manager ---------------------------------------------------------

    def __enter__(self) -> Tracer:
        try:
            self._install_hooks()
            if self.record_ops or self.count_flops:
                self._mode = _OpRecorder(self)
                self._enter_mode(self._mode)
                self._mode_on = True
        except BaseException:
            self._cleanup()
            raise
        return self

    def _install_hooks(self) -> None:
        """Wrap every module's ``forward`` for the call: pre work, the call, post work.

        The wrapper goes in the module's instance ``__dict__`` (where
        ``nn.Module.__call__`` finds ``self.forward`` first) and comes out again in
        ``__exit__``, a previous instance-level ``forward`` put back. It does what
        a forward pre-hook and an always-call forward hook (``with_kwargs=True``)
        would, at a fraction of the cost: a module with any hook takes torch's
        general call path (a closure, a set and four hook-table scans per call),
        measured at 2.2x a plain forward on a 400-block MLP with hooks that do
        nothing, against 1.3x with a wrapper that does nothing. User hooks keep
        running around it as before; the wrapper sees ``forward``'s own arguments
        (after any pre-hook) and return value (before any forward hook).
        """
        pre, post = self._pre, self._post
        saved = self._saved_forward
        for _, _, m in self._modules.values():
            slots = m.__dict__
            saved.append((m, slots.get("forward", _NO_FORWARD)))
            forward = m.forward
            if isinstance(m, torch.jit.ScriptModule):
                forward = self._opaque(forward)
            slots["forward"] = _wrap(forward, m, pre, post)

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
                with self._flops():
                    return forward(*args, **kwargs)
            finally:
                if off:
                    self._switch_mode(True)

        return scripted_forward

    def _remove_hooks(self) -> None:
        for m, previous in self._saved_forward:
            if previous is _NO_FORWARD:
                m.__dict__.pop("forward", None)
            else:
                m.__dict__["forward"] = previous
        self._saved_forward.clear()

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
            # switched off inside a module whose post step never ran
            torch._C._push_on_torch_function_stack(self._mode)
            self._mode_on = True
        while self._modes:
            self._modes.pop().__exit__(None, None, None)
        self._remove_hooks()
        self._lower()

    # -- pre/post steps (hot path) -----------------------------------------------

    # The steps read tensor attributes under _hidden(): no torch-function mode (ours
    # or a user's) sees them, and with the stack empty (the op recorder is off
    # inside leaves and Sequentials) they skip DisableTorchFunction's ~0.4 µs.

    def _pre(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        with _hidden():
            rec, need = self._pre_step(module, args, kwargs)
        if need is not None and need != self._mode_on:
            self._switch_mode(need)
            if self._mode_on and rec[7] is not None:
                rec[7] = None  # another mode sat above ours: ours counts the FLOPs

    def _pre_step(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[list[Any], bool | None]:
        """Record the call's inputs, check its contract; whether it needs the op recorder."""
        mid = id(module)
        n = self._ncalls.get(mid, 0)
        self._ncalls[mid] = n + 1
        stack = self._stack
        producers = self._producers
        if not stack:
            producers.mark_inputs(args, kwargs)
        elif len(stack) >= self._deep:
            self._deeper()
        inputs: tuple[RawMeta, ...]
        if not kwargs and len(args) == 1 and type(args[0]) is Tensor and not args[0].is_nested:
            a = args[0]
            code, pos = producers.lookup(a)
            inputs = (("[0]", tuple(a.shape), a.dtype, a.device, None, code, pos),)
        else:
            inputs = _flatten_call(args, kwargs, producers.lookup, not stack)
        raw = self._raw
        rec = [mid, n, stack[-1] if stack else -1, inputs, None, 0, False, None, self._mode_on]
        stack.append(len(raw))
        raw.append(rec)
        if module._buffers and type(module._buffers) is dict:  # not a scripted module's
            self._buffers_before[len(raw) - 1] = _buffer_state(module)
        records, contract, kind, transparent = self._plan[mid]
        self._recording = records
        if contract is not None:
            try:
                violation = contract(module, args, kwargs)
            except Exception:  # a contract must never break a forward that would run
                violation = None
            if violation is not None:
                self._violated(violation, module, args, kwargs)
        if self._mode is None:
            return rec, None
        if kind is None:
            return rec, not transparent
        if kind == "zero":
            return rec, False
        x = args[0] if args else None
        if not isinstance(x, Tensor) or (kind == "linear" and x.dim() < 2):
            return rec, True
        rec[7] = kind  # its FLOPs follow from the shapes, counted in build()
        return rec, False

    def _post(
        self, module: nn.Module, args: tuple[Any, ...], output: Any, exc: BaseException | None
    ) -> None:
        if not self._stack:
            return
        with _hidden():
            if self._buffers_before:
                self._note_buffer_writes(module, self._stack[-1])
            was_on = self._post_step(args, output, exc)
        if was_on != self._mode_on:
            self._switch_mode(was_on)

    def _post_step(self, args: tuple[Any, ...], output: Any, exc: BaseException | None) -> bool:
        """Record the call's outputs; whether the op recorder was on before the call."""
        stack = self._stack
        idx = stack.pop()
        raw = self._raw
        rec = raw[idx]
        self._recording = bool(stack) and self._plan[raw[stack[-1]][0]][0]
        if exc is not None:
            rec[6] = True
            self._first_failure.setdefault(id(exc), idx)
        else:
            rec[4] = self._producers.flatten_output(output, 2 * idx)
            if self.check_numerics and self.nonfinite is None:
                self._check_numerics(idx, args, output)
        # A finished call becomes a tuple of plain values, which the garbage
        # collector stops tracking: thousands of kept records would otherwise
        # make its full collections come sooner.
        raw[idx] = (rec[0], rec[1], rec[2], rec[3], rec[4] or (), rec[5], rec[6], rec[7])
        return bool(rec[8])

    def _deeper(self) -> None:
        """Make room in Python's recursion limit for the wrappers' frames, 32 levels ahead.

        Each traced call adds one frame (``traced_forward``) to the three a plain
        module call takes, so a forward nested as deep as Python allows would fail
        under inspect alone; the limit is raised by what the wrappers add (and put
        back in ``__exit__``), so inspect runs wherever the plain forward runs.
        """
        step = _DEPTH_STEP + (_FRAME_MARGIN if not self._raised else 0)
        with _LIMIT_LOCK:  # relative changes: other threads' raises stay correct
            sys.setrecursionlimit(sys.getrecursionlimit() + step)
        self._raised += step
        self._deep += _DEPTH_STEP

    def _lower(self) -> None:
        """Take back what ``_deeper`` added to the recursion limit."""
        if self._raised:
            with _LIMIT_LOCK:
                sys.setrecursionlimit(max(sys.getrecursionlimit() - self._raised, 100))
            self._raised = 0

    def _note_buffer_writes(self, module: nn.Module, idx: int) -> None:
        """Which of the call's buffers its forward wrote (in place or rebound)."""
        before = self._buffers_before.pop(idx, None)
        if before is None:
            return
        now = module._buffers
        written = [name for name, t, version in before if now.get(name) is not t
                   or _version(t) != version]  # fmt: skip
        known = {name for name, _, _ in before}
        written += [name for name, t in now.items() if t is not None and name not in known]
        if "num_batches_tracked" in written and isinstance(module, _NormBase):
            # the native kernel updates the running statistics without a version bump
            written[:0] = [n for n in ("running_mean", "running_var") if now.get(n) is not None]
        if written:
            self.buffer_writes[idx] = (tuple(written), module.training)

    def _switch_mode(self, on: bool) -> None:
        """Put the op recorder on torch's function-mode stack, or take it off.

        It is on inside modules whose forward runs torch functions worth
        recording or counting, and off inside torch's own leaves (whose FLOPs
        follow from shapes) and plain ``nn.Sequential`` (whose forward only calls
        its children): an op recorder costs a few µs per torch function, and
        switching only where the need changes keeps a stack of leaves free of it.
        A mode that another piece of code pushed above ours is left alone.
        """
        if on:
            torch._C._push_on_torch_function_stack(self._mode)
            self._mode_on = True
            return
        n = torch._C._len_torch_function_stack()
        if n and torch._C._get_function_stack_at(n - 1) is self._mode:
            torch._C._pop_torch_function_stack()
            self._mode_on = False

    def _violated(
        self,
        violation: Violation,
        module: nn.Module,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        if violation.kind == "dtype" and torch.is_autocast_enabled(_device_type(args, kwargs)):
            return  # autocast casts the inputs of matmuls and convolutions itself
        self.violations[len(self._raw) - 1] = violation
        if violation.kind == "device" or (
            violation.kind == "dtype" and type(module) in STRICT_DTYPE
        ):
            # PyTorch would raise, or (a CPU tensor into meta weights) silently go on.
            raise ContractBreach(violation)

    def _check_numerics(self, idx: int, args: tuple[Any, ...], output: Any) -> None:
        """Note the first call whose output holds NaN or Inf. A tensor it cannot reduce
        (a nested or sparse one, a layout without ``isfinite``) is skipped: the check
        must never fail a forward that runs."""
        for t in tensors(output):
            if not t.is_floating_point() or t.device.type == "meta" or t.layout != torch.strided:
                continue
            try:
                if bool(t.isfinite().all()):
                    continue
                floats = [x for x in tensors(args) if x.is_floating_point() and x.numel()]
                ranges = [(float(x.min()), float(x.max())) for x in floats]
                self.nonfinite = (idx, bool(t.isnan().any()), ranges)
            except (RuntimeError, NotImplementedError):  # a tensor type without these ops
                continue
            return

    def _record_op(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        out: Any,
        *,
        failed: bool,
        inplace: bool = False,
    ) -> None:
        # Called from the op recorder's handler, where torch functions are not traced.
        inputs: list[RawMeta] = []
        others: list[tuple[str, object]] = []  # formatted after the forward
        producers = self._producers
        lookup = producers.lookup
        for i, a in enumerate(args):
            if isinstance(a, Tensor) and not a.is_nested:
                path = _PATHS[i] if i < len(_PATHS) else f"[{i}]"
                code, pos = lookup(a)
                inputs.append((path, tuple(a.shape), a.dtype, a.device, None, code, pos))
                if type(a) is not Tensor and isinstance(a, nn.Parameter):
                    self._check_registered(a, failed)
            elif isinstance(a, _SIMPLE):
                others.append(("", a))
            elif has_tensor(a):
                flatten_values(a, f"[{i}]", inputs, lookup)
            else:
                others.append(("", _value_text(a)))
        for k, v in kwargs.items():
            if has_tensor(v):
                flatten_values(v, k, inputs, lookup)
            else:
                others.append((k, v if isinstance(v, _SIMPLE) else _value_text(v)))
        code = 2 * len(self._ops) + 1
        outputs = () if failed else producers.flatten_output(out, code)
        self._ops.append(
            (_op_label(func), self._stack[-1], len(self._raw), tuple(inputs), outputs,
             tuple(others), failed, inplace)
        )  # fmt: skip

    def _check_registered(self, p: Tensor, failed: bool) -> None:
        """Note ``p`` when it is no parameter of the model (a module held in a plain list).

        The model's parameter ids are gathered on the first parameter an op sees,
        inside the forward, so substituted copies (``device=``) are the ones known.
        """
        known = self._known_params
        if known is None:
            known = self._known_params = {
                id(q) for _, _, m in self._modules.values() for q in m._parameters.values()
            }
        if id(p) in known:
            return
        seen = self.unregistered.get(id(p))
        if seen is None:
            holder, kind = _holder_of(p, self._modules.values())
            mid = self._raw[self._stack[-1]][0]
            self.unregistered[id(p)] = [
                holder, kind, tuple(p.shape), str(p.device), self._modules[mid][0],
                len(self._ops), failed,
            ]  # fmt: skip
        elif failed:
            seen[6] = True

    def _run_counted(
        self, name: str, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        # Counting never fails a forward that would run: where it cannot count, the
        # op is recorded as uncounted (a finding) and the forward goes on.
        with _hidden():
            try:
                formula = fast_flops(name, args, kwargs)
            except Exception:
                formula = None
        if formula is None:
            with self._flops():
                return func(*args, **kwargs)
        out = func(*args, **kwargs)
        with _hidden():
            try:
                self._add_flops(formula(out))
            except Exception:
                self._uncounted_op(_op_label(func))
        return out

    def _flops(self) -> FlopDispatchMode:
        if self._flop_mode is None:
            self._flop_mode = FlopDispatchMode(self._add_flops, self._uncounted_op)
        return self._flop_mode

    def _uncounted_op(self, name: str) -> None:
        """Record that op ``name``'s FLOPs are missing from the current call's count."""
        self.uncounted.setdefault((name, self._stack[-1] if self._stack else -1), None)

    def _add_flops(self, flops: int) -> None:
        if self._stack:
            self._raw[self._stack[-1]][5] += flops
        else:
            self.outside_flops += flops

    # -- results -----------------------------------------------------------------

    def calls(self) -> list[tuple[str, str, int]]:
        """``(name, type, call number)`` of each traced call, in call order."""
        names = self._info if self._info is not None else self._modules
        return [(names[r[0]][0], names[r[0]][1], r[1]) for r in self._raw]

    def failed_call(self, exc: BaseException) -> int | None:
        """Index of the innermost call that ``exc`` escaped from, or None."""
        if id(exc) in self._first_failure:
            return self._first_failure[id(exc)]
        return self._stack[-1] if self._stack else None

    def called(self) -> set[int]:
        """``id`` of every module that was called."""
        return set(self._ncalls)

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
                kind = plan[mid][2]
                if kind is not None and kind != "zero":  # a torch leaf with a weight
                    # the weight it used: a parameter, or one computed by a pre-hook
                    # (torch.nn.utils.prune sets a plain attribute from weight_orig)
                    w = mod._parameters.get("weight")
                    if w is None:
                        w = getattr(mod, "weight", None)
                    if isinstance(w, Tensor):
                        weights[mid] = tuple(w.shape)
        self._info, self._weights = info, weights
        self.model = None  # type: ignore[assignment]
        self._modules = {}
        self._plan = {}  # holds contracts, which may close over module state
        self._producers = _Producers()
        self._known_params = None
        self._buffers_before = {}
        self._mode = None
        self._modes = []
        self._flop_mode = None

    def build(self, counts: ModelCounts) -> tuple[tuple[LayerCall, ...], tuple[OpCall, ...]]:
        """Turn the raw trace into records. Runs after the forward, off the hot path."""
        self.detach()
        info = self._info
        assert info is not None
        conv = _MetaConverter()
        flops = [r[5] for r in self._raw]
        for i, r in enumerate(self._raw):
            if r[7] is not None:  # a torch leaf: FLOPs from its input, weight, output shapes
                weight, ins, outs = self._weights.get(r[0]), r[3], r[4]
                if weight and ins and ins[0][1] and outs and len(outs) == 1 and outs[0][1]:
                    flops[i] += leaf_flops(r[7], ins[0][1], weight, outs[0][1])
                elif not r[6]:  # it ran, but without a weight tensor to count from
                    self.uncounted.setdefault((info[r[0]][1], i), None)
        depths: list[int] = []
        for i in range(len(self._raw) - 1, -1, -1):
            parent = self._raw[i][2]
            if parent >= 0:
                flops[parent] += flops[i]
        layers: list[LayerCall] = []
        writes = self.buffer_writes
        for i, (mid, n, parent, ins, outs, _, failed, *_) in enumerate(self._raw):
            name, type_name, extra = info[mid]
            depth = depths[parent] + 1 if parent >= 0 else 0
            depths.append(depth)
            c = counts.per_module.get(mid)
            layers.append(
                LayerCall(
                    index=i,
                    name=name,
                    type=type_name,
                    depth=depth,
                    call=n,
                    parent=parent,
                    inputs=conv.all(ins),
                    outputs=conv.all(outs or ()),
                    params=c[0] if c else 0,
                    trainable_params=c[1] if c else 0,
                    shared=c[2] if c else (),
                    flops=flops[i],
                    failed=failed,
                    extra=extra,
                    buffers_written=writes[i][0] if i in writes else (),
                )
            )
        ops = tuple(
            OpCall(
                index=j,
                name=name,
                module=layers[parent].name,
                parent=parent,
                after=after,
                inputs=conv.all(ins),
                outputs=conv.all(outs),
                args=_args_text(others),
                failed=failed,
                inplace=inplace,
            )
            for j, (name, parent, after, ins, outs, others, failed, inplace) in enumerate(
                self._ops
            )
        )
        return tuple(layers), ops
