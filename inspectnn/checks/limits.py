"""Python's own limits, said in inspectnn's words: module calls nested past the recursion limit."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from inspectnn.errors import ForwardError

if TYPE_CHECKING:
    from inspectnn.report import Report

__all__ = ["recursion_error", "short_name"]


def short_name(name: str, width: int = 80) -> str:
    """``name``, its middle cut out past ``width`` characters (a path 200 modules deep)."""
    if len(name) <= width:
        return name
    keep = (width - 5) // 2
    return f"{name[:keep]} ... {name[-keep:]}"


def recursion_error(report: Report, failed: int | None, failure: RecursionError) -> ForwardError:
    """The error for a forward that ran past Python's recursion limit.

    Args:
        report: The partial report.
        failed: Index of the innermost call that was running, or None.
        failure: The RecursionError.
    """
    limit = sys.getrecursionlimit()
    rec = report.layers[failed] if failed is not None and failed < len(report.layers) else None
    depth = rec.depth if rec is not None else 0
    where = f"{short_name(rec.name) or '(root)'} ({rec.type})" if rec is not None else "the model"
    message = (
        f"The forward of {report.model} ran past Python's recursion limit ({limit}) with "
        f"module calls nested {depth} deep, in {where}. A plain forward fails at the same "
        "depth: inspect makes room in the limit for the frames it adds.\n"
        f"  fix:        raise the limit before the call, e.g. import sys; "
        f"sys.setrecursionlimit({max(limit * 2, 4 * depth + 1000)}), or nest fewer "
        f"modules (loop over an nn.ModuleList instead of wrapping each block in the next)\n"
        f"  torch:      RecursionError: {failure}"
    )
    return ForwardError(message, layer=rec.name if rec is not None else "", report=report)
