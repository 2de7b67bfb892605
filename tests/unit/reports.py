"""Hand-made ``Report``s for the renderer tests: records built directly, no trace.

``mlp()`` is the report of ``Net`` = Linear(4, 8) -> ReLU -> Linear(8, 2) on a
``[3, 4]`` input, as ``inspect()`` would record it; the renderers are then pure
functions of it, so their output can be compared character for character.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from inspectnn.records import (
    ErrorInfo,
    Finding,
    LayerCall,
    OpCall,
    ParamMeta,
    Report,
    TensorMeta,
    Totals,
)


def t(*shape: int, source: str | None = None, path: str = "", dtype: str = "float32") -> TensorMeta:
    """The record of a CPU tensor of ``shape`` (float32 unless ``dtype``) made by ``source``."""
    return TensorMeta(shape, dtype, "cpu", path=path, source=source)


def call(
    index: int,
    name: str,
    type_: str,
    parent: int,
    inputs: Sequence[TensorMeta],
    outputs: Sequence[TensorMeta],
    params: int = 0,
    **fields: object,
) -> LayerCall:
    """A ``LayerCall`` with its depth taken from the dotted name, all parameters
    trainable, and each input without a path at ``[k]`` (positional, as traced)."""
    depth = name.count(".") + 1 if name else 0
    given = tuple(m if m.path else replace(m, path=f"[{k}]") for k, m in enumerate(inputs))
    return LayerCall(
        index, name, type_, depth, int(fields.pop("call", 0)),  # type: ignore[call-overload]
        parent, given, tuple(outputs), params, params, **fields,  # type: ignore[arg-type]
    )


def totals(params: int, flops: int = 0, **fields: int) -> Totals:
    """Totals with every parameter trainable, 4 bytes each, and no buffers."""
    values = {"buffers": 0, "buffer_bytes": 0, "activation_bytes": 0, **fields}
    return Totals(params, params, param_bytes=4 * params, flops=flops, **values)


MLP_LAYERS = (
    call(0, "", "Net", -1, [t(3, 4, source="inputs[0]")], [t(3, 2, source="layers[3]")], 58,
         flops=240),
    call(1, "fc1", "Linear", 0, [t(3, 4, source="inputs[0]")], [t(3, 8)], 40, flops=192,
         extra="in_features=4, out_features=8, bias=True",
         weights=(ParamMeta("weight", (8, 4), "float32", True),
                  ParamMeta("bias", (8,), "float32", True))),
    call(2, "act", "ReLU", 0, [t(3, 8, source="layers[1]")], [t(3, 8)]),
    call(3, "fc2", "Linear", 0, [t(3, 8, source="layers[2]")], [t(3, 2)], 18, flops=48,
         extra="in_features=8, out_features=2, bias=True"),
)  # fmt: skip


def mlp(
    findings: Sequence[Finding] = (),
    error: ErrorInfo | None = None,
    ops: Sequence[OpCall] = (),
) -> Report:
    """The report of the three-layer MLP (58 parameters, 240 FLOPs)."""
    return Report("Net", "cpu", "eval", totals(58, 240, activation_bytes=224), MLP_LAYERS,
                  ops, findings, error)  # fmt: skip


def stack(n: int) -> Report:
    """A root holding ``n`` identical Linear(4, 4) blocks, each fed by the one before."""
    layers = [call(0, "", "Stack", -1, [t(2, 4, source="inputs[0]")],
                   [t(2, 4, source=f"layers[{n}]")], 20 * n, flops=32 * n)]  # fmt: skip
    for i in range(n):
        source = f"layers[{i}]" if i else "inputs[0]"
        layers.append(call(i + 1, f"blocks.{i}", "Linear", 0, [t(2, 4, source=source)],
                           [t(2, 4)], 20, flops=32))  # fmt: skip
    return Report("Stack", "cpu", "eval", totals(20 * n, 32 * n), layers)
