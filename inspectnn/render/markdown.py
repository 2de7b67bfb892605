"""The report as a Markdown table (for READMEs, issues and pull requests)."""

from __future__ import annotations

from collections.abc import Sequence

from inspectnn.records import Report
from inspectnn.render.table import format_count, format_shapes, format_size

__all__ = ["render_markdown"]


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(report: Report, depth: int | None = None, columns: Sequence[str] = ()) -> str:
    """A Markdown table of the calls (indented by depth), totals and findings below.

    Args:
        report: What to render.
        depth: Deepest call nesting shown (root 0); None shows all.
        columns: Extra columns among ``input``, ``dtype``, ``device``, ``flops``,
            ``trainable`` (layer, output and params are always there).
    """
    extra = [c for c in columns if c in ("input", "dtype", "device", "flops", "trainable")]
    head = ["Layer", "Type", *(c.capitalize() for c in extra[:1] if c == "input"), "Output"]
    head += [c.capitalize() for c in extra if c != "input"] + ["Params"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for rec in report.layers:
        if depth is not None and rec.depth > depth:
            continue
        name = ("&nbsp;&nbsp;" * rec.depth) + (f"`{rec.label}`" if rec.name else "(root)")
        row = [name, rec.type]
        if "input" in extra:
            row.append(format_shapes([m for m in rec.inputs if m.is_tensor]))
        row.append("(failed)" if rec.failed and not rec.outputs else format_shapes(rec.outputs))
        for c in extra:
            if c == "dtype":
                row.append(", ".join(dict.fromkeys(m.dtype for m in rec.outputs if m.dtype)))
            elif c == "device":
                row.append(", ".join(dict.fromkeys(m.device for m in rec.outputs if m.device)))
            elif c == "flops":
                row.append(format_size(rec.flops, "FLOPs") if rec.flops else "0")
            elif c == "trainable":
                row.append(format_count(rec.trainable_params))
        row.append(format_count(rec.params))
        lines.append("| " + " | ".join(_escape(cell) for cell in row) + " |")
    t = report.totals
    lines += [
        "",
        f"**Params:** {format_count(t.params)} ({format_size(t.param_bytes)}), trainable "
        f"{format_count(t.trainable_params)} · **FLOPs:** "
        f"{format_size(t.flops, 'FLOPs') if t.flops else '0'} · device {report.device} · "
        f"mode {report.mode}",
    ]
    if report.error is not None:
        lines += ["", f"**Error** in `{report.error.layer or '(root)'}`:", "", "```",
                  report.error.message, "```"]  # fmt: skip
    for f in report.findings:
        fix = f" Fix: {f.fix}" if f.fix else ""
        lines.append(f"- **{f.severity}** `{f.layer or '(root)'}`: {_escape(f.message)}{fix}")
    return "\n".join(lines) + "\n"
