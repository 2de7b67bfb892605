"""Sharding findings, from the parameters' placements: ``uneven-shards``, ``empty-shards``,
``replicated-param``; and how torch cuts a sharded dimension (``shard_dims``,
``shard_sizes``), which ``checks/rowwise.py`` shares.

Everything here reads records only (``ParamMeta``'s placements, local shape and mesh),
so each function is pure and runs on one rank alone. A dimension of size ``n`` split
over a mesh dimension of size ``k`` is cut as torch cuts a ``Shard`` placement
(``torch.chunk``): chunks of ``ceil(n / k)``, the last ones smaller or empty (36 over 8:
5, 5, 5, 5, 5, 5, 5, 1; 2 over 4: 1, 1, 0, 0). A tensor dimension sharded over several
mesh dimensions is cut by each in turn (a ``_StridedShard``, FSDP2's over tensor
parallelism, after the plain ``Shard`` placements), as
``torch.distributed.tensor._utils`` computes each rank's local shape.

May import: ``inspectnn.checks.contracts`` and ``inspectnn.records``.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from inspectnn.checks.contracts import fmt_shape
from inspectnn.records import Finding, ParamMeta

__all__ = ["dim_name", "repeat_key", "shard_dims", "shard_sizes", "sharding_findings", "sizes_text"]

_SHARD = re.compile(r"^(_StridedShard|Shard)\((?:dim=)?(-?\d+)")
_REPEAT = re.compile(r"(?<=\.)\d+(?=\.|$)|^\d+(?=\.)")
_MATRICES = frozenset({"Linear", "Embedding"})
"""Module types whose weights a tensor-parallel plan shards (``ColwiseParallel``,
``RowwiseParallel``), compared with their siblings by ``replicated-param``."""
_LISTED = 16
"""Per-rank sizes are listed one by one up to this many ranks, in runs past it."""


def repeat_key(path: str) -> str:
    """``path`` with its block indices starred (``blocks.*.attn.q``): repeated blocks' key."""
    return _REPEAT.sub("*", path)


def _chunks(size: int, k: int) -> list[int]:
    """``size`` cut into ``k`` pieces as ``torch.chunk`` (and ``Shard``) cuts it."""
    step = -(-size // k)
    return [max(0, min(step, size - i * step)) for i in range(k)]


def shard_dims(param: ParamMeta) -> dict[int, list[int]]:
    """Tensor dimension -> the mesh dimensions that shard it, in the order torch cuts.

    A plain ``Shard`` cuts in mesh order; a ``_StridedShard`` (FSDP2 over a tensor
    parallel dimension) cuts the shards the others left, so it comes after them.
    """
    plain: dict[int, list[int]] = {}
    strided: dict[int, list[int]] = {}
    rank = len(param.shape or ())
    for i, text in enumerate(param.placements):
        found = _SHARD.match(text)
        if found is None or not rank:
            continue
        dim = int(found[2]) % rank
        (strided if found[1] == "_StridedShard" else plain).setdefault(dim, []).append(i)
    return {d: plain.get(d, []) + strided.get(d, []) for d in sorted({*plain, *strided})}


def shard_sizes(size: int, order: Sequence[int], mesh: Sequence[int]) -> tuple[int, ...]:
    """Each rank's share of a dimension of ``size``, cut by the mesh dimensions ``order``.

    Ranks are listed in mesh order over the mesh dimensions in ``order`` (their
    coordinates row-major, the first mesh dimension slowest).

    >>> shard_sizes(36, [0], [8])
    (5, 5, 5, 5, 5, 5, 5, 1)
    >>> shard_sizes(2, [0], [4])
    (1, 1, 0, 0)
    """
    return _sizes(size, tuple(order), tuple(mesh))


@functools.lru_cache(maxsize=1024)
def _sizes(size: int, order: tuple[int, ...], mesh: tuple[int, ...]) -> tuple[int, ...]:
    """``shard_sizes``, cached: a model's blocks repeat the same few cuts."""
    dims = sorted(order)
    out = []
    for coords in itertools.product(*(range(mesh[i]) for i in dims)):
        at = dict(zip(dims, coords, strict=True))
        n = size
        for i in order:
            n = _chunks(n, mesh[i])[at[i]]
        out.append(n)
    return tuple(out)


def dim_name(param: ParamMeta, i: int) -> str:
    """The name of mesh dimension ``i`` of ``param``'s mesh (``"mesh dimension 0"`` unnamed)."""
    names = param.mesh_dim_names
    return names[i] if i < len(names) else f"mesh dimension {i}"


def sizes_text(sizes: Sequence[int]) -> str:
    """``"5, 5, 1"``; past ``_LISTED`` ranks in runs, ``"5 x 63, 1"``."""
    if len(sizes) <= _LISTED:
        return ", ".join(str(s) for s in sizes)
    runs = [(s, len(list(group))) for s, group in itertools.groupby(sizes)]
    return ", ".join(f"{s} x {n}" if n > 1 else str(s) for s, n in runs)


def _names(paths: Sequence[str]) -> str:
    """Parameter paths, repeats across blocks (``h.*.mlp.weight``) as one."""
    groups: dict[str, list[str]] = {}
    for path in paths:
        groups.setdefault(repeat_key(path), []).append(path)
    parts = [f"{key} (x{len(ps)})" if len(ps) > 1 else ps[0] for key, ps in groups.items()]
    return ", ".join(parts[:-1]) + f" and {parts[-1]}" if len(parts) > 1 else parts[0]


def _data_parallel_dims(
    weights: Mapping[str, Sequence[ParamMeta]], types: Mapping[str, str]
) -> set[str]:
    """The mesh dimensions FSDP shards: every parameter, plain ones included, is sharded
    on its dimension 0 over it, and so is some parameter outside a ``Linear`` or
    ``Embedding`` (a norm's).

    FSDP (``fully_shard``) shards every parameter of what it wraps, norms included; a
    tensor-parallel plan leaves norms whole (and ``RowwiseParallel``'s bias).
    """
    rows: dict[str, bool] = {}
    other: set[str] = set()
    plain = False
    for module, params in weights.items():
        for p in params:
            plain = plain or not p.placements
            for i, text in enumerate(p.placements):
                found = _SHARD.match(text)
                name = dim_name(p, i)
                rows[name] = rows.get(name, True) and found is not None and found[2] == "0"
                if rows[name] and types.get(module) not in _MATRICES:
                    other.add(name)
    return set() if plain else {name for name, all_rows in rows.items() if all_rows} & other


def sharding_findings(
    weights: Mapping[str, Sequence[ParamMeta]], types: Mapping[str, str]
) -> list[Finding]:
    """The findings of a sharded rank's parameters.

    Args:
        weights: Each module's own parameters, by module path.
        types: Each of those modules' class names, by path.

    Returns:
        ``uneven-shards`` / ``empty-shards`` (one per distinct cut, however many
        parameters and ranks share it) and ``replicated-param`` findings.
    """
    data_parallel = _data_parallel_dims(weights, types)
    return _uneven_findings(weights, data_parallel) + _replicated_findings(
        weights, types, data_parallel
    )


@dataclass(frozen=True, slots=True)
class _Cut:
    """One parameter dimension cut unevenly: where it is and what this rank holds."""

    path: str
    module: str
    dim: int
    held: int


def _uneven_findings(
    weights: Mapping[str, Sequence[ParamMeta]], data_parallel: set[str]
) -> list[Finding]:
    """A dimension that does not divide by the mesh dimensions that shard it.

    Warning on a tensor-parallel dimension (padded collectives; a ``RowwiseParallel``
    input hook that assumes even shards fails), info on a data-parallel one (FSDP pads
    its shards: padding only). One finding per distinct cut (size, mesh dimensions,
    shards), naming every parameter cut so.
    """
    problems: dict[tuple[int, tuple[tuple[str, int], ...], tuple[int, ...]], list[_Cut]] = {}
    for module, params in weights.items():
        for p in params:
            if not p.placements or p.shape is None:
                continue
            for dim, order in shard_dims(p).items():
                sizes = shard_sizes(p.shape[dim], order, p.mesh_shape)
                if len(set(sizes)) < 2:
                    continue
                over = tuple((dim_name(p, i), p.mesh_shape[i]) for i in sorted(order))
                held = p.local_shape[dim] if p.local_shape is not None else -1
                path = f"{module}.{p.name}" if module else p.name
                cut = _Cut(path, module, dim, held)
                problems.setdefault((p.shape[dim], over, sizes), []).append(cut)
    return [
        _uneven_finding(size, over, sizes, cuts, all(n in data_parallel for n, _ in over))
        for (size, over, sizes), cuts in problems.items()
    ]


def _uneven_finding(
    size: int,
    over: tuple[tuple[str, int], ...],
    sizes: tuple[int, ...],
    cuts: list[_Cut],
    fsdp: bool,
) -> Finding:
    k = len(sizes)
    where = " x ".join(f"{name}={n}" for name, n in over)
    paths = _names([f"{c.path} (dimension {c.dim})" for c in cuts])
    empty = [i for i, s in enumerate(sizes) if s == 0]
    message = (
        f"{size} does not divide by {where}: {paths} {'is' if len(cuts) == 1 else 'are'} "
        f"cut into shards of {sizes_text(sizes)} over the {k} ranks"
        f"{f' (this rank holds {cuts[0].held})' if cuts[0].held >= 0 else ''}."
    )
    if empty:
        coords = list(itertools.product(*(range(n) for _, n in over)))
        shown = [str(i) if len(over) == 1 else str(coords[i]) for i in empty[:8]]
        ranks = ", ".join(shown) + (" ..." if len(empty) > 8 else "")
        along = over[0][0] if len(over) == 1 else f"({', '.join(name for name, _ in over)})"
        which = "ranks" if len(empty) > 1 else "rank"
        verb = "hold" if len(empty) > 1 else "holds"
        message += f" {len(empty)} of them {verb} nothing ({along} {which} {ranks})."
    lower, upper = size // k * k, -(-size // k) * k
    choices = f"{upper} or {lower}" if lower else str(upper)
    if fsdp:
        fix = (f"nothing breaks: FSDP pads uneven shards (padding memory and traffic only); "
               f"a size divisible by {k} ({choices}) avoids it")  # fmt: skip
    else:
        fix = (f"make {size} divisible by {k}, e.g. {choices}, or shard it over a mesh "
               f"dimension whose size divides {size}: collectives pad uneven shards, and a "
               "RowwiseParallel layer fed them fails (its input hook, DTensor.from_local, "
               "takes every rank's shard to be as large as its own)")  # fmt: skip
    kind = "empty-shards" if empty else "uneven-shards"
    return Finding(kind, "info" if fsdp else "warning", cuts[0].module, message, fix)


def _sharded_on(p: ParamMeta, name: str) -> str | None:
    """``p``'s placement on the mesh dimension ``name`` when it shards there, else None."""
    for i, text in enumerate(p.placements):
        if dim_name(p, i) == name and _SHARD.match(text):
            return text
    return None


def _how_whole(p: ParamMeta, name: str) -> str:
    """How ``p`` is whole on the mesh dimension ``name``: a plain tensor, replicated ..."""
    if not p.placements:
        return "a plain tensor"
    for i, text in enumerate(p.placements):
        if dim_name(p, i) == name:
            return f"{text} on {name}"
    on = ", ".join(dim_name(p, i) for i in range(len(p.placements)))
    return f"on a mesh of {on} only"


def _cut_size(p: ParamMeta, name: str) -> int:
    """The size of the dimension of ``p`` sharded over the mesh dimension ``name``."""
    found = _SHARD.match(_sharded_on(p, name) or "")
    shape = p.shape or ()
    return shape[int(found[2]) % len(shape)] if found is not None and shape else -1


def _alike_dim(like: ParamMeta, name: str, shape: tuple[int, ...]) -> int:
    """The dimension of a weight of ``shape`` to shard as ``like`` is over ``name``: the
    same index when its size matches, else the first of the size ``like`` cuts."""
    found = _SHARD.match(_sharded_on(like, name) or "")
    dim = int(found[2]) % len(like.shape or (1,)) if found is not None else 0
    size = _cut_size(like, name)
    if dim < len(shape) and shape[dim] == size:
        return dim
    return next((i for i, n in enumerate(shape) if n == size), dim)


def _style(module_type: str, placement: str) -> str:
    """The ``parallelize_module`` style that gives a weight this placement."""
    found = _SHARD.match(placement)
    rows = found is not None and found[2] == "0"
    if module_type == "Embedding":
        return "RowwiseParallel" if rows else "ColwiseParallel"
    return "ColwiseParallel" if rows else "RowwiseParallel"


def _replicated_findings(
    weights: Mapping[str, Sequence[ParamMeta]], types: Mapping[str, str], data_parallel: set[str]
) -> list[Finding]:
    """``replicated-param``: a weight whole on every rank of a mesh dimension over which the
    plan shards its siblings.

    The rule: among the ``Linear`` and ``Embedding`` children of one parent module, when
    some weights are sharded (``Shard``) over a mesh dimension, a sibling's weight that is
    not sharded over it (a plain tensor, ``Replicate()``, or on a mesh without that
    dimension) is reported when it is large and alike: at least half as many elements
    as the smallest sharded sibling, and one dimension size in common with some sharded
    sibling (the parallel projections of one input, as ``mlp.up`` beside ``mlp.gate``).
    Only weights count: ``RowwiseParallel`` replicates a bias by design, norms are no
    ``Linear``, and FSDP shards everything. Blocks repeated across layers are one finding.
    """
    parents: dict[str, list[tuple[str, ParamMeta]]] = {}
    for module, params in weights.items():
        w = next((p for p in params if p.name == "weight" and p.shape), None)
        if w is not None and types.get(module) in _MATRICES:
            parents.setdefault(module.rpartition(".")[0], []).append((module, w))
    keyed: dict[str, dict[str, list[_Whole]]] = {}  # pattern -> mesh dimension -> hits
    for members in parents.values():
        dims = {dim_name(p, i) for _, p in members for i, t in enumerate(p.placements)
                if _SHARD.match(t)}  # fmt: skip
        for dim in sorted(dims):
            sharded = [(m, p) for m, p in members if _sharded_on(p, dim) is not None]
            smallest = min(p.numel for _, p in sharded)
            sizes = {d for _, p in sharded for d in p.shape or ()}
            for m, p in members:
                alike = p.numel * 2 >= smallest and sizes & set(p.shape or ())
                if _sharded_on(p, dim) is None and alike:
                    hit = _Whole(m, p, sharded)
                    keyed.setdefault(repeat_key(m), {}).setdefault(dim, []).append(hit)
    return [_replicated_finding(pattern, by_dim, types, data_parallel)
            for pattern, by_dim in keyed.items()]  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Whole:
    """A weight left whole over a mesh dimension, and its siblings sharded over it."""

    module: str
    param: ParamMeta
    sharded: list[tuple[str, ParamMeta]]


def _replicated_finding(
    pattern: str,
    by_dim: dict[str, list[_Whole]],
    types: Mapping[str, str],
    data_parallel: set[str],
) -> Finding:
    dims = list(by_dim)
    dim = next((d for d in dims if d not in data_parallel), dims[0])
    hits = by_dim[dim]
    first, p, one = hits[0], hits[0].param, len(hits) == 1
    kind = types.get(first.module, "Linear")
    shape = p.shape or ()
    like = next((s for s in first.sharded if s[1].shape == shape), None) or next(
        (s for s in first.sharded if _cut_size(s[1], dim) in shape), first.sharded[0]
    )
    siblings = ", ".join(f"'{m}' ({_sharded_on(q, dim)})" for m, q in first.sharded[:4])
    who = f"'{first.module}' ({kind})" if one else f"'{pattern}' ({len(hits)} {kind} modules)"
    message = (
        f"{who} {'holds its' if one else 'each hold their'} whole weight "
        f"{fmt_shape(p.shape or ())} on every {' and '.join(dims)} rank "
        f"({_how_whole(p, dim)}), while the plan shards {'its' if one else 'their'} "
        f"sibling{'s' if len(first.sharded) > 1 else ''} {siblings} over {dim}: the plan "
        f"most likely left {'it' if one else 'them'} out."
    )
    if dim in data_parallel:
        fix = (f"shard '{pattern}' as '{like[0]}' is (fully_shard on the module that holds "
               f"it, and not in ignored_params); if it is meant to be whole on every {dim} "
               "rank, nothing to do")  # fmt: skip
    else:
        style = _style(kind, f"Shard({_alike_dim(like[1], dim, shape)})")
        fix = (f"add it to the tensor-parallel plan as '{like[0]}' is: {{'{pattern}': "
               f"{style}()}} (keyed as parallelize_module is given it); if it is meant to be "
               f"whole on every {dim} rank, nothing to do")  # fmt: skip
    return Finding("replicated-param", "warning", first.module, message, fix)
