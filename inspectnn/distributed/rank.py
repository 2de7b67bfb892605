"""Which rank of which job a report is: ``RankInfo``, read from the process group.

``rank_info`` reads ``torch.distributed``'s rank and world size and, for a model
holding ``DTensor`` parameters, the device mesh they live on (its dimension names,
sizes and this rank's coordinate) from metadata alone: no collective runs. It is
``None`` outside a process group, so a report of a plain single-process run carries
nothing new. ``RankInfo.view`` is the shape view the report's table shows by
default (``inspect(view=...)``).

May import: ``distributed/placement.py`` (and torch). Imports nothing of
``torch.distributed`` that was not already loaded.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from torch import Tensor

from inspectnn.distributed.placement import shard_facts

__all__ = ["VIEWS", "RankInfo", "View", "rank_info"]

View = Literal["local", "global"]
VIEWS: tuple[View, ...] = ("local", "global")
"""What ``view=`` takes: a ``DTensor``'s shard on this rank, or the whole tensor."""


@dataclass(frozen=True, slots=True)
class RankInfo:
    """The rank a report was made on.

    Attributes:
        rank: This process's rank in the default process group.
        world_size: The number of ranks in it.
        mesh_dim_names: The device mesh's dimension names (``("dp", "tp")``) of the
            model's ``DTensor`` parameters; ``()`` for a model without any, or a
            mesh without names.
        mesh_shape: The mesh's sizes (``(2, 4)``); ``()`` without a mesh.
        coordinate: This rank's coordinate in the mesh, ``None`` without one.
        view: ``"local"``: the table shows a ``DTensor``'s shard on this rank (what
            the rank holds and computes); ``"global"``: the whole tensor's shape.
            A plain tensor is this rank's in both.

    Example:
        >>> RankInfo(5, 16, ("dp", "tp"), (2, 8), (0, 5), "local").describe()
        'rank 5 of 16 · mesh dp=2 × tp=8 at (0, 5) · local shapes'
    """

    rank: int
    world_size: int
    mesh_dim_names: tuple[str, ...] = ()
    mesh_shape: tuple[int, ...] = ()
    coordinate: tuple[int, ...] | None = None
    view: View = "local"

    def describe(self, view: str | None = None) -> str:
        """One line for a table's footer, saying the shape ``view`` (default ``self.view``)."""
        text = f"rank {self.rank} of {self.world_size}"
        if self.mesh_shape:
            names = self.mesh_dim_names or tuple(f"dim{i}" for i in range(len(self.mesh_shape)))
            mesh = " × ".join(f"{n}={s}" for n, s in zip(names, self.mesh_shape, strict=True))
            text += f" · mesh {mesh}"
            if self.coordinate is not None:
                text += f" at {self.coordinate}"
        shapes = "global shapes" if (view or self.view) == "global" else "local shapes"
        return f"{text} · {shapes}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON ``"sharding"`` section (``"schema": "inspectnn.sharding/1"``)."""
        return {
            "schema": "inspectnn.sharding/1",
            "rank": self.rank,
            "world_size": self.world_size,
            "mesh_dim_names": list(self.mesh_dim_names),
            "mesh_shape": list(self.mesh_shape),
            "coordinate": list(self.coordinate) if self.coordinate is not None else None,
            "view": self.view,
        }


def rank_info(params: Iterable[Tensor], view: View = "local") -> RankInfo | None:
    """This rank's ``RankInfo``, or None outside an initialised process group.

    The mesh is the whole mesh (a 2-D ``dp`` by ``tp`` one, not only the ``tp``
    submesh a tensor-parallel parameter lives on) of the first ``DTensor`` among
    ``params``.
    """
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    rank, world = int(dist.get_rank()), int(dist.get_world_size())
    for p in params:
        if shard_facts(p) is not None:
            mesh = p.device_mesh  # type: ignore[attr-defined]
            root = getattr(mesh, "_get_root_mesh", None)  # a submesh's whole mesh (torch 2.x)
            mesh = root() if callable(root) else mesh
            return RankInfo(
                rank, world, tuple(mesh.mesh_dim_names or ()), tuple(mesh.shape),
                _coordinate(mesh, rank), view,
            )  # fmt: skip
    return RankInfo(rank, world, view=view)


def _coordinate(mesh: Any, rank: int) -> tuple[int, ...] | None:
    """Where ``rank`` sits in ``mesh`` (its ranks' layout, ``mesh.mesh``), ``None`` if not in it.

    Read from the layout rather than ``get_coordinate()``: torch keeps a submesh's root
    mesh in a process-wide map keyed by layout and names, so after one simulated rank
    the next one's submesh finds the first rank's root mesh, whose coordinate is stale.
    """
    found = (mesh.mesh == rank).nonzero()
    return tuple(int(i) for i in found[0]) if len(found) else None
