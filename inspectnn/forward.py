"""One traced forward and the device it runs on: ``_Run`` and substitute tensors.

``_Run`` runs the model once inside ``preserve.Preserved`` (the model is put back
bit for bit) and a ``trace.tracer.Tracer``, with autograd on or off and the
caller's torch-function handling restored for the forward; ``_needs_grad`` says
when a failed forward should be run again with autograd on. Device choice:
``_home`` (where the model is), ``_substitutes`` / ``_copy_to`` (copies of its
tensors on another device, passed to ``torch.func.functional_call`` by
``_caller``). ``_eager`` leaves the insides of TorchScript modules out of the
traced list.

A run on meta with ``amp=`` (a training step's or the forward's alone) is on fake
CPU tensors (``_fake_substitutes``; autocast does nothing on meta) and its records
are written as meta (``Tracer(device_as="meta")``).

Imports ``errors.py``, ``inputs.py``, ``preserve.py``, ``records.py``,
``trace/tracer.py``, ``trace/grads.py`` and ``training/step.py``; used by ``api.py``
and ``assemble.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_leaves

from inspectnn.errors import InvalidInputError
from inspectnn.inputs import model_device
from inspectnn.preserve import Mode, Preserved
from inspectnn.trace.grads import GradWatch, first_input_bytes
from inspectnn.trace.tracer import ContractBreach, Tracer
from inspectnn.training.fake import FakeCpu
from inspectnn.training.step import StepOptions, StepResult, TrainingStep


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
        self.real = True  # a training step computes gradient norms (not on meta)
        self.result: StepResult | None = None  # what a training step measured
        self.fake: FakeCpu | None = None  # a step on meta with amp: its fake CPU tensors' mode
        self.written: list[str] = []  # "path.attr" of tensor attributes written in place

    def __call__(
        self,
        call: Callable[[], Any],
        outside: Any,
        *,
        grad: bool,
        step: Callable[[Tracer], TrainingStep] | None = None,
    ) -> tuple[Tracer, Exception | None]:
        """Trace ``call()`` with autograd on or off; the tracer and what the forward raised.

        With ``step`` (a training step, made for the tracer), the forward runs inside
        the step's tracking and the loss, backward and optimizer step follow it; its
        result is in ``self.result``. With ``self.fake`` set (amp on meta), the
        forward, loss and backward run inside its ``FakeTensorMode`` (the optimizer's
        meta shadows outside). A ``BaseException`` that is not an ``Exception``
        (KeyboardInterrupt) propagates, after the model is put back.
        """
        self.with_grad = grad and step is None  # a rerun for a forward that takes gradients
        watch = GradWatch(real=self.real) if step is not None else None
        tracer = Tracer(
            self.model, named=self.named, check_numerics=self.check_numerics, grads=watch,
            device_as="meta" if self.fake is not None else None,
        )  # fmt: skip
        failure: BaseException | None = None
        preserved = Preserved(
            self.model,
            self.mode,
            save_buffers=self.substitutes is None,
            modules=self.modules,
            save_grads=grad,
        )
        ran = False  # the forward returned: what fails now is the loss or the backward
        within = self.fake.mode if self.fake is not None else None
        with preserved, torch.set_grad_enabled(grad):
            training = step(tracer) if step is not None else None
            try:
                if training is None:
                    with within or nullcontext(), _torch_functions(outside), tracer:
                        output = call()
                    _settle(output)
                    del output
                else:
                    faked = within or nullcontext()
                    with faked, training.forward(), _torch_functions(outside), tracer:
                        output = call()
                    ran = True
                    sizes = first_input_bytes(tracer.raw_calls(), tracer.path_of)
                    self.result = training.finish(output, sizes, within)
                    _settle(output)
                    del output
            except BaseException as err:
                failure = err
            finally:
                if training is not None:
                    training.close()
            if failure is not None and not isinstance(failure, Exception):
                raise failure
            if ran and isinstance(failure, InvalidInputError):  # a loss= or target= to fix
                raise failure
        if preserved.written:
            self.written = _attribute_names(self.every, preserved.written)
        return tracer, failure


def _settle(output: Any) -> None:
    """Wait for the collectives still in flight in the forward's output (the all-reduce
    a ``RowwiseParallel`` layer returns as an ``AsyncCollectiveTensor``): the output
    is dropped here, and torch warns at exit of every collective nobody waited for."""
    module = sys.modules.get("torch.distributed._functional_collectives")
    pending = getattr(module, "AsyncCollectiveTensor", None)
    if pending is None:
        return
    for leaf in tree_leaves(output):
        if isinstance(leaf, pending):
            leaf.wait()


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
    amp: torch.dtype | None = None,
) -> Callable[[], Any]:
    """The forward as a call: on the model's tensors or substitutes, under autocast if asked."""
    if substitutes is None:
        call: Callable[[], Any] = lambda: model(*args, **kwargs)  # noqa: E731
    else:
        call = lambda: torch.func.functional_call(model, substitutes, args, kwargs, strict=False)  # noqa: E731
    if amp is None:
        return call
    device = _home(list(model.named_modules())).type if substitutes is None else next(
        (t.device.type for t in substitutes.values()), "cpu"
    )

    def autocast_call() -> Any:
        with torch.autocast(device_type=device, dtype=amp):
            return call()

    return autocast_call


def _training_step(
    model: nn.Module,
    every: list[tuple[str, nn.Module]],
    substitutes: dict[str, Tensor] | None,
    options: StepOptions,
    device: torch.device,
    values: Any,
    fake: FakeCpu | None = None,
) -> Callable[[Tracer], TrainingStep]:
    """How to make the training step for a tracer: on the tensors the forward uses.

    With ``fake`` (``substitutes`` are its fake CPU tensors, ``device`` is meta),
    autocast is CPU's and the memory report says meta.
    """
    named = list(model.named_parameters())
    swap = substitutes or {}
    used = [swap.get(n, p) for n, p in named]
    buffers = [
        swap.get(n, t) for n, t in _named_tensors(every) if not isinstance(t, nn.Parameter)
    ]

    def make(tracer: Tracer) -> TrainingStep:
        step = TrainingStep(
            options, device=device, named=named, used=used, modules=every,
            module_of=tracer.current_path,
            autocast_device="cpu" if fake is not None else None,
            report_device="meta" if fake is not None else None,
        )  # fmt: skip
        step.begin(buffers, values)
        return step

    return make


def _fake_substitutes(named: list[tuple[str, nn.Module]], fake: FakeCpu) -> dict[str, Tensor]:
    """Fake CPU stand-ins for every parameter and buffer of the model (a run on meta
    with ``amp``: CPU autocast applies to them, where it does nothing on meta)."""
    return {name: fake(t) for name, t in _named_tensors(named)}
