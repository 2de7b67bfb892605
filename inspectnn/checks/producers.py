"""What made a tensor, for a diagnosis: ``Producer`` and ``find_producer``.

Walks back from a layer's input through the recorded sources, stepping over layers
and ops that keep the shape, to the layer call, op or model input that made it.

May import: ``inspectnn.checks.contracts`` (``fmt_shape``), ``inspectnn.checks.origins``
(``lookup``) and ``inspectnn.records``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from inspectnn.checks.contracts import fmt_shape
from inspectnn.checks.origins import lookup
from inspectnn.records import LayerCall, OpCall, TensorMeta, parse_source

if TYPE_CHECKING:
    from inspectnn.report import Report

__all__ = ["Producer", "find_producer"]


@dataclass(frozen=True, slots=True)
class Producer:
    """What made a tensor: a layer call, an op, or a model input."""

    name: str  # dotted path, op name, or "the model input"
    text: str  # e.g. "classifier.0 (Flatten): [1, 16, 16, 16] -> [1, 4096]"
    layer: LayerCall | None = None
    op: OpCall | None = None


def _output_of(node: LayerCall | OpCall, source: str | None) -> TensorMeta | None:
    """The output of ``node`` that ``source`` names (its first tensor by default)."""
    parsed = parse_source(source)
    pos = parsed[2] if parsed is not None else 0
    if pos < len(node.outputs) and node.outputs[pos].is_tensor:
        return node.outputs[pos]
    return _first_tensor(node.outputs)


def _first_tensor(metas: tuple[TensorMeta, ...]) -> TensorMeta | None:
    return next((m for m in metas if m.is_tensor), None)


def find_producer(report: Report, meta: TensorMeta) -> Producer:
    """Walk back from an input to the last layer or op that changed its shape.

    Layers and ops whose first output has the shape of their first input
    (activations, dropout, norms) are stepped over; a container is replaced by
    what made its output inside it.
    """
    node = lookup(report, meta.source)
    via = meta.source
    stepped: list[str] = []  # shape-keeping layers and ops walked back through
    for _ in range(64):
        if node is None:
            break
        if isinstance(node, LayerCall):
            inner = _output_of(node, via)
            if inner is not None and inner.source is not None and inner.source != via:
                deeper = lookup(report, inner.source)
                if deeper is not None and deeper is not node:
                    node, via = deeper, inner.source
                    continue
        src, out = _first_tensor(node.inputs), _first_tensor(node.outputs)
        if src is None or out is None or src.shape != out.shape or src.source is None:
            break
        previous = lookup(report, src.source)
        if previous is None:
            break
        stepped.append(_node_name(node))
        node, via = previous, src.source
    from_input = (via or "").startswith("inputs[")
    via = f", then through {', '.join(reversed(stepped))}" if stepped else ""
    if node is None and from_input:
        text = f"the model input {fmt_shape(meta.shape or ())}{via}"
        return Producer("the model input", text)
    if node is None:  # no traced call made it: the module's own state, or made outside torch
        what = "a tensor the module holds (a buffer, parameter or attribute)"
        return Producer(what, f"{what} {fmt_shape(meta.shape or ())}{via}")
    src, out = _first_tensor(node.inputs), _first_tensor(node.outputs)
    arrow = f"{fmt_shape(src.shape or ())} -> " if src is not None else ""
    shape = fmt_shape(out.shape or ()) if out is not None else "?"
    if isinstance(node, LayerCall):
        name = node.label if node.name else node.type
        return Producer(name, f"{name} ({node.type}): {arrow}{shape}{via}", layer=node)
    where = f" in {node.module or 'the root module'}"
    return Producer(node.name, f"{node.name}{where}: {arrow}{shape}{via}", op=node)


def _node_name(node: LayerCall | OpCall) -> str:
    if isinstance(node, LayerCall):
        return f"{node.label or '(root)'} ({node.type})"
    return node.name
