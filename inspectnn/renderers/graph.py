"""Graphviz diagrams of a Report's dataflow (DOT text, PNG, SVG, PDF).

Built from the Report alone, never by re-running the model. Nodes are the module
calls at the chosen depth and the functional ops between them; modules opened
up to show their parts are clusters; edges follow each input's recorded
``source`` and carry the tensor's shape. Identical consecutive blocks fold into
one node (``h.0 … h.11 ×12``), drawn opened up where the depth allows; a loop
over one module is one node (``cell ×199 calls``). With ``depth=None`` the
picture keeps within ``MAX_NODES`` nodes for every model. The failing layer is
red with got/expected on its input edge, dtype and device trouble orange, dead
computation grey.
"""

from __future__ import annotations

import itertools
import re
import shutil
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inspectnn.errors import DependencyError, InvalidInputError
from inspectnn.liveness import live_calls
from inspectnn.records import LayerCall, OpCall, Report, TensorMeta, parse_source
from inspectnn.renderers.table import check_depth, fold_runs, format_count

if TYPE_CHECKING:
    import graphviz

__all__ = ["FORMATS", "MAX_NODES", "MAX_RANKS", "build_graph", "render_graph"]

FORMATS = (".png", ".svg", ".pdf", ".dot")
MAX_NODES = 60  # the automatic depth keeps the picture within this many nodes
DIRECTIONS = ("TB", "LR", "BT", "RL")  # Graphviz rankdir values
MAX_RANKS = 30  # and opens no level that makes its longest path longer than this
_ORANGE_KINDS = {"dtype-mismatch", "device-mismatch", "dtype-promotion", "dtype-narrowing",
                 "mixed-dtypes", "mixed-devices"}  # fmt: skip
_RED, _ORANGE, _GREY = "#d00000", "#e07000", "#9a9a9a"


def _graphviz() -> Any:
    try:
        import graphviz
    except ImportError as err:  # pragma: no cover - a declared dependency
        raise DependencyError(
            "drawing needs the 'graphviz' Python package: pip install graphviz"
        ) from err
    return graphviz


@dataclass(frozen=True, slots=True)
class _Run:
    """Sibling calls drawn as one node (or one opened-up representative cluster).

    ``kind`` is ``"fold"`` (identical blocks feeding each other), ``"loop"`` (one
    module called again and again) or ``"range"`` (a long stretch of layers
    collapsed to keep the picture within ``MAX_NODES``).
    """

    first: int
    last: int
    count: int
    kind: str


@dataclass
class _Plan:
    """Which calls are nodes, which are clusters, and what stands for what."""

    report: Report
    shown: list[int] = field(default_factory=list)  # layer indices drawn as nodes
    expanded: list[int] = field(default_factory=list)  # drawn as clusters (root: no box)
    runs: dict[int, _Run] = field(default_factory=dict)  # first member -> its run
    rep: dict[int, int] = field(default_factory=dict)  # any layer -> its drawn node
    alias: dict[int, int] = field(default_factory=dict)  # folded member -> representative's
    op_alias: dict[int, int] = field(default_factory=dict)  # same, for ops
    hidden: dict[int, int] = field(default_factory=dict)  # op inside a run -> its first call
    grouped: dict[int, int] = field(default_factory=dict)  # op -> first op of its group
    groups: list[list[OpCall]] = field(default_factory=list)  # runs of ops drawn as one node

    @property
    def ops(self) -> list[OpCall]:
        """The ops drawn one node each."""
        open_ = set(self.expanded)
        return [op for op in self.report.ops if op.parent in open_
                and op.index not in self.hidden and op.index not in self.grouped]  # fmt: skip

    def size(self) -> int:
        drawn = len(self.shown) + len(self.ops) + len(self.groups)
        if not self.report.layers:
            return drawn
        root = self.report.layers[0]
        return drawn + sum(m.is_tensor for m in root.inputs) + len(output_groups(root.outputs))


def _kids(layers: tuple[LayerCall, ...]) -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for rec in layers:
        if rec.parent >= 0:
            kids.setdefault(rec.parent, []).append(rec.index)
    return kids


def _descendants(idx: int, kids: dict[int, list[int]]) -> Iterator[int]:
    yield idx
    for k in kids.get(idx, []):
        yield from _descendants(k, kids)


def _units(
    children: list[int], kids: dict[int, list[int]], layers: tuple[LayerCall, ...], fold: bool
) -> list[_Run]:
    """A module's children as drawn: single calls, loops over one module, folded blocks."""
    if not fold:
        return [_Run(c, c, 1, "") for c in children]
    units: list[_Run] = []
    plain: list[int] = []
    for key, same in itertools.groupby(children, key=lambda c: layers[c].name):
        calls = list(same)
        if len(calls) == 1 or not key:
            plain += calls
            continue
        units += _folded(plain, kids, layers)
        plain = []
        units.append(_Run(calls[0], calls[-1], len(calls), "loop"))
    return units + _folded(plain, kids, layers)


def _folded(
    siblings: list[int], kids: dict[int, list[int]], layers: tuple[LayerCall, ...]
) -> list[_Run]:
    pos = {c: i for i, c in enumerate(siblings)}
    return [_Run(first, siblings[pos[first] + count - 1], count, "fold" if count > 1 else "")
            for first, count in fold_runs(siblings, kids, layers)]  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Compact:
    """What the automatic depth does to a picture still too big at depth 1."""

    ranges: frozenset[int] = frozenset()  # expanded calls whose children collapse to a range
    group_ops: bool = False  # runs of ops between module calls become one node each


_KEEP_HEAD, _KEEP_TAIL = 3, 2  # units kept either side of a collapsed range


def _plan(report: Report, depth: int, fold: bool, compact: _Compact = _Compact()) -> _Plan:
    plan = _Plan(report)
    layers = report.layers
    kids = _kids(layers)
    ops_of: dict[int, list[OpCall]] = {}
    for op in report.ops:
        ops_of.setdefault(op.parent, []).append(op)

    def show(idx: int, node: int) -> None:
        for d in _descendants(idx, kids):
            plan.rep[d] = node

    def walk(idx: int) -> None:
        children = kids.get(idx, [])
        if not children or (idx != 0 and layers[idx].depth >= depth):
            plan.shown.append(idx)
            show(idx, idx)
            return
        plan.expanded.append(idx)
        units = _units(children, kids, layers, fold)
        pos = {c: i for i, c in enumerate(children)}
        own = ops_of.get(idx, [])
        afters = [op.after for op in own]  # ops come in call order: sorted
        if idx in compact.ranges and len(units) > _KEEP_HEAD + _KEEP_TAIL + 1:
            first, last = units[_KEEP_HEAD].first, units[-_KEEP_TAIL - 1].last
            units = [*units[:_KEEP_HEAD], _Run(first, last, pos[last] - pos[first] + 1, "range"),
                     *units[-_KEEP_TAIL:]]  # fmt: skip
        for unit in units:
            if unit.count == 1:
                walk(unit.first)
                continue
            members = children[pos[unit.first] : pos[unit.last] + 1]
            plan.runs[unit.first] = unit
            end = max(_descendants(unit.last, kids))
            between = own[bisect_right(afters, unit.first) : bisect_right(afters, end)]
            plan.hidden.update((op.index, unit.first) for op in between)  # drawn as the run
            if unit.kind != "range" and _opens(members, kids, layers, depth):
                walk(unit.first)
                _alias(plan, members, kids, ops_of)
                continue
            plan.shown.append(unit.first)
            for m in members:
                show(m, unit.first)

    if layers:
        walk(0)
    if compact.group_ops:
        _group_ops(plan)
    return plan


def _opens(
    members: list[int], kids: dict[int, list[int]], layers: tuple[LayerCall, ...], depth: int
) -> bool:
    """Whether a run's first call is drawn opened up: it would be at this depth, and
    every member has the same structure (a loop over one module may not)."""
    first = members[0]
    if not kids.get(first) or layers[first].depth >= depth:
        return False
    shape = [layers[d].name for d in _descendants(first, kids)]
    return all(len(list(_descendants(m, kids))) == len(shape) for m in members)


def _alias(
    plan: _Plan, members: list[int], kids: dict[int, list[int]], ops_of: dict[int, list[OpCall]]
) -> None:
    """Let the other members of a run stand for the matching parts of its first."""
    first = list(_descendants(members[0], kids))
    first_ops = [op.index for d in first for op in ops_of.get(d, [])]
    for m in members[1:]:
        mine = list(_descendants(m, kids))
        for d, d0 in zip(mine, first, strict=True):
            plan.alias[d] = d0
            if d0 in plan.rep:
                plan.rep[d] = plan.rep[d0]
        my_ops = [op.index for d in mine for op in ops_of.get(d, [])]
        if len(my_ops) == len(first_ops):
            plan.op_alias.update(zip(my_ops, first_ops, strict=True))


def _group_ops(plan: _Plan) -> None:
    """Draw each run of two or more ops between the same two module calls as one node."""
    runs: dict[tuple[int, int], list[OpCall]] = {}
    for op in plan.ops:
        runs.setdefault((op.parent, op.after), []).append(op)
    for run in runs.values():
        if len(run) > 1:
            plan.groups.append(run)
            plan.grouped.update((op.index, run[0].index) for op in run)


def _auto_plan(report: Report, fold: bool) -> _Plan:
    """The deepest plan within ``MAX_NODES`` (and, past depth 1, ``MAX_RANKS`` from top to
    bottom); if even depth 1 has too many nodes, a compacted one.

    Compacting first draws each run of ops between two module calls as one node,
    then collapses the middle of the longest list of sibling calls into a range
    (``3 … 997 (994 layers)``), until the picture fits.
    """
    deepest = max((r.depth for r in report.layers), default=0)
    best = _plan(report, 1, fold)
    for d in range(2, deepest + 1):
        plan = _plan(report, d, fold)
        if plan.size() > MAX_NODES or _ranks(plan) > MAX_RANKS:
            break
        best = plan
    if best.size() <= MAX_NODES:
        return best
    compact = _Compact(group_ops=True)
    best = _plan(report, 1, fold, compact)
    while best.size() > MAX_NODES:
        kids = _kids(report.layers)
        widths = {i: len(kids.get(i, [])) for i in best.expanded if i not in compact.ranges}
        if not widths or max(widths.values()) <= _KEEP_HEAD + _KEEP_TAIL + 1:
            break
        widest = max(widths, key=lambda i: widths[i])
        compact = _Compact(compact.ranges | {widest}, group_ops=True)
        best = _plan(report, 1, fold, compact)
    return best


class _Nodes:
    """Maps a source (``"layers[3]"``, ``"ops[1]"``, ``"inputs[0]"``) to a drawn node id."""

    def __init__(self, plan: _Plan) -> None:
        self.plan = plan
        self.report = plan.report
        self.shown_ops = {op.index for op in plan.ops}
        self.expanded = set(plan.expanded)

    def of(self, source: str | None, seen: frozenset[str] = frozenset()) -> str | None:
        parsed = parse_source(source)
        if parsed is None or source is None or source in seen:
            return None
        kind, i, pos = parsed
        if kind == "inputs":
            return f"in{i}"
        if kind == "ops":
            return self._op(i, seen | {source})
        return self._layer(i, pos, seen | {source})

    def _op(self, i: int, seen: frozenset[str]) -> str | None:
        plan = self.plan
        if i in self.shown_ops:
            return f"op{i}"
        if i in plan.grouped:
            return f"g{plan.grouped[i]}"
        if i in plan.op_alias:  # inside a folded block: its twin in the block drawn
            return self.of(f"ops[{plan.op_alias[i]}]", seen)
        if i in plan.hidden:  # between the calls of a run: the run stands for it
            return self._layer(plan.hidden[i], 0, seen)
        return self._layer(self.report.ops[i].parent, 0, seen)

    def _layer(self, i: int, pos: int, seen: frozenset[str]) -> str | None:
        i = self.plan.alias.get(i, i)
        if i in self.expanded:  # drawn as its parts: follow what made that output
            outputs = self.report.layers[i].outputs
            used = outputs[pos] if pos < len(outputs) else None
            return self.of(used.source, seen) if used is not None else None
        rep = self.plan.rep.get(i)
        return f"L{rep}" if rep is not None else None


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


def _shape(meta: TensorMeta, base_dtype: str | None) -> str:
    text = "×".join(str(d) for d in meta.shape) if meta.shape else "scalar"
    return f"{text} {meta.dtype}" if meta.dtype != base_dtype else text


def _highlights(report: Report, plan: _Plan) -> dict[str, str]:
    """Node id -> border/fill colour for findings and the error."""
    by_name: dict[str, int] = {}
    for idx in plan.shown:
        by_name.setdefault(report.layers[idx].name, idx)
    colours: dict[str, str] = {}
    live, _ = live_calls(report.layers, report.ops)
    if report.error is None and any(m.source for m in report.outputs):
        for idx in plan.shown:
            if idx not in live and idx not in plan.runs:
                colours[f"L{idx}"] = _GREY
    for f in report.findings:
        if f.kind in _ORANGE_KINDS:
            found = _named_node(f.layer, by_name)
            if found is not None:
                colours[f"L{found}"] = _ORANGE
    for rec in report.layers:
        if rec.failed and report.error is not None and rec.name == report.error.layer:
            rep = plan.rep.get(rec.index)
            if rep is not None:
                colours[f"L{rep}"] = _RED
    return colours


def _named_node(name: str, by_name: dict[str, int]) -> int | None:
    while True:
        if name in by_name:
            return by_name[name]
        if not name:
            return None
        name = name.rsplit(".", 1)[0] if "." in name else ""


def _style(colour: str | None, shape: str) -> dict[str, str]:
    fill = {_RED: "#ffe5e5", _ORANGE: "#fff0dd", _GREY: "#f0f0f0"}.get(colour or "", "#ffffff")
    style = {"shape": shape, "style": "rounded,filled" if shape == "box" else "filled",
             "fillcolor": fill if shape == "box" or colour else "#f3f3f3"}  # fmt: skip
    if colour:
        style["color"] = colour
        if colour == _GREY:
            style["fontcolor"] = _GREY
    return style


def build_graph(
    report: Report, depth: int | None = None, direction: str = "TB", fold: bool = True
) -> graphviz.Digraph:
    """The report's dataflow as a ``graphviz.Digraph``.

    Args:
        report: What to draw.
        depth: Module calls at this nesting depth (and shallower leaves) are nodes;
            those above it are clusters, and every op they ran is drawn. ``None``
            picks the deepest level that keeps the picture within ``MAX_NODES``
            nodes (and ``MAX_RANKS`` from top to bottom); where even depth 1 has
            more, runs of ops between two module calls become one node and the
            middle of a long list of calls one range (``3 … 997 (995 layers)``).
        direction: Graphviz ``rankdir``: ``"TB"`` top to bottom, ``"LR"`` left to right.
        fold: Fold identical consecutive sibling calls into one ``×N`` node (the
            first drawn opened up where the depth allows), and a module called
            again and again in a loop into one ``×N calls`` node.

    Returns:
        The graph; ``.source`` is its DOT text. In a notebook it shows as SVG.

    Raises:
        InvalidInputError: A depth that is not ``None`` or an int >= 0, or a
            direction not in ``DIRECTIONS``.
    """
    check_depth(depth)
    if direction not in DIRECTIONS:
        raise InvalidInputError(
            f"direction is Graphviz's rankdir: one of {', '.join(map(repr, DIRECTIONS))} "
            f"(got {direction!r})."
        )
    gv = _graphviz()
    title = f"{report.model} · {report.device} · {report.mode} mode"
    dot = gv.Digraph(
        report.model,
        graph_attr={"rankdir": direction, "fontname": "Helvetica", "label": title,
                    "labelloc": "t", "fontsize": "12"},
    )  # fmt: skip
    dot.attr("node", fontname="Helvetica", fontsize="10")
    dot.attr("edge", fontname="Helvetica", fontsize="9")
    if not report.layers:
        return dot
    plan = _plan(report, depth, fold) if depth is not None else _auto_plan(report, fold)
    nodes = _Nodes(plan)
    colours = _highlights(report, plan)
    root = report.layers[0]
    floats = (m.dtype for r in report.layers for m in (*r.inputs, *r.outputs) if m.dtype)
    base = next((d for d in floats if d.startswith(("float", "bfloat"))), None)
    for k, meta in enumerate(root.inputs):
        if meta.is_tensor:
            dot.node(f"in{k}", f"input {meta.path}\n{_shape(meta, None)}", shape="oval",
                     style="filled", fillcolor="#e8f0fe")  # fmt: skip
    _emit(dot, plan, 0, colours)
    _edges(dot, plan, base)
    for k, prefix, metas in output_groups(root.outputs):
        meta = metas[0]
        text = _shape(meta, None) if len(metas) == 1 else f"{len(metas)} tensors"
        dot.node(f"out{k}", f"output {prefix}\n{text}".replace(" \n", "\n"),
                 shape="oval", style="filled", fillcolor="#e6f4ea")  # fmt: skip
        # A group (a KV cache written by every layer) gets one edge, from the node that
        # made its last tensor: one from each writer would cross the whole diagram.
        meta = metas[-1]
        src = nodes.of(meta.source) or ("L0" if 0 in plan.shown else None)
        if src is not None:
            dot.edge(src, f"out{k}", label=_shape(meta, base) if len(metas) == 1 else "")
    return dot


_TOP = re.compile(r"^(\[[^\]]*\]|\.\w+)")


def output_groups(outputs: tuple[TensorMeta, ...]) -> list[tuple[int, str, list[TensorMeta]]]:
    """The model's output tensors as drawn: ``(first index, path, tensors)`` per node.

    Tensors nested under one top-level output with more than two of them (a KV
    cache's keys and values per layer, ``hidden_states`` of every layer) are one
    node; a top-level tensor is its own node.
    """
    groups: dict[str, list[tuple[int, TensorMeta]]] = {}
    for k, meta in enumerate(outputs):
        if meta.is_tensor:
            top = _TOP.match(meta.path)
            key = top[1] if top and top[1] != meta.path else meta.path
            groups.setdefault(key, []).append((k, meta))
    out: list[tuple[int, str, list[TensorMeta]]] = []
    for prefix, items in groups.items():
        if len(items) > 2:
            out.append((items[0][0], prefix, [m for _, m in items]))
        else:
            out += [(k, m.path, [m]) for k, m in items]
    return sorted(out, key=lambda g: g[0])


def _emit(dot: Any, plan: _Plan, owner: int, colours: dict[str, str]) -> None:
    """Declare the nodes and clusters whose nearest expanded ancestor is ``owner``."""
    report = plan.report
    layers = report.layers
    items: list[tuple[int, str, Any]] = []
    for idx in plan.shown:
        if idx != 0 and _owner(layers, plan, idx) == owner:
            items.append((idx * 2, "node", idx))
    if 0 in plan.shown and owner == 0:
        items.append((0, "node", 0))
    for idx in plan.expanded:
        if idx != 0 and _owner(layers, plan, idx) == owner:
            items.append((idx * 2, "cluster", idx))
    for op in plan.ops:
        if op.parent == owner:
            items.append((op.after * 2 - 1, "op", op))
    for group in plan.groups:
        if group[0].parent == owner:
            items.append((group[0].after * 2 - 1, "group", group))
    for _, kind, item in sorted(items, key=lambda t: t[0]):
        if kind == "node":
            rec = layers[item]
            node = f"L{item}"
            dot.node(node, _label(rec, plan.runs.get(item), report),
                     **_style(colours.get(node), "box"))  # fmt: skip
        elif kind == "op":
            node = f"op{item.index}"
            colour = _RED if item.failed else None
            style = _style(colour, "ellipse")
            label = item.name.rsplit(".", 1)[-1]
            if item.inplace:  # it wrote into its input: a dashed outline says so
                label += " (in-place)"
                style["style"] += ",dashed"
            dot.node(node, label, **style)
        elif kind == "group":
            colour = _RED if any(op.failed for op in item) else None
            dot.node(f"g{item[0].index}", _group_label(item), **_style(colour, "ellipse"))
        else:
            rec = layers[item]
            with dot.subgraph(name=f"cluster_L{item}") as sub:
                name = _name(rec, plan.runs.get(item), report)
                sub.attr(label=f"{name} · {rec.type}", style="rounded,dashed",
                         color="#888888", fontsize="10", labeljust="l")  # fmt: skip
                _emit(sub, plan, item, colours)


def _group_label(ops: list[OpCall]) -> str:
    """``70 ops: arange, getitem, eq, …`` (the distinct ops, in order)."""
    names = list(dict.fromkeys(op.name.rsplit(".", 1)[-1] for op in ops))
    return f"{len(ops)} ops: " + ", ".join(names[:3]) + (", …" if len(names) > 3 else "")


def _owner(layers: tuple[LayerCall, ...], plan: _Plan, idx: int) -> int:
    expanded = set(plan.expanded)
    parent = layers[idx].parent
    while parent >= 0 and parent not in expanded:
        parent = layers[parent].parent
    return max(parent, 0)


def _links(plan: _Plan) -> Iterator[tuple[str, str, TensorMeta, LayerCall | None]]:
    """Every edge as ``(source node, target node, tensor, target call)``, in call order."""
    report = plan.report
    nodes = _Nodes(plan)
    targets: list[tuple[str, tuple[TensorMeta, ...], LayerCall | None]] = [
        (f"L{idx}", report.layers[idx].inputs, report.layers[idx]) for idx in plan.shown
    ]
    targets += [(f"op{op.index}", op.inputs, None) for op in plan.ops]
    targets += [(f"g{g[0].index}", tuple(m for op in g for m in op.inputs), None)
                for g in plan.groups]  # fmt: skip
    order = {f"L{i}": i * 2 for i in plan.shown} | {f"op{op.index}": op.after * 2 - 1
                                                  for op in plan.ops}  # fmt: skip
    order |= {f"g{g[0].index}": g[0].after * 2 - 1 for g in plan.groups}
    for node, inputs, rec in sorted(targets, key=lambda t: order[t[0]]):
        for meta in inputs:
            src = nodes.of(meta.source) if meta.is_tensor else None
            if src is not None and src != node:
                yield src, node, meta, rec


def _ranks(plan: _Plan) -> int:
    """How many nodes the longest path of the picture passes (its height, top to bottom)."""
    longest: dict[str, int] = {}
    for src, node, _, _ in _links(plan):
        longest[node] = max(longest.get(node, 1), longest.get(src, 1) + 1)
    return max(longest.values(), default=1) + 1  # + the output


def _edges(dot: Any, plan: _Plan, base: str | None) -> None:
    error = plan.report.error
    drawn: set[tuple[str, str, str]] = set()
    for src, node, meta, rec in _links(plan):
        failing = rec is not None and error is not None and rec.failed and rec.name == error.layer
        label = _shape(meta, base)
        attrs: dict[str, str] = {}
        if failing and error is not None and error.expected:
            label = f"got {error.got}\nexpected {error.expected}"
            attrs = {"color": _RED, "fontcolor": _RED, "penwidth": "2"}
        key = (src, node, "" if node.startswith("g") else label)  # a group: one edge a source
        if key in drawn:
            continue
        drawn.add(key)
        dot.edge(src, node, label=label, **attrs)


def render_graph(
    report: Report,
    path: str | PathLike[str],
    depth: int | None = None,
    direction: str = "TB",
    fold: bool = True,
) -> Path:
    """Write the diagram to ``path``; the suffix picks the format (.png .svg .pdf .dot).

    Raises:
        InvalidInputError: An unknown suffix (or a bad depth or direction).
        DependencyError: No ``dot`` binary for an image format.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise InvalidInputError(
            f"cannot tell the format of {str(path)!r}: end the name with one of "
            f"{', '.join(FORMATS)}."
        )
    dot = build_graph(report, depth=depth, direction=direction, fold=fold)
    if suffix == ".dot":
        path.write_text(dot.source, encoding="utf-8")
        return path
    if shutil.which("dot") is None:
        raise DependencyError(
            f"writing {suffix} needs Graphviz's 'dot' program, which is not on PATH. Install "
            "it (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz; "
            "conda: conda install graphviz), or write a .dot file instead."
        )
    path.write_bytes(dot.pipe(format=suffix[1:]))
    return path
