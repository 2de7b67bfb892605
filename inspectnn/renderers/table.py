"""The plain-text table: a tree of calls with shapes and counts.

Pure functions of a Report. Identical consecutive sibling calls (the 12 blocks
of a GPT-2) fold into one row marked ``x12``. A module called again (one conv
applied six times) is one module: its later calls show ``(recursive)`` for their
parameters, as torchinfo does, instead of counting them again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from inspectnn.errors import InvalidInputError
from inspectnn.records import LayerCall, ParamMeta, Report, TensorMeta, parse_source

__all__ = [
    "COLUMNS",
    "fold_runs",
    "format_count",
    "format_shapes",
    "kernel_text",
    "mult_adds_text",
    "params_text",
    "percent_text",
    "render_table",
    "to_ascii",
]

COLUMNS = (
    "layer",
    "input",
    "output",
    "dtype",
    "device",
    "kernel",
    "config",
    "params",
    "params_percent",
    "trainable",
    "flops",
    "mult_adds",
)
DEFAULT_COLUMNS = ("layer", "output", "params")
STATIC_COLUMNS = ("layer", "config", "params")  # a model that was not run: no shapes
_HEADERS = {
    "layer": "Layer (type)",
    "input": "Input shape",
    "output": "Output shape",
    "dtype": "Dtype",
    "device": "Device",
    "kernel": "Kernel",
    "config": "Config",
    "params": "Params",
    "params_percent": "Params %",
    "trainable": "Trainable",
    "flops": "FLOPs",
    "mult_adds": "Mult-adds",
}
_RIGHT = {"params", "params_percent", "trainable", "flops", "mult_adds"}
NOT_RUN_TITLE = "not run: no input given (modules, parameters and configuration only)"
"""The first line of the table of a model summarised without an input."""
RECURSIVE = "(recursive)"
"""The parameter cell of a module's second and later calls: counted at its first.
A module without parameters shows 0 at every call."""


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


def check_columns(columns: Sequence[str]) -> tuple[str, ...]:
    """``columns`` as a tuple, each one of ``COLUMNS``.

    Raises:
        InvalidInputError: A name not in ``COLUMNS``, or one string for a list.
    """
    if isinstance(columns, str):
        raise InvalidInputError(
            f"columns is a list of column names, e.g. columns=[{columns!r}] (got a string)."
        )
    for column in columns:
        if column not in COLUMNS:
            raise InvalidInputError(f"unknown column {column!r}; choose from {', '.join(COLUMNS)}")
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


_KERNEL_KEYS = re.compile(
    r"\b(kernel_size|stride|padding|dilation|groups)=(\([^)]*\)|'[^']*'|[^,]+)"
)
_KERNEL_SHORT = {"kernel_size": "k", "stride": "s", "padding": "p", "dilation": "d", "groups": "g"}
_DIMS = re.compile(r"([123])d$")


def kernel_text(rec: LayerCall) -> str:
    """``"k=3x3 s=2 p=1 g=32"`` for a conv or pool (from its ``extra_repr``), ``""`` otherwise.

    Kernel, stride and padding are always given (padding 0 when the conv's
    ``extra_repr`` leaves it out); dilation and groups only when not 1.
    """
    found = dict(_KERNEL_KEYS.findall(rec.extra))
    if "kernel_size" not in found:
        return ""
    dims = _DIMS.search(rec.type)
    n = int(dims[1]) if dims else 1
    found.setdefault("padding", "0")

    def short(key: str, value: str) -> str:
        parts = [v.strip() for v in value.strip("()").split(",") if v.strip()]
        if key == "kernel_size":
            parts = parts * n if len(parts) == 1 else parts
            return "x".join(parts)
        return parts[0] if len(set(parts)) == 1 else "x".join(parts)

    out = [f"{_KERNEL_SHORT[k]}={short(k, found[k])}" for k in _KERNEL_SHORT if k in found]
    return " ".join(o for o in out if o not in ("d=1", "g=1"))


def percent_text(rec: LayerCall, total: int) -> str:
    """The call's share of the model's parameters, ``"12.34%"``; ``-`` for a repeat call."""
    if (rec.call and rec.params) or total <= 0:
        return "-"
    return f"{100 * rec.params / total:.2f}%"


def mult_adds_text(flops: int) -> str:
    """Multiply-adds from FLOPs: every counted op is a product (FLOPs = 2 x mult-adds)."""
    return format_size(flops // 2, "MACs") if flops else "0"


def params_text(rec: LayerCall, trainable: bool = False) -> str:
    """The parameter count of a call: ``(recursive)`` past the first call of a module
    with parameters (they are counted at its first call)."""
    if rec.call and rec.params:
        return RECURSIVE
    n = rec.trainable_params if trainable else rec.params
    return format_count(n) + ("*" if rec.shared and not trainable else "")


def format_count(n: int) -> str:
    """``1234567`` -> ``"1,234,567"``."""
    return f"{n:,}"


def format_size(n: float, unit: str = "B") -> str:
    """``1536`` -> ``"1.5 KB"`` (powers of 1000 for FLOPs, 1024 for bytes)."""
    base = 1024.0 if unit == "B" else 1000.0
    for prefix in ("", "K", "M", "G", "T", "P"):
        if abs(n) < base or prefix == "P":
            return f"{n:.0f} {prefix}{unit}" if prefix == "" else f"{n:.1f} {prefix}{unit}"
        n /= base
    return f"{n:.1f} {unit}"  # pragma: no cover


def format_shapes(metas: Sequence[TensorMeta], limit: int = 3) -> str:
    """``[64, 10]`` for one tensor; several joined by commas; non-tensors by value."""
    shown = [f"[{', '.join(str(d) for d in m.shape)}]" if m.shape is not None else (m.value or "?")
             for m in metas[:limit]]  # fmt: skip
    if len(metas) > limit:
        shown.append(f"+{len(metas) - limit} more")
    return ", ".join(shown) if shown else "-"


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

    @property
    def repeats(self) -> bool:
        """A folded run of calls of one module (a loop over one conv), not of many."""
        return self.count > 1 and self.last_name == self.rec.name


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


@dataclass(frozen=True, slots=True)
class _Context:
    total: int  # the model's parameters, for params_percent
    ran: bool  # False for a no-input summary: no shapes, no FLOPs
    g: _Glyphs


def _cell(row: _Row, column: str, ctx: _Context) -> str:
    rec = row.rec
    if row.param is not None:
        return _param_cell(row, row.param, column)
    if column == "layer":
        return _layer_cell(row, ctx.g)
    if column in ("input", "output", "dtype", "device", "flops", "mult_adds") and not ctx.ran:
        return "-"
    if column == "input":
        return format_shapes([m for m in rec.inputs if m.is_tensor] or rec.inputs)
    if column == "output":
        return "(failed)" if rec.failed and not rec.outputs else format_shapes(rec.outputs)
    if column == "dtype":
        return ", ".join(dict.fromkeys(m.dtype for m in rec.outputs if m.dtype)) or "-"
    if column == "device":
        return ", ".join(dict.fromkeys(m.device for m in rec.outputs if m.device)) or "-"
    if column == "kernel":
        return kernel_text(rec) or "-"
    if column == "config":
        return rec.extra or "-"
    if column == "params_percent":
        return percent_text(rec, ctx.total)
    each = " each" if row.count > 1 else ""
    if column in ("params", "trainable"):
        text = params_text(rec, trainable=column == "trainable")
        return text if row.repeats or text == RECURSIVE else text + each
    if column == "flops":
        return (format_size(rec.flops, "FLOPs") if rec.flops else "0") + each
    if column == "mult_adds":
        return mult_adds_text(rec.flops) + each
    raise InvalidInputError(f"unknown column {column!r}; choose from {', '.join(COLUMNS)}")


def _layer_cell(row: _Row, g: _Glyphs) -> str:
    rec = row.rec
    name = rec.label
    if row.count > 1 and not row.repeats:
        name = f"{name} {g.more} {row.last_name}"
    text = f"{row.prefix}{name} ({rec.type})" if rec.name else f"{row.prefix}{rec.type}"
    if row.repeats:
        text += f" x{row.count} calls"
    elif row.count > 1:
        text += f" x{row.count}"
    if rec.failed:
        text += "  <-- failed"
    if rec.uninitialised:
        text += "  (uninitialised)"
    return text


def _fit(text: str, width: int, more: str) -> str:
    return text if len(text) <= width else text[: max(1, width - len(more))] + more


def _footer(report: Report, ran: bool) -> list[str]:
    t = report.totals
    flops = "- (not run)" if not ran else format_size(t.flops, "FLOPs") if t.flops else "0"
    lines = [
        f"Params: {format_count(t.params)} ({format_size(t.param_bytes)})"
        f" · trainable {format_count(t.trainable_params)}"
        f" · non-trainable {format_count(t.non_trainable_params)}"
        f" · buffers {format_count(t.buffers)}",
        f"FLOPs: {flops}"
        f" · activations {format_size(t.activation_bytes) if ran else '-'}"
        f" · device {report.device} · mode {report.mode}",
    ]
    groups = _tied_groups(report)
    if groups:
        tied = "; ".join(" = ".join(g) for g in groups)
        lines.append(f"* shared tensors, counted once: {tied}")
    if report.error is not None:
        name = report.error.layer
        kind = next((r.type for r in report.layers if r.name == name), "")
        where = f"'{name}' ({kind})" if name else f"the root module ({report.model})"
        lines.append(f"Error in {where}: {report.error.type}: {report.error.message}")
    for f in report.findings:
        if report.error is not None and f.layer == report.error.layer and f.severity == "error":
            continue  # said in full just above
        lines.append(f"[{f.severity}] {f.layer or '(root)'}: {f.message}")
        if f.fix:
            lines.append(f"    fix: {f.fix}")
    return lines


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

    Returns:
        The table, a totals footer, then the error and findings if any.

    Example:
        >>> import torch, inspectnn
        >>> r = inspectnn.inspect(torch.nn.Linear(4, 2), torch.randn(3, 4))
        >>> print(render_table(r).splitlines()[2])
        Linear        [3, 2]            10
    """
    from inspectnn.summary import not_run

    ran = not not_run(report)
    default = DEFAULT_COLUMNS if ran else STATIC_COLUMNS
    cols = check_columns(columns) if columns is not None else default
    check_depth(depth)
    if max_width is not None and (type(max_width) is not int or max_width < 1):
        raise InvalidInputError(
            f"max_width is the table's width in characters, e.g. max_width=100, "
            f"or None for no limit (got {max_width!r})."
        )
    g = _ASCII if ascii else _BOX
    ctx = _Context(report.totals.params, ran, g)
    rows = _rows(report, depth, fold, parameters, g)
    cells = [[_cell(r, c, ctx) for c in cols] for r in rows]
    if ascii:
        cells = [[to_ascii(v) for v in row] for row in cells]
    widths = [max([len(_HEADERS[c])] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    if max_width is not None:
        _shrink(widths, cols, max_width)

    def line(values: Sequence[str]) -> str:
        parts = []
        for value, width, col in zip(values, widths, cols, strict=True):
            value = _fit(value, width, g.more)
            parts.append(value.rjust(width) if col in _RIGHT else value.ljust(width))
        return "  ".join(parts).rstrip()

    rule = g.rule * len(line(["x" * w for w in widths]))
    out = [line([_HEADERS[c] for c in cols]), rule, *(line(row) for row in cells), rule]
    if not ran:
        out.insert(0, f"{report.model}: {NOT_RUN_TITLE}")
    footer = _footer(report, ran)
    return "\n".join(out + ([to_ascii(f) for f in footer] if ascii else footer))


def _shrink(widths: list[int], cols: tuple[str, ...], max_width: int) -> None:
    """Cut the config column, then the layer column (to 12 at least), to fit ``max_width``."""
    for col in ("config", "layer"):
        if col in cols:
            i = cols.index(col)
            others = sum(w for j, w in enumerate(widths) if j != i) + 2 * (len(cols) - 1)
            widths[i] = max(12, min(widths[i], max_width - others))
