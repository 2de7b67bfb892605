"""Why a ``RowwiseParallel`` layer got an input that does not fit: ``rowwise_input``.

``RowwiseParallel``'s input hook calls ``DTensor.from_local(x, mesh, [Shard(-1)])``,
which takes every rank's shard to be as wide as this rank's, so the global shape the
layer sees is this rank's width times the mesh dimension's size. When that does not
match the layer's ``in_features``, torch's error (sharding propagation failed for
``aten.addmm``) and the layer's contract name a shape no layer made; this module says
where it came from, for ``checks/diagnose.py``: a full (replicated) input where the
plan expects a shard, or a shard of a size that does not divide (36 over tp=8).

May import: ``inspectnn.checks.advice``, ``inspectnn.checks.contracts``,
``inspectnn.checks.producers``, ``inspectnn.checks.sharding`` and ``inspectnn.records``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from inspectnn.checks.advice import _line
from inspectnn.checks.contracts import fmt_shape
from inspectnn.checks.producers import _first_tensor, find_producer
from inspectnn.checks.sharding import dim_name, shard_sizes, sizes_text
from inspectnn.records import LayerCall, TensorMeta

if TYPE_CHECKING:
    from inspectnn.report import Report

__all__ = ["RowwiseInput", "rowwise_input"]


@dataclass(frozen=True, slots=True)
class RowwiseInput:
    """A ``RowwiseParallel`` layer's input hook built a global shape that does not fit.

    Attributes:
        lines: The diagnosis' ``input from`` and ``because`` lines.
        fix: What to do.
        producer: The layer that made this rank's shard, or None when not found.
    """

    lines: list[str]
    fix: str
    producer: str | None


def rowwise_input(report: Report, rec: LayerCall, meta: TensorMeta | None) -> RowwiseInput | None:
    """Why a ``RowwiseParallel`` ``Linear`` got an input whose last dimension does not fit.

    ``RowwiseParallel``'s input hook calls ``DTensor.from_local(x, mesh, [Shard(-1)])``,
    taking every rank's shard to be as wide as this rank's: the global width is this
    rank's times the mesh dimension's size ``k``. Two causes are told apart: this rank's
    input was the full tensor (global width ``in_features * k``: the layer was fed a
    replicated input), or a shard of an ``in_features`` that does not divide by ``k``
    (36 over 8: shards of 5 make a global 40). None for anything else.
    """
    weight = next((w for w in rec.weights if w.name == "weight"), None)
    if rec.type != "Linear" or weight is None or meta is None or not meta.shape:
        return None
    on = next((i for i, t in enumerate(weight.placements) if t == "Shard(1)"), None)
    if on is None or weight.shape is None or len(weight.shape) != 2:
        return None
    n, k, got = weight.shape[1], weight.mesh_shape[on], meta.shape[-1]
    name = dim_name(weight, on)
    if got == n or got % k:
        return None
    local = (*meta.shape[:-1], got // k)
    maker = _made_before(report, rec, local)
    made = f"'{maker.label}' ({maker.type}): {fmt_shape(local)}" if maker else fmt_shape(local)
    hook = f"RowwiseParallel's input hook on '{rec.label}'"
    if got == n * k:
        before = _maker_of(report, maker) if maker is not None else None
        layer = f"'{before.label}'" if before is not None else "the layer that makes it"
        where = f"ColwiseParallel() on {layer}"
        lines = [
            _line("input from", f"{made}, the full tensor on every rank; {hook} took it as "
                                f"this rank's shard of the last dimension and built a global "
                                f"{fmt_shape(meta.shape)} ({n} x {name}={k})"),
            _line("because", f"'{rec.label}' is RowwiseParallel (weight Shard(1) over {name}): "
                             "it expects its input sharded on the last dimension (Shard(-1)), "
                             "as a ColwiseParallel layer before it leaves it, and was fed a "
                             "full (replicated) tensor"),
        ]  # fmt: skip
        fix = (f"shard the input before '{rec.label}': {where}, or "
               f"RowwiseParallel(input_layouts=Replicate()) on '{rec.label}' to have it split "
               "a full input itself")  # fmt: skip
        return RowwiseInput(lines, fix, maker.label if maker else None)
    sizes = shard_sizes(n, [0], [k])
    if n % k == 0 or got // k not in sizes:
        return None
    lower, upper = n // k * k, -(-n // k) * k
    choices = f"{upper} or {lower}" if lower else str(upper)
    lines = [
        _line("input from", f"{hook}, which built a global {fmt_shape(meta.shape)} from this "
                            f"rank's shard, {made}, taking every rank's "
                            f"shard to be {got // k} wide ({got // k} x {name}={k})"),
        _line("because", f"{n} does not divide by {name}={k}: the ranks hold shards of "
                         f"{sizes_text(sizes)}, and DTensor.from_local assumes even shards"),
    ]  # fmt: skip
    first = _colwise_maker(report, rec, n)
    there = (
        f"'{first.label}', which makes them," if first is not None else "the layer that makes them"
    )
    fix = (
        f"choose a size divisible by {k} for the {n} features sharded over {name} "
        f"(e.g. {choices}), in {there} and in '{rec.label}'"
    )
    return RowwiseInput(lines, fix, maker.label if maker else None)


def _made_before(report: Report, rec: LayerCall, shape: tuple[int, ...]) -> LayerCall | None:
    """The last call that finished before ``rec`` with an output of ``shape``, not one of
    ``rec``'s enclosing calls: what fed it this rank's shard."""
    enclosing = set()
    idx = rec.parent
    while idx >= 0:
        enclosing.add(idx)
        idx = report.layers[idx].parent
    for call in reversed(report.layers[: rec.index]):
        out = _first_tensor(call.outputs)
        if call.index not in enclosing and out is not None and out.shape == shape:
            return call
    return None


def _maker_of(report: Report, call: LayerCall) -> LayerCall | None:
    """The layer that made ``call``'s output, through shape-keeping layers (a ReLU)."""
    src = _first_tensor(call.inputs)
    out = _first_tensor(call.outputs)
    if src is None or out is None or src.shape != out.shape or src.source is None:
        return call
    return find_producer(report, src).layer


def _colwise_maker(report: Report, rec: LayerCall, n: int) -> LayerCall | None:
    """The last ``ColwiseParallel`` ``Linear`` before ``rec`` with ``n`` output features."""
    for call in reversed(report.layers[: rec.index]):
        w = next((w for w in call.weights if w.name == "weight"), None)
        columns = w is not None and w.shape and w.shape[0] == n and "Shard(0)" in w.placements
        if call.type == "Linear" and columns:
            return call
    return None
