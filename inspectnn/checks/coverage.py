"""Which parts of the model the trace could not see, or saw differently."""

from __future__ import annotations

from collections.abc import Sequence

from inspectnn.records import Finding, LayerCall

__all__ = ["FUSED", "fast_path_findings"]

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
