"""Graphviz diagrams of a Report's dataflow (DOT text, PNG, SVG, PDF).

Built from the Report alone, never by re-running the model. Nodes are the module
calls at the chosen depth and the functional ops between them; modules opened
up to show their parts are clusters; edges follow each input's recorded
``source`` and carry the tensor's shape. Identical consecutive blocks fold into
one node (``h.0 … h.11 ×12``), drawn opened up where the depth allows; a loop
over one module is one node (``cell ×199 calls``). With ``depth=None`` the
picture keeps within ``MAX_NODES`` nodes for every model. The failing layer is
red with got/expected on its input edge, dtype and device trouble orange, dead
computation grey. On a sharded model an edge carrying a ``DTensor`` says its
placements (``4×4 S(1)``, this rank's shard in the report's local view) and a call
that ran collectives, itself or in the calls it stands for (the all-reduce that
turns a ``RowwiseParallel`` layer's partial sum into a replicated value), is outlined
in blue, with ``⇄ all_reduce ×1 (128 B)`` under its name; the title names the rank.

This module draws: ``build_graph`` (the ``graphviz.Digraph``: nodes, clusters, edges,
highlights), ``render_graph`` (to a file). Which calls are nodes is decided in
``renderers/graph_plan.py``, the label text in ``renderers/graph_labels.py``; what is
dead computation in ``inspectnn/liveness.py``.

May import: ``inspectnn.errors``, ``inspectnn.liveness``, ``inspectnn.records``,
``inspectnn.renderers.graph_labels``, ``inspectnn.renderers.graph_plan`` and
``inspectnn.renderers.table`` (``check_depth``); graphviz inside functions.
"""

from __future__ import annotations

import shutil
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inspectnn.errors import DependencyError, InvalidInputError
from inspectnn.liveness import live_calls
from inspectnn.records import LayerCall
from inspectnn.renderers.graph_labels import _group_label, _label, _name, _shape
from inspectnn.renderers.graph_plan import (
    MAX_NODES,
    MAX_RANKS,
    _auto_plan,
    _links,
    _Nodes,
    _Plan,
    _plan,
    output_groups,
)
from inspectnn.renderers.table import check_depth

if TYPE_CHECKING:
    import graphviz

    from inspectnn.report import Report

__all__ = ["FORMATS", "MAX_NODES", "MAX_RANKS", "build_graph", "render_graph"]


FORMATS = (".png", ".svg", ".pdf", ".dot")
DIRECTIONS = ("TB", "LR", "BT", "RL")  # Graphviz rankdir values
_ORANGE_KINDS = {"dtype-mismatch", "device-mismatch", "dtype-promotion", "dtype-narrowing",
                 "mixed-dtypes", "mixed-devices"}  # fmt: skip
_RED, _ORANGE, _GREY = "#d00000", "#e07000", "#9a9a9a"
_BLUE = "#1a73e8"  # the outline of a call that ran a collective


def _graphviz() -> Any:
    try:
        import graphviz
    except ImportError as err:  # pragma: no cover - a declared dependency
        raise DependencyError(
            "drawing needs the 'graphviz' Python package: pip install graphviz"
        ) from err
    return graphviz


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
    local = report.rank is None or report.rank.view != "global"
    if report.rank is not None:  # a sharded rank or a process group's: which rank
        title += f"\n{report.rank.describe()}"
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
            dot.node(f"in{k}", f"input {meta.path}\n{_shape(meta, None, local)}", shape="oval",
                     style="filled", fillcolor="#e8f0fe")  # fmt: skip
    _emit(dot, plan, 0, colours)
    _edges(dot, plan, base, local)
    for k, prefix, metas in output_groups(root.outputs):
        meta = metas[0]
        text = _shape(meta, None, local) if len(metas) == 1 else f"{len(metas)} tensors"
        dot.node(f"out{k}", f"output {prefix}\n{text}".replace(" \n", "\n"),
                 shape="oval", style="filled", fillcolor="#e6f4ea")  # fmt: skip
        # A group (a KV cache written by every layer) gets one edge, from the node that
        # made its last tensor: one from each writer would cross the whole diagram.
        meta = metas[-1]
        src = nodes.of(meta.source) or ("L0" if 0 in plan.shown else None)
        if src is not None:
            dot.edge(src, f"out{k}", label=_shape(meta, base, local) if len(metas) == 1 else "")
    return dot


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
            style = _style(colours.get(node), "box")
            label = _label(rec, plan.runs.get(item), report)
            if "\n⇄ " in label and node not in colours:  # ran collectives: a sharded model's
                style.update(color=_BLUE, penwidth="2")
            dot.node(node, label, **style)
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


def _owner(layers: tuple[LayerCall, ...], plan: _Plan, idx: int) -> int:
    expanded = set(plan.expanded)
    parent = layers[idx].parent
    while parent >= 0 and parent not in expanded:
        parent = layers[parent].parent
    return max(parent, 0)


def _edges(dot: Any, plan: _Plan, base: str | None, local: bool = True) -> None:
    error = plan.report.error
    drawn: set[tuple[str, str, str]] = set()
    for src, node, meta, rec in _links(plan):
        failing = rec is not None and error is not None and rec.failed and rec.name == error.layer
        label = _shape(meta, base, local)
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
