"""``sequence-unsharded``: a sequence-parallel layer given a whole sequence as its shard.

``SequenceParallel`` (and any ``input_layouts=Shard(1)`` style) wraps the tensor a
layer is given with ``DTensor.from_local(x, mesh, [Shard(1)])``: it takes ``x`` to be
this rank's slice of the sequence, without a check. When the layer before hands on
the whole sequence instead (a ``RowwiseParallel`` embedding or projection left with
its default ``output_layouts=Replicate()``), every rank's full copy becomes a
different part of one sequence ``tp`` times as long: attention and every later layer
run on a sequence of ``tp * S`` positions, and nothing fails (a residual add may, far
from the cause).

The rule reads records only: a call's input that is a ``DTensor`` sharded on a
dimension ``d`` before its last, whose local shape equals a model input's on the
dimensions up to ``d`` (batch and sequence) while its global shape is ``k`` times as
long on ``d``. Repeated blocks (``blocks.0.norm``, ``blocks.1.norm``) make one finding.

May import: ``inspectnn.checks.contracts``, ``inspectnn.checks.sharding`` and
``inspectnn.records``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from inspectnn.checks.contracts import fmt_shape
from inspectnn.checks.sharding import repeat_key
from inspectnn.records import Finding, LayerCall, TensorMeta, parse_source

__all__ = ["sequence_findings"]

_PLAIN_SHARD = re.compile(r"^Shard\((?:dim=)?(-?\d+)\)$")


def _sharded_dim(meta: TensorMeta) -> int | None:
    """The one tensor dimension, before the last, a plain ``Shard`` cuts; else None."""
    if meta.local_shape is None or meta.shape is None or len(meta.shape) < 2:
        return None
    dims = {int(m[1]) % len(meta.shape) for p in meta.placements if (m := _PLAIN_SHARD.match(p))}
    if len(dims) != 1:
        return None
    dim = dims.pop()
    return dim if dim < len(meta.shape) - 1 else None


def _unsharded(meta: TensorMeta, model_inputs: Sequence[TensorMeta]) -> tuple[int, int] | None:
    """``(dim, k)`` when ``meta``'s shard is a model input's whole sequence, ``k`` times
    too long globally; else None."""
    dim = _sharded_dim(meta)
    if dim is None:
        return None
    local, whole = meta.local_shape or (), meta.shape or ()
    if not local[dim] or whole[dim] % local[dim] or whole[dim] == local[dim]:
        return None
    for x in model_inputs:
        shape = x.held_shape or ()
        if len(shape) > dim and tuple(shape[: dim + 1]) == tuple(local[: dim + 1]):
            return dim, whole[dim] // local[dim]
    return None


def sequence_findings(layers: Sequence[LayerCall]) -> list[Finding]:
    """``sequence-unsharded`` findings: one per repeated layer given a whole sequence."""
    roots = [rec for rec in layers if rec.parent < 0]
    model_inputs = [m for rec in roots for m in rec.inputs if m.is_tensor]
    if not model_inputs:
        return []
    found: dict[str, tuple[LayerCall, TensorMeta, int, int, int]] = {}
    for rec in layers:
        if rec.parent < 0:
            continue
        for meta in rec.inputs:
            hit = _unsharded(meta, model_inputs)
            if hit is None:
                continue
            key = repeat_key(rec.name)
            if key in found:
                first = found[key]
                found[key] = (*first[:4], first[4] + 1)
            else:
                found[key] = (rec, meta, *hit, 1)
            break
    return [_finding(layers, *entry) for entry in found.values()]


def _finding(
    layers: Sequence[LayerCall], rec: LayerCall, meta: TensorMeta, dim: int, k: int, calls: int
) -> Finding:
    local, whole = meta.local_shape or (), meta.shape or ()
    parsed = parse_source(meta.source)
    feeder = ""
    if parsed is not None and parsed[0] == "layers" and 0 <= parsed[1] < len(layers):
        src = layers[parsed[1]]
        if src.parent >= 0:
            feeder = f" from '{src.name}' ({src.type})"
    more = f" (and {calls - 1} more like it)" if calls > 1 else ""
    return Finding(
        "sequence-unsharded",
        "warning",
        rec.name,
        f"'{rec.name}' ({rec.type}){more} was given this rank's whole sequence "
        f"{fmt_shape(local)}{feeder} as its Shard({dim}) shard: its input hook "
        f"(DTensor.from_local) made it a global {fmt_shape(whole)}, a sequence {k} times "
        f"the model's {local[dim]}, so every rank's copy counts as a different part of it "
        "and every layer after runs on the longer sequence.",
        f"hand it a sequence-sharded input: give the layer before it "
        f"output_layouts=Shard({dim}) (RowwiseParallel(output_layouts=Shard({dim})), as for "
        "an embedding or a block's last projection in a sequence-parallel plan), or take "
        "SequenceParallel off this layer",
    )
