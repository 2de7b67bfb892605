"""One training step run and measured: loss, backward and optimizer step after a forward.

``TrainingStep`` is the step's core, shared by ``inspect(..., backward=True)`` (the
forward is the traced one, the module running is the tracer's) and
``training/standalone.py``'s ``measure_step`` (its own forward hooks). It registers
the tensors that exist before the step with ``training/memory.py``'s
``AllocationTracker``, runs the forward (``forward()``, a context manager: the
tracker, saved-tensor hooks and autocast on) and then ``finish()``: the loss, the
backward, and the optimizer's step on shadow tensors (``training/optim.py``) given
empty gradients like the real ones, so that its allocations are the real step's
while the user's parameters and optimizer stay untouched. Putting the model back
(``.grad``, flags, RNG) is the caller's ``Preserved``; the step puts back its inputs'
and target's own ``.grad`` and hooks, and its backward never runs on into the graph
a non-leaf input came from.

Autocast (``amp=``) wraps the forward and the loss, as ``torch.autocast`` does in a
training loop. torch's autocast does nothing on meta tensors: a step on meta with
``amp=`` runs on fake CPU tensors instead (``training/fake.py``'s ``FakeCpu``;
``autocast_device="cpu"``, ``report_device="meta"``), the forward, loss and backward
inside its ``FakeTensorMode``.

May import: torch, ``errors.py``, ``values.py``, ``training/memory.py``,
``training/optim.py``, ``training/records.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeAlias

import torch
from torch import Tensor, nn

from inspectnn.errors import InvalidInputError
from inspectnn.training.memory import CUDA_BLOCK, AllocationTracker, ModuleInfo
from inspectnn.training.optim import OptimizerLike, ShadowOptimizer, shadow_optimizer, state_tensors
from inspectnn.training.records import PHASES, GradMeta, MemoryReport, ParamGrad
from inspectnn.values import tensors

__all__ = [
    "AmpLike",
    "LossFn",
    "StepOptions",
    "StepResult",
    "TrainingStep",
    "compute_loss",
    "grad_meta",
    "loss_text",
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
class StepOptions:
    """What the user asked of the step (``inspect``'s ``loss``, ``target``,
    ``optimizer`` and ``amp``, checked)."""

    loss: LossFn | None = None
    target: Any = None
    optimizer: OptimizerLike | None = None
    amp: torch.dtype | None = None

    def __post_init__(self) -> None:
        _check_target(self.loss, self.target)  # before the forward runs, not after


@dataclass(frozen=True, slots=True)
class StepResult:
    """What ``TrainingStep.finish`` measured."""

    memory: MemoryReport
    params: tuple[ParamGrad, ...]
    loss_value: float | None
    frozen_in_optimizer: tuple[str, ...]
    left_out_of_optimizer: tuple[str, ...]

    @property
    def missing(self) -> tuple[str, ...]:
        """Names of the parameters that require grad but got none."""
        return tuple(p.name for p in self.params if p.grad is None and p.requires_grad)


def loss_text(loss: LossFn | None) -> str:
    """How the loss is made, in words (``"sum of the output"``, ``"CrossEntropyLoss"``)."""
    if loss is None:
        return "sum of the output"
    if isinstance(loss, nn.Module):
        return type(loss).__name__
    return getattr(loss, "__qualname__", None) or type(loss).__name__


def grad_meta(g: Tensor, real: bool, path: str = "") -> GradMeta:
    """A gradient's shape, dtype and (on a real device) float32 norm."""
    norm = float(torch.linalg.vector_norm(g, dtype=torch.float32)) if real else None
    return GradMeta(tuple(g.shape), str(g.dtype).removeprefix("torch."), norm, path)


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
    _check_target(loss, target)
    if loss is None:
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
        value = _call_loss(loss, output, target)
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


def _check_target(loss: LossFn | None, target: Any) -> None:
    if loss is None and target is not None:
        raise InvalidInputError(
            "target= was given without loss=; pass loss= (nn.CrossEntropyLoss()), "
            "or leave target out to use the sum of the output as the loss"
        )


def _call_loss(loss: LossFn, output: Any, target: Any) -> Any:
    """``loss(output, target)`` (``loss(output)`` without a target); what it raises
    becomes an InvalidInputError: the forward went well, the loss's arguments did not."""
    try:
        return loss(output) if target is None else loss(output, target)
    except Exception as err:
        got = ", ".join(f"{tuple(t.shape)} {t.dtype}" for t in tensors(output)[:3])
        want = ", ".join(f"{tuple(t.shape)} {t.dtype}" for t in tensors(target)[:3])
        raise InvalidInputError(
            f"the loss {loss_text(loss)} raised {type(err).__name__}: "
            f"{str(err).rstrip('.')}. The model's "
            f"output is {got or 'no tensor'}" + (f", the target {want}" if want else "")
            + "; pass a loss= that takes that output (and a target= that matches it)"
        ) from err


class TrainingStep:
    """The loss, backward and optimizer step after a forward, under one allocation tracker.

    Args:
        options: The loss, target, optimizer and autocast dtype.
        device: Where the step runs (its tensors' device).
        named: The user's parameters, each once, with their names (the optimizer's
            param groups are matched against these).
        used: The tensors the forward uses in their place (the same tensors, or
            substitutes), in the same order.
        modules: ``(path, module)`` of each module, for the per-module rows.
        module_of: The path of the module running now (``""`` for none).
        autocast_device: The device type autocast is entered for (default: ``device``'s).
        report_device: The device the memory report names (default: ``device``).
    """

    def __init__(
        self,
        options: StepOptions,
        *,
        device: torch.device,
        named: Sequence[tuple[str, Tensor]],
        used: Sequence[Tensor],
        modules: Sequence[tuple[str, nn.Module]],
        module_of: Callable[[], str],
        autocast_device: str | None = None,
        report_device: str | None = None,
    ) -> None:
        self.options = options
        self.device = device
        self.named = list(named)
        self.used = list(used)
        self.pairs = {
            key: (u, id(p))
            for (_, p), u in zip(self.named, self.used, strict=True)
            for key in (id(p), id(u))
        }
        self.modules = list(modules)
        self.real = device.type != "meta" and not _is_fake(self.used)
        granularity = CUDA_BLOCK if device.type == "cuda" else 1
        self.module_of = module_of
        self.tracker = AllocationTracker(self._module_now, granularity)
        self.autocast_device = autocast_device or device.type
        self.report_device = report_device or str(device)
        self.shadow: ShadowOptimizer | None = None
        # the inputs' own .grad (object and values) and their non-leaf inputs' hooks, put back
        self.leaves: list[tuple[Tensor, Tensor | None, Tensor | None]] = []
        self.graphs: list[tuple[Tensor, set[int]]] = []
        if options.optimizer is not None:
            self.shadow = shadow_optimizer(
                options.optimizer, self.named, real_device=device.type  # type: ignore[arg-type]
            )

    def _module_now(self) -> str:
        """The module running, in the forward and backward; none in the loss and step."""
        phase = PHASES[self.tracker.phase]
        return self.module_of() if phase in ("forward", "backward") else ""

    def begin(self, buffers: Iterable[Tensor], values: Any) -> None:
        """Register what exists before the step and clear the used tensors' ``.grad``.

        ``values`` holds the forward's inputs and the loss's target. Those that
        require grad are noted: a leaf's ``.grad`` and a non-leaf's tensor hooks (the
        tracer hooks it) are put back by ``close``, and the backward stops at them
        (``finish``).
        """
        for t in tensors(values):
            if not t.requires_grad:
                continue
            if t.is_leaf:
                grad = t.grad
                self.leaves.append((t, grad, None if grad is None else grad.detach().clone()))
            else:
                self.graphs.append((t, set(t._backward_hooks or ())))
        tracker = self.tracker
        for u in self.used:
            u.grad = None
        tracker.register(self.used, "parameters")
        tracker.register(buffers, "buffers")
        tracker.register(tensors(values), "inputs")
        if self.shadow is not None:
            tracker.register(self.shadow.shadows.values(), None)

    @contextmanager
    def forward(self) -> Iterator[None]:
        """Run the forward inside: tracked, saved tensors marked, under autocast."""
        tracker = self.tracker
        with tracker, tracker.saved(), _autocast(self.autocast_device, self.options.amp):
            tracker.enter_phase("forward")
            yield

    def finish(
        self,
        output: Any,
        input_bytes: Mapping[str, int],
        within: AbstractContextManager[Any] | None = None,
    ) -> StepResult:
        """The loss, backward and optimizer step after the forward; what they held.

        Args:
            output: What the forward returned.
            input_bytes: Bytes of each module's inputs (by path), for what
                checkpointing it would keep.
            within: A context the loss and backward run in (the fake-tensor mode
                of a faked step); the optimizer's meta shadows run outside it.
        """
        tracker, options = self.tracker, self.options
        with within or nullcontext():
            with tracker, tracker.saved(), _autocast(self.autocast_device, options.amp):
                tracker.enter_phase("loss")
                value = compute_loss(output, options.loss, options.target)
            with tracker:
                tracker.enter_phase("backward")
                value.backward(inputs=self._differentiated())  # type: ignore[no-untyped-call]
        loss_value = float(value.detach()) if self.real else None
        shadow = self.shadow
        if shadow is not None:
            grads = {
                id(p): u.grad for (_, p), u in zip(self.named, self.used, strict=True)
                if u.grad is not None
            }  # fmt: skip
            tracker.register(shadow.attach(grads), None)
            with tracker:
                tracker.enter_phase("optimizer")
                shadow.optimizer.step()
        memory = tracker.finish(
            modules=_module_infos(self.modules, input_bytes, shadow, self.pairs),
            device=self.report_device,
            optimizer=type(shadow.optimizer).__name__ if shadow is not None else None,
            amp=str(options.amp).removeprefix("torch.") if options.amp is not None else None,
        )
        with torch.no_grad():
            params = tuple(
                ParamGrad(
                    name,
                    None if u.grad is None else grad_meta(u.grad, self.real),
                    u.requires_grad,
                )
                for (name, _), u in zip(self.named, self.used, strict=True)
            )
        return StepResult(
            memory,
            params,
            loss_value,
            shadow.frozen if shadow is not None else (),
            shadow.left_out if shadow is not None else (),
        )

    def _differentiated(self) -> list[Tensor] | None:
        """What the backward takes gradients for when an input or the target is a
        non-leaf that requires grad: the used tensors and the leaf inputs. The
        backward must not go on into the graph that input came from (another
        model's parameters, or the user's tensor it was copied from with
        ``device=``). None (a plain backward, everything) otherwise: a backward with
        ``inputs=`` refuses reentrant ``torch.utils.checkpoint``.

        Raises:
            InvalidInputError: Nothing of the model's requires grad.
        """
        if not self.graphs:
            return None
        wanted = [u for u in self.used if u.requires_grad] + [t for t, _, _ in self.leaves]
        if not wanted:
            raise InvalidInputError(
                "no parameter of the model requires grad (the loss only depends on the "
                "inputs' own graph), so the step has nothing to backward; unfreeze some "
                "parameters (requires_grad_(True)), or pass the inputs detached"
            )
        return wanted

    def close(self) -> None:
        """Drop the tracker's references and the shadows' gradients, put the inputs'
        ``.grad`` and hooks back (also after a failure)."""
        self.tracker.close()
        if self.shadow is not None:
            self.shadow.detach()
        with torch.no_grad():
            for t, grad, value in self.leaves:
                t.grad = grad
                if grad is not None and value is not None:
                    grad.copy_(value)
        for t, hooks in self.graphs:
            now = t._backward_hooks
            if now is not None:
                for key in [k for k in now if k not in hooks]:
                    del now[key]


def _is_fake(used: Sequence[Tensor]) -> bool:
    from torch._subclasses.fake_tensor import FakeTensor

    return any(isinstance(u, FakeTensor) for u in used[:1])


def _module_infos(
    modules: Sequence[tuple[str, nn.Module]],
    input_bytes: Mapping[str, int],
    shadow: ShadowOptimizer | None,
    pairs: Mapping[int, tuple[Tensor, int]],
) -> list[ModuleInfo]:
    """One ``ModuleInfo`` per module (first path), each parameter with its first module.

    ``pairs`` maps the id of a tensor in a module's slots (the user's parameter, or
    a stand-in put there) to the tensor the forward used and the user's parameter's id.
    """
    state = state_tensors(shadow.optimizer) if shadow is not None else {}
    owned: set[int] = set()
    seen: set[int] = set()
    infos = []
    for path, mod in modules:
        if id(mod) in seen:
            continue
        seen.add(id(mod))
        slots = [p for p in mod._parameters.values() if p is not None and id(p) not in owned]
        owned.update(map(id, slots))
        own = [pairs.get(id(p), (p, id(p))) for p in slots]
        grads = tuple(u.grad for u, _ in own if u.grad is not None)
        opt: list[Tensor] = []
        if shadow is not None:
            for _, user in own:
                s = shadow.shadows.get(user)
                if s is not None:
                    opt += state.get(id(s), [])
        infos.append(
            ModuleInfo(path, type(mod).__name__, tuple(u for u, _ in own), grads, tuple(opt),
                       input_bytes.get(path, 0))
        )  # fmt: skip
    return infos


def _autocast(device_type: str, dtype: torch.dtype | None) -> AbstractContextManager[Any]:
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device_type, dtype=dtype)
