"""``inspect()``: build inputs, pick the device, trace one forward, return a Report.

Owns ``inspect()``'s own arguments (``InspectOptions``, checked once), the
process-wide lock (``_ONE_AT_A_TIME``), the paused garbage collector, and
``_inspect``: inputs, the no-input summary, parameter counting, the forward
(``forward.py``), the deferred report (``assemble.py``) and the diagnosed error.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from inspectnn.assemble import _assemble, _Facts, training_report
from inspectnn.assemble import _unused_params as _unused_params  # where tests import it
from inspectnn.checks.device_memory import device_memory_bytes
from inspectnn.checks.diagnose import build_error
from inspectnn.checks.limits import recursion_error
from inspectnn.checks.modes import ddp_finding
from inspectnn.checks.state import unregistered_cause
from inspectnn.distributed.ddp import unwrap_ddp
from inspectnn.distributed.fsdp import fake_mode_of
from inspectnn.distributed.rank import VIEWS, View, rank_info
from inspectnn.errors import ForwardError, InvalidInputError
from inspectnn.forward import (
    _caller,
    _eager,
    _fake_substitutes,
    _home,
    _needs_grad,
    _Run,
    _substitutes,
    _training_step,
)
from inspectnn.inputs import build_inputs, check_model, check_sharded, move_to, parse_device
from inspectnn.params import count_parameters
from inspectnn.preserve import Mode
from inspectnn.records import ErrorInfo
from inspectnn.report import Report
from inspectnn.summary import has_lazy, static_report, takes_no_input
from inspectnn.trace.tracer import ContractBreach, Tracer
from inspectnn.training.fake import FakeCpu
from inspectnn.training.optim import OptimizerLike
from inspectnn.training.step import AmpLike, LossFn, StepOptions, parse_amp

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
        device_memory: The device's memory in bytes (``device_memory=``), or None.
        ddp_world: The world size of the ``DistributedDataParallel`` that wrapped the
            model (``distributed/ddp.py``), for ``checks/modes.py``'s ``ddp-batch``
            finding; None for a model that was not wrapped.
    """

    device: torch.device | None
    mode: Mode
    input_size: Sequence[int] | Sequence[Sequence[int]] | None
    dtypes: str | torch.dtype | Sequence[str | torch.dtype] | None
    on_error: OnError
    check_numerics: bool
    torch_functions: Any
    step: StepOptions | None = None
    amp: torch.dtype | None = None
    view: View = "local"
    device_memory: int | None = None
    ddp_world: int | None = None

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
        step: StepOptions | None = None,
        amp: AmpLike = None,
        view: View = "local",
        device_memory: int | str | None = None,
    ) -> InspectOptions:
        """The options, or InvalidInputError naming the argument that is wrong.

        ``amp`` is parsed once here; a training step's options carry the same dtype.
        """
        _choice(mode, ("eval", "train", "same"), "mode")
        _choice(on_error, ("raise", "report"), "on_error")
        _choice(view, VIEWS, "view")
        target = parse_device(device) if device is not None else None
        if dtypes is not None and input_size is None:
            raise InvalidInputError("dtypes goes with input_size; with real inputs, cast them.")
        dtype = parse_amp(amp)
        if step is not None:
            step = replace(step, amp=dtype)
        return cls(
            target, mode, input_size, dtypes, on_error, check_numerics, torch_functions, step,
            dtype, view, device_memory_bytes(device_memory),
        )  # fmt: skip


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
    mode: Mode | None = None,
    input_size: Sequence[int] | Sequence[Sequence[int]] | None = None,
    dtypes: str | torch.dtype | Sequence[str | torch.dtype] | None = None,
    on_error: OnError = "raise",
    check_numerics: bool = False,
    backward: bool = False,
    loss: LossFn | None = None,
    target: Any = None,
    optimizer: OptimizerLike | None = None,
    amp: AmpLike = None,
    view: View = "local",
    device_memory: int | str | None = None,
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
        mode: ``"eval"`` (the default without ``backward``) or ``"train"`` (the
            default with it) sets every submodule's flag for the forward; ``"same"``
            keeps the flags. All are restored afterwards.
        input_size: Instead of inputs, one shape or a list of shapes to build them.
        dtypes: With ``input_size``: one dtype or one per shape (default: the
            model's float dtype). Integer inputs are valid ``nn.Embedding`` indices.
        on_error: ``"raise"`` (default) raises ForwardError when the forward
            fails; ``"report"`` returns the partial report with ``.error`` set.
        check_numerics: Find the first layer whose output holds NaN or Inf
            (one extra reduction per output; skipped on meta).
        backward: Run a training step after the forward: the loss, its backward
            and, given ``optimizer``, the optimizer's step (on shadow tensors,
            never the model's). ``report.memory`` is the step's memory,
            ``report.training`` its gradients per layer and parameter. Passing
            ``loss``, ``target`` or ``optimizer`` turns it on.
        loss: ``loss(output, target)`` (``loss(output)`` without ``target``);
            default: the sum of the output's floating tensors.
        target: What ``loss`` compares the output with.
        optimizer: ``"adamw"``, ``"adam"``, ``"sgd"`` (momentum 0.9), an
            ``Optimizer`` class, a callable ``params -> Optimizer`` or an
            instance (copied by class and defaults; its parameters are checked).
        amp: Autocast dtype for the forward and loss: ``"bf16"`` or ``"fp16"``.
            On ``"meta"`` the run is on fake CPU tensors, where CPU autocast
            casts (it does nothing on meta); the report still says meta.
        view: On a rank of a sharded model (``DTensor`` values): ``"local"`` (the
            default) tables show each ``DTensor``'s shard on this rank, as the
            rank holds and computes it; ``"global"`` its whole shape. The records
            hold both (``TensorMeta.shape`` global, ``.local_shape``); FLOPs and
            activation bytes are this rank's either way.
        device_memory: The device's memory, as bytes or a size such as ``"80GB"``
            (powers of 1024): a ``device-memory`` error finding when this rank would
            not fit (the step's peak with ``backward``, else its parameters, buffers
            and the forward's activations), naming what dominates.
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
        model, ddp_world = unwrap_ddp(check_model(model))  # DDP: the model it wraps
        backward = backward or loss is not None or target is not None or optimizer is not None
        step = StepOptions(loss, target, optimizer) if backward else None
        options = InspectOptions.checked(
            device=device,
            mode=mode if mode is not None else "train" if backward else "eval",
            input_size=input_size,
            dtypes=dtypes,
            on_error=on_error,
            check_numerics=check_numerics,
            torch_functions=outside,
            step=step,
            amp=amp,
            view=view,
            device_memory=device_memory,
        )
        if ddp_world is not None:
            options = replace(options, ddp_world=ddp_world)
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
    world = options.ddp_world
    notes = [ddp_finding(world, args, kwargs)] if world is not None else []
    seen: set[int] = set()
    every = [(n, m) for n, m in walk if not (id(m) in seen or seen.add(id(m)))]  # type: ignore[func-returns-value]
    named = _eager(every)
    # an FSDP2 model simulate() materialised as fake shards: it runs, unmoved, in their mode
    faked = fake_mode_of(m for _, m in every) if target.type == "meta" else None
    check_sharded(every, target, device is not None and faked is None)
    try:
        counts = count_parameters(model, walk)
    except ValueError:  # a lazy module's parameter is not created yet
        _refuse_lazy(walk)
        raise
    substitutes = _substitutes(every, target) if device is not None and faked is None else None
    wanted = options.step
    if wanted is not None and device is not None:  # the loss's target goes where the inputs went
        wanted = replace(wanted, target=move_to(wanted.target, target))
    # amp on meta runs on fake CPU tensors: torch's autocast does nothing on meta
    fake = FakeCpu() if options.amp is not None and target.type == "meta" else None
    if faked is not None:  # the model holds fakes already: only its inputs become some
        fake = FakeCpu(faked)
    if fake is not None:
        if faked is None:
            substitutes = _fake_substitutes(every, fake)
        args, kwargs = fake.values((args, kwargs))
        if wanted is not None:
            wanted = replace(wanted, target=fake.values(wanted.target))
    numerics = options.check_numerics and fake is None  # skipped on meta
    run = _Run(model, mode, every, named, substitutes, numerics)
    run.fake = fake
    call = _caller(model, substitutes, args, kwargs, options.amp if options.step is None else None)
    outside = options.torch_functions
    if wanted is not None:
        values = (args, kwargs, wanted.target)
        step = _training_step(model, every, substitutes, wanted, target, values, fake)
        run.real = target.type != "meta"
        tracer, failure = run(call, outside, grad=True, step=step)
    else:
        tracer, failure = run(call, outside, grad=False)
    if failure is not None and options.step is None and _needs_grad(failure):
        # The forward takes gradients itself (a MAML-style inner loop): run it again
        # with autograd on, every ``.grad`` saved and put back.
        tracer, failure = run(call, outside, grad=True)
    root_mode = model.training if mode == "same" else mode == "train"
    failed = tracer.failed_call(failure) if failure is not None else None
    meta = target.type == "meta"
    facts = _Facts(
        tracer, counts, run, walk=walk, training=root_mode, failed=failed, meta=meta,
        amp=options.amp, device_memory=options.device_memory, notes=notes,
    )  # fmt: skip
    step_report = None
    if run.result is not None and options.step is not None:
        step_report = training_report(tracer, run.result, options.step)
    tracer.detach()  # from here on nothing refers to the model
    build = partial(_assemble, tracer, counts, facts, step_report)
    report = Report.deferred(
        type(model).__name__,
        str(target),
        "train" if root_mode else "eval",
        build,
        training=step_report,
        rank=rank_info(model.parameters(), options.view),
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
