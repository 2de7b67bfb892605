"""Graphviz diagrams of a Report's dataflow (DOT text, PNG, SVG, PDF).

Built from the Report alone, never by re-running the model. Nodes are the module
calls at the chosen depth and the functional ops between them; modules opened
up to show their parts are clusters; edges follow each input's recorded
``source`` and carry the tensor's shape. Identical consecutive blocks fold into
one node (``h.0 … h.11 ×12``). The failing layer is red with got/expected on
its input edge, dtype and device trouble orange, dead computation grey.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inspectnn.checks.dataflow import live_calls
from inspectnn.errors import InspectnnError
from inspectnn.records import LayerCall, OpCall, Report, TensorMeta, parse_source
from inspectnn.render.table import fold_runs, format_count

if TYPE_CHECKING:
    import graphviz

__all__ = ["FORMATS", "MAX_NODES", "build_graph", "render_graph"]

FORMATS = (".png", ".svg", ".pdf", ".dot")
MAX_NODES = 60  # the automatic depth keeps the picture within this many nodes
_ORANGE_KINDS = {"dtype-mismatch", "device-mismatch", "dtype-promotion", "dtype-narrowing",
                 "mixed-dtypes", "mixed-devices"}  # fmt: skip
_RED, _ORANGE, _GREY = "#d00000", "#e07000", "#9a9a9a"


def _graphviz() -> Any:
    try:
        import graphviz
    except ImportError as err:  # pragma: no cover - a declared dependency
        raise InspectnnError(
            "drawing needs the 'graphviz' Python package: pip install graphviz"
        ) from err
    return graphviz


@dataclass
class _Plan:
    """Which calls are nodes, which are clusters, and what stands for what."""

    report: Report
    shown: list[int] = field(default_factory=list)  # layer indices drawn as nodes
    expanded: list[int] = field(default_factory=list)  # drawn as clusters (root: no box)
    runs: dict[int, tuple[int, int]] = field(default_factory=dict)  # first -> (last, count)
    rep: dict[int, int] = field(default_factory=dict)  # any layer -> its drawn node

    @property
    def ops(self) -> list[OpCall]:
        open_ = set(self.expanded)
        return [op for op in self.report.ops if op.parent in open_]

    def size(self) -> int:
        if not self.report.layers:
            return len(self.shown) + len(self.ops)
        root = self.report.layers[0]
        ends = sum(m.is_tensor for m in root.inputs) + len(output_groups(root.outputs))
        return len(self.shown) + len(self.ops) + ends


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


def _plan(report: Report, depth: int, fold: bool) -> _Plan:
    plan = _Plan(report)
    layers = report.layers
    kids = _kids(layers)

    def walk(idx: int) -> None:
        children = kids.get(idx, [])
        if not children or (idx != 0 and layers[idx].depth >= depth):
            plan.shown.append(idx)
            for d in _descendants(idx, kids):
                plan.rep[d] = idx
            return
        plan.expanded.append(idx)
        runs = fold_runs(children, kids, layers) if fold else [(c, 1) for c in children]
        pos = {c: i for i, c in enumerate(children)}
        for first, count in runs:
            if count == 1:
                walk(first)
                continue
            members = children[pos[first] : pos[first] + count]
            plan.shown.append(first)
            plan.runs[first] = (members[-1], count)
            for m in members:
                for d in _descendants(m, kids):
                    plan.rep[d] = first

    if layers:
        walk(0)
    return plan


def _auto_depth(report: Report, fold: bool) -> int:
    deepest = max((r.depth for r in report.layers), default=0)
    best = 1
    previous = -1
    for d in range(1, deepest + 1):
        size = _plan(report, d, fold).size()
        if size > MAX_NODES:
            break
        best = d
        if size == previous:  # nothing more opens up
            break
        previous = size
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
            if i in self.shown_ops:
                return f"op{i}"
            return self._layer(self.report.ops[i].parent, 0, seen | {source})
        return self._layer(i, pos, seen | {source})

    def _layer(self, i: int, pos: int, seen: frozenset[str]) -> str | None:
        if i in self.expanded:  # drawn as its parts: follow what made that output
            outputs = self.report.layers[i].outputs
            used = outputs[pos] if pos < len(outputs) else None
            return self.of(used.source, seen) if used is not None else None
        rep = self.plan.rep.get(i)
        return f"L{rep}" if rep is not None else None


_CONFIG = [
    (re.compile(r"in_features=(\d+), out_features=(\d+)"), "{0}→{1}"),
    (re.compile(r"^(\d+), (\d+), kernel_size=\(([\d, ]+)\)(?:, stride=\(([\d, ]+)\))?"),
     "{0}→{1} k{2} s{3}"),
    (re.compile(r"^(\d+), (\d+)(?:,|$)"), "{0}×{1}"),
    (re.compile(r"^\((\d+),\)"), "{0}"),
    (re.compile(r"^(\d+), eps="), "{0}"),
    (re.compile(r"^p=([\d.]+)"), "p={0}"),
    (re.compile(r"kernel_size=(\d+), stride=(\d+)"), "k{0} s{1}"),
]  # fmt: skip


def _config(rec: LayerCall) -> str:
    """Key configuration from ``extra_repr``: ``784→128`` for a Linear, ``1→16 k3 s1``..."""
    for pattern, template in _CONFIG:
        found = pattern.search(rec.extra)
        if found:
            parts = [(g or "1").replace(", ", "x") for g in found.groups()]
            parts = [p.split("x")[0] if len(set(p.split("x"))) == 1 else p for p in parts]
            return template.format(*parts)
    return ""


def _label(rec: LayerCall, run: tuple[int, int] | None, report: Report) -> str:
    name = rec.label if rec.name else rec.type
    if run is not None:
        last, count = run
        name = f"{name} … {report.layers[last].label} ×{count}"
    parts = [name, f"{rec.type} {_config(rec)}".strip()] if rec.name else [name]
    if rec.params:
        shared = " (shared)" if rec.shared else ""
        parts.append(f"{format_count(rec.params)} params{shared}" + (" each" if run else ""))
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
            those above it are clusters. ``None`` picks the deepest level that
            keeps the picture within ``MAX_NODES`` nodes.
        direction: Graphviz ``rankdir``: ``"TB"`` top to bottom, ``"LR"`` left to right.
        fold: Fold identical consecutive sibling calls into one ``×N`` node.

    Returns:
        The graph; ``.source`` is its DOT text. In a notebook it shows as SVG.
    """
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
    plan = _plan(report, depth if depth is not None else _auto_depth(report, fold), fold)
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
    _edges(dot, plan, nodes, base)
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
        else:
            rec = layers[item]
            with dot.subgraph(name=f"cluster_L{item}") as sub:
                sub.attr(label=f"{rec.label} · {rec.type}", style="rounded,dashed",
                         color="#888888", fontsize="10", labeljust="l")  # fmt: skip
                _emit(sub, plan, item, colours)


def _owner(layers: tuple[LayerCall, ...], plan: _Plan, idx: int) -> int:
    expanded = set(plan.expanded)
    parent = layers[idx].parent
    while parent >= 0 and parent not in expanded:
        parent = layers[parent].parent
    return max(parent, 0)


def _edges(dot: Any, plan: _Plan, nodes: _Nodes, base: str | None) -> None:
    report = plan.report
    error = report.error
    drawn: set[tuple[str, str, str]] = set()
    targets: list[tuple[str, tuple[TensorMeta, ...], LayerCall | None]] = [
        (f"L{idx}", report.layers[idx].inputs, report.layers[idx]) for idx in plan.shown
    ]
    targets += [(f"op{op.index}", op.inputs, None) for op in plan.ops]
    order = {f"L{i}": i * 2 for i in plan.shown} | {f"op{op.index}": op.after * 2 - 1
                                                  for op in plan.ops}  # fmt: skip
    for node, inputs, rec in sorted(targets, key=lambda t: order[t[0]]):
        failing = rec is not None and error is not None and rec.failed and rec.name == error.layer
        for meta in inputs:
            if not meta.is_tensor:
                continue
            src = nodes.of(meta.source)
            if src is None or src == node:
                continue
            label = _shape(meta, base)
            attrs: dict[str, str] = {}
            if failing and error is not None and error.expected:
                label = f"got {error.got}\nexpected {error.expected}"
                attrs = {"color": _RED, "fontcolor": _RED, "penwidth": "2"}
            if (src, node, label) in drawn:
                continue
            drawn.add((src, node, label))
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
        InspectnnError: An unknown suffix, or no ``dot`` binary for an image format.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise InspectnnError(
            f"cannot tell the format of {str(path)!r}: end the name with one of "
            f"{', '.join(FORMATS)}."
        )
    dot = build_graph(report, depth=depth, direction=direction, fold=fold)
    if suffix == ".dot":
        path.write_text(dot.source, encoding="utf-8")
        return path
    if shutil.which("dot") is None:
        raise InspectnnError(
            f"writing {suffix} needs Graphviz's 'dot' program, which is not on PATH. Install "
            "it (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz; "
            "conda: conda install graphviz), or write a .dot file instead."
        )
    path.write_bytes(dot.pipe(format=suffix[1:]))
    return path
