"""The report as a Markdown table (for READMEs, issues and pull requests)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from inspectnn.records import not_run
from inspectnn.renderers import columns as registry
from inspectnn.renderers.columns import Column, Context, cell_text, format_count, format_size
from inspectnn.renderers.table import (
    check_columns,
    check_depth,
    collectives_line,
    findings_below_error,
    shape_view,
    totals_params,
)

if TYPE_CHECKING:
    from inspectnn.report import Report

__all__ = ["render_markdown"]

FIXED = ("layer", "output", "params")
"""Always shown: the layer (as name and type), its output and its parameters."""


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(report: Report, depth: int | None = None, columns: Sequence[str] = ()) -> str:
    """A Markdown table of the calls (indented by depth), totals and findings below.

    Args:
        report: What to render.
        depth: Deepest call nesting shown (root 0); None shows all.
        columns: Extra columns among ``input``, ``dtype``, ``device``, ``kernel``,
            ``config``, ``flops``, ``mult_adds``, ``params_percent``, ``trainable``
            (layer, output and params are always there). A module's second and
            later calls show ``(recursive)`` for their parameters.

    Raises:
        InvalidInputError: A column not in ``renderers.columns.COLUMNS``, or a bad depth.
    """
    return _render(report, depth, columns, registry.COLUMNS)


def _render(
    report: Report, depth: int | None, columns: Sequence[str], known: Mapping[str, Column]
) -> str:
    """:func:`render_markdown` with the column registry ``known``."""
    check_depth(depth)
    ran = not not_run(report)
    extra = [c for c in check_columns(columns, known) if c not in FIXED]
    # Layer, Type, the input if asked, Output, the other extras, Params
    view, sharded = shape_view(report, None)
    shown = [c for c in extra if c == "input"] + ["output"]
    if sharded and ran and "placement" not in extra:
        shown.append("placement")
    shown += [c for c in extra if c != "input"] + ["params"]
    spec = [known[c] for c in shown]
    head = ["Layer", "Type", *(c.title for c in spec)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    if not ran:
        lines.insert(0, f"**{report.model}: not run, no input given** (no shapes or FLOPs)\n")
    ctx = Context(report.totals.params, ran, marks=False, view=view, sharded=sharded)
    for rec in report.layers:
        if depth is not None and rec.depth > depth:
            continue
        name = ("&nbsp;&nbsp;" * rec.depth) + (f"`{rec.label}`" if rec.name else "(root)")
        row = [name, rec.type, *(cell_text(c, rec, ctx) for c in spec)]
        lines.append("| " + " | ".join(_escape(cell) for cell in row) + " |")
    t = report.totals
    flops = "- (not run)" if not ran else format_size(t.flops, "FLOPs") if t.flops else "0"
    lines += [
        "",
        f"**Params:** {totals_params(t)}, trainable "
        f"{format_count(t.trainable_params)} · **FLOPs:** "
        f"{flops} · device {report.device} · "
        f"mode {report.mode}",
    ]
    comms = collectives_line(report)
    if comms:
        lines[-1] += f" · **Collectives:** {comms}"
    if report.error is not None:
        lines += ["", f"**Error** in `{report.error.layer or '(root)'}`:", "", "```",
                  report.error.message, "```"]  # fmt: skip
    for f in findings_below_error(report):
        fix = f" Fix: {_escape(f.fix)}" if f.fix else ""
        lines.append(f"- **{f.severity}** `{f.layer or '(root)'}`: {_escape(f.message)}{fix}")
    return "\n".join(lines) + "\n"
