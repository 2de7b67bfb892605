"""The raw trace turned into records, after the forward and off the hot path.

Owns ``build_records``: ``RawCall``/``RawOp`` tuples (``inspectnn.trace.raw``) to
``LayerCall``/``OpCall``, with each torch leaf's FLOPs computed from its recorded
shapes, subtree FLOPs summed into every parent, depths, parameter counts and the
buffers each call wrote. ``Tracer.build`` calls it on the detached tracer's tables.

May import: ``inspectnn.flops``, ``inspectnn.params``, ``inspectnn.records``,
``inspectnn.trace.flatten`` and ``inspectnn.trace.raw``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from inspectnn.flops import leaf_flops
from inspectnn.params import ModelCounts
from inspectnn.records import Collective, LayerCall, OpCall
from inspectnn.trace.flatten import _args_text, _MetaConverter
from inspectnn.trace.raw import (
    FAILED,
    FLOPS,
    INPUTS,
    LEAF,
    MODULE,
    OUTPUTS,
    PARENT,
    RawCall,
    RawOp,
    held_shape,
)

__all__ = ["build_records"]


def _leaf_flops(
    raw: Sequence[RawCall],
    weights: dict[int, tuple[int, ...]],
    type_names: dict[int, str],
    uncounted: dict[tuple[str, int], None],
) -> list[int]:
    """Each call's own FLOPs: those counted during the forward, plus a torch leaf's from
    its input, weight and output shapes (noted in ``uncounted`` where it has none)."""
    flops = [r[FLOPS] for r in raw]
    for i, r in enumerate(raw):
        kind = r[LEAF]
        if kind is None:
            continue
        weight, ins, outs = weights.get(r[MODULE]), r[INPUTS], r[OUTPUTS]
        # per rank: a DTensor's local shard is what this rank multiplies
        in_shape = held_shape(ins[0]) if ins else None
        out_shape = held_shape(outs[0]) if len(outs) == 1 else None
        if weight and in_shape and out_shape:
            flops[i] += leaf_flops(kind, in_shape, weight, out_shape)
        elif not r[FAILED]:  # it ran, but without a weight tensor to count from
            uncounted.setdefault((type_names[r[MODULE]], i), None)
    for i in range(len(raw) - 1, -1, -1):  # children come after their parent
        parent = raw[i][PARENT]
        if parent >= 0:
            flops[parent] += flops[i]
    return flops


def build_records(
    raw: Sequence[RawCall],
    raw_ops: Sequence[RawOp],
    info: dict[int, tuple[str, str, str]],
    weights: dict[int, tuple[int, ...]],
    writes: dict[int, tuple[tuple[str, ...], bool]],
    uncounted: dict[tuple[str, int], None],
    counts: ModelCounts,
    device_as: str | None = None,
    collectives: Callable[[int], tuple[Collective, ...]] | None = None,
) -> tuple[tuple[LayerCall, ...], tuple[OpCall, ...]]:
    """The records of a raw trace.

    Args:
        raw: The finished calls, in call order.
        raw_ops: The recorded ops, in order.
        info: ``id(module) -> (name, type name, extra_repr)`` of each called module.
        weights: ``id(module)`` -> weight shape of each torch leaf with a weight.
        writes: Call index -> (names of the buffers its forward wrote, training).
        uncounted: The tracer's uncounted FLOPs; leaves without a weight are added.
        counts: The model's parameter counts, per module.
        device_as: The device every tensor is written with (``"meta"`` for fake CPU
            tensors standing in for meta ones), or None for each tensor's own.
        collectives: Call index -> the collectives it ran (a sharded model's), or None.

    Returns:
        ``(layers, ops)``.
    """
    conv = _MetaConverter(device_as)
    type_names = {mid: entry[1] for mid, entry in info.items()}
    flops = _leaf_flops(raw, weights, type_names, uncounted)
    depths: list[int] = []
    layers: list[LayerCall] = []
    for i, (mid, n, parent, ins, outs, _, failed, _) in enumerate(raw):
        name, type_name, extra = info[mid]
        depth = depths[parent] + 1 if parent >= 0 else 0
        depths.append(depth)
        c = counts.per_module.get(mid)
        layers.append(
            LayerCall(
                index=i,
                name=name,
                type=type_name,
                depth=depth,
                call=n,
                parent=parent,
                inputs=conv.all(ins),
                outputs=conv.all(outs),
                params=c[0] if c else 0,
                trainable_params=c[1] if c else 0,
                shared=c[2] if c else (),
                flops=flops[i],
                failed=failed,
                extra=extra,
                buffers_written=writes[i][0] if i in writes else (),
                collectives=() if collectives is None else collectives(i),
            )
        )
    ops = tuple(
        OpCall(
            index=j,
            name=name,
            module=layers[parent].name,
            parent=parent,
            after=after,
            inputs=conv.all(ins),
            outputs=conv.all(outs),
            args=_args_text(others),
            failed=failed,
            inplace=inplace,
        )
        for j, (name, parent, after, ins, outs, others, failed, inplace) in enumerate(raw_ops)
    )
    return tuple(layers), ops
