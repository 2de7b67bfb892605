"""The text of a dataflow diagram: node labels, layer configuration, edge shapes.

``_label`` (``fc1 · Linear 784→128 · 100,480 params``), ``_name`` (``h.0 … h.11 ×12``,
``cell ×199 calls``, ``3 … 997 (994 layers)``), ``_config`` and ``_conv_settings`` (key
settings read from ``extra_repr``), ``_shape`` (an edge's ``1×16×28×28``; a
``DTensor``'s ``4×16 S(1)``), ``_collectives_line`` (``all_reduce ×1 (128 B)``),
``_group_label`` (a run of ops drawn as one node).

May import: ``inspectnn.records`` and ``inspectnn.renderers.columns`` (``format_count``,
``format_size``, ``placement_short``);
``inspectnn.renderers.graph_plan`` (``_Run``) for annotations only.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from inspectnn.records import LayerCall, OpCall, TensorMeta
from inspectnn.renderers.columns import (
    collective_totals,
    format_count,
    format_size,
    placement_short,
)

if TYPE_CHECKING:
    from inspectnn.renderers.graph_plan import _Run
    from inspectnn.report import Report

__all__: list[str] = []


_CONFIG = [
    (re.compile(r"in_features=(\d+), out_features=(\d+)"), "{0}→{1}"),
    (re.compile(r"^(\d+), (\d+)(?:,|$)"), "{0}×{1}"),
    (re.compile(r"^\((\d+),\)"), "{0}"),
    (re.compile(r"^(\d+), eps="), "{0}"),
    (re.compile(r"^p=([\d.]+)"), "p={0}"),
    (re.compile(r"kernel_size=(\d+), stride=(\d+)"), "k{0} s{1}"),
]  # fmt: skip


_CONV = re.compile(r"^(\d+), (\d+), kernel_size=")


_SETTING = re.compile(r"(\w+)=(\([^)]*\)|[^,]+)")


_CONV_KEYS = [("kernel_size", "k", None), ("stride", "s", "1"), ("padding", "p", ""),
              ("dilation", "d", "1"), ("groups", "g", "1")]  # fmt: skip


def _config(rec: LayerCall) -> str:
    """Key configuration from ``extra_repr``: ``784→128`` for a Linear, ``1→16 k3 p1``..."""
    conv = _CONV.match(rec.extra)
    if conv:
        return f"{conv[1]}→{conv[2]} {_conv_settings(rec.extra)}"
    for pattern, template in _CONFIG:
        found = pattern.search(rec.extra)
        if found:
            parts = [(g or "1").replace(", ", "x") for g in found.groups()]
            parts = [p.split("x")[0] if len(set(p.split("x"))) == 1 else p for p in parts]
            return template.format(*parts)
    return ""


def _conv_settings(extra: str) -> str:
    """``k3 p1`` for a convolution, with stride, dilation and groups where not 1.

    The padding is always shown (``p0`` when there is none): two branches that
    differ only in padding must not look alike.
    """
    settings = dict(_SETTING.findall(extra))
    words = []
    for key, short, default in _CONV_KEYS:
        value = settings.get(key, default or "0")
        sizes = [v.strip() for v in value.strip("()").split(",") if v.strip()]
        text = sizes[0] if len(set(sizes)) == 1 else "x".join(sizes)
        if key == "padding" and not text[:1].isdigit():
            text = f"={text}"  # padding='same' or 'valid'
        if default is None or default == "" or text != default:
            words.append(f"{short}{text}")
    if settings.get("padding_mode", "zeros") != "zeros":
        words.append(settings["padding_mode"])
    return " ".join(words)


def _name(rec: LayerCall, run: _Run | None, report: Report) -> str:
    """``fc1``; ``h.0 … h.11 ×12``; ``cell ×199 calls``; ``3 … 997 (994 layers)``."""
    name = rec.label if rec.name else rec.type
    if run is None:
        return name
    last = report.layers[run.last].label
    if run.kind == "loop":
        return f"{rec.name} ×{run.count} calls"
    if run.kind == "range":
        return f"{name} … {last} ({run.count} layers)"
    return f"{name} … {last} ×{run.count}"


def _label(rec: LayerCall, run: _Run | None, report: Report) -> str:
    name = _name(rec, run, report)
    if run is not None and run.kind == "range":
        return _range_label(name, run, report)
    parts = [name, f"{rec.type} {_config(rec)}".strip()] if rec.name else [name]
    if rec.params:
        shared = " (shared)" if rec.shared else ""
        each = " each" if run is not None and run.kind == "fold" else ""
        parts.append(f"{format_count(rec.params)} params{shared}{each}")
    comms = _collectives_line(rec, report) if report.totals.sharded else ""
    if comms:  # a sharded model's: where a placement changed
        each = " each" if run is not None else ""  # a fold or a loop: the first's, alike
        return " · ".join(parts) + "\n⇄ " + comms + each
    return " · ".join(parts)


def _range_label(name: str, run: _Run, report: Report) -> str:
    """A collapsed range: its ends, the types in it, and its parameters."""
    parent = report.layers[run.first].parent
    members = [r for r in report.layers[run.first : run.last + 1] if r.parent == parent]
    types = list(dict.fromkeys(r.type for r in members))
    parts = [name, ", ".join(types[:3]) + (", …" if len(types) > 3 else "")]
    params = sum(r.params for r in members if r.call == 0)
    if params:
        parts.append(f"{format_count(params)} params")
    return " · ".join(parts)


def _shape(meta: TensorMeta, base_dtype: str | None, local: bool = True) -> str:
    """``4×16``, with the dtype where it is not the graph's usual one; a ``DTensor``'s
    with its placements, ``4×16 S(1)``: this rank's shard (``local``) or the global
    shape, as the report's view says."""
    shape = meta.held_shape if local else meta.shape
    text = "×".join(str(d) for d in shape) if shape else "scalar"
    if meta.placements:
        text = f"{text} {placement_short(meta.placements)}"
    return f"{text} {meta.dtype}" if meta.dtype != base_dtype else text


def _collectives_line(rec: LayerCall, report: Report) -> str:
    """``all_reduce ×1 (128 B)``: the collectives a call and the calls inside it ran (a
    node stands for its whole subtree), each op once; ``""`` if none."""
    layers = report.layers
    end = rec.index + 1
    while end < len(layers) and layers[end].parent >= rec.index:
        end += 1
    found = collective_totals(layers[rec.index : end])
    return ", ".join(f"{name} ×{n} ({format_size(b)})" for name, (n, b) in found.items())


def _group_label(ops: list[OpCall]) -> str:
    """``70 ops: arange, getitem, eq, …`` (the distinct ops, in order)."""
    names = list(dict.fromkeys(op.name.rsplit(".", 1)[-1] for op in ops))
    return f"{len(ops)} ops: " + ", ".join(names[:3]) + (", …" if len(names) > 3 else "")
