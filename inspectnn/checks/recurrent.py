"""Recurrent layers fed batch-first input without ``batch_first=True``.

``nn.LSTM(8, 16)`` reads a 3-D input as ``(seq, batch, features)``. Given
``(batch, seq, features)`` it runs without an error and mixes the batch into
time. The shapes alone cannot tell the two apart; the code after the layer can:
``out[:, -1]`` (or ``out.mean(1)``) removes dimension 1 of its output, the time
step of a batch-first tensor but the batch of a sequence-first one. That is the
evidence this check looks for; a sequence-first model (``out[-1]``) reduces
dimension 0 and is left alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from inspectnn.checks.contracts import fmt_shape
from inspectnn.records import Finding, LayerCall, OpCall

__all__ = ["batch_first_findings", "batch_first_fix"]

_RECURRENT = frozenset({"LSTM", "GRU", "RNN"})


def batch_first_fix(rec_type: str, extra: str) -> str:
    """``nn.LSTM(8, 16, batch_first=True)`` from the layer's type and ``extra_repr``."""
    return f"nn.{rec_type}({extra}, batch_first=True)" if extra else f"nn.{rec_type}(...)"


def batch_first_findings(layers: Sequence[LayerCall], ops: Sequence[OpCall]) -> list[Finding]:
    """A warning for each sequence-first RNN whose output is then reduced over dimension 1."""
    found: list[Finding] = []
    for rec in layers:
        x = rec.inputs[0] if rec.inputs else None
        if rec.type not in _RECURRENT or "batch_first=True" in rec.extra or x is None:
            continue
        shape = x.shape
        if shape is None or len(shape) != 3 or shape[0] == shape[1]:
            continue
        op = _drops_dim1(_names_of_output(rec, layers), ops)
        if op is None:
            continue
        seq, batch, feat = shape
        found.append(
            Finding(
                "batch-first",
                "warning",
                rec.name,
                f"'{rec.label}' ({rec.type}) has batch_first=False, so it reads its input "
                f"{fmt_shape(shape)} as (seq={seq}, batch={batch}, features={feat}); but "
                f"{op.name} in {op.module or 'the root module'} takes its output "
                f"{fmt_shape(op.inputs[0].shape or ())} to {fmt_shape(op.outputs[0].shape or ())}"
                ", removing dimension 1: the time steps of a (batch, seq, features) input, the "
                "batch here. The input is batch-first: it runs, and mixes the batch into time.",
                f"{batch_first_fix(rec.type, rec.extra)}: the layer then reads dimension 0 as "
                "the batch (and h_0, if given, stays (num_layers, batch, hidden))",
            )
        )
    return found


def _names_of_output(rec: LayerCall, layers: Sequence[LayerCall]) -> set[str]:
    """The sources that name ``rec``'s output sequence: its own, and those of the modules
    around it that return it (an encoder whose forward returns the LSTM's output)."""
    own = {f"layers[{rec.index}]", f"layers[{rec.index}].outputs[0]"}
    parent = rec.parent
    while parent > 0:
        outer = layers[parent]
        hit = [i for i, m in enumerate(outer.outputs) if m.source in own]
        if not hit:
            break
        own |= {f"layers[{parent}].outputs[{i}]" for i in hit}
        if 0 in hit:
            own.add(f"layers[{parent}]")
        parent = outer.parent
    return own


def _drops_dim1(own: set[str], ops: Sequence[OpCall]) -> OpCall | None:
    """The first op on the output sequence (named by ``own``) whose output is that shape
    less dimension 1."""
    for op in ops:
        if not op.inputs or op.inputs[0].source not in own or not op.outputs:
            continue
        src, out = op.inputs[0].shape, op.outputs[0].shape
        if src is not None and out is not None and out == (src[0], *src[2:]):
            return op
    return None
