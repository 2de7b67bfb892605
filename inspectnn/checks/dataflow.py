"""Dead computation and modules that never ran, from the recorded dataflow.

What reaches the outputs is ``inspectnn.liveness.live_calls`` (re-exported here, its
old home). May import: ``inspectnn.liveness`` and ``inspectnn.records``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from inspectnn.liveness import live_calls
from inspectnn.records import Finding, LayerCall, OpCall, Severity, parse_source

__all__ = ["batch_findings", "dead_findings", "live_calls", "uncalled_findings"]

# Modules whose children are used functionally, never called (out_proj of MHA).
_FUNCTIONAL_CHILDREN = {"MultiheadAttention"}
CONTAINER_NAMES = frozenset({"ModuleList", "ModuleDict", "ParameterList", "ParameterDict"})
"""Types never called themselves: holders of modules or parameters, not layers."""


def dead_findings(layers: Sequence[LayerCall], ops: Sequence[OpCall]) -> list[Finding]:
    """Chains of layer calls whose output never reaches the model's outputs.

    Empty when the model's outputs are not traced tensors (nothing to follow).
    Only the outermost dead calls count; a chain (``conv_skip_adjust`` feeding
    ``pool#2``) is one finding.
    """
    if not layers or not any(m.source for m in layers[0].outputs):
        return []
    live, _ = live_calls(layers, ops)
    dead = [r for r in layers if r.index not in live and r.parent in live]
    group: dict[int, int] = {}  # dead call -> first call of its chain
    for rec in dead:
        feeders = [_layer_index(m.source) for m in rec.inputs]
        first = next((group[f] for f in feeders if f in group), rec.index)
        group[rec.index] = first
    chains: dict[int, list[LayerCall]] = {}
    for rec in dead:
        chains.setdefault(group[rec.index], []).append(rec)
    out = []
    for chain in chains.values():
        names = " -> ".join(f"{r.label} ({r.type})" for r in chain)
        shape = next((m.short() for m in chain[-1].outputs if m.is_tensor), "a value")
        params = sum(r.params for r in chain if r.call == 0)
        grads = f"; its {params:,} parameters get no gradient" if params else ""
        out.append(
            Finding(
                "dead-computation",
                "warning",
                chain[0].name,
                f"The output of {names} ({shape}) never reaches the model's outputs: "
                f"wasted time{grads}.",
                "Use the result (e.g. add it to the main path) or remove the call.",
            )
        )
    return out


def _layer_index(source: str | None) -> int | None:
    parsed = parse_source(source)
    return parsed[1] if parsed is not None and parsed[0] == "layers" else None


def uncalled_findings(
    layers: Sequence[LayerCall], modules: Sequence[tuple[str, str, int]]
) -> list[Finding]:
    """Submodules that were never called; repeats across blocks (``h.*.attn_dropout``)
    are one finding.

    Args:
        layers: The traced calls.
        modules: ``(dotted path, type name, parameters no called module uses)``.
    """
    called = {rec.name for rec in layers}
    types = {name: type_name for name, type_name, _ in modules}
    reported: list[str] = []
    groups: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for name, type_name, n_params in modules:
        if not name or name in called or type_name in CONTAINER_NAMES:
            continue
        parent = name.rsplit(".", 1)[0] if "." in name else ""
        if types.get(parent) in _FUNCTIONAL_CHILDREN:
            continue
        if any(name.startswith(r + ".") for r in reported):
            continue
        reported.append(name)
        pattern = re.sub(r"(?<=\.)\d+(?=\.|$)|^\d+(?=\.)", "*", name)
        groups.setdefault((pattern, type_name), []).append((name, n_params))
    out = []
    for (pattern, type_name), members in groups.items():
        n_params = sum(p for _, p in members)
        severity: Severity = "warning" if n_params else "info"
        what = (
            f"{members[0][0]} ({type_name}) was"
            if len(members) == 1
            else f"{pattern} ({len(members)} {type_name} modules) were"
        )
        whose = "its" if len(members) == 1 else "their"
        grads = f"; {whose} {n_params:,} parameters get no gradient." if n_params else "."
        fix = (
            "Call it in forward, or delete it (DistributedDataParallel fails on unused "
            "parameters unless find_unused_parameters=True)."
            if n_params
            else "Harmless if intended (attention kernels apply their dropout themselves); "
            "otherwise call it in forward."
        )
        message = f"{what} never called in this forward{grads}"
        out.append(Finding("never-called", severity, members[0][0], message, fix))
    return out


def batch_findings(layers: Sequence[LayerCall], ops: Sequence[OpCall]) -> list[Finding]:
    """A view/reshape that silently changes the batch size (``x.view(-1, 32*7*7)`` on the
    wrong image size turns 49 samples into 64 rows and runs without error)."""
    if not layers:
        return []
    first = next((m for m in layers[0].inputs if m.is_tensor and m.shape), None)
    if first is None or first.shape is None or len(first.shape) < 2:
        return []
    batch = first.shape[0]
    out = []
    for op in ops:
        if op.failed or op.name.rsplit(".", 1)[-1] not in {"view", "reshape"}:
            continue
        src = next((m for m in op.inputs if m.is_tensor), None)
        dst = next((m for m in op.outputs if m.is_tensor), None)
        if src is None or dst is None or not src.shape or not dst.shape:
            continue
        prefixes = {math.prod(src.shape[: k + 1]) for k in range(len(src.shape))}
        if src.shape[0] == batch and len(src.shape) >= 2 and dst.shape[0] not in prefixes:
            # Merging leading dimensions ([B, T, C] -> [B*T, C]) keeps samples apart;
            # a first dimension that is no product of leading sizes mixes them.
            out.append(
                Finding(
                    "batch-changed",
                    "warning",
                    op.module,
                    f"{op.name}({op.args}) in {op.module or 'the root module'} turns the batch "
                    f"of {batch} into {dst.shape[0]} rows ({list(src.shape)} -> "
                    f"{list(dst.shape)}): the -1 absorbed a size that is not the batch, so "
                    "samples are mixed from here on.",
                    "Keep the batch explicit: x.flatten(1) or x.view(x.size(0), -1), and size "
                    "the next layer for the features that gives.",
                )
            )
    return out
