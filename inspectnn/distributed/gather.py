"""A whole job's per-rank view: ``gather()`` on a real job, ``simulate_job()`` in one process.

``gather(report)`` is a collective: every rank of a ``torch.distributed`` job calls it
with its own report. Rank 0's layer output shapes and shards are broadcast
(``broadcast_object_list``), each rank makes a compact ``RankSummary`` (its figures and
only what differs from rank 0: a few tuples, never the report) and ``gather_object``
brings them to ``dst``, which returns the ``JobReport``; every other rank returns
``None``. It runs on the default process group, on any backend with object
collectives (gloo; NCCL once each rank has set its CUDA device). Outside an
initialised process group it raises ``InvalidInputError``: a one-rank "job" would say
nothing a report does not, and a rank calling it alone in a real job would hang.

``simulate_job(build, *args, mesh=...)`` simulates ranks of one job in this process,
one after another, each through ``simulate()`` (torch's fake process group, on meta),
and returns the same ``JobReport``. Rank 0 is simulated first; its parameter rows say
how torch cuts every sharded dimension on every rank (``checks/sharding.py``'s
``shard_dims`` / ``shard_sizes``), and ranks that hold shards of the same shapes are
alike: they hold the same bytes and run the same shapes, so one of them (the lowest)
is simulated for all. An evenly sharded job is one simulation whatever its size; a
dimension cut unevenly adds a kind of rank per distinct shard (36 over tp=8: ranks
with tp coordinate 0-6, and 7). This assumes the forward depends on the rank through
its shards only (and on ``init_device_mesh``'s row-major layout of ranks in the mesh);
``ranks=`` simulates exactly the ranks given (rank 0 always, as the reference).

May import: ``distributed/job.py``, ``distributed/simulate.py``'s checks,
``checks/device_memory.py``, ``checks/sharding.py``, ``inspectnn.errors`` and
``inspectnn.records``; ``torch.distributed`` and ``api.py`` inside functions only.
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
from collections.abc import Callable, Iterable, Mapping
from math import prod
from typing import TYPE_CHECKING, Any

from inspectnn.checks.device_memory import device_memory_bytes
from inspectnn.checks.sharding import dim_name, shard_dims, shard_sizes
from inspectnn.distributed.job import JobReport, RankSummary, Shape, ShapeDiff, ShardRef
from inspectnn.distributed.simulate import _check_rank, _checked_mesh, simulate
from inspectnn.errors import InvalidInputError
from inspectnn.records import ParamMeta

if TYPE_CHECKING:
    from torch import nn
    from torch.distributed.device_mesh import DeviceMesh

    from inspectnn.report import Report

__all__ = ["gather", "simulate_job", "summarize"]

_ALL_UNGROUPED = 16
"""Ranks simulated one by one when they cannot be grouped by their shards."""

Outputs = tuple[tuple[str, str, tuple[Shape | None, ...]], ...]
Reference = tuple[Outputs, tuple[ShardRef, ...]]


def _outputs(report: Report) -> Outputs:
    """Each layer call's label, type and held output shapes (a ``DTensor``'s local shard)."""
    return tuple((c.label, c.type, tuple(t.held_shape for t in c.outputs)) for c in report.layers)


def _params(report: Report) -> Iterable[tuple[str, ParamMeta]]:
    """Every parameter row once, by its dotted path."""
    seen: set[str] = set()
    for layer in report.layers:
        for w in layer.weights:
            path = f"{layer.name}.{w.name}" if layer.name else w.name
            if path not in seen:
                seen.add(path)
                yield path, w


def _shards(report: Report) -> tuple[ShardRef, ...]:
    """The report's ``DTensor`` parameters as this rank holds them."""
    return tuple(
        ShardRef(path, w.shape, w.local_shape, w.placements,
                 tuple(f"{dim_name(w, i)}={n}" for i, n in enumerate(w.mesh_shape)))
        for path, w in _params(report)
        if w.placements and w.shape is not None and w.local_shape is not None
    )  # fmt: skip


def reference(report: Report) -> Reference:
    """What other ranks are compared with: rank 0's output shapes and shards."""
    return _outputs(report), _shards(report)


def summarize(report: Report, rank: int, against: Reference) -> RankSummary:
    """``report``'s compact summary as rank ``rank``, its shapes and shards compared with
    ``against`` (rank 0's ``reference``)."""
    totals = report.totals
    mine = {label: (kind, shapes) for label, kind, shapes in _outputs(report)}
    theirs = {label: (kind, shapes) for label, kind, shapes in against[0]}
    differs = []
    for label in [*theirs, *(k for k in mine if k not in theirs)]:
        got, want = mine.get(label), theirs.get(label)
        if got is None or want is None or got[1] != want[1]:
            kind = (got or want or ("", ()))[0]
            differs.append(ShapeDiff(label, kind, None if got is None else got[1],
                                     None if want is None else want[1]))
    held = {s.path: s.local_shape for s in against[1]}
    shard_diffs = tuple((s.path, s.local_shape) for s in _shards(report)
                        if held.get(s.path) != s.local_shape)  # fmt: skip
    error = report.error
    return RankSummary(
        rank, report.rank.coordinate if report.rank is not None else None,
        totals.params if totals.local_params is None else totals.local_params,
        totals.param_bytes, totals.buffer_bytes, totals.activation_bytes, totals.flops,
        report.memory.peak if report.memory is not None else None,
        None if error is None else f"{error.type} in {error.layer!r}",
        tuple(differs), shard_diffs, rank,
    )  # fmt: skip


def gather(
    report: Report, dst: int = 0, device_memory: int | str | None = None
) -> JobReport | None:
    """The job's per-rank view, on rank ``dst``; a collective every rank must call.

    Args:
        report: This rank's report (``inspectnn.inspect`` on this rank).
        dst: The rank that gets the ``JobReport``.
        device_memory: The device's memory, as bytes or a size such as ``"80GB"``: the
            ``JobReport`` then says which rank would run out first.

    Returns:
        On rank ``dst`` the ``JobReport``; on every other rank ``None``.

    Raises:
        InvalidInputError: No process group is initialised, ``dst`` is not a rank of it,
            or ``device_memory`` is not a size.
    """
    limit = device_memory_bytes(device_memory)
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        raise InvalidInputError(
            "gather() is a collective: call it on every rank of a torch.distributed job, "
            "after init_process_group; in one process, use inspectnn.simulate_job(build, "
            "*args, mesh=...) for a job's ranks, or read this report itself"
        )
    world, me = int(dist.get_world_size()), int(dist.get_rank())
    if isinstance(dst, bool) or not isinstance(dst, int) or not 0 <= dst < world:
        raise InvalidInputError(
            f"dst must be the rank that gets the JobReport, an int from 0 to {world - 1}; "
            f"got {dst!r}"
        )
    box = [reference(report) if me == 0 else None]
    dist.broadcast_object_list(box, src=0)
    against: Reference = box[0]  # type: ignore[assignment]
    summary = summarize(report, me, against)
    out: list[Any] | None = [None] * world if me == dst else None
    dist.gather_object(summary, out, dst=dst)
    if out is None:
        return None
    info = report.rank
    return JobReport(
        world, info.mesh_dim_names if info else (), info.mesh_shape if info else (),
        report.totals.params, tuple(out), against[1], limit,
    )  # fmt: skip


def simulate_job(
    build: Callable[[DeviceMesh], nn.Module],
    *args: Any,
    mesh: Mapping[str, int],
    ranks: Iterable[int] | None = None,
    **inspect_kwargs: Any,
) -> JobReport:
    """The per-rank view of a job on ``mesh``, its ranks simulated in this one process.

    Args:
        build: As for ``simulate``: called with the ``DeviceMesh`` under
            ``torch.device("meta")``, returns the model with its plan applied.
        *args: One rank's input, as in the real job.
        mesh: The mesh's dimension names and sizes, outermost first.
        ranks: The ranks to simulate (rank 0 is always added); the ``JobReport`` then
            holds those only. By default every rank of the job is in it, one simulated
            rank standing for all that hold shards of the same shapes
            (``RankSummary.like``).
        **inspect_kwargs: Passed to ``simulate`` and on to ``inspect`` (with
            ``device_memory=`` the ``JobReport`` also says which rank runs out first).

    Returns:
        The ``JobReport`` (``simulated`` set).

    Raises:
        InvalidInputError: As ``simulate``; a rank in ``ranks`` out of range; ranks
            whose shards cannot be told apart (a mesh without dimension names) in a job
            of more than 16 ranks without ``ranks=``.
    """
    names, sizes = _checked_mesh(mesh)
    world = prod(sizes)
    limit = device_memory_bytes(inspect_kwargs.get("device_memory"))
    chosen = None
    if ranks is not None:
        chosen = sorted({0, *ranks})
        for r in chosen:
            _check_rank(r, world)
    first = simulate(build, *args, mesh=mesh, rank=0, **inspect_kwargs)
    against = reference(first)
    coords = list(itertools.product(*(range(s) for s in sizes)))
    like = {r: r for r in chosen} if chosen is not None else _alike(first, names, sizes, coords)
    if like is None:
        if world > _ALL_UNGROUPED:
            raise InvalidInputError(
                f"simulate_job cannot tell which of the {world} ranks hold alike shards (a "
                f"parameter's mesh dimensions are not those of mesh={dict(mesh)!r}, nor "
                "flattened from them): pass ranks=[...] to choose the ranks to simulate"
            )
        like = {r: r for r in range(world)}
    done = {0: summarize(first, 0, against)}
    for r in sorted(set(like.values()) - {0}):
        done[r] = summarize(simulate(build, *args, mesh=mesh, rank=r, **inspect_kwargs), r,
                            against)  # fmt: skip
    sharded = first.rank is not None and bool(first.rank.mesh_shape)
    rows = tuple(
        dataclasses.replace(done[s], rank=r, coordinate=coords[r] if sharded else None, like=s)
        for r, s in sorted(like.items())
    )
    return JobReport(world, names, sizes, first.totals.params, rows, against[1], limit, True)


def _placed(
    w: ParamMeta, names: tuple[str, ...], sizes: tuple[int, ...]
) -> list[list[int]] | None:
    """Each of ``w``'s mesh dimensions as the run of ``mesh`` dimensions it is: its own
    name, or a flattened one (``DeviceMesh._flatten``'s ``"dp_shard_cp"``: the names of
    consecutive dimensions joined by ``_``); positional when the meshes are the same
    shape; ``None`` when it cannot be placed."""
    if not w.mesh_dim_names:
        return [[i] for i in range(len(sizes))] if tuple(w.mesh_shape) == sizes else None
    runs = {"_".join(names[i:j]): list(range(i, j))
            for i in range(len(names)) for j in range(i + 1, len(names) + 1)}  # fmt: skip
    where = [runs.get(name) for name in w.mesh_dim_names]
    if any(r is None for r in where):
        return None
    placed = [r for r in where if r is not None]
    if [prod(sizes[j] for j in r) for r in placed] != list(w.mesh_shape):
        return None
    return placed


def _alike(
    first: Report, names: tuple[str, ...], sizes: tuple[int, ...], coords: list[tuple[int, ...]]
) -> dict[int, int] | None:
    """Each rank -> the lowest rank holding shards of the same shapes (from rank 0's
    parameter rows, their cuts as torch makes them, ``shard_sizes``); ``None`` when a
    parameter's mesh dimensions cannot be placed in ``mesh`` (``_placed``)."""
    keys: list[list[int]] = [[] for _ in coords]
    cuts = {(w.shape, w.placements, w.mesh_shape, w.mesh_dim_names): w
            for _, w in _params(first) if w.placements and w.shape is not None}  # fmt: skip
    for w in cuts.values():
        assert w.shape is not None
        where = _placed(w, names, sizes)
        if where is None:
            return None
        for dim, order in shard_dims(w).items():
            cut = shard_sizes(w.shape[dim], order, w.mesh_shape)
            if len(set(cut)) < 2:
                continue
            spans = [where[i] for i in sorted(order)]
            for key, coord in zip(keys, coords, strict=True):
                index = 0
                for span in spans:
                    for j in span:
                        index = index * sizes[j] + coord[j]
                key.append(cut[index])
    first_of: dict[tuple[int, ...], int] = {}
    return {r: first_of.setdefault(tuple(key), r) for r, key in enumerate(keys)}
