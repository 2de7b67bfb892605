"""The node plan of a dataflow diagram: which calls are drawn as nodes, which as clusters.

From the Report alone: module calls at the chosen depth are nodes, those above it are
clusters (``_plan``); identical consecutive blocks fold into one run and a loop over
one module into one ``×N calls`` node (``_Run``, through ``renderers/table.py``'s
``fold_runs``); with no depth given, the deepest plan within ``MAX_NODES`` nodes and
``MAX_RANKS`` ranks, compacted (op groups, collapsed ranges) when depth 1 is too big
(``_auto_plan``). ``_Nodes`` maps a recorded source to the node that stands for it;
``_links`` lists the edges; ``output_groups`` the output nodes.

May import: ``inspectnn.records`` and ``inspectnn.renderers.table`` (``fold_runs``).
"""

from __future__ import annotations

import itertools
import re
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from inspectnn.records import LayerCall, OpCall, TensorMeta, parse_source
from inspectnn.renderers.table import fold_runs

if TYPE_CHECKING:
    from inspectnn.report import Report

__all__ = ["MAX_NODES", "MAX_RANKS", "output_groups"]


MAX_NODES = 60  # the automatic depth keeps the picture within this many nodes
MAX_RANKS = 30  # and opens no level that makes its longest path longer than this


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
