"""Which recorded calls reach the model's outputs: ``live_calls``, a pure function over records.

Read by the dead-computation check (``checks/dataflow.py``) and by the graph renderer
(``renderers/graph.py``, which greys dead calls), so that neither reaches into the other.

May import: ``inspectnn.records`` only.
"""

from __future__ import annotations

from collections.abc import Sequence

from inspectnn.records import LayerCall, OpCall, parse_source

__all__ = ["live_calls"]


def live_calls(layers: Sequence[LayerCall], ops: Sequence[OpCall]) -> tuple[set[int], set[int]]:
    """Layer and op indices whose results flow into the model's outputs.

    A leaf call depends on its inputs; a call with children depends on what made
    the output that was used (``layers[3].outputs[1]`` follows only the second).
    """
    has_children = {rec.parent for rec in layers}
    live_layers: set[int] = {0} if layers else set()  # the model's own call is its output
    live_ops: set[int] = set()
    seen: set[str] = set()
    todo = [m.source for m in layers[0].outputs if m.source] if layers else []
    todo += _python_reads(layers, ops)
    while todo:
        source = todo.pop()
        parsed = parse_source(source)
        if parsed is None or source in seen:
            continue
        seen.add(source)
        kind, i, pos = parsed
        if kind == "layers":
            rec = layers[i]
            parent = i
            while parent >= 0 and parent not in live_layers:
                live_layers.add(parent)
                parent = layers[parent].parent
            if i in has_children:
                used = rec.outputs[pos] if pos < len(rec.outputs) else None
                todo += [used.source] if used is not None and used.source else []
            else:
                todo += [m.source for m in rec.inputs if m.source]
        elif kind == "ops":
            live_ops.add(i)
            todo += [m.source for m in ops[i].inputs if m.source]
    return live_layers, live_ops


def _python_reads(layers: Sequence[LayerCall], ops: Sequence[OpCall]) -> list[str]:
    """Results that Python may have read, which the trace cannot follow: they count as used.

    A module's output that is no tensor (an ``int`` a counter returns, a flag) and a
    one-element tensor that no recorded call took (``if self.gate(x):``, ``.item()``)
    may steer the forward through control flow, so what made them is not dead.
    """
    calls: list[tuple[str, LayerCall | OpCall]] = [("layers", r) for r in layers]
    calls += [("ops", op) for op in ops]
    taken = {parse_source(m.source) for _, call in calls for m in call.inputs if m.source}
    found = []
    for kind, call in calls:
        for pos, m in enumerate(call.outputs):
            value = not m.is_tensor and m.value not in (None, "None")
            if value or (m.is_tensor and m.numel <= 1 and (kind, call.index, pos) not in taken):
                found.append(f"{kind}[{call.index}].outputs[{pos}]")
    return found
