"""What the tracer notes for a training step (``inspect(..., backward=True)``).

``GradWatch`` puts a hook on each traced call's non-leaf output and input tensors
that require grad, so that the backward tells, per call, the gradient flowing into
its outputs and out of its inputs (shape, dtype, and the float32 norm on a real
device), the order in which the calls' output gradients arrived, and the module
whose output gradient came last (where the backward is now, for the memory
tracker). It also notes where the forward cut the autograd graph: an op or a layer
call given a tensor that requires grad whose outputs require none (``.detach()``,
``torch.no_grad()``, ``argmax`` and other integer results), and a layer call under
``torch.no_grad()`` whatever its inputs (its parameters get no gradient), for the
``no-gradient`` finding.

Hooks go on non-leaf tensors only: a leaf is the user's (a parameter, an input)
and a hook on it would outlive the call. They hold no gradient, only its metadata.

May import: torch, ``values.py``, ``trace/raw.py``, ``training/records.py``,
``training/step.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from inspectnn.trace.raw import DTYPE, INPUTS, MODULE, SHAPE, RawCall, held_shape
from inspectnn.training.records import GradMeta
from inspectnn.training.step import grad_meta
from inspectnn.values import tensors

__all__ = ["Cut", "GradWatch", "first_input_bytes"]

Cut = tuple[str, int, str, bool]
"""Where the graph was cut: ``("op" | "layer", index, name, autograd was on)``."""


class GradWatch:
    """Backward hooks on every traced call's tensors; the cuts in the forward's graph.

    Args:
        real: Compute gradient norms (not on meta or fake tensors).
    """

    def __init__(self, real: bool) -> None:
        self.real = real
        self.outputs: dict[int, list[GradMeta]] = {}  # call index -> output gradients
        self.inputs: dict[int, list[GradMeta]] = {}  # call index -> input gradients
        self.order: dict[int, int] = {}  # call index -> place in the backward
        self.current = ""  # the module whose output gradient arrived last
        self.cuts: list[Cut] = []

    def watch_inputs(self, idx: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Hook the call's non-leaf input tensors that require grad."""
        for k, t in enumerate(tensors((args, kwargs))):
            if t.grad_fn is not None:
                t.register_hook(self._hook(self.inputs, idx, f"[{k}]", None))  # type: ignore[no-untyped-call]

    def watch_outputs(
        self, idx: int, name: str, inputs: Iterable[Tensor], output: Any
    ) -> None:
        """Hook the call's non-leaf outputs; note a cut when grad went in and none came out."""
        outs = list(tensors(output))
        for k, t in enumerate(outs):
            if t.grad_fn is not None:
                t.register_hook(self._hook(self.outputs, idx, f"[{k}]", name))  # type: ignore[no-untyped-call]
        # under no_grad a call cuts its own parameters off even when no input requires grad
        self._note_cut("layer", idx, name, inputs, outs, always=not torch.is_grad_enabled())

    def watch_op(self, index: int, name: str, args: Any, out: Any) -> None:
        """Note a cut at a recorded op (``.detach()``, an integer result, ``no_grad``)."""
        self._note_cut("op", index, name, tensors(args), list(tensors(out)))

    def _note_cut(
        self,
        kind: str,
        index: int,
        name: str,
        inputs: Iterable[Tensor],
        outs: list[Tensor],
        always: bool = False,
    ) -> None:
        cut = outs and not any(t.requires_grad for t in outs)
        if cut and (always or any(t.requires_grad for t in inputs)):
            self.cuts.append((kind, index, name, torch.is_grad_enabled()))

    def _hook(
        self, into: dict[int, list[GradMeta]], idx: int, path: str, name: str | None
    ) -> Callable[[Tensor], None]:
        real = self.real

        def hook(grad: Tensor) -> None:
            if name is not None:
                self.current = name
                self.order.setdefault(idx, len(self.order))
            with torch.no_grad():
                into.setdefault(idx, []).append(grad_meta(grad, real, path))

        return hook


def first_input_bytes(
    raw: Iterable[RawCall], names: Callable[[int], str]
) -> dict[str, int]:
    """Bytes of the tensor inputs of each module's first call, by module path.

    What ``torch.utils.checkpoint`` around the module would keep of its forward.
    """
    out: dict[str, int] = {}
    for rec in raw:
        name = names(rec[MODULE])
        if name in out:
            continue
        out[name] = sum(
            math.prod(held_shape(meta) or ()) * meta[DTYPE].itemsize
            for meta in rec[INPUTS]
            if meta[SHAPE] is not None and isinstance(meta[DTYPE], torch.dtype)
        )
    return out
