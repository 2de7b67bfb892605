"""One training step, measured: forward, loss, backward and optimizer step.

``measure_step`` runs the step on whatever device the model's tensors are on (the
CPU, CUDA, meta) under ``training/memory.py``'s ``AllocationTracker`` and returns
its ``MemoryReport`` with what the backward left in each parameter's ``.grad``
(``StepGrads``). The forward runs on the user's model inside ``Preserved``; the
optimizer step runs on shadow tensors (``training/optim.py``) given empty
gradients like the real ones, so that its allocations are the real step's while
the user's parameters and optimizer stay untouched. Afterwards no ``.grad`` is
left (gradients the user had are put back), nor any hook, and the RNG is restored.

Autocast (``amp=``) wraps the forward and the loss, as ``torch.autocast`` does in
a training loop. On meta, where torch's autocast does nothing, the step runs under
a ``FakeTensorMode`` on fake CPU tensors standing in for the meta ones, where CPU
autocast applies. Activation checkpointing inside the model runs as it does:
what it frees in the forward and recomputes in the backward is what is measured.

Module paths come from forward pre/post hooks on every module; in the backward,
the module is the last one whose output's gradient arrived (a recompute's
forward hooks say where it runs).

May import: torch, ``errors.py``, ``preserve.py``, ``values.py``,
``training/memory.py``, ``training/optim.py``, ``training/records.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from itertools import chain
from typing import Any, TypeAlias

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from inspectnn.errors import InvalidInputError
from inspectnn.preserve import Mode, Preserved
from inspectnn.training.memory import CUDA_BLOCK, AllocationTracker, ModuleInfo, storage_bytes
from inspectnn.training.optim import OptimizerLike, ShadowOptimizer, shadow_optimizer, state_tensors
from inspectnn.training.records import MemoryReport
from inspectnn.values import map_tensors, tensors

__all__ = [
    "AmpLike",
    "GradInfo",
    "LossFn",
    "StepGrads",
    "compute_loss",
    "input_grads_kept",
    "measure_step",
    "parse_amp",
]

AmpLike: TypeAlias = str | torch.dtype | None
LossFn = Callable[..., Any]

_AMP = {
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
}


@dataclass(frozen=True, slots=True)
class GradInfo:
    """One parameter's gradient after the backward.

    Attributes:
        name: The parameter's name (its first, when tied).
        shape: ``param.grad.shape``.
        dtype: ``param.grad.dtype``, as torch writes it (``"torch.float32"``).
        norm: ``param.grad.norm()`` on a real device; None on meta.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    norm: float | None


@dataclass(frozen=True, slots=True)
class StepGrads:
    """What the backward gave the parameters, and what the optimizer was handed.

    Attributes:
        params: Each parameter that got a gradient, in the model's order.
        missing: Names of parameters that require grad but got none.
        frozen_in_optimizer: Parameters with ``requires_grad=False`` that the
            user's optimizer instance holds.
        left_out_of_optimizer: Trainable parameters the user's optimizer
            instance does not hold.
    """

    params: tuple[GradInfo, ...]
    missing: tuple[str, ...]
    frozen_in_optimizer: tuple[str, ...] = ()
    left_out_of_optimizer: tuple[str, ...] = ()


def parse_amp(amp: AmpLike) -> torch.dtype | None:
    """The autocast dtype ``amp`` names (``"bf16"``, ``"fp16"``, a torch dtype), or None.

    Raises:
        InvalidInputError: ``amp`` names no 16-bit floating dtype.
    """
    if amp is None:
        return None
    dtype = _AMP.get(amp.lower()) if isinstance(amp, str) else amp
    if dtype not in (torch.bfloat16, torch.float16):
        raise InvalidInputError(
            f"amp={amp!r} is not an autocast dtype; pass 'bf16' or 'fp16' "
            "(or torch.bfloat16 / torch.float16), or None for full precision"
        )
    return dtype


def compute_loss(output: Any, loss: LossFn | None, target: Any) -> Tensor:
    """The step's loss: ``loss(output, target)``, ``loss(output)``, or the output's sum.

    Without ``loss``, the loss is the sum of every floating tensor of the output
    that requires grad (nested outputs flattened).

    Raises:
        InvalidInputError: No loss can be made, or it is not a scalar tensor that
            requires grad.
    """
    if loss is None:
        if target is not None:
            raise InvalidInputError(
                "target= was given without loss=; pass loss= (nn.CrossEntropyLoss()), "
                "or leave target out to use the sum of the output as the loss"
            )
        parts = [t.sum() for t in tensors(output) if t.is_floating_point() and t.requires_grad]
        if not parts:
            raise InvalidInputError(
                "the output holds no floating tensor that requires grad, so there is "
                "nothing to backward; check that parameters require grad, or pass loss="
            )
        value: Any = parts[0]
        for part in parts[1:]:
            value = value + part
    else:
        value = loss(output) if target is None else loss(output, target)
    if not isinstance(value, Tensor) or value.numel() != 1:
        what = f"shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
        raise InvalidInputError(
            f"the loss is {what}, not a one-element tensor; pass a loss= that reduces "
            "(nn.CrossEntropyLoss() with its default reduction='mean')"
        )
    if not value.requires_grad:
        raise InvalidInputError(
            "the loss does not require grad: no parameter it depends on requires grad; "
            "unfreeze some, or check that the forward does not run under torch.no_grad()"
        )
    return value


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


def _named_params(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return list(model.named_parameters())  # each tensor once, by its first name


def _device(model: nn.Module, values: Any) -> torch.device:
    first = next(chain(model.parameters(), model.buffers(), tensors(values)), None)
    return torch.device("cpu") if first is None else first.device


def _module_infos(
    modules: Sequence[tuple[str, nn.Module]],
    input_bytes: Mapping[str, int],
    shadow: ShadowOptimizer | None,
    origin: Mapping[int, int],
) -> list[ModuleInfo]:
    """One ``ModuleInfo`` per module (first path), each parameter with its first module.

    ``origin`` maps a stand-in parameter's id to the user's parameter's (fake runs).
    """
    state = state_tensors(shadow.optimizer) if shadow is not None else {}
    owned: set[int] = set()
    seen: set[int] = set()
    infos = []
    for path, mod in modules:
        if id(mod) in seen:
            continue
        seen.add(id(mod))
        own = [p for p in mod._parameters.values() if p is not None and id(p) not in owned]
        owned.update(map(id, own))
        grads = tuple(p.grad for p in own if p.grad is not None)
        opt: list[Tensor] = []
        if shadow is not None:
            for p in own:
                s = shadow.shadows.get(origin.get(id(p), id(p)))
                if s is not None:
                    opt += state.get(id(s), [])
        infos.append(
            ModuleInfo(path, type(mod).__name__, tuple(own), grads, tuple(opt),
                       input_bytes.get(path, 0))
        )  # fmt: skip
    return infos


def _grads(
    named: Sequence[tuple[str, Tensor]], real: bool
) -> tuple[tuple[GradInfo, ...], tuple[str, ...]]:
    infos: list[GradInfo] = []
    missing: list[str] = []
    with torch.no_grad():
        for name, p in named:
            g = p.grad
            if g is None:
                if p.requires_grad:
                    missing.append(name)
                continue
            norm = float(g.norm()) if real else None
            infos.append(GradInfo(name, tuple(g.shape), str(g.dtype), norm))
    return tuple(infos), tuple(missing)


class _Fake:
    """The model's meta tensors swapped for fake CPU tensors, so CPU autocast applies.

    ``swap()`` puts fake parameters and buffers in the model's slots (``Preserved``
    puts the originals back) and returns the inputs made fake; ``mode`` is the
    ``FakeTensorMode`` to run the forward, loss and backward under.
    """

    def __init__(self) -> None:
        from torch._subclasses.fake_tensor import FakeTensorMode

        self.mode = FakeTensorMode()
        self.made: dict[int, Tensor] = {}

    def _fake(self, t: Tensor) -> Tensor:
        if id(t) not in self.made:
            with self.mode:
                fake = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="cpu")
            if isinstance(t, nn.Parameter):
                fake = nn.Parameter(fake, requires_grad=t.requires_grad)
            self.made[id(t)] = fake
        return self.made[id(t)]

    def swap(self, modules: Sequence[tuple[str, nn.Module]], values: Any) -> Any:
        for _, mod in modules:
            for slots in (mod._parameters, mod._buffers):
                for name, t in list(slots.items()):
                    if t is not None:
                        slots[name] = self._fake(t)  # type: ignore[assignment]
        return map_tensors(values, self._fake)


def _autocast(device_type: str, dtype: torch.dtype | None) -> AbstractContextManager[Any]:
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device_type, dtype=dtype)


@contextmanager
def input_grads_kept(values: Any) -> Iterator[None]:
    """Put back the ``.grad`` of the inputs that are leaves requiring grad."""
    leaves = [(t, t.grad) for t in tensors(values) if t.requires_grad and t.is_leaf]
    try:
        yield
    finally:
        for t, g in leaves:
            t.grad = g


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
) -> tuple[MemoryReport, StepGrads]:
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
            Code that reads values unless it is being traced (Hugging Face's mask
            building) runs on fake tensors, not on meta ones; meta is faster.

    Returns:
        The step's ``MemoryReport`` and the gradients it gave (``StepGrads``).

    Raises:
        InvalidInputError: A loss, optimizer or amp that cannot be used.
    """
    kwargs = dict(kwargs or {})
    args = args if isinstance(args, tuple) else (args,)
    dtype = parse_amp(amp)
    device = _device(model, (args, kwargs))
    on_fake = dtype is not None if fake is None else fake
    step = _Step(model, device, dtype, on_fake and device.type == "meta")
    if optimizer is not None:
        step.shadow = shadow_optimizer(optimizer, step.named, real_device=device.type)
    with ExitStack() as stack:
        args, kwargs, target = step.enter(stack, mode, (args, kwargs, target))
        output, value = step.forward_backward(args, kwargs, target, loss)
        step.optimizer_step()
        report = step.report()
        grads = step.grads()
        del output, value
    return report, grads


class _Step:
    """The parts of ``measure_step``, sharing the model, the tracker and the shadows."""

    def __init__(
        self, model: nn.Module, device: torch.device, dtype: torch.dtype | None, fake: bool
    ) -> None:
        self.model = model
        self.device = device
        self.dtype = dtype
        self.named = _named_params(model)
        self.used: list[tuple[str, Tensor]] = list(self.named)  # the stand-ins on fake runs
        self.origin: dict[int, int] = {}  # id(stand-in) -> id(user's parameter)
        self.modules = list(model.named_modules())
        self.where = _Modules(self.modules)
        granularity = CUDA_BLOCK if device.type == "cuda" else 1
        self.tracker = AllocationTracker(self.where, granularity)
        self.faking = _Fake() if fake else None
        self.shadow: ShadowOptimizer | None = None

    def enter(self, stack: ExitStack, mode: Mode, values: Any) -> Any:
        """Save the model, hook it, swap in fake tensors if asked; returns the inputs to use."""
        stack.callback(self.tracker.close)  # also when the step fails
        mods = [m for _, m in self.modules]
        stack.enter_context(Preserved(self.model, mode, modules=mods, save_grads=True))
        stack.enter_context(input_grads_kept(values))
        for _, p in self.named:
            p.grad = None
        for handle in self.where.install(self.modules):
            stack.callback(handle.remove)
        if self.shadow is not None:
            stack.callback(self.shadow.detach)
        if self.faking is not None:
            values = self.faking.swap(self.modules, values)
            self.used = [(n, self.faking.made[id(p)]) for n, p in self.named]
            self.origin = {id(u): id(p) for (_, p), (_, u) in zip(self.named, self.used,
                                                                   strict=True)}  # fmt: skip
        tracker = self.tracker
        tracker.register((p for _, p in self.used), "parameters")
        tracker.register(self.model.buffers(), "buffers")
        tracker.register(tensors(values), "inputs")
        if self.shadow is not None:
            tracker.register(self.shadow.shadows.values(), None)
        return values

    def forward_backward(
        self, args: tuple[Any, ...], kwargs: Mapping[str, Any], target: Any, loss: LossFn | None
    ) -> tuple[Any, Tensor]:
        """The forward and the loss (saved tensors marked, under autocast), then backward."""
        tracker = self.tracker
        outer = self.faking.mode if self.faking is not None else nullcontext()
        autocast_on = "cpu" if self.faking is not None else self.device.type
        with outer:
            with tracker, tracker.saved(), _autocast(autocast_on, self.dtype):
                tracker.enter_phase("forward")
                output = self.model(*args, **kwargs)
                self.where.forward = False
                tracker.enter_phase("loss")
                value = compute_loss(output, loss, target)
            with tracker:
                tracker.enter_phase("backward")
                value.backward()  # type: ignore[no-untyped-call]
        self.where.in_backward = ""
        return output, value

    def optimizer_step(self) -> None:
        """The optimizer's step on the shadows, given empty gradients like the real ones."""
        if self.shadow is None:
            return
        grads = {
            id(p): u.grad
            for (_, p), (_, u) in zip(self.named, self.used, strict=True)
            if u.grad is not None
        }
        self.tracker.register(self.shadow.attach(grads), None)
        with self.tracker:
            self.tracker.enter_phase("optimizer")
            self.shadow.optimizer.step()

    def report(self) -> MemoryReport:
        """The tracker's report, while gradients and optimizer state are alive."""
        shadow, dtype = self.shadow, self.dtype
        return self.tracker.finish(
            modules=_module_infos(self.modules, self.where.input_bytes, shadow, self.origin),
            device="meta" if self.faking is not None else str(self.device),
            optimizer=type(shadow.optimizer).__name__ if shadow is not None else None,
            amp=str(dtype).removeprefix("torch.") if dtype is not None else None,
        )

    def grads(self) -> StepGrads:
        """What the backward left in each parameter's ``.grad``, and the optimizer's lists."""
        params, missing = _grads(self.used, real=self.device.type != "meta")
        shadow = self.shadow
        return StepGrads(
            params,
            missing,
            shadow.frozen if shadow is not None else (),
            shadow.left_out if shadow is not None else (),
        )
