"""A tensor's sharding, read from its metadata alone: no collective, no copy.

A ``DTensor`` (``torch.distributed.tensor``) answers ``.shape`` with the global shape
while the rank holds only its local shard (``.to_local()``, free: the tensor it wraps).
``shard_facts`` reads both, with the placements on the device mesh and this rank's
coordinate in it, into a frozen ``ShardFacts``; a plain tensor has none. Everything
here is safe to call on one rank alone (nothing waits for the others), under torch's
``"fake"`` process group, and on meta tensors.

The module never imports ``torch.distributed.tensor`` itself: a tensor can be a
``DTensor`` only once that module is loaded, so ``is_dtensor`` looks it up in
``sys.modules`` and importing this module works where ``torch.distributed`` is not
built in.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor

if TYPE_CHECKING:
    from torch.distributed.tensor import DTensor
    from torch.distributed.tensor.placement_types import Placement

__all__ = [
    "ShardFacts",
    "global_numel",
    "is_dtensor",
    "local_bytes",
    "placement_text",
    "shard_facts",
]


@dataclass(frozen=True, slots=True)
class ShardFacts:
    """How one ``DTensor`` is laid out over its device mesh, as seen from this rank.

    Attributes:
        global_shape: The whole tensor's shape (the ``DTensor``'s ``.shape``).
        local_shape: The shard this rank holds (``.to_local().shape``); a dimension
            that does not divide leaves uneven shards (10 over 4 ranks: 3, 3, 3, 1),
            or empty ones (2 over 4 ranks: 1, 1, 0, 0).
        placements: One per mesh dimension, as text: ``"Shard(0)"``,
            ``"Replicate()"``, ``"_StridedShard(dim=0, sf=2)"``, ``"Partial(sum)"``.
        mesh_shape: The device mesh's shape (``(2, 4)`` for dp=2 by tp=4).
        mesh_dim_names: The mesh dimensions' names, ``()`` when it has none.
        coordinate: This rank's coordinate in the mesh, ``None`` when the rank is
            not in it.
    """

    global_shape: tuple[int, ...]
    local_shape: tuple[int, ...]
    placements: tuple[str, ...]
    mesh_shape: tuple[int, ...]
    mesh_dim_names: tuple[str, ...]
    coordinate: tuple[int, ...] | None


def is_dtensor(t: object) -> bool:
    """Whether ``t`` is a ``torch.distributed.tensor.DTensor`` (a ``Parameter`` too).

    False without importing anything when ``torch.distributed.tensor`` was never
    loaded (no ``DTensor`` can exist then) or is not available.
    """
    module = sys.modules.get("torch.distributed.tensor")
    kind = getattr(module, "DTensor", None)
    return kind is not None and isinstance(t, kind)


def placement_text(placement: Placement) -> str:
    """One placement as ``ShardFacts`` writes it: ``Shard(0)``, ``Replicate()`` ...

    ``Shard`` is written with its dimension only (torch's own ``repr`` says
    ``Shard(dim=0)``); ``_StridedShard`` and ``Partial`` as torch's ``repr``
    (``_StridedShard(dim=0, sf=2)``, ``Partial(sum)``), any other placement too.
    """
    if type(placement).__name__ == "Shard":
        return f"Shard({placement.dim})"  # type: ignore[attr-defined]
    return repr(placement)


def shard_facts(t: Tensor) -> ShardFacts | None:
    """The sharding of ``t`` as seen from this rank, or ``None`` for a plain tensor.

    Reads metadata only (``.placements``, ``.device_mesh``, ``.to_local()``): no
    collective runs, so one rank may call it alone.
    """
    if not is_dtensor(t):
        return None
    d: DTensor = t  # type: ignore[assignment]
    mesh = d.device_mesh
    coordinate = mesh.get_coordinate()
    return ShardFacts(
        global_shape=tuple(d.shape),
        local_shape=tuple(d.to_local().shape),
        placements=tuple(placement_text(p) for p in d.placements),
        mesh_shape=tuple(mesh.shape),
        mesh_dim_names=tuple(mesh.mesh_dim_names or ()),
        coordinate=None if coordinate is None else tuple(coordinate),
    )


def _local(t: Tensor) -> Tensor:
    """The tensor this rank holds: a ``DTensor``'s local shard, else ``t`` itself."""
    return t.to_local() if is_dtensor(t) else t  # type: ignore[attr-defined]


def local_bytes(t: Tensor) -> int:
    """The bytes this rank holds for ``t``: its local shard's storage, in full.

    A shard scattered from an uneven dimension keeps the padding of the scatter
    (an empty shard of a ``[2, 3]`` float32 tensor over 4 ranks holds 12 bytes, one
    padded row), and a view holds its whole base: both are what the rank allocated.
    Tensors that share a storage each answer that storage's size.
    """
    return int(_local(t).untyped_storage().nbytes())


def global_numel(t: Tensor) -> int:
    """The number of elements of the whole tensor (a ``DTensor``'s global shape)."""
    return t.numel()
