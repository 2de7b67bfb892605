"""``measure_step``: one training step of a model measured on its own, without the tracer.

The step's core is ``training/step.py``'s ``TrainingStep``; here the module running
comes from forward pre/post hooks on every module (in the backward: the module whose
output's gradient arrived last), and the model is kept by ``Preserved``. Used by
``training/reference.py``'s comparisons, the benchmarks and the tests of the memory
engine; ``inspect(..., backward=True)`` runs the same core inside its traced forward.

On meta with ``amp=`` (or ``fake=True``) the step runs under a ``FakeTensorMode`` on
fake CPU tensors standing in for the meta ones, where CPU autocast applies (torch's
autocast does nothing on meta).

May import: torch, ``preserve.py``, ``values.py``, ``training/memory.py``,
``training/optim.py``, ``training/records.py``, ``training/step.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack, nullcontext
from itertools import chain
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from inspectnn.preserve import Mode, Preserved
from inspectnn.training.fake import FakeCpu
from inspectnn.training.memory import storage_bytes
from inspectnn.training.optim import OptimizerLike
from inspectnn.training.records import MemoryReport
from inspectnn.training.step import (
    AmpLike,
    LossFn,
    StepOptions,
    StepResult,
    TrainingStep,
    parse_amp,
)
from inspectnn.values import tensors

__all__ = ["measure_step"]


def measure_step(
    model: nn.Module,
    args: Any,
    kwargs: Mapping[str, Any] | None = None,
    *,
    loss: LossFn | None = None,
    target: Any = None,
    optimizer: OptimizerLike | None = None,
    amp: AmpLike = None,
    mode: Mode = "train",
    fake: bool | None = None,
) -> tuple[MemoryReport, StepResult]:
    """Run one training step of ``model`` and measure its memory.

    Args:
        model: The user's model; left exactly as it was.
        args: The forward's positional arguments (a tuple, or one value).
        kwargs: Its keyword arguments.
        loss: ``loss(output, target)`` (or ``loss(output)`` without a target);
            by default the sum of the output's floating tensors.
        target: The target passed to ``loss``.
        optimizer: A name (``"adamw"``, ``"adam"``, ``"sgd"``), an Optimizer
            class, a callable ``params -> Optimizer`` or an instance; None runs
            no optimizer step.
        amp: The autocast dtype of the forward and loss (``"bf16"``, ``"fp16"``).
        mode: ``"train"`` (a training step's default), ``"eval"`` or ``"same"``.
        fake: On meta, run on fake CPU tensors (``FakeTensorMode``) rather than
            meta ones. None: only when ``amp`` is given (CPU autocast needs it).

    Returns:
        The step's ``MemoryReport``, and the ``StepResult``: each parameter's
        ``ParamGrad``, the loss's value, the optimizer's frozen and left-out parameters.

    Raises:
        InvalidInputError: A loss, optimizer or amp that cannot be used.
    """
    kwargs = dict(kwargs or {})
    args = args if isinstance(args, tuple) else (args,)
    options = StepOptions(loss, target, optimizer, parse_amp(amp))
    device = _device(model, (args, kwargs))
    on_fake = options.amp is not None if fake is None else fake
    faking = _Fake() if on_fake and device.type == "meta" else None
    modules = list(model.named_modules())
    named = list(model.named_parameters())
    where = _Modules(modules)
    with ExitStack() as stack:
        mods = [m for _, m in modules]
        stack.enter_context(Preserved(model, mode, modules=mods, save_grads=True))
        values: Any = (args, kwargs, target)
        for handle in where.install(modules):
            stack.callback(handle.remove)
        used: list[Tensor] = [p for _, p in named]
        if faking is not None:
            values = faking.swap(modules, values)
            used = [faking.made[id(p)] for p in used]
        args, kwargs, target = values
        step = TrainingStep(
            StepOptions(loss, target, optimizer, options.amp),
            device=device, named=named, used=used, modules=modules, module_of=where,
            autocast_device="cpu" if faking is not None else None,
            report_device="meta" if faking is not None else None,
        )  # fmt: skip
        stack.callback(step.close)
        step.begin(model.buffers(), values)
        with faking.mode if faking is not None else nullcontext(), step.forward():
            output = model(*args, **kwargs)
        where.forward = False
        within = faking.mode if faking is not None else None
        result = step.finish(output, where.input_bytes, within)
        where.in_backward = ""
        del output
    return result.memory, result


def _device(model: nn.Module, values: Any) -> torch.device:
    first = next(chain(model.parameters(), model.buffers(), tensors(values)), None)
    return torch.device("cpu") if first is None else first.device


class _Modules:
    """The module running now, from forward hooks; in the backward, whose gradient came last.

    Calling it returns the current module path (``module_of`` for the tracker).
    """

    def __init__(self, modules: Sequence[tuple[str, nn.Module]]) -> None:
        self.paths: dict[int, str] = {}
        for path, mod in modules:
            self.paths.setdefault(id(mod), path)
        self.stack: list[str] = []
        self.in_backward = ""
        self.forward = True  # outputs get a gradient hook only in the step's forward
        self.input_bytes: dict[str, int] = {}

    def __call__(self) -> str:
        return self.stack[-1] if self.stack else self.in_backward

    def _pre(self, mod: nn.Module, args: Any, kwargs: Any) -> None:
        path = self.paths[id(mod)]
        self.stack.append(path)
        if path not in self.input_bytes:
            self.input_bytes[path] = storage_bytes(tensors((args, kwargs)))

    def _post(self, mod: nn.Module, args: Any, kwargs: Any, output: Any) -> None:
        path = self.stack.pop() if self.stack else self.paths[id(mod)]
        if self.forward and torch.is_grad_enabled():
            for t in tensors(output):
                if t.grad_fn is not None:
                    t.register_hook(self._arrived(path))  # type: ignore[no-untyped-call]

    def _arrived(self, path: str) -> Callable[[Tensor], None]:
        def hook(_grad: Tensor) -> None:
            self.in_backward = path

        return hook

    def install(self, modules: Sequence[tuple[str, nn.Module]]) -> list[RemovableHandle]:
        """Hook every module (each once); returns the handles to remove."""
        handles: list[RemovableHandle] = []
        seen: set[int] = set()
        for _, mod in modules:
            if id(mod) in seen:
                continue
            seen.add(id(mod))
            handles.append(mod.register_forward_pre_hook(self._pre, with_kwargs=True))
            handles.append(
                mod.register_forward_hook(self._post, with_kwargs=True, always_call=True)
            )
        return handles


class _Fake(FakeCpu):
    """The model's meta tensors swapped for fake CPU tensors, so CPU autocast applies.

    ``swap()`` puts fake parameters and buffers in the model's slots (``Preserved``
    puts the originals back) and returns the inputs made fake; ``mode`` is the
    ``FakeTensorMode`` to run the forward, loss and backward under.
    """

    def swap(self, modules: Sequence[tuple[str, nn.Module]], values: Any) -> Any:
        for _, mod in modules:
            for slots in (mod._parameters, mod._buffers):
                for name, t in list(slots.items()):
                    if t is not None:
                        slots[name] = self(t)  # type: ignore[assignment]
        return self.values(values)
