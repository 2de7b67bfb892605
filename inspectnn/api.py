"""``inspect()``: build inputs, pick the device, trace one forward, return a Report."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn.parameter import is_lazy

from inspectnn.checks import (
    batch_findings,
    dead_findings,
    fast_path_findings,
    mixed_tensor_findings,
    promotion_findings,
    uncalled_findings,
    uncounted_findings,
    uncounted_ops,
    violation_findings,
)
from inspectnn.checks.autocast import autocast_findings
from inspectnn.checks.coverage import FUSED
from inspectnn.checks.dataflow import CONTAINER_NAMES
from inspectnn.checks.diagnose import build_error
from inspectnn.checks.limits import recursion_error
from inspectnn.checks.modes import mode_findings, mode_sensitive
from inspectnn.checks.numerics import nonfinite_findings
from inspectnn.checks.recurrent import batch_first_findings
from inspectnn.checks.state import (
    buffer_findings,
    unregistered_cause,
    unregistered_findings,
    written_findings,
)
from inspectnn.errors import ForwardError, InvalidInputError
from inspectnn.inputs import (
    build_inputs,
    check_model,
    check_sharded,
    model_device,
    move_to,
    parse_device,
)
from inspectnn.params import ModelCounts, count_parameters
from inspectnn.preserve import Mode, Preserved
from inspectnn.records import (
    SEVERITIES,
    ErrorInfo,
    Finding,
    LayerCall,
    OpCall,
    Parts,
    Report,
    Totals,
)
from inspectnn.summary import has_lazy, param_metas, raw_params, static_report, takes_no_input
from inspectnn.trace.tracer import ContractBreach, Tracer

__all__ = ["inspect"]

OnError = Literal["raise", "report"]


def _choice(value: object, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        options = ", ".join(repr(a) for a in allowed)
        raise InvalidInputError(f"{what} must be one of {options} (got {value!r}).")


@dataclass(frozen=True, slots=True)
class InspectOptions:
    """``inspect()``'s own arguments, checked once (``checked``): all but the model and inputs.

    Attributes:
        device: Where to run, parsed; None runs where the model is.
        mode: ``"eval"``, ``"train"`` or ``"same"``.
        input_size: The shapes to build inputs from, or None for the caller's inputs.
        dtypes: The dtypes of the built inputs (only with ``input_size``).
        on_error: ``"raise"`` or ``"report"``.
        check_numerics: Find the first layer whose output is not finite.
        torch_functions: Torch-function handling as it was outside ``inspect``,
            put back for the forward alone.
    """

    device: torch.device | None
    mode: Mode
    input_size: Sequence[int] | Sequence[Sequence[int]] | None
    dtypes: str | torch.dtype | Sequence[str | torch.dtype] | None
    on_error: OnError
    check_numerics: bool
    torch_functions: Any

    @classmethod
    def checked(
        cls,
        *,
        device: str | torch.device | None,
        mode: Mode,
        input_size: Sequence[int] | Sequence[Sequence[int]] | None,
        dtypes: str | torch.dtype | Sequence[str | torch.dtype] | None,
        on_error: OnError,
        check_numerics: bool,
        torch_functions: Any,
    ) -> InspectOptions:
        """The options, or InvalidInputError naming the argument that is wrong."""
        _choice(mode, ("eval", "train", "same"), "mode")
        _choice(on_error, ("raise", "report"), "on_error")
        target = parse_device(device) if device is not None else None
        if dtypes is not None and input_size is None:
            raise InvalidInputError("dtypes goes with input_size; with real inputs, cast them.")
        return cls(target, mode, input_size, dtypes, on_error, check_numerics, torch_functions)


# One inspect at a time in the process. inspect changes process-wide state for
# the forward and puts it back afterwards: the global RNG state, the garbage
# collector's switch, a wrapper in each module's __dict__, train/eval flags. Two
# threads doing that at once would each save the other's mid-run state as the
# original and restore it last (the RNG drifts), and two threads inspecting one
# model would run through each other's wrappers. An uncontended lock costs well under
# a microsecond, and inspect is Python-bound under the GIL, so little parallelism is
# lost. Re-entrant: a forward may itself call inspect (in the same thread).
_ONE_AT_A_TIME = threading.RLock()


def inspect(
    model: nn.Module,
    *args: Any,
    device: str | torch.device | None = None,
    mode: Mode = "eval",
    input_size: Sequence[int] | Sequence[Sequence[int]] | None = None,
    dtypes: str | torch.dtype | Sequence[str | torch.dtype] | None = None,
    on_error: OnError = "raise",
    check_numerics: bool = False,
    **kwargs: Any,
) -> Report:
    """Run one forward of ``model``, tracing every submodule call, and report what happened.

    Call it exactly as you would call the model; keyword arguments that are not
    inspectnn's own go to ``forward``. The model is left exactly as it was.

    Args:
        model: Any ``nn.Module`` (``nn.Sequential`` included).
        *args: Positional inputs, as for ``model(*args)``.
        device: ``None`` runs where the model is; ``"meta"`` runs on meta tensors
            with no memory, for any model size; ``"cpu"``, ``"cuda"``, ``"cuda:1"``
            or a ``torch.device`` run there. The model itself is never moved: its
            tensors are substituted for the call.
        mode: ``"eval"`` (default) or ``"train"`` sets every submodule's flag for
            the forward; ``"same"`` keeps the flags. All are restored afterwards.
        input_size: Instead of inputs, one shape or a list of shapes to build them.
        dtypes: With ``input_size``: one dtype or one per shape (default: the
            model's float dtype). Integer inputs are valid ``nn.Embedding`` indices.
        on_error: ``"raise"`` (default) raises ForwardError when the forward
            fails; ``"report"`` returns the partial report with ``.error`` set.
        check_numerics: Find the first layer whose output holds NaN or Inf
            (one extra reduction per output; skipped on meta).
        **kwargs: Keyword inputs for ``forward``.

    Returns:
        The Report: ``print(report)`` for the table, ``report.to_dict()`` for JSON.

    Raises:
        InvalidInputError: An argument is wrong; the message says what to pass.
        ForwardError: The forward raised (``.layer``, ``.report``, ``__cause__``);
            ``ShapeMismatchError``, ``DtypeMismatchError`` or ``DeviceMismatchError``
            when a layer's contract says why, with ``.expected``, ``.got``,
            ``.producer`` and ``.fix``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
        >>> inspect(net, torch.randn(64, 784)).layer("2").outputs[0].shape
        (64, 10)
    """
    outside = torch._C._get_torch_function_state()  # type: ignore[attr-defined]
    with _ONE_AT_A_TIME, _gc_paused(), torch._C.DisableTorchFunction():  # ours, not the model's
        model = check_model(model)
        options = InspectOptions.checked(
            device=device,
            mode=mode,
            input_size=input_size,
            dtypes=dtypes,
            on_error=on_error,
            check_numerics=check_numerics,
            torch_functions=outside,
        )
        return _inspect(model, args, kwargs, options)


def _inspect(
    model: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], options: InspectOptions
) -> Report:
    """``inspect``'s work; it runs with torch-function handling off except in the forward.

    A TorchFunctionMode the user has active (or a tensor subclass) sees the model's
    own torch calls and none of inspect's: not the parameter count, the RNG and
    buffer saving, or the shape reads around each module call.
    """
    mode, device = options.mode, options.device
    walk = list(model.named_modules(remove_duplicate=False))
    target = device if device is not None else _home(walk)
    if options.input_size is not None:
        if args:
            raise InvalidInputError(
                "pass either the inputs or input_size, not both: inspect(model, x) or "
                "inspect(model, input_size=(1, 3, 224, 224))."
            )
        args = build_inputs(model, options.input_size, options.dtypes, target)
    elif not args and not kwargs and not (takes_no_input(model) and not has_lazy(walk)):
        # no input to run it with: the summary of what the model holds, marked not run
        training = model.training if mode == "same" else mode == "train"
        return static_report(model, target, training)
    elif device is not None:
        args, kwargs = move_to(args, target), move_to(kwargs, target)
    seen: set[int] = set()
    every = [(n, m) for n, m in walk if not (id(m) in seen or seen.add(id(m)))]  # type: ignore[func-returns-value]
    named = _eager(every)
    check_sharded(every, target, device is not None)
    try:
        counts = count_parameters(model, walk)
    except ValueError:  # a lazy module's parameter is not created yet
        _refuse_lazy(walk)
        raise
    substitutes = _substitutes(every, target) if device is not None else None
    run = _Run(model, mode, every, named, substitutes, options.check_numerics)
    call = _caller(model, substitutes, args, kwargs)
    outside = options.torch_functions
    tracer, failure = run(call, outside, grad=False)
    if failure is not None and _needs_grad(failure):
        # The forward takes gradients itself (a MAML-style inner loop): run it again
        # with autograd on, every ``.grad`` saved and put back.
        tracer, failure = run(call, outside, grad=True)
    root_mode = model.training if mode == "same" else mode == "train"
    failed = tracer.failed_call(failure) if failure is not None else None
    meta = target.type == "meta"
    facts = _Facts(tracer, counts, run, walk=walk, training=root_mode, failed=failed, meta=meta)
    tracer.detach()  # from here on nothing refers to the model
    report = Report.deferred(
        type(model).__name__,
        str(target),
        "train" if root_mode else "eval",
        partial(_assemble, tracer, counts, facts),
    )
    if failure is None:
        return report
    where = tracer.calls()[failed][0] if failed is not None else ""
    report = report.with_error(ErrorInfo(type(failure).__name__, str(failure), where))
    error = _diagnosed(report, tracer, failure, str(_home(walk)))
    if tracer.unregistered:
        entries = list(tracer.unregistered.values())
        error = unregistered_cause(error, entries, report.ops, str(target))
    info = ErrorInfo(
        type(error).__name__,
        str(error),
        error.layer,
        expected=getattr(error, "expected", None),
        got=getattr(error, "got", None),
    )
    report = report.with_error(info)
    error.report = report
    if options.on_error == "report":
        return report
    if isinstance(failure, ContractBreach):  # inspectnn stopped the call: no torch error
        raise error from None
    raise error from failure


class _Run:
    """One traced forward of the model; everything it may change is put back after it."""

    def __init__(
        self,
        model: nn.Module,
        mode: Mode,
        every: list[tuple[str, nn.Module]],
        named: list[tuple[str, nn.Module]],
        substitutes: dict[str, Tensor] | None,
        check_numerics: bool,
    ) -> None:
        self.model, self.mode, self.named, self.every = model, mode, named, every
        self.modules = [m for _, m in every]  # TorchScript submodules' insides included
        self.substitutes = substitutes
        self.check_numerics = check_numerics
        self.with_grad = False
        self.written: list[str] = []  # "path.attr" of tensor attributes written in place

    def __call__(
        self, call: Callable[[], Any], outside: Any, *, grad: bool
    ) -> tuple[Tracer, Exception | None]:
        """Trace ``call()`` with autograd on or off; the tracer and what the forward raised.

        A ``BaseException`` that is not an ``Exception`` (KeyboardInterrupt) propagates,
        after the model is put back.
        """
        self.with_grad = grad
        tracer = Tracer(self.model, named=self.named, check_numerics=self.check_numerics)
        failure: BaseException | None = None
        preserved = Preserved(
            self.model,
            self.mode,
            save_buffers=self.substitutes is None,
            modules=self.modules,
            save_grads=grad,
        )
        with preserved, torch.set_grad_enabled(grad):
            try:
                with _torch_functions(outside), tracer:
                    call()
            except BaseException as err:
                failure = err
            if failure is not None and not isinstance(failure, Exception):
                raise failure
        if preserved.written:
            self.written = _attribute_names(self.every, preserved.written)
        return tracer, failure


def _attribute_names(named: list[tuple[str, nn.Module]], tensors: list[Tensor]) -> list[str]:
    """``"path.attr"`` of each module attribute that holds one of ``tensors``."""
    ids = {id(t) for t in tensors}
    return [
        f"{name}.{attr}" if name else attr
        for name, mod in named
        for attr, value in mod.__dict__.items()
        if id(value) in ids
    ]


def _needs_grad(failure: Exception) -> bool:
    """Whether the forward failed only because autograd was off: it called
    ``torch.autograd.grad`` or ``backward()`` itself."""
    return (
        isinstance(failure, RuntimeError)
        and not isinstance(failure, ContractBreach)
        and "does not require grad and does not have a grad_fn" in str(failure)
    )


def _eager(every: list[tuple[str, nn.Module]]) -> list[tuple[str, nn.Module]]:
    """The modules whose calls can be traced: all but those inside a TorchScript module.

    A scripted or traced submodule (``torch.jit.script`` / ``torch.jit.trace``) runs its
    own submodules in TorchScript, where no Python wrapper sees them: it is traced as
    one opaque call. ``every`` is in ``named_modules`` order (a module before its
    subtree).
    """
    out: list[tuple[str, nn.Module]] = []
    inside: str | None = None  # the "name." prefix of the TorchScript subtree being skipped
    for name, mod in every:
        if inside is not None and name.startswith(inside):
            continue
        out.append((name, mod))
        if isinstance(mod, torch.jit.ScriptModule):
            inside = f"{name}."
    return out


def _refuse_lazy(walk: list[tuple[str, nn.Module]]) -> None:
    """Raise InvalidInputError naming the lazy modules whose parameters are uninitialized."""
    lazy = [
        f"{name or '(root)'} ({type(m).__name__})"
        for name, m in walk
        if any(is_lazy(p) for p in m._parameters.values() if p is not None)
    ]
    if lazy:
        raise InvalidInputError(
            f"the model has lazy modules whose parameters are not created yet: "
            f"{', '.join(lazy[:4])}{' ...' if len(lazy) > 4 else ''}. Their first forward "
            "would create them, and inspect never changes the model: run model(x) once "
            "with a real input first, then inspect it."
        )


def _home(walk: list[tuple[str, nn.Module]]) -> torch.device:
    """Where the model's first parameter (or buffer) lives; CPU for a stateless model."""
    for _, mod in walk:
        for p in mod._parameters.values():
            if p is not None:
                return p.device
    return model_device(walk[0][1])


@contextmanager
def _torch_functions(state: Any) -> Iterator[None]:
    """Torch-function handling as it was outside ``inspect``, for the forward."""
    inside = torch._C._get_torch_function_state()  # type: ignore[attr-defined]
    torch._C._set_torch_function_state(state)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        torch._C._set_torch_function_state(inside)  # type: ignore[attr-defined]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the garbage collector: ~20 tracked objects per module call trigger it."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _diagnosed(
    report: Report, tracer: Tracer, failure: BaseException, home: str
) -> ForwardError:
    """The diagnosed error; a plain one should the diagnosis itself trip up."""
    failed = tracer.failed_call(failure)
    try:
        if isinstance(failure, RecursionError):
            return recursion_error(report, failed, failure)
        return build_error(report, failed, tracer.violations, failure, home)
    except Exception:  # the user must see their error, never an inspectnn traceback
        where = report.layers[failed].name if failed is not None else ""
        text = f"The forward of {report.model} failed in {where or 'the root module'}: "
        return ForwardError(f"{text}{type(failure).__name__}: {failure}", layer=where)


def _named_tensors(named: list[tuple[str, nn.Module]]) -> list[tuple[str, Tensor]]:
    """``(dotted name, tensor)`` of every parameter and buffer, each tensor once."""
    tensors: list[tuple[str, Tensor]] = []
    seen: set[int] = set()
    for mname, mod in named:
        for slots in (mod._parameters, mod._buffers):
            for tname, t in slots.items():
                if t is not None and id(t) not in seen:
                    seen.add(id(t))
                    tensors.append((f"{mname}.{tname}" if mname else tname, t))
    return tensors


def _substitutes(
    named: list[tuple[str, nn.Module]], target: torch.device
) -> dict[str, Tensor] | None:
    """Copies of the model's tensors on ``target``, or None when all are there already."""
    tensors = _named_tensors(named)
    if all(t.device == target for _, t in tensors):
        return None
    empty = [name for name, t in tensors if t.device.type == "meta"]
    if empty and target.type != "meta":
        raise InvalidInputError(
            f"the model's tensors {', '.join(empty[:3])}{' ...' if len(empty) > 3 else ''} are "
            f"on the meta device and hold no data, so they cannot run on {target}. Pass "
            "device='meta' to check shapes, or load real weights first."
        )
    out: dict[str, Tensor] = {}
    for name, t in tensors:
        try:
            moved = _copy_to(t, target)
        except (NotImplementedError, RuntimeError) as err:  # no kernel for this kind of tensor
            kind = "quantized " if t.is_quantized else "sparse " if t.is_sparse else ""
            raise InvalidInputError(
                f"the model's {kind}tensor {name} ({t.dtype}, {t.layout}) cannot be copied to "
                f"{target}: torch has no {target.type} version of it "
                f"({type(err).__name__}: {str(err).split('. ')[0][:160]}). Inspect it where "
                f"it is (device='{t.device}', the default), or convert that tensor first."
            ) from err
        out[name] = nn.Parameter(moved, t.requires_grad) if isinstance(t, nn.Parameter) else moved
    return out


def _copy_to(t: Tensor, target: torch.device) -> Tensor:
    if target.type == "meta":
        return torch.empty_like(t, device=target)
    return t.detach().to(target)


def _caller(
    model: nn.Module,
    substitutes: dict[str, Tensor] | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Callable[[], Any]:
    if substitutes is None:
        return lambda: model(*args, **kwargs)
    return lambda: torch.func.functional_call(model, substitutes, args, kwargs, strict=False)


def _activation_bytes(layers: Sequence[LayerCall]) -> int:
    has_child = {rec.parent for rec in layers}
    total = 0
    for rec in layers:
        if rec.index in has_child:
            continue
        for t in rec.outputs:
            if t.dtype is not None:
                dtype = getattr(torch, t.dtype, None)
                size = dtype.itemsize if isinstance(dtype, torch.dtype) else 4
                total += t.numel * size
    return total


class _Facts:
    """What the checks need from the model itself, read right after the forward.

    Everything here is names, counts and flags: a lazily built Report holds it
    instead of the model. The common case (no mixed dtypes, no fused module,
    every module called) reads almost nothing.
    """

    def __init__(
        self,
        tracer: Tracer,
        counts: ModelCounts,
        run: _Run,
        *,
        walk: list[tuple[str, nn.Module]],
        training: bool,
        failed: int | None,
        meta: bool,
    ) -> None:
        """Read the facts.

        Args:
            tracer: The tracer of the forward, not yet detached.
            counts: The model's parameter counts.
            run: The forward that ran (the model, its traced modules, autograd, writes).
            walk: Every ``(path, module)``, a module held twice listed twice.
            training: The mode the forward ran in.
            failed: The index of the call the forward failed in, or None.
            meta: The forward ran on meta tensors.
        """
        named = run.named
        self.training = training
        self.failed = failed
        self.with_grad = run.with_grad
        self.written = run.written
        violations = tracer.violations
        failed_kinds = {violations[failed].kind} if failed in violations else set()
        self.mixed: list[Finding] = []
        if not counts.uniform:
            self.mixed = mixed_tensor_findings(_named_tensors(walk), failed_kinds)
        self.children = {
            name: [
                f"{name}.{c}" if name else c
                for c, m in mod._modules.items()
                if m is not None and not isinstance(m, _CONTAINERS)
            ]
            for name, mod in named
            if type(mod).__name__ in FUSED
        }
        self.modules: list[tuple[str, str, int]] = []
        called = tracer.called()
        if failed is None and any(  # some module never ran, and it is not a mere container
            id(m) not in called and type(m).__name__ not in CONTAINER_NAMES for _, m in named
        ):
            self.modules = _unused_params(named, walk, called)
        # the model was in training mode (it is again) and ran in eval mode
        self.mode_note = run.model.training and not training and mode_sensitive(named)
        # the model's own parameters, for the table's per-parameter rows (none is lazy:
        # counting refused those); made into records when the report is read
        self.weights = {name: raw_params(mod, lazy=False) for name, mod in named if mod._parameters}
        self.autocast = autocast_findings(named, called) if meta else []


def _assemble(tracer: Tracer, counts: ModelCounts, facts: _Facts) -> Parts:
    """Records, findings and totals from the raw trace: run on the report's first use."""
    layers, ops = tracer.build(counts)
    weights = {name: param_metas(raw) for name, raw in facts.weights.items() if raw}
    layers = tuple(
        replace(rec, weights=weights[rec.name]) if rec.name in weights else rec for rec in layers
    )
    findings = _findings(tracer, layers, ops, facts)
    flops = sum(rec.flops for rec in layers if rec.parent < 0) + tracer.outside_flops
    totals = Totals(
        params=counts.params,
        trainable_params=counts.trainable,
        buffers=counts.buffers,
        param_bytes=counts.param_bytes,
        buffer_bytes=counts.buffer_bytes,
        activation_bytes=_activation_bytes(layers),
        flops=flops,
        uncounted_ops=uncounted_ops(tuple(tracer.uncounted)),
    )
    return totals, layers, ops, findings


def _findings(
    tracer: Tracer, layers: tuple[LayerCall, ...], ops: tuple[OpCall, ...], facts: _Facts
) -> tuple[Finding, ...]:
    """Every check's findings, most severe first."""
    found: list[Finding] = [
        *violation_findings(layers, tracer.violations),
        *facts.mixed,
        *promotion_findings(layers),
        *fast_path_findings(layers, facts.children, facts.training),
        *facts.autocast,
        *uncounted_findings(layers, tuple(tracer.uncounted)),
    ]
    found += unregistered_findings(list(tracer.unregistered.values()), ops)
    found += buffer_findings(layers, tracer.buffer_writes)
    if facts.failed is None:
        found += batch_findings(layers, ops) + dead_findings(layers, ops)
        found += batch_first_findings(layers, ops)
        if facts.modules:
            found += uncalled_findings(layers, facts.modules)
    found += nonfinite_findings(layers, tracer.nonfinite)
    found += written_findings(facts.written)
    found += mode_findings(with_grad=facts.with_grad, eval_of_training=facts.mode_note)
    found.sort(key=lambda f: -SEVERITIES.index(f.severity))
    return tuple(found)


_CONTAINERS = (nn.ModuleList, nn.ModuleDict)


def _unused_params(
    named: list[tuple[str, nn.Module]], walk: list[tuple[str, nn.Module]], called: set[int]
) -> list[tuple[str, str, int]]:
    """``(path, type, parameters used by no called module)`` of every module.

    A tied weight (T5's ``shared`` is also ``encoder.embed_tokens``) is used when any
    module holding it ran, so it does not make its never-called holder a warning.
    The parameters inside a called TorchScript module all ran.
    """
    used: set[int] = set()
    for _, c in named:
        if id(c) in called:
            scripted = isinstance(c, torch.jit.ScriptModule)
            own = c.parameters() if scripted else c._parameters.values()
            used.update(id(p) for p in own if p is not None)
    unused = _UnusedCounter(walk, used).counts
    out = []
    for name, m in named:
        # Only never-called modules are reported; the rest need no count. A container's
        # subtree is its children's, reported on their own if uncalled.
        skip = id(m) in called or isinstance(m, _CONTAINERS)
        out.append((name, type(m).__name__, 0 if skip else unused[id(m)]))
    return out


class _UnusedCounter:
    """Unused parameter elements of every module's subtree, in one pass over the modules.

    Each module's count is its own unused parameters plus its children's counts, the
    children done first (``walk`` backwards). A parameter held in more than one place
    (tied, or in a module that sits twice in the tree) is kept by identity instead, in a
    set passed up the tree, so that a subtree counts it once. Walking each module's
    whole subtree instead is quadratic in the depth.
    """

    def __init__(self, walk: list[tuple[str, nn.Module]], used: set[int]) -> None:
        places: dict[int, int] = {}
        for _, mod in walk:
            for p in mod._parameters.values():
                if p is not None:
                    places[id(p)] = places.get(id(p), 0) + 1
        self.sizes: dict[int, int] = {}  # id -> numel of each unused parameter in two places
        done: dict[int, tuple[int, frozenset[int]]] = {}
        for _, mod in reversed(walk):
            if id(mod) not in done:
                done[id(mod)] = self._count(mod, done, used, places)
        self.counts = {
            mid: n + sum(self.sizes[pid] for pid in tied) for mid, (n, tied) in done.items()
        }

    def _count(
        self,
        mod: nn.Module,
        done: dict[int, tuple[int, frozenset[int]]],
        used: set[int],
        places: dict[int, int],
    ) -> tuple[int, frozenset[int]]:
        """(unused elements held in one place, ids of those held in several) of a subtree."""
        n = 0
        tied: frozenset[int] = frozenset()
        for p in mod._parameters.values():
            if p is None or id(p) in used:
                continue
            if places[id(p)] > 1:
                self.sizes[id(p)] = p.numel()
                tied = tied | {id(p)}
            else:
                n += p.numel()
        for child in mod._modules.values():
            if child is not None:
                child_n, child_tied = done[id(child)]
                n += child_n
                if child_tied:
                    tied = tied | child_tied
        return n, tied

