"""The column registry: each column's name, header, alignment and cell text.

One :class:`Column` per column a table can show, in ``COLUMNS`` (in the table's
order). The plain-text table, the Markdown and HTML tables and the assertion
messages take their headers, alignment and cell text from here, so a new column
is added in one place, as a rich ``Column`` carries its own header and
justification. Also the value formatters the cells are made of (counts, sizes,
shapes, kernels), which the other renderers import through ``renderers/table.py``;
the plain unit formatters (``format_count``, ``format_size``, ``mult_adds_text``)
live in ``units.py`` and are re-exported here. Imports ``records.py`` and
``units.py`` only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from inspectnn.records import LayerCall, TensorMeta
from inspectnn.units import format_count, format_size, mult_adds_text

__all__ = [
    "COLUMNS",
    "RECURSIVE",
    "Column",
    "Context",
    "cell_text",
    "format_count",
    "format_shapes",
    "format_size",
    "kernel_text",
    "mult_adds_text",
    "params_text",
    "percent_text",
    "placement_short",
]

RECURSIVE = "(recursive)"
"""The parameter cell of a module's second and later calls: counted at its first.
A module without parameters shows 0 at every call."""


@dataclass(frozen=True, slots=True)
class Context:
    """What a cell needs beyond its call: the report's totals and the row's place.

    Attributes:
        total: The model's parameters (for ``params_percent``).
        ran: False for a model summarised without an input: no shapes, no FLOPs.
        count: Above 1 for a folded run of identical calls (counts then say ``each``).
        last_name: The last call's name in a folded run.
        prefix: The tree drawing before the layer's name.
        more: The sign of a gap (a folded run's names) or a cut cell.
        marks: Mark a count holding a tied tensor with ``*`` (explained in the
            plain-text table's footer; Markdown shows the bare count).
        view: ``"local"``: a ``DTensor``'s shape cells show this rank's shard;
            ``"global"``: the whole tensor's shape.
        sharded: The run saw ``DTensor`` values: a plain tensor's placement is ``local``.
    """

    total: int = 0
    ran: bool = True
    count: int = 1
    last_name: str = ""
    prefix: str = ""
    more: str = "…"
    marks: bool = True
    view: str = "local"
    sharded: bool = False


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its name, headers, alignment and how to write a call's cell.

    Attributes:
        name: What ``columns=`` takes (``"output"``).
        header: The plain-text and HTML header (``"Output shape"``).
        title: The Markdown header (``"Output"``).
        align: ``"left"`` or ``"right"``.
        cell: The cell text of a call; ``""`` when there is nothing to show (the
            plain-text table writes ``-``).
        needs_run: Empty (``-``) for a model that was not run (shapes, FLOPs).
    """

    name: str
    header: str
    title: str
    align: Literal["left", "right"]
    cell: Callable[[LayerCall, Context], str]
    needs_run: bool = False


def cell_text(column: Column, rec: LayerCall, ctx: Context) -> str:
    """``column``'s text for ``rec``: ``-`` for a run-only column of a model not run."""
    return "-" if column.needs_run and not ctx.ran else column.cell(rec, ctx)


def format_shapes(metas: Sequence[TensorMeta], limit: int = 3, view: str = "global") -> str:
    """``[64, 10]`` for one tensor; several joined by commas; non-tensors by value.

    ``view="local"`` shows a ``DTensor``'s shard on this rank, ``"global"`` its whole
    shape (torch's ``.shape``); a plain tensor's shape is the same in both.
    """
    shapes = [m.held_shape if view == "local" else m.shape for m in metas[:limit]]
    shown = [f"[{', '.join(str(d) for d in shape)}]" if shape is not None else (m.value or "?")
             for m, shape in zip(metas, shapes, strict=False)]  # fmt: skip
    if len(metas) > limit:
        shown.append(f"+{len(metas) - limit} more")
    return ", ".join(shown) if shown else "-"


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


def params_text(rec: LayerCall, trainable: bool = False) -> str:
    """The parameter count of a call: ``(recursive)`` past the first call of a module
    with parameters (they are counted at its first call)."""
    if rec.call and rec.params:
        return RECURSIVE
    n = rec.trainable_params if trainable else rec.params
    return format_count(n) + ("*" if rec.shared and not trainable else "")


def _repeats(rec: LayerCall, ctx: Context) -> bool:
    return ctx.count > 1 and ctx.last_name == rec.name


def _each(text: str, ctx: Context) -> str:
    """A count cell of a folded run says ``each``."""
    return text + " each" if ctx.count > 1 else text


def _params(rec: LayerCall, ctx: Context, trainable: bool = False) -> str:
    """Parameters: ``each`` only for a run of many modules (one module's are counted once)."""
    text = params_text(rec, trainable)
    text = text if ctx.marks else text.removesuffix("*")
    return text if _repeats(rec, ctx) or text == RECURSIVE else _each(text, ctx)


def _layer(rec: LayerCall, ctx: Context) -> str:
    name = rec.label
    if ctx.count > 1 and not _repeats(rec, ctx):
        name = f"{name} {ctx.more} {ctx.last_name}"
    text = f"{ctx.prefix}{name} ({rec.type})" if rec.name else f"{ctx.prefix}{rec.type}"
    if _repeats(rec, ctx):
        text += f" x{ctx.count} calls"
    elif ctx.count > 1:
        text += f" x{ctx.count}"
    if rec.failed:
        text += "  <-- failed"
    if rec.uninitialised:
        text += "  (uninitialised)"
    return text


def _input(rec: LayerCall, ctx: Context) -> str:
    return format_shapes([m for m in rec.inputs if m.is_tensor] or rec.inputs, view=ctx.view)


def _output(rec: LayerCall, ctx: Context) -> str:
    if rec.failed and not rec.outputs:
        return "(failed)"
    return format_shapes(rec.outputs, view=ctx.view)


_SHORT = {"Replicate()": "R", "Partial(sum)": "P"}
_MASKED = re.compile(r"^_MaskPartial\((?:reduce_op=)?(\w+)")


def placement_short(placements: Sequence[str]) -> str:
    """torch's short form of a ``DTensor``'s placements, one per mesh dimension:
    ``S(1)``, ``R``, ``P`` (a partial sum), ``P(max)``, joined by commas. A vocabulary-
    parallel embedding's masked partial sum (``_MaskPartial``) is ``P`` too."""
    out = []
    for p in placements:
        short = _SHORT.get(p)
        if short is None:
            masked = _MASKED.match(p)
            if masked is not None:
                short = "P" if masked[1] == "sum" else f"P({masked[1]})"
            for long, brief in (("Shard(", "S("), ("Partial(", "P(")):
                if p.startswith(long):
                    short = brief + p[len(long) :]
        if short is None:  # _StridedShard and any other placement: as torch writes it
            short = p
        out.append(short)
    return ",".join(out)


def collective_totals(calls: Iterable[LayerCall]) -> dict[str, tuple[int, int]]:
    """Short op name -> (runs, bytes) over ``calls``' collectives, in first-seen order."""
    found: dict[str, tuple[int, int]] = {}
    for rec in calls:
        for c in rec.collectives:
            n, b = found.get(c.name, (0, 0))
            found[c.name] = (n + c.count, b + c.bytes)
    return found


def _placement(rec: LayerCall, ctx: Context) -> str:
    """The outputs' placements; ``local`` for a plain tensor on a sharded rank."""
    found = [placement_short(m.placements) if m.placements else "local"
             for m in rec.outputs[:3] if m.is_tensor]  # fmt: skip
    return " ".join(dict.fromkeys(found)) if ctx.sharded or any(f != "local" for f in found) else ""


def _dtype(rec: LayerCall, ctx: Context) -> str:
    return ", ".join(dict.fromkeys(m.dtype for m in rec.outputs if m.dtype))


def _device(rec: LayerCall, ctx: Context) -> str:
    return ", ".join(dict.fromkeys(m.device for m in rec.outputs if m.device))


def _flops(rec: LayerCall, ctx: Context) -> str:
    return _each(format_size(rec.flops, "FLOPs") if rec.flops else "0", ctx)


COLUMNS: dict[str, Column] = {c.name: c for c in (
    Column("layer", "Layer (type)", "Layer", "left", _layer),
    Column("input", "Input shape", "Input", "left", _input, needs_run=True),
    Column("output", "Output shape", "Output", "left", _output, needs_run=True),
    Column("placement", "Placement", "Placement", "left", _placement, needs_run=True),
    Column("dtype", "Dtype", "Dtype", "left", _dtype, needs_run=True),
    Column("device", "Device", "Device", "left", _device, needs_run=True),
    Column("kernel", "Kernel", "Kernel", "left", lambda rec, ctx: kernel_text(rec)),
    Column("config", "Config", "Config", "left", lambda rec, ctx: rec.extra),
    Column("params", "Params", "Params", "right",
           _params),
    Column("params_percent", "Params %", "Params %", "right",
           lambda rec, ctx: percent_text(rec, ctx.total)),
    Column("trainable", "Trainable", "Trainable", "right",
           lambda rec, ctx: _params(rec, ctx, trainable=True)),
    Column("flops", "FLOPs", "Flops", "right", _flops, needs_run=True),
    Column("mult_adds", "Mult-adds", "Mult-adds", "right",
           lambda rec, ctx: _each(mult_adds_text(rec.flops), ctx), needs_run=True),
)}  # fmt: skip
"""Every column, by name, in the plain-text table's order."""
