"""Which parts of the model the trace could not see."""

from __future__ import annotations

from collections.abc import Sequence

from inspectnn.records import Finding, LayerCall

__all__ = ["fast_path_findings"]

# Modules whose eval-mode forward may run one fused kernel instead of their children.
_FUSED = {"TransformerEncoderLayer", "TransformerEncoder", "MultiheadAttention"}


def fast_path_findings(
    layers: Sequence[LayerCall], children: dict[str, list[str]]
) -> list[Finding]:
    """Flag fused-kernel modules whose children were not called.

    Args:
        layers: The traced calls.
        children: For each module path, the paths of its direct child modules.

    Returns:
        One ``"fast-path"`` info finding per such module.
    """
    called = {rec.name for rec in layers}
    out: list[Finding] = []
    seen: set[str] = set()
    for rec in layers:
        if rec.type not in _FUSED or rec.name in seen:
            continue
        seen.add(rec.name)
        missing = [c for c in children.get(rec.name, []) if c not in called]
        if not missing:
            continue
        where = rec.name or "the root module"
        shown = ", ".join(missing[:4]) + (" ..." if len(missing) > 4 else "")
        out.append(
            Finding(
                kind="fast-path",
                severity="info",
                layer=rec.name,
                message=(
                    f"{where} ({rec.type}) ran PyTorch's fused inference fast path, so its "
                    f"submodules ({shown}) ran inside one kernel and have no rows of their own."
                ),
                fix="Pass mode='train' to trace each submodule (dropout is then active).",
            )
        )
    return out
