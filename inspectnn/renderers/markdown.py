"""The report as a Markdown table (for READMEs, issues and pull requests)."""

from __future__ import annotations

from collections.abc import Sequence

from inspectnn.records import LayerCall, Report
from inspectnn.renderers.table import (
    check_columns,
    check_depth,
    format_count,
    format_shapes,
    format_size,
    kernel_text,
    mult_adds_text,
    params_text,
    percent_text,
)

__all__ = ["render_markdown"]

EXTRA = ("input", "dtype", "device", "kernel", "config", "flops", "mult_adds",
         "params_percent", "trainable")  # fmt: skip
_TITLES = {"kernel": "Kernel", "config": "Config", "flops": "Flops", "mult_adds": "Mult-adds",
           "params_percent": "Params %"}  # fmt: skip


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _extra_cell(rec: LayerCall, column: str, total: int, ran: bool) -> str:
    if column in ("input", "dtype", "device", "flops", "mult_adds") and not ran:
        return "-"
    if column == "input":
        return format_shapes([m for m in rec.inputs if m.is_tensor])
    if column == "dtype":
        return ", ".join(dict.fromkeys(m.dtype for m in rec.outputs if m.dtype))
    if column == "device":
        return ", ".join(dict.fromkeys(m.device for m in rec.outputs if m.device))
    if column == "kernel":
        return kernel_text(rec)
    if column == "config":
        return rec.extra
    if column == "flops":
        return format_size(rec.flops, "FLOPs") if rec.flops else "0"
    if column == "mult_adds":
        return mult_adds_text(rec.flops)
    if column == "params_percent":
        return percent_text(rec, total)
    return params_text(rec, trainable=True)  # trainable


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
        InvalidInputError: A column not in ``render.table.COLUMNS``, or a bad depth.
    """
    from inspectnn.summary import not_run

    check_depth(depth)
    ran = not not_run(report)
    extra = [c for c in check_columns(columns) if c in EXTRA]
    head = ["Layer", "Type", *(c.capitalize() for c in extra[:1] if c == "input"), "Output"]
    head += [_TITLES.get(c, c.capitalize()) for c in extra if c != "input"] + ["Params"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    if not ran:
        lines.insert(0, f"**{report.model}: not run, no input given** (no shapes or FLOPs)\n")
    for rec in report.layers:
        if depth is not None and rec.depth > depth:
            continue
        name = ("&nbsp;&nbsp;" * rec.depth) + (f"`{rec.label}`" if rec.name else "(root)")
        row = [name, rec.type]
        if "input" in extra:
            row.append(_extra_cell(rec, "input", report.totals.params, ran))
        if not ran:
            row.append("-")
        else:
            row.append("(failed)" if rec.failed and not rec.outputs else format_shapes(rec.outputs))
        row += [_extra_cell(rec, c, report.totals.params, ran) for c in extra if c != "input"]
        row.append(params_text(rec) if rec.call else format_count(rec.params))
        lines.append("| " + " | ".join(_escape(cell) for cell in row) + " |")
    t = report.totals
    flops = "- (not run)" if not ran else format_size(t.flops, "FLOPs") if t.flops else "0"
    lines += [
        "",
        f"**Params:** {format_count(t.params)} ({format_size(t.param_bytes)}), trainable "
        f"{format_count(t.trainable_params)} · **FLOPs:** "
        f"{flops} · device {report.device} · "
        f"mode {report.mode}",
    ]
    if report.error is not None:
        lines += ["", f"**Error** in `{report.error.layer or '(root)'}`:", "", "```",
                  report.error.message, "```"]  # fmt: skip
    for f in report.findings:
        fix = f" Fix: {f.fix}" if f.fix else ""
        lines.append(f"- **{f.severity}** `{f.layer or '(root)'}`: {_escape(f.message)}{fix}")
    return "\n".join(lines) + "\n"
