"""The plain-text table: a tree of calls with shapes and counts.

Pure functions of a Report. Identical consecutive sibling calls (the 12 blocks
of a GPT-2) fold into one row marked ``x12``. A module called again (one conv
applied six times) is one module: its later calls show ``(recursive)`` for their
parameters, as torchinfo does, instead of counting them again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from inspectnn.distributed.rank import VIEWS, View
from inspectnn.errors import InvalidInputError
from inspectnn.records import (
    Finding,
    LayerCall,
    ParamMeta,
    Totals,
    not_run,
    parse_source,
)
from inspectnn.renderers import columns as registry
from inspectnn.renderers.columns import (
    RECURSIVE,
    Column,
    Context,
    cell_text,
    collective_totals,
    format_count,
    format_shapes,
    format_size,
    kernel_text,
    mult_adds_text,
    params_text,
    percent_text,
)

if TYPE_CHECKING:
    from inspectnn.report import Report

__all__ = [
    "COLUMNS",
    "RECURSIVE",
    "collectives_line",
    "fold_runs",
    "format_count",
    "format_shapes",
    "format_size",
    "kernel_text",
    "mult_adds_text",
    "params_text",
    "percent_text",
    "render_table",
    "to_ascii",
    "totals_params",
]

COLUMNS = tuple(registry.COLUMNS)
"""The names ``columns=`` takes, in the table's order (see ``renderers/columns.py``)."""
DEFAULT_COLUMNS = ("layer", "output", "params")
STATIC_COLUMNS = ("layer", "config", "params")  # a model that was not run: no shapes
NOT_RUN_TITLE = "not run: no input given (modules, parameters and configuration only)"
"""The first line of the table of a model summarised without an input."""


@dataclass(frozen=True, slots=True)
class _Glyphs:
    tee: str
    elbow: str
    pipe: str
    rule: str
    more: str  # a cut cell, and the gap in a folded run's names


_BOX = _Glyphs("├─ ", "└─ ", "│  ", "─", "…")
_ASCII = _Glyphs("|- ", "`- ", "|  ", "-", "...")
_TO_ASCII = str.maketrans({"·": "|", "…": "...", "—": "-", "–": "-", "×": "x", "→": "->",
                           "←": "<-", "‘": "'", "’": "'", "“": '"', "”": '"', "≠": "!=",
                           "≤": "<=", "≥": ">=", "µ": "u"})  # fmt: skip


def check_columns(
    columns: Sequence[str], known: Mapping[str, Column] = registry.COLUMNS
) -> tuple[str, ...]:
    """``columns`` as a tuple, each one of ``known`` (the column registry).

    Raises:
        InvalidInputError: A name not in ``COLUMNS``, or one string for a list.
    """
    if isinstance(columns, str):
        raise InvalidInputError(
            f"columns is a list of column names, e.g. columns=[{columns!r}] (got a string)."
        )
    for column in columns:
        if column not in known:
            raise InvalidInputError(f"unknown column {column!r}; choose from {', '.join(known)}")
    return tuple(columns)


def check_depth(depth: int | None) -> None:
    """Raise InvalidInputError unless ``depth`` is ``None`` or an int >= 0 (0 is the root)."""
    if depth is not None and (type(depth) is not int or depth < 0):
        raise InvalidInputError(
            f"depth is the deepest nesting to show: None for all, 0 for the model alone, "
            f"1 for its children ... (got {depth!r})."
        )


def to_ascii(text: str) -> str:
    """``text`` in ASCII only: the usual typographic signs spelled out, anything else ``?``."""
    return text.translate(_TO_ASCII).encode("ascii", "replace").decode("ascii")


def _signature(
    rec: LayerCall, kids: dict[int, list[int]], layers: Sequence[LayerCall]
) -> tuple[object, ...]:
    """What must match for two sibling calls to fold: every value a row or node shows
    (type, shapes, dtypes, devices, non-tensor values, parameter, trainable and FLOP
    counts, the shared mark), for the call and its whole subtree."""
    sub = tuple(_signature(layers[k], kids, layers) for k in kids.get(rec.index, []))
    shown_in = [m for m in rec.inputs if m.is_tensor] or rec.inputs  # as the input column
    shapes = tuple((m.shape, m.dtype, m.device, m.value) for m in (*shown_in, *rec.outputs))
    counts = (rec.params, rec.trainable_params, rec.flops, bool(rec.shared))
    return (rec.type, shapes, counts, rec.failed, sub)


@dataclass(frozen=True, slots=True)
class _Row:
    rec: LayerCall
    prefix: str
    count: int  # > 1 for a folded run
    last_name: str
    param: ParamMeta | None = None  # a per-parameter row under its module's row


def fold_runs(
    siblings: Sequence[int], kids: dict[int, list[int]], layers: Sequence[LayerCall]
) -> list[tuple[int, int]]:
    """Group consecutive identical siblings that feed each other: ``[(first, length), ...]``.

    Two calls fold when every value shown for them agrees (type, shapes, dtypes,
    devices, counts, and the same down their subtrees) and the second takes its input
    from the first (a stack of blocks), not when they are parallel branches over the
    same input. A folded row's ``each`` is then true of every block.
    """
    runs: list[tuple[int, int]] = []
    prev: tuple[object, ...] | None = None
    prev_idx = -1
    for idx in siblings:
        sig = _signature(layers[idx], kids, layers)
        if runs and sig == prev and _fed_by(layers[idx], prev_idx):
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((idx, 1))
        prev, prev_idx = sig, idx
    return runs


def _fed_by(rec: LayerCall, prev: int) -> bool:
    """Whether ``rec``'s first tensor input came out of call ``prev`` (or its subtree)."""
    first = next((m for m in rec.inputs if m.is_tensor), None)
    parsed = parse_source(first.source) if first is not None else None
    if parsed is None or parsed[0] != "layers":
        return False
    return prev <= parsed[1] < rec.index


def _rows(
    report: Report, depth: int | None, fold: bool, parameters: bool, g: _Glyphs
) -> list[_Row]:
    layers = report.layers
    kids: dict[int, list[int]] = {}
    for rec in layers:
        if rec.parent >= 0:
            kids.setdefault(rec.parent, []).append(rec.index)
    rows: list[_Row] = []

    def walk(idx: int, prefix: str, child_prefix: str, count: int, last: str) -> None:
        rec = layers[idx]
        rows.append(_Row(rec, prefix, count, last))
        if depth is not None and rec.depth >= depth:
            return
        children = kids.get(idx, [])
        weights = rec.weights if parameters and not rec.call else ()
        for n, w in enumerate(weights):
            end = n == len(weights) - 1 and not children
            rows.append(_Row(rec, child_prefix + (g.elbow if end else g.tee), 1, "", w))
        runs = fold_runs(children, kids, layers) if fold else [(c, 1) for c in children]
        pos = {c: i for i, c in enumerate(children)}
        for n, (first, length) in enumerate(runs):
            end = n == len(runs) - 1
            last_name = layers[children[pos[first] + length - 1]].name
            walk(first, child_prefix + (g.elbow if end else g.tee),
                 child_prefix + ("   " if end else g.pipe), length, last_name)  # fmt: skip

    if layers:
        walk(0, "", "", 1, layers[0].name)
    return rows


def _param_cell(row: _Row, w: ParamMeta, column: str) -> str:
    """A per-parameter row: name, shape and trainable flag; its count in the count columns."""
    if column == "layer":
        shape = "uninitialised" if w.shape is None else f"[{', '.join(map(str, w.shape))}]"
        return f"{row.prefix}.{w.name} {shape}" + ("" if w.trainable else " (frozen)")
    if column == "params":
        return format_count(w.numel)
    if column == "trainable":
        return format_count(w.numel if w.trainable else 0)
    if column == "dtype":
        return w.dtype
    return ""


def _cell(row: _Row, column: Column, total: int, ran: bool, g: _Glyphs, view: _View) -> str:
    """A row's cell: the registry's text (``-`` for nothing), or a parameter row's."""
    if row.param is not None:
        return _param_cell(row, row.param, column.name)
    ctx = Context(total, ran, row.count, row.last_name, row.prefix, g.more, True, *view)
    return cell_text(column, row.rec, ctx) or "-"


_View = tuple[str, bool]  # (shape view, the run saw DTensor values)


def shape_view(report: Report, view: str | None) -> _View:
    """The shape view a table shows (``view``, else the report's, else ``"local"``) and
    whether the report is sharded (any value or parameter a ``DTensor``)."""
    if view is None:
        view = report.rank.view if report.rank is not None else "local"
    elif view not in VIEWS:
        raise InvalidInputError(
            f"view is 'local' (this rank's shard of a DTensor) or 'global' (its whole "
            f"shape), got {view!r}."
        )
    sharded = report.totals.sharded or any(
        m.placements for rec in report.layers for m in (*rec.inputs, *rec.outputs)
    )
    return view, sharded


def _fit(text: str, width: int, more: str) -> str:
    return text if len(text) <= width else text[: max(1, width - len(more))] + more


def totals_params(t: Totals) -> str:
    """The parameter count and bytes: ``552 (2.2 KB)``; on a sharded rank the global
    count and this rank's share, ``552 (global) · this rank holds 280 (1.1 KB)``."""
    if t.sharded and t.local_params is not None:
        return (
            f"{format_count(t.params)} (global) · this rank holds "
            f"{format_count(t.local_params)} ({format_size(t.param_bytes)})"
        )
    return f"{format_count(t.params)} ({format_size(t.param_bytes)})"


def _footer(report: Report, ran: bool, view: str = "local") -> list[str]:
    t = report.totals
    flops = "- (not run)" if not ran else format_size(t.flops, "FLOPs") if t.flops else "0"
    lines = [f"Job: {report.rank.describe(view)}"] if report.rank is not None else []
    lines += [
        f"Params: {totals_params(t)}"
        f" · trainable {format_count(t.trainable_params)}"
        f" · non-trainable {format_count(t.non_trainable_params)}"
        f" · buffers {format_count(t.buffers)}",
        f"FLOPs: {flops}"
        f" · activations {format_size(t.activation_bytes) if ran else '-'}"
        f" · device {report.device} · mode {report.mode}",
    ]
    comms = collectives_line(report)
    if comms:
        lines.append(f"Collectives: {comms}")
    groups = _tied_groups(report)
    if groups:
        tied = "; ".join(" = ".join(g) for g in groups)
        lines.append(f"* shared tensors, counted once: {tied}")
    if report.error is not None:
        name = report.error.layer
        kind = next((r.type for r in report.layers if r.name == name), "")
        where = f"'{name}' ({kind})" if name else f"the root module ({report.model})"
        lines.append(f"Error in {where}: {report.error.type}: {report.error.message}")
    for f in findings_below_error(report):
        lines.append(f"[{f.severity}] {f.layer or '(root)'}: {f.message}")
        if f.fix:
            lines.append(f"    fix: {f.fix}")
    return lines


def collectives_line(report: Report) -> str:
    """The collectives the forward ran on this rank, each op once with its count and
    bytes, in first-seen order: ``2 all_reduce (256 B) · 1 all_gather_into_tensor
    (64 B)``; ``""`` when none ran (a plain model always)."""
    found = collective_totals(report.layers)
    return " · ".join(f"{n} {name} ({format_size(b)})" for name, (n, b) in found.items())


def findings_below_error(report: Report) -> list[Finding]:
    """The findings to list under a report's error: all but the error-level ones on the
    failed layer, which repeat what the error says in full just above them."""
    err = report.error
    if err is None:
        return list(report.findings)
    return [f for f in report.findings if not (f.layer == err.layer and f.severity == "error")]


def _tied_groups(report: Report) -> list[list[str]]:
    """Each set of names for one tied tensor, once: ``[["lm_head.weight", "wte.weight"]]``."""
    groups: list[list[str]] = []
    for rec in report.layers:
        if rec.call:
            continue
        for pair in rec.shared:
            local, _, other = pair.partition("=")
            here = f"{rec.name}.{local}" if rec.name else local
            group = next((g for g in groups if here in g or other in g), None)
            if group is None:
                groups.append(sorted({here, other}))
            else:
                group.extend(n for n in (here, other) if n not in group)
                group.sort()
    return groups


def render_table(
    report: Report,
    depth: int | None = None,
    columns: Sequence[str] | None = None,
    max_width: int | None = None,
    fold: bool = True,
    parameters: bool = False,
    ascii: bool = False,
    view: View | None = None,
) -> str:
    """Render ``report`` as a plain-text table.

    Args:
        report: What to render.
        depth: Deepest call nesting shown (root is 0); ``None`` shows all.
        columns: Any of ``COLUMNS``; default ``("layer", "output", "params")``, and
            ``("layer", "config", "params")`` for a model that was not run.
        max_width: Total width in characters; the layer (then config) column is cut to fit.
        fold: Fold identical consecutive sibling calls into one ``xN`` row.
        parameters: Add a row under each module for each of its own parameters
            (name, shape, ``(frozen)`` when not trainable), like torchinfo's ``verbose=2``.
        ascii: ASCII only (``|-`` tree, ``-`` rules, ``...``), for logs that cannot
            show box drawing.
        view: For a sharded model: ``"local"`` shows each ``DTensor``'s shard on this
            rank, ``"global"`` its whole shape; default the report's (``inspect(view=)``).
            A sharded report's default columns add ``placement`` after ``output``.

    Returns:
        The table, a totals footer, then the error and findings if any.

    Example:
        >>> import torch, inspectnn
        >>> r = inspectnn.inspect(torch.nn.Linear(4, 2), torch.randn(3, 4))
        >>> print(render_table(r).splitlines()[2])
        Linear        [3, 2]            10
    """
    return _render(
        report, depth, columns, max_width, fold, parameters, ascii, registry.COLUMNS, view
    )


def _render(
    report: Report,
    depth: int | None,
    columns: Sequence[str] | None,
    max_width: int | None,
    fold: bool,
    parameters: bool,
    ascii: bool,
    known: Mapping[str, Column],
    view: View | None = None,
) -> str:
    """:func:`render_table` with the column registry ``known``."""
    ran = not not_run(report)
    shapes = shape_view(report, view)
    default: tuple[str, ...] = DEFAULT_COLUMNS if ran else STATIC_COLUMNS
    if ran and shapes[1]:
        default = ("layer", "output", "placement", "params")
    cols = check_columns(columns, known) if columns is not None else default
    check_depth(depth)
    if max_width is not None and (type(max_width) is not int or max_width < 1):
        raise InvalidInputError(
            f"max_width is the table's width in characters, e.g. max_width=100, "
            f"or None for no limit (got {max_width!r})."
        )
    g = _ASCII if ascii else _BOX
    spec = [known[c] for c in cols]
    rows = _rows(report, depth, fold, parameters, g)
    cells = [[_cell(r, c, report.totals.params, ran, g, shapes) for c in spec] for r in rows]
    if ascii:
        cells = [[to_ascii(v) for v in row] for row in cells]
    widths = [max([len(c.header)] + [len(row[i]) for row in cells]) for i, c in enumerate(spec)]
    if max_width is not None:
        _shrink(widths, cols, max_width)

    def line(values: Sequence[str]) -> str:
        parts = []
        for value, width, col in zip(values, widths, spec, strict=True):
            value = _fit(value, width, g.more)
            parts.append(value.rjust(width) if col.align == "right" else value.ljust(width))
        return "  ".join(parts).rstrip()

    rule = g.rule * len(line(["x" * w for w in widths]))
    out = [line([c.header for c in spec]), rule, *(line(row) for row in cells), rule]
    if not ran:
        out.insert(0, f"{report.model}: {NOT_RUN_TITLE}")
    footer = _footer(report, ran, shapes[0])
    return "\n".join(out + ([to_ascii(f) for f in footer] if ascii else footer))


def _shrink(widths: list[int], cols: tuple[str, ...], max_width: int) -> None:
    """Cut the config column, then the layer column (to 12 at least), to fit ``max_width``."""
    for col in ("config", "layer"):
        if col in cols:
            i = cols.index(col)
            others = sum(w for j, w in enumerate(widths) if j != i) + 2 * (len(cols) - 1)
            widths[i] = max(12, min(widths[i], max_width - others))
