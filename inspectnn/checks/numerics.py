"""``non-finite``: the first layer whose output holds NaN or Inf (``check_numerics=True``).

The tracer finds the call (one reduction per output, skipped on meta) and keeps
``(call index, has NaN, (min, max) of each float input)``; this module says it.
"""

from __future__ import annotations

from collections.abc import Sequence

from inspectnn.records import Finding, LayerCall

__all__ = ["nonfinite_findings"]


def nonfinite_findings(
    layers: Sequence[LayerCall],
    first: tuple[int, bool, list[tuple[float, float]]] | None,
) -> list[Finding]:
    """An error naming the first layer whose output is not finite, if there is one.

    Args:
        layers: The traced calls.
        first: The tracer's ``nonfinite``: ``(call index, has NaN, [(min, max) of each
            float input])`` of the first call whose output holds NaN or Inf, or None.

    Returns:
        One ``"non-finite"`` error, or nothing.
    """
    if first is None:
        return []
    idx, nan, ranges = first
    rec = layers[idx]
    what = "NaN" if nan else "Inf"
    seen = "; ".join(f"[{lo:.4g}, {hi:.4g}]" for lo, hi in ranges) or "no float input"
    return [
        Finding(
            "non-finite",
            "error",
            rec.name,
            f"{rec.label or rec.type} ({rec.type}) is the first layer whose output holds "
            f"{what}; its input ranged over {seen}.",
            "Look for a division by zero, log/sqrt of a non-positive value, or an overflow "
            "(float16 saturates at 65504) in this layer or just before it.",
        )
    ]
