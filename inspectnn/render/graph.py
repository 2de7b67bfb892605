"""Graphviz diagrams of a Report's dataflow (DOT text, PNG, SVG, PDF).

Built from the Report alone, never by re-running the model. Nodes are the
module calls at the chosen depth and the functional ops between them; edges
follow each input's recorded ``source`` and carry the tensor's shape.
"""

from __future__ import annotations

import shutil
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inspectnn.errors import InspectnnError
from inspectnn.records import LayerCall, Report, TensorMeta
from inspectnn.render.table import format_count

if TYPE_CHECKING:
    import graphviz

__all__ = ["FORMATS", "build_graph", "render_graph"]

FORMATS = (".png", ".svg", ".pdf", ".dot")


def _graphviz() -> Any:
    try:
        import graphviz
    except ImportError as err:  # pragma: no cover - a declared dependency
        raise InspectnnError(
            "drawing needs the 'graphviz' Python package: pip install graphviz"
        ) from err
    return graphviz


class _Layout:
    """Which calls and ops are drawn, and which drawn node stands for any source."""

    def __init__(self, report: Report, depth: int) -> None:
        self.report = report
        layers = report.layers
        has_child = {r.parent for r in layers}
        self.shown = [
            r for r in layers if r.depth == depth or (r.depth < depth and r.index not in has_child)
        ]
        if not self.shown and layers:
            self.shown = [layers[0]]
        self._shown_ids = {r.index for r in self.shown}
        self.expanded = {r.index for r in layers if r.depth < depth and r.index in has_child}
        self.ops = [op for op in report.ops if op.parent in self.expanded]
        self._op_ids = {op.index for op in self.ops}

    def node(self, source: str | None, seen: frozenset[str] = frozenset()) -> str | None:
        """The drawn node id for a source (``"layers[3]"``, ``"ops[1]"``, ``"inputs[0]"``)."""
        if source is None or source in seen:
            return None
        kind, _, rest = source.partition("[")
        i = int(rest.rstrip("]"))
        if kind == "inputs":
            return f"in{i}"
        if kind == "ops":
            if i in self._op_ids:
                return f"op{i}"
            return self._call_node(self.report.ops[i].parent, seen | {source})
        return self._call_node(i, seen | {source})

    def _call_node(self, i: int, seen: frozenset[str]) -> str | None:
        if i in self._shown_ids:
            return f"L{i}"
        rec = self.report.layers[i]
        if i in self.expanded:  # drawn as its parts: follow what made its output
            for out in rec.outputs:
                node = self.node(out.source, seen)
                if node is not None:
                    return node
            return None
        while rec.parent >= 0 and rec.index not in self._shown_ids:
            rec = self.report.layers[rec.parent]
        return f"L{rec.index}" if rec.index in self._shown_ids else None


def _shape(meta: TensorMeta) -> str:
    return "×".join(str(d) for d in meta.shape) if meta.shape else "scalar"


def _label(rec: LayerCall) -> str:
    lines = [rec.label if rec.name else rec.type]
    if rec.name:
        lines.append(rec.type)
    if rec.params:
        lines.append(f"{format_count(rec.params)} params")
    return "\n".join(lines)


def build_graph(report: Report, depth: int = 1, direction: str = "TB") -> graphviz.Digraph:
    """The report's dataflow as a ``graphviz.Digraph``.

    Args:
        report: What to draw.
        depth: Module calls at this nesting depth (and shallower leaves) are nodes.
        direction: Graphviz ``rankdir``: ``"TB"`` top to bottom, ``"LR"`` left to right.

    Returns:
        The graph; ``.source`` is its DOT text.
    """
    gv = _graphviz()
    dot = gv.Digraph(report.model, graph_attr={"rankdir": direction})
    dot.attr("node", fontname="Helvetica", fontsize="10")
    dot.attr("edge", fontname="Helvetica", fontsize="9")
    layout = _Layout(report, depth)
    root = report.layers[0] if report.layers else None
    if root is not None:
        for k, meta in enumerate(root.inputs):
            if meta.is_tensor:
                dot.node(f"in{k}", f"input {meta.path}\n{_shape(meta)}", shape="oval",
                         style="filled", fillcolor="#e8f0fe")  # fmt: skip
    items: list[tuple[int, str, str, list[TensorMeta], dict[str, str]]] = []
    for rec in layout.shown:
        style = {"shape": "box", "style": "rounded,filled", "fillcolor": "#ffffff"}
        if rec.failed:
            style.update(color="#d00000", fillcolor="#ffe5e5")
        items.append((rec.index * 2, f"L{rec.index}", _label(rec), list(rec.inputs), style))
    for op in layout.ops:
        style = {"shape": "ellipse", "style": "filled", "fillcolor": "#f3f3f3"}
        if op.failed:
            style.update(color="#d00000", fillcolor="#ffe5e5")
        label = op.name.rsplit(".", 1)[-1]
        items.append((op.after * 2 - 1, f"op{op.index}", label, list(op.inputs), style))
    items.sort(key=lambda item: item[0])
    for _, node_id, label, inputs, style in items:
        dot.node(node_id, label, **style)
        for meta in inputs:
            src = layout.node(meta.source)
            if src is not None and src != node_id:
                dot.edge(src, node_id, label=_shape(meta))
    if root is not None:
        for k, meta in enumerate(root.outputs):
            if not meta.is_tensor:
                continue
            dot.node(f"out{k}", f"output {meta.path}\n{_shape(meta)}".rstrip(), shape="oval",
                     style="filled", fillcolor="#e6f4ea")  # fmt: skip
            src = layout.node(meta.source)
            if src is not None:
                dot.edge(src, f"out{k}", label=_shape(meta))
    return dot


def render_graph(
    report: Report, path: str | PathLike[str], depth: int = 1, direction: str = "TB"
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
    dot = build_graph(report, depth=depth, direction=direction)
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
