"""The reference measurement: the same training step under torch's ``MemTracker``.

The only module of inspectnn that uses torch's private
``torch.distributed._tools.mem_tracker.MemTracker`` (a ``TorchDispatchMode`` that
PyTorch tests against the CUDA allocator): tests and benchmarks compare
``training/step.py``'s figures with it. ``reference_step`` runs one plain step on a
deep copy of the model (the user's model is never touched): forward, loss,
``backward()`` and the real optimizer's ``step()`` on the copy's parameters, and
returns MemTracker's peak in inspectnn's categories.

MemTracker's categories are not ours: it calls everything made in the forward an
activation (ours: only what is saved for backward; the rest is temporary), what
the backward makes other than gradients ``Temp``, and tensors it was told about
that are neither parameters nor buffers (the inputs) ``Other``. ``at_peak`` maps
them to the nearest of ours: Activation -> activations, Temp -> temporary,
Other -> inputs. On CUDA, MemTracker rounds every storage up to 512 bytes, as the
caching allocator does.

May import: torch, ``training/optim.py``, ``training/step.py``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from inspectnn.training.optim import OptimizerLike, build_optimizer
from inspectnn.training.step import AmpLike, LossFn, compute_loss, parse_amp
from inspectnn.values import tensors

__all__ = ["ReferenceMemory", "reference_step"]

_OURS = {
    "Parameter": "parameters",
    "Buffer": "buffers",
    "Gradient": "gradients",
    "Activation": "activations",
    "Temp": "temporary",
    "Optstate": "optimizer_state",
    "Other": "inputs",
}


@dataclass(frozen=True, slots=True)
class ReferenceMemory:
    """MemTracker's figures for one step, summed over devices.

    Attributes:
        peak: The most bytes live at once.
        at_peak: Bytes per category at the peak, in inspectnn's category names
            (see the module docstring for what MemTracker means by each).
    """

    peak: int
    at_peak: dict[str, int]


def reference_step(
    model: nn.Module,
    args: Any,
    kwargs: Mapping[str, Any] | None = None,
    *,
    loss: LossFn | None = None,
    target: Any = None,
    optimizer: OptimizerLike | None = None,
    amp: AmpLike = None,
) -> ReferenceMemory:
    """Run one plain training step on a copy of ``model`` under ``MemTracker``.

    Args:
        model: The model; a deep copy is trained (on meta, a copy costs nothing).
        args: The forward's positional arguments (a tuple, or one value).
        kwargs: Its keyword arguments.
        loss: As for ``training.standalone.measure_step``.
        target: As for ``measure_step``.
        optimizer: A name, class or callable (an instance's class is used with
            its defaults); None: no optimizer step.
        amp: The autocast dtype, on a real device (autocast does nothing on meta).

    Returns:
        MemTracker's peak and its per-category bytes at the peak.
    """
    from torch.distributed._tools.mem_tracker import MemTracker

    args = args if isinstance(args, tuple) else (args,)
    kwargs = dict(kwargs or {})
    dtype = parse_amp(amp)
    first = next(model.parameters(), None)
    cuda = [first.device] if first is not None and first.device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda), input_grads_kept((args, kwargs, target)):
        twin = copy.deepcopy(model).train()
        for p in twin.parameters():
            p.grad = None
        opt = None
        if optimizer is not None:
            params: list[torch.Tensor] = [p for p in twin.parameters() if p.requires_grad]
            if isinstance(optimizer, torch.optim.Optimizer):
                opt = type(optimizer)(params, **optimizer.defaults)
            else:
                opt = build_optimizer(optimizer, params)
        device = next((t.device for t in twin.parameters()), torch.device("cpu"))
        tracker = MemTracker()
        tracker.track_external(twin, *tensors((args, kwargs, target)))
        with tracker:
            cast: Any = (
                torch.autocast(device.type, dtype=dtype)
                if dtype is not None and device.type != "meta"
                else torch.autocast("cpu", enabled=False)
            )
            with cast:
                output = twin(*args, **kwargs)
                value = compute_loss(output, loss, target)
            value.backward()  # type: ignore[no-untyped-call]
            if opt is not None:
                opt.step()
        snapshot = tracker.get_tracker_snapshot("peak")
    at_peak = dict.fromkeys(_OURS.values(), 0)
    peak = 0
    for by_kind in snapshot.values():
        for kind, n in by_kind.items():
            name = getattr(kind, "value", kind)
            if name == "Total":
                peak += n
            else:
                at_peak[_OURS[name]] += n
    return ReferenceMemory(peak, at_peak)


@contextmanager
def input_grads_kept(values: Any) -> Iterator[None]:
    """Put back the ``.grad`` of the inputs that are leaves requiring grad (the plain step
    here has no ``TrainingStep`` to do it)."""
    leaves = [(t, t.grad) for t in tensors(values) if t.requires_grad and t.is_leaf]
    try:
        yield
    finally:
        for t, g in leaves:
            t.grad = g
