"""Frozen records of one training step's memory, as the allocator would see it.

Every figure is in bytes of storage: a storage shared by several tensors (views,
tied weights, a parameter saved for backward) is counted once, in the one
category it ends up in. ``MemoryReport`` is what ``Report.memory`` returns.

May import: the standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, Literal

Phase = Literal["forward", "loss", "backward", "optimizer"]
PHASES: tuple[Phase, ...] = ("forward", "loss", "backward", "optimizer")

# The categories, in the order tables, JSON and the picture show them. Each storage
# alive during the step is in exactly one:
#   parameters       the model's parameters (and their substitutes on device=)
#   buffers          the model's buffers
#   inputs           the tensors passed in (inputs, target)
#   gradients        storages that end up as a parameter's ``.grad``
#   optimizer_state  storages held in ``optimizer.state`` after the step
#   activations      storages saved for backward (``saved_tensors_hooks`` pack),
#                    not already one of the above
#   temporary        everything else: outputs, the loss, intermediate results
#                    freed before the step ends, the optimizer's scratch
CATEGORIES: tuple[str, ...] = (
    "parameters",
    "buffers",
    "inputs",
    "gradients",
    "optimizer_state",
    "activations",
    "temporary",
)


WRAPPER_SHARE = 0.9
"""A module saving at least this share of all the activations saved for backward wraps
the model (GPT-2's ``transformer`` saves 94%): checkpointing it is no advice, so the
memory text's hotspots and the ``activation-hotspot`` finding leave it out."""


@dataclass(frozen=True, slots=True)
class MemoryPoint:
    """Live bytes by category at one moment of the step.

    Attributes:
        phase: Which part of the step was running.
        module: The module path running then (``""`` for the model itself or none).
        live: Bytes per category, in ``CATEGORIES`` order.
    """

    phase: Phase
    module: str
    live: tuple[int, ...]

    @property
    def total(self) -> int:
        """All live bytes at this moment."""
        return sum(self.live)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "phase": self.phase,
            "module": self.module,
            "live": dict(zip(CATEGORIES, self.live, strict=True)),
        }


@dataclass(frozen=True, slots=True)
class ModuleMemory:
    """What one module holds during the step (each module once, by its first path).

    Attributes:
        name: The module path (``""`` for the model itself).
        type: The module's class name.
        parameters: Bytes of its own parameters (not its children's).
        gradients: Bytes of its own parameters' gradients.
        optimizer_state: Bytes of optimizer state for its own parameters.
        activations: Bytes saved for backward while it ran and none of its
            children was running (its own ops).
        activations_total: Bytes saved for backward while it or any descendant ran.
        checkpoint_saving: What ``torch.utils.checkpoint`` around this module would
            save at the end of the forward: ``activations_total`` less the bytes of
            its inputs that checkpointing keeps (never below zero).
    """

    name: str
    type: str
    parameters: int
    gradients: int
    optimizer_state: int
    activations: int
    activations_total: int
    checkpoint_saving: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "name": self.name,
            "type": self.type,
            "parameters": self.parameters,
            "gradients": self.gradients,
            "optimizer_state": self.optimizer_state,
            "activations": self.activations,
            "activations_total": self.activations_total,
            "checkpoint_saving": self.checkpoint_saving,
        }


@dataclass(frozen=True, slots=True)
class MemoryReport:
    """The memory of one training step: forward, loss, backward, optimizer step.

    Attributes:
        device: Where the step ran (``"cpu"``, ``"cuda:0"``, ``"meta"``).
        optimizer: The optimizer's class name, or ``None`` when none was given
            (no optimizer step, no optimizer state).
        amp: The autocast dtype (``"bfloat16"``), or ``None``.
        held: The steady sizes by category: parameters, buffers and inputs as
            given; gradients after backward; optimizer state after the step;
            activations at the end of the forward (all saved for backward);
            temporary is the largest temporary bytes live at any moment.
        peak: The most bytes live at once during the step.
        peak_phase: The phase in which the peak happened.
        peak_module: The module running at the peak (``""`` if none).
        at_peak: Bytes per category at the peak, in ``CATEGORIES`` order.
        timeline: Live bytes over the step, at most a few thousand points (peaks
            kept when thinned), in order.
        modules: Per module, in the model's module order.
    """

    device: str
    optimizer: str | None
    amp: str | None
    held: tuple[int, ...]
    peak: int
    peak_phase: Phase
    peak_module: str
    at_peak: tuple[int, ...]
    timeline: tuple[MemoryPoint, ...]
    modules: tuple[ModuleMemory, ...]

    def __str__(self) -> str:
        """The breakdown as text (``renderers/memory.py``'s ``render_memory``)."""
        from inspectnn.renderers.memory import render_memory  # renderers sit above records

        return render_memory(self)

    def plot(self, path: str | PathLike[str], *, title: str | None = None) -> Path:
        """Draw the step's memory over time to ``path`` (PNG, SVG or PDF; needs matplotlib,
        the ``plot`` extra): ``renderers/memory_plot.py``'s ``plot_memory``."""
        from inspectnn.renderers.memory_plot import plot_memory

        return plot_memory(self, path, title=title)

    def category(self, name: str) -> int:
        """``held`` bytes of one category by name (``"activations"``)."""
        return self.held[CATEGORIES.index(name)]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the ``memory`` section of schema ``inspectnn/1``."""
        return {
            "device": self.device,
            "optimizer": self.optimizer,
            "amp": self.amp,
            "held": dict(zip(CATEGORIES, self.held, strict=True)),
            "peak": self.peak,
            "peak_phase": self.peak_phase,
            "peak_module": self.peak_module,
            "at_peak": dict(zip(CATEGORIES, self.at_peak, strict=True)),
            "timeline": [p.to_dict() for p in self.timeline],
            "modules": [m.to_dict() for m in self.modules],
        }


@dataclass(frozen=True, slots=True)
class GradMeta:
    """One gradient: its shape and dtype, and its norm on a real device.

    Attributes:
        shape: The gradient's shape.
        dtype: ``"float32"`` etc.
        norm: Its 2-norm (computed in float32), or None on meta or fake tensors.
        path: Where the tensor sat in the call's outputs or inputs (``"[0]"``).
    """

    shape: tuple[int, ...]
    dtype: str
    norm: float | None
    path: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"path": self.path, "shape": list(self.shape), "dtype": self.dtype,
                "norm": self.norm}  # fmt: skip


@dataclass(frozen=True, slots=True)
class LayerGrad:
    """The gradients of one layer call in the backward.

    Attributes:
        index: The call's index in ``Report.layers``.
        name: The module path (as ``Report.layers[index].name``).
        outputs: The gradient flowing into each of its outputs that required grad.
        inputs: The gradient flowing out of each of its tensor inputs that required
            grad (the gradient of that tensor: summed over all its uses).
        order: Its place in the backward (0: the first layer whose output
            gradient arrived), or -1 when none arrived.
    """

    index: int
    name: str
    outputs: tuple[GradMeta, ...]
    inputs: tuple[GradMeta, ...]
    order: int

    @property
    def norm(self) -> float | None:
        """The norm of all its output gradients together (None on meta)."""
        norms = [g.norm for g in self.outputs]
        if not norms or any(n is None for n in norms):
            return None
        return float(sum(n * n for n in norms if n is not None) ** 0.5)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "index": self.index,
            "name": self.name,
            "order": self.order,
            "outputs": [g.to_dict() for g in self.outputs],
            "inputs": [g.to_dict() for g in self.inputs],
        }


@dataclass(frozen=True, slots=True)
class ParamGrad:
    """One parameter after the backward.

    Attributes:
        name: The parameter's name (its first, when tied).
        grad: Its ``.grad`` (shape, dtype, norm), or None when it got none.
        requires_grad: Whether it requires grad.
    """

    name: str
    grad: GradMeta | None
    requires_grad: bool

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "name": self.name,
            "requires_grad": self.requires_grad,
            "grad": None if self.grad is None else self.grad.to_dict(),
        }


TRAINING_SCHEMA = "inspectnn.training/1"


@dataclass(frozen=True, slots=True)
class TrainingReport:
    """What one training step did: its memory and its gradients.

    Attributes:
        loss: How the loss was made (``"sum of the output"``, ``"CrossEntropyLoss"``).
        loss_value: The loss's value on a real device, None on meta.
        memory: The step's memory.
        layers: The gradients of each layer call, in call order.
        params: Each parameter's gradient, in the model's order.
        frozen_in_optimizer: Parameters with ``requires_grad=False`` that the
            optimizer given holds.
        left_out_of_optimizer: Trainable parameters the optimizer given does not hold.
    """

    loss: str
    loss_value: float | None
    memory: MemoryReport
    layers: tuple[LayerGrad, ...]
    params: tuple[ParamGrad, ...]
    frozen_in_optimizer: tuple[str, ...] = ()
    left_out_of_optimizer: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the ``training`` section, versioned by its own ``schema``."""
        return {
            "schema": TRAINING_SCHEMA,
            "loss": self.loss,
            "loss_value": self.loss_value,
            "memory": self.memory.to_dict(),
            "layers": [g.to_dict() for g in self.layers],
            "params": [p.to_dict() for p in self.params],
            "frozen_in_optimizer": list(self.frozen_in_optimizer),
            "left_out_of_optimizer": list(self.left_out_of_optimizer),
        }
