"""An HTML table: a fragment for notebooks (``Report._repr_html_``), a page for ``-o x.html``."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from inspectnn.records import not_run
from inspectnn.renderers.columns import COLUMNS, Context, cell_text, format_count
from inspectnn.renderers.table import (
    NOT_RUN_TITLE,
    collectives_line,
    findings_below_error,
    shape_view,
)

if TYPE_CHECKING:
    from inspectnn.report import Report

__all__ = ["render_html", "render_html_page"]

SHOWN = ("input", "output", "params")
"""The columns after the layer's (its headers, alignment and cells from the registry)."""


_ALIGN = {"left": "", "right": " style='text-align:right'"}
"""A cell's alignment: left is the page's default."""


def render_html(report: Report) -> str:
    """The report's calls as an HTML table, totals and findings below it.

    A module's second and later calls show ``(recursive)`` for their parameters;
    a model summarised without an input says it was not run.
    """
    ran = not not_run(report)
    view, sharded = shape_view(report, None)
    ctx = Context(report.totals.params, ran, marks=False, view=view, sharded=sharded)
    spec = [COLUMNS[c] for c in SHOWN]
    rows = []
    for rec in report.layers:
        pad = "&nbsp;" * (4 * rec.depth)
        name = escape(rec.label) if rec.name else ""
        style = ' style="color:#c00"' if rec.failed else ""
        cells = "".join(
            f"<td{_ALIGN[c.align]}>{escape(cell_text(c, rec, ctx))}</td>" for c in spec
        )
        rows.append(
            f"<tr{style}><td style='text-align:left'>{pad}{name} <i>{escape(rec.type)}</i></td>"
            f"{cells}</tr>"
        )
    head = "".join(f"<th>{escape(c.header)}</th>" for c in (COLUMNS["layer"], *spec))
    t = report.totals
    notes = [
        f"<li><b>{escape(f.severity)}</b> {escape(f.layer or '(root)')}: {escape(f.message)}</li>"
        for f in findings_below_error(report)
    ]
    if report.error is not None:
        err = report.error
        notes.insert(
            0,
            f"<li><b>error</b> {escape(err.layer or '(root)')}: "
            f"{escape(err.type)}: {escape(err.message)}</li>",
        )
    comms = collectives_line(report)
    comms = f" · Collectives: {escape(comms)}" if comms else ""
    return (
        f"<div><b>{escape(report.model)}</b> on {escape(report.device)} ({report.mode})"
        + ("" if ran else f" <b>{escape(NOT_RUN_TITLE)}</b>")
        + f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f"<p>Params: {format_count(t.params)} · trainable {format_count(t.trainable_params)}"
        f" · FLOPs {format_count(t.flops)}{comms}</p>"
        + (f"<ul>{''.join(notes)}</ul>" if notes else "")
        + "</div>"
    )


def render_html_page(report: Report) -> str:
    """A standalone HTML page (doctype, UTF-8 charset, title) around :func:`render_html`."""
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>inspectnn: {escape(report.model)}</title>\n"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "th,td{padding:2px 10px;text-align:left}tbody tr:nth-child(odd){background:#f4f4f4}"
        "</style>\n</head>\n<body>\n"
        f"{render_html(report)}\n</body>\n</html>\n"
    )
