"""The plain-text table: a tree of calls with shapes and counts.

Pure functions of a Report. Identical consecutive sibling calls (the 12 blocks
of a GPT-2) fold into one row marked ``x12``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from inspectnn.records import LayerCall, Report, TensorMeta, parse_source

__all__ = ["COLUMNS", "fold_runs", "format_count", "format_shapes", "render_table"]

COLUMNS = ("layer", "input", "output", "dtype", "device", "params", "trainable", "flops")
DEFAULT_COLUMNS = ("layer", "output", "params")
_HEADERS = {
    "layer": "Layer (type)",
    "input": "Input shape",
    "output": "Output shape",
    "dtype": "Dtype",
    "device": "Device",
    "params": "Params",
    "trainable": "Trainable",
    "flops": "FLOPs",
}
_RIGHT = {"params", "trainable", "flops"}


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


def _rows(report: Report, depth: int | None, fold: bool) -> list[_Row]:
    layers = report.layers
    kids: dict[int, list[int]] = {}
    for rec in layers:
        if rec.parent >= 0:
            kids.setdefault(rec.parent, []).append(rec.index)
    rows: list[_Row] = []

    def walk(idx: int, prefix: str, child_prefix: str, count: int, last: str) -> None:
        rows.append(_Row(layers[idx], prefix, count, last))
        if depth is not None and layers[idx].depth >= depth:
            return
        children = kids.get(idx, [])
        runs = fold_runs(children, kids, layers) if fold else [(c, 1) for c in children]
        pos = {c: i for i, c in enumerate(children)}
        for n, (first, length) in enumerate(runs):
            end = n == len(runs) - 1
            last_name = layers[children[pos[first] + length - 1]].name
            walk(first, child_prefix + ("└─ " if end else "├─ "),
                 child_prefix + ("   " if end else "│  "), length, last_name)  # fmt: skip

    if layers:
        walk(0, "", "", 1, layers[0].name)
    return rows


def _cell(row: _Row, column: str) -> str:
    rec = row.rec
    if column == "layer":
        name = rec.label
        if row.count > 1:
            name = f"{name} … {row.last_name}"
        text = f"{row.prefix}{name} ({rec.type})" if rec.name else f"{row.prefix}{rec.type}"
        if row.count > 1:
            text += f" x{row.count}"
        if rec.failed:
            text += "  <-- failed"
        return text
    if column == "input":
        return format_shapes([m for m in rec.inputs if m.is_tensor] or rec.inputs)
    if column == "output":
        return "(failed)" if rec.failed and not rec.outputs else format_shapes(rec.outputs)
    if column == "dtype":
        return ", ".join(dict.fromkeys(m.dtype for m in rec.outputs if m.dtype)) or "-"
    if column == "device":
        return ", ".join(dict.fromkeys(m.device for m in rec.outputs if m.device)) or "-"
    each = " each" if row.count > 1 else ""
    if column == "params":
        return format_count(rec.params) + ("*" if rec.shared else "") + each
    if column == "trainable":
        return format_count(rec.trainable_params) + each
    if column == "flops":
        return (format_size(rec.flops, "FLOPs") if rec.flops else "0") + each
    raise ValueError(f"unknown column {column!r}; choose from {', '.join(COLUMNS)}")


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def _footer(report: Report) -> list[str]:
    t = report.totals
    lines = [
        f"Params: {format_count(t.params)} ({format_size(t.param_bytes)})"
        f" · trainable {format_count(t.trainable_params)}"
        f" · non-trainable {format_count(t.non_trainable_params)}"
        f" · buffers {format_count(t.buffers)}",
        f"FLOPs: {format_size(t.flops, 'FLOPs') if t.flops else '0'}"
        f" · activations {format_size(t.activation_bytes)}"
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
) -> str:
    """Render ``report`` as a plain-text table.

    Args:
        report: What to render.
        depth: Deepest call nesting shown (root is 0); ``None`` shows all.
        columns: Any of ``COLUMNS``; default ``("layer", "output", "params")``.
        max_width: Total width in characters; the layer column is cut to fit.
        fold: Fold identical consecutive sibling calls into one ``xN`` row.

    Returns:
        The table, a totals footer, then the error and findings if any.

    Example:
        >>> import torch, inspectnn
        >>> r = inspectnn.inspect(torch.nn.Linear(4, 2), torch.randn(3, 4))
        >>> print(render_table(r).splitlines()[2])
        (root) (Linear)  [3, 2]      10
    """
    cols = tuple(columns) if columns is not None else DEFAULT_COLUMNS
    for c in cols:
        if c not in COLUMNS:
            raise ValueError(f"unknown column {c!r}; choose from {', '.join(COLUMNS)}")
    rows = _rows(report, depth, fold)
    cells = [[_cell(r, c) for c in cols] for r in rows]
    widths = [max([len(_HEADERS[c])] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    if max_width is not None and "layer" in cols:
        li = cols.index("layer")
        others = sum(w for i, w in enumerate(widths) if i != li) + 2 * (len(cols) - 1)
        widths[li] = max(12, min(widths[li], max_width - others))

    def line(values: Sequence[str]) -> str:
        parts = []
        for value, width, col in zip(values, widths, cols, strict=True):
            value = _fit(value, width)
            parts.append(value.rjust(width) if col in _RIGHT else value.ljust(width))
        return "  ".join(parts).rstrip()

    rule = "─" * len(line(["x" * w for w in widths]))
    out = [line([_HEADERS[c] for c in cols]), rule, *(line(row) for row in cells), rule]
    return "\n".join(out + _footer(report))
