"""A whole job's view, one line per kind of rank: ``JobReport`` and its records.

``report.gather()`` (every rank of a real job) and ``simulate_job`` (ranks simulated
in one process) both end here (``distributed/gather.py`` makes the records). A
``JobReport`` holds one ``RankSummary`` per rank of the job: its coordinate, the
parameters and bytes it holds, its activation bytes, FLOPs and training-step peak, the
layers whose output shapes differ from rank 0's and the parameters whose shards do
(``shard_diffs``), against rank 0's shards (``ShardRef``). From those it says which
ranks hold smaller or empty shards (``uneven``), which rank needs the most memory
(``largest``) and, given the device's memory, which would run out first
(``first_out_of_memory``). Ranks whose figures are all alike share one table row.

Records only: nothing here touches torch or a process group; the text is
``distributed/job_text.py``'s. Imports nothing of inspectnn's at module level.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from math import prod
from typing import Any

__all__ = ["JOB_SCHEMA", "JobReport", "RankSummary", "ShapeDiff", "ShardRef", "UnevenShard"]

JOB_SCHEMA = "inspectnn.job/1"

Shape = tuple[int, ...]
_SHOWN = 6
"""Rows, layers and groups listed one by one before "and N more"."""


def _shape_text(shapes: Sequence[Shape | None] | None) -> str:
    if shapes is None:
        return "not called"
    return ", ".join("-" if s is None else "[" + ", ".join(map(str, s)) + "]" for s in shapes)


def ranks_text(ranks: Sequence[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2, 5, 7-8"``.

    >>> ranks_text([0, 1, 2, 5, 7, 8])
    '0-2, 5, 7-8'
    """
    parts = []
    for _, run in itertools.groupby(enumerate(sorted(ranks)), lambda p: p[1] - p[0]):
        block = [r for _, r in run]
        parts.append(str(block[0]) if len(block) == 1 else f"{block[0]}-{block[-1]}")
    return ", ".join(parts)


def _lists(shapes: Sequence[Shape | None] | None) -> list[list[int] | None] | None:
    return None if shapes is None else [None if s is None else list(s) for s in shapes]


def _tuple(value: Any) -> Any:
    """JSON lists back to tuples, nested."""
    return tuple(_tuple(v) for v in value) if isinstance(value, list) else value


@dataclass(frozen=True, slots=True)
class ShapeDiff:
    """A layer call whose outputs on some rank are not rank 0's shapes.

    Attributes:
        layer: The call's label (``"3"``, ``"(root)"``, ``"h.0.mlp#1"``).
        type: The module's class name.
        shapes: The rank's output shapes (held, a ``DTensor``'s local shard), ``None``
            for a non-tensor; ``None`` altogether when the rank did not make this call.
        reference: Rank 0's, alike; ``None`` when rank 0 did not make it.
    """

    layer: str
    type: str
    shapes: tuple[Shape | None, ...] | None
    reference: tuple[Shape | None, ...] | None

    def describe(self) -> str:
        """``"'3' (Linear) [4, 1] (rank 0: [4, 5])"``."""
        return f"'{self.layer}' ({self.type}) {_shape_text(self.shapes)} " \
               f"(rank 0: {_shape_text(self.reference)})"  # fmt: skip


@dataclass(frozen=True, slots=True)
class ShardRef:
    """One ``DTensor`` parameter as rank 0 holds it.

    Attributes:
        path: The parameter's dotted path (``"3.weight"``).
        shape: Its global shape.
        local_shape: Rank 0's shard.
        placements: Its placement on each mesh dimension (``"Shard(0)"``).
        mesh: Its mesh dimensions, ``"tp=8"`` for each.
    """

    path: str
    shape: Shape
    local_shape: Shape
    placements: tuple[str, ...]
    mesh: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RankSummary:
    """What one rank holds and computes: the compact record a rank sends to ``gather``.

    Attributes:
        rank: The rank.
        coordinate: Its coordinate in the device mesh, ``None`` without a mesh.
        local_params: Parameter elements it holds (its shards).
        param_bytes: Their bytes.
        buffer_bytes: Its buffers' bytes.
        activation_bytes: The forward's activation bytes on this rank.
        flops: The forward's FLOPs on this rank.
        peak: The training step's peak bytes (``backward=True``), else ``None``.
        error: ``"ShapeMismatchError in '2'"`` when its forward failed, else ``None``.
        differs: The layer calls whose output shapes are not rank 0's.
        shard_diffs: ``(path, local shape)`` of each parameter whose shard is not
            rank 0's.
        like: The rank whose report stands for this one: itself when it was
            inspected (every rank under ``gather``), else the simulated rank that holds
            the same shards (``simulate_job``).
    """

    rank: int
    coordinate: tuple[int, ...] | None
    local_params: int
    param_bytes: int
    buffer_bytes: int
    activation_bytes: int
    flops: int
    peak: int | None = None
    error: str | None = None
    differs: tuple[ShapeDiff, ...] = ()
    shard_diffs: tuple[tuple[str, Shape], ...] = ()
    like: int = -1

    @property
    def need(self) -> int:
        """The memory this rank needs, as ``device_memory=`` counts it: the training
        step's peak, else parameters, buffers and (unless the forward failed) the
        forward's activations."""
        if self.peak is not None:
            return self.peak
        held = self.param_bytes + self.buffer_bytes
        return held if self.error is not None else held + self.activation_bytes

    def _figures(self) -> tuple[Any, ...]:
        """Everything but who the rank is: ranks with equal figures share a row."""
        return (self.local_params, self.param_bytes, self.buffer_bytes, self.activation_bytes,
                self.flops, self.peak, self.error, self.differs, self.shard_diffs)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (part of ``inspectnn.job/1``)."""
        return {
            "rank": self.rank,
            "coordinate": None if self.coordinate is None else list(self.coordinate),
            "local_params": self.local_params,
            "param_bytes": self.param_bytes,
            "buffer_bytes": self.buffer_bytes,
            "activation_bytes": self.activation_bytes,
            "flops": self.flops,
            "peak": self.peak,
            "need": self.need,
            "error": self.error,
            "differs": [_diff_dict(d) for d in self.differs],
            "shard_diffs": [[path, list(shape)] for path, shape in self.shard_diffs],
            "like": self.like,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RankSummary:
        """A summary back from ``to_dict``."""
        differs = tuple(
            ShapeDiff(d["layer"], d["type"], _tuple(d["shapes"]), _tuple(d["reference"]))
            for d in data["differs"]
        )
        return cls(
            data["rank"], _tuple(data["coordinate"]), data["local_params"], data["param_bytes"],
            data["buffer_bytes"], data["activation_bytes"], data["flops"], data["peak"],
            data["error"], differs, tuple((p, _tuple(s)) for p, s in data["shard_diffs"]),
            data["like"],
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class UnevenShard:
    """Parameters whose shards are not alike on every rank.

    Attributes:
        params: The parameters cut so (dotted paths).
        shape: Their global shape.
        placements: Their placements (``"Shard(0)"``) over ``mesh`` (``"tp=8"``).
        mesh: Their mesh dimensions.
        held: Each distinct shard, largest first, and the ranks holding it.
        smaller: The ranks holding fewer elements than the largest shard.
        empty: The ranks holding nothing.
    """

    params: tuple[str, ...]
    shape: Shape
    placements: tuple[str, ...]
    mesh: tuple[str, ...]
    held: tuple[tuple[Shape, tuple[int, ...]], ...]
    smaller: tuple[int, ...]
    empty: tuple[int, ...]

    def describe(self) -> str:
        """One line: the parameters, their cut, who holds what."""
        names = ", ".join(self.params[:4]) + (
            f" and {len(self.params) - 4} more" if len(self.params) > 4 else "")  # fmt: skip
        how = " × ".join(f"{p} over {m}" for p, m in zip(self.placements, self.mesh, strict=False))
        hold = "; ".join(
            f"rank{'s' if len(rs) > 1 else ''} {ranks_text(rs)} "
            f"hold{'' if len(rs) > 1 else 's'} {_shape_text([s])}"
            for s, rs in self.held
        )
        return f"{names} {_shape_text([self.shape])} ({how}): {hold}"


@dataclass(frozen=True)
class JobReport:
    """The per-rank view of one job: what each rank holds and computes, and what differs.

    Made by ``report.gather()`` on the destination rank, or by ``simulate_job``.
    ``print(job)`` for the table (ranks with the same figures share a row).

    Attributes:
        world_size: The job's ranks.
        mesh_dim_names: The device mesh's dimension names (``("dp", "tp")``).
        mesh_shape: Its sizes; ``()`` without a mesh.
        params: The model's parameters (global, the same on every rank).
        ranks: One ``RankSummary`` per rank, in rank order.
        shards: Rank 0's ``DTensor`` parameters (each rank's differences are in its
            ``shard_diffs``).
        device_memory: The device's memory in bytes, or ``None``: then
            ``out_of_memory`` is empty.
        simulated: The figures come from ``simulate_job`` (ranks whose ``like`` is
            another rank were not simulated), not from a real job.
    """

    world_size: int
    mesh_dim_names: tuple[str, ...]
    mesh_shape: tuple[int, ...]
    params: int
    ranks: tuple[RankSummary, ...]
    shards: tuple[ShardRef, ...] = ()
    device_memory: int | None = None
    simulated: bool = False
    _cache: dict[str, Any] = field(default_factory=dict, init=False, compare=False, repr=False)

    @property
    def differing(self) -> tuple[RankSummary, ...]:
        """The ranks whose layer output shapes are not rank 0's."""
        return tuple(r for r in self.ranks if r.differs)

    @property
    def largest(self) -> RankSummary:
        """The rank that needs the most memory (the lowest such rank on a tie)."""
        return max(self.ranks, key=lambda r: (r.need, -r.rank))

    @property
    def out_of_memory(self) -> tuple[RankSummary, ...]:
        """The ranks that need more than ``device_memory``, the neediest first."""
        if self.device_memory is None:
            return ()
        over = [r for r in self.ranks if r.need > self.device_memory]
        return tuple(sorted(over, key=lambda r: (-r.need, r.rank)))

    @property
    def first_out_of_memory(self) -> RankSummary | None:
        """The rank that would run out of ``device_memory`` first: the one that needs the
        most, when that is more than the device has; ``None`` when every rank fits."""
        over = self.out_of_memory
        return over[0] if over else None

    @property
    def uneven(self) -> tuple[UnevenShard, ...]:
        """The parameters whose shards differ between ranks, those cut alike as one."""
        if "uneven" not in self._cache:
            self._cache["uneven"] = _uneven(self)
        result: tuple[UnevenShard, ...] = self._cache["uneven"]
        return result

    def groups(self) -> list[list[RankSummary]]:
        """The ranks, those with the same figures together, in order of their first rank."""
        by: dict[tuple[Any, ...], list[RankSummary]] = {}
        for r in self.ranks:
            by.setdefault(r._figures(), []).append(r)
        return list(by.values())

    def where(self, ranks: Sequence[RankSummary]) -> str:
        """The ranks' place in the mesh (``"dp=*, tp=7"``) when they fill a block of it,
        else ``""``."""
        coords = [r.coordinate for r in ranks if r.coordinate is not None]
        if not coords or len(coords) != len(ranks) or not self.mesh_shape:
            return ""
        names = self.mesh_dim_names or tuple(f"dim{i}" for i in range(len(self.mesh_shape)))
        values = [sorted({c[i] for c in coords}) for i in range(len(self.mesh_shape))]
        if prod(len(v) for v in values) != len(coords):
            return ""
        return ", ".join(
            f"{n}=*" if len(v) == size else f"{n}={ranks_text(v)}"
            for n, v, size in zip(names, values, self.mesh_shape, strict=True)
        )

    def table(self) -> str:
        """The per-rank table and what differs, as text."""
        from inspectnn.distributed.job_text import job_table

        return job_table(self)

    def __str__(self) -> str:
        return self.table()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, ``"schema": "inspectnn.job/1"``; ``JobReport.from_dict`` reads it."""
        first = self.first_out_of_memory
        return {
            "schema": JOB_SCHEMA,
            "world_size": self.world_size,
            "mesh_dim_names": list(self.mesh_dim_names),
            "mesh_shape": list(self.mesh_shape),
            "params": self.params,
            "device_memory": self.device_memory,
            "simulated": self.simulated,
            "ranks": [r.to_dict() for r in self.ranks],
            "shards": [[s.path, list(s.shape), list(s.local_shape), list(s.placements),
                        list(s.mesh)] for s in self.shards],
            "uneven": [_uneven_dict(u) for u in self.uneven],
            "largest": self.largest.rank,
            "first_out_of_memory": None if first is None else first.rank,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobReport:
        """A ``JobReport`` back from ``to_dict`` (``json.loads`` of it included)."""
        if data.get("schema") != JOB_SCHEMA:
            from inspectnn.errors import InvalidInputError

            raise InvalidInputError(
                f"not an {JOB_SCHEMA} document (schema {data.get('schema')!r}): pass what "
                "JobReport.to_dict() wrote"
            )
        shards = tuple(ShardRef(p, _tuple(s), _tuple(ls), _tuple(pl), _tuple(m))
                       for p, s, ls, pl, m in data["shards"])  # fmt: skip
        return cls(
            data["world_size"], tuple(data["mesh_dim_names"]), tuple(data["mesh_shape"]),
            data["params"], tuple(RankSummary.from_dict(r) for r in data["ranks"]), shards,
            data["device_memory"], data["simulated"],
        )  # fmt: skip


def _diff_dict(d: ShapeDiff) -> dict[str, Any]:
    return {"layer": d.layer, "type": d.type, "shapes": _lists(d.shapes),
            "reference": _lists(d.reference)}


def _uneven_dict(u: UnevenShard) -> dict[str, Any]:
    return {"params": list(u.params), "shape": list(u.shape), "placements": list(u.placements),
            "mesh": list(u.mesh), "held": [[list(s), list(rs)] for s, rs in u.held],
            "smaller": list(u.smaller), "empty": list(u.empty)}


def _uneven(job: JobReport) -> tuple[UnevenShard, ...]:
    """Each rank's shard of every parameter (rank 0's unless its ``shard_diffs`` say
    otherwise), grouped by the cut: parameters whose shards are not alike everywhere."""
    diffs = [dict(r.shard_diffs) for r in job.ranks]
    cuts: dict[tuple[Any, ...], list[str]] = {}
    for ref in job.shards:
        held = tuple(d.get(ref.path, ref.local_shape) for d in diffs)
        if len(set(held)) > 1:
            cuts.setdefault((ref.shape, ref.placements, ref.mesh, held), []).append(ref.path)
    out = []
    for (shape, placements, mesh, held), paths in cuts.items():
        by: dict[Shape, list[int]] = {}
        for rank, local in enumerate(held):
            by.setdefault(local, []).append(job.ranks[rank].rank)
        order = sorted(by.items(), key=lambda kv: (-prod(kv[0]), kv[1][0]))
        most = prod(order[0][0])
        smaller = tuple(sorted(r for s, rs in order if prod(s) < most for r in rs))
        empty = tuple(sorted(r for s, rs in order if prod(s) == 0 for r in rs))
        out.append(UnevenShard(tuple(paths), shape, placements, mesh,
                               tuple((s, tuple(rs)) for s, rs in order), smaller, empty))
    return tuple(out)

