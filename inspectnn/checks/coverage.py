"""Which parts of the model the trace could not see, or saw differently.

``fast-path`` and ``flops-uncounted`` for a traced forward; ``not-run`` and ``lazy``
for a model given no input (``summary.static_report``), where nothing was traced.
"""

from __future__ import annotations

from collections.abc import Sequence

from inspectnn.records import NOT_RUN, Finding, LayerCall, not_run

__all__ = [
    "FUSED",
    "NOT_RUN",
    "fast_path_findings",
    "not_run",
    "not_run_findings",
    "uncounted_findings",
    "uncounted_ops",
]

"""The finding kind that marks a report of a model that was not run."""

# Modules whose eval-mode forward can run one fused kernel instead of their children.
FUSED = frozenset({"TransformerEncoderLayer", "TransformerEncoder"})


def fast_path_findings(
    layers: Sequence[LayerCall],
    children: dict[str, list[str]],
    training: bool,
    containers: frozenset[str] = frozenset(),
) -> list[Finding]:
    """Say how each fused-kernel module ran: fused (children unseen) or step by step.

    Args:
        layers: The traced calls.
        children: For each module path, the paths of its direct child modules.
        training: The mode of the forward; the fast path exists only in eval.
        containers: Paths of ModuleList/ModuleDict children, which are never called.

    Returns:
        One ``"fast-path"`` info finding per such module, in eval mode only.
    """
    if training:
        return []
    called = {rec.name for rec in layers}
    out: list[Finding] = []
    seen: set[str] = set()
    for rec in layers:
        if rec.type not in FUSED or rec.name in seen:
            continue
        seen.add(rec.name)
        where = f"{rec.name or 'the root module'} ({rec.type})"
        missing = [c for c in children.get(rec.name, []) if c not in called and c not in containers]
        if missing:
            shown = ", ".join(missing[:4]) + (" ..." if len(missing) > 4 else "")
            message = (
                f"{where} ran PyTorch's fused inference fast path, so its submodules "
                f"({shown}) ran inside one kernel and have no rows of their own."
            )
            fix = "Pass mode='train' to trace each submodule (dropout is then active)."
        else:
            message = (
                f"In a plain eval forward {where} can take PyTorch's fused fast path "
                "(one kernel, no submodule calls); under inspectnn it ran its submodules "
                "one by one, with the same shapes, so each has a row."
            )
            fix = ""
        out.append(Finding("fast-path", "info", rec.name, message, fix))
    return out


def uncounted_ops(uncounted: Sequence[tuple[str, int]]) -> tuple[str, ...]:
    """The names of the ops whose FLOPs went uncounted, each once, in first-seen order."""
    return tuple(dict.fromkeys(op for op, _ in uncounted))


def uncounted_findings(
    layers: Sequence[LayerCall], uncounted: Sequence[tuple[str, int]]
) -> list[Finding]:
    """One ``"flops-uncounted"`` warning per op whose FLOPs are missing from the counts.

    Args:
        layers: The traced calls.
        uncounted: ``(op, index in layers or -1)`` for each op and call where
            counting was impossible: no formula for an op that multiplies
            matrices, or a formula or recount that failed.
    """
    where: dict[str, list[int]] = {}
    for op, idx in uncounted:
        calls = where.setdefault(op, [])
        if idx not in calls:
            calls.append(idx)
    out = []
    for op, calls in where.items():
        labels = (layers[i].label if 0 <= i < len(layers) else "outside modules" for i in calls)
        names = list(dict.fromkeys(labels))
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        out.append(
            Finding(
                "flops-uncounted",
                "warning",
                layers[calls[0]].name if 0 <= calls[0] < len(layers) else "",
                f"The FLOPs of {op} (in {shown}) could not be counted: inspectnn has no "
                "formula for it, or counting it failed. The FLOP totals leave it out, so "
                "they are too low.",
                "Compare with torch.utils.flop_counter.FlopCounterMode, or report the op "
                "to inspectnn so it gets a formula.",
            )
        )
    return out


def not_run_findings(layers: Sequence[LayerCall]) -> list[Finding]:
    """What a summary of a model given no input could not see.

    Args:
        layers: The summary's records, one per module.

    Returns:
        The ``"not-run"`` info finding, then one ``"lazy"`` info finding per
        uninitialised module (its parameters count as 0).
    """
    out = [
        Finding(
            NOT_RUN,
            "info",
            "",
            "not run: no input given. This lists the modules, their parameters and "
            "configuration; shapes and FLOPs need a forward.",
            "Pass the inputs as for model(x): inspect(model, x), or "
            "inspect(model, input_size=(1, 3, 224, 224)) to build a random one.",
        )
    ]
    for rec in layers:
        if rec.uninitialised:
            names = ", ".join(w.name for w in rec.weights if w.shape is None)
            out.append(
                Finding(
                    "lazy",
                    "info",
                    rec.name,
                    f"{rec.label} ({rec.type}) is uninitialised: its parameters ({names}) are "
                    "created by the model's first forward, so they count as 0 here.",
                    "Run model(x) once with a real input, then inspect it.",
                )
            )
    return out
