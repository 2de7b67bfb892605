"""One rank of a sharded job, inspected in one CPU process: ``simulate()``.

``simulate(build, *args, mesh={"dp": 2, "tp": 4}, rank=5)`` joins torch's ``"fake"``
process group (its ``FakeStore``: no other process, no collective really runs;
torchtitan simulates ranks this way) as ``rank`` of ``prod(mesh)`` ranks, makes the
``DeviceMesh``, calls ``build(mesh)`` under ``torch.device("meta")`` and inspects the
model it returns on meta, so that no memory is allocated for the full model. FSDP2
cannot run on meta: a model with ``fully_shard`` modules is first materialised as fake
CPU shards (``distributed/fsdp.py``'s ``fake_materialize``) and its forward runs in
their ``FakeTensorMode``, FSDP's all-gathers on fakes under the fake process group.
The process group is destroyed afterwards, whether the build or the trace raised or not,
and ``sys.excepthook`` put back (joining a group sets one that prefixes every later
traceback with ``[rank5]``).

The sharding plan is the builder's job: ``build`` applies its own
``parallelize_module`` / ``fully_shard`` on the mesh it is given, exactly as the real
job's code does, so there is no ``plan=`` argument.

``torch.distributed`` and its submodules are imported inside ``simulate`` only, so
importing this module costs nothing and works where ``torch.distributed`` is not built.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from math import prod
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from inspectnn.errors import InvalidInputError

if TYPE_CHECKING:
    from torch.distributed.device_mesh import DeviceMesh

    from inspectnn.report import Report

__all__ = ["simulate"]


def simulate(
    build: Callable[[DeviceMesh], nn.Module],
    *args: Any,
    mesh: Mapping[str, int],
    rank: int,
    **inspect_kwargs: Any,
) -> Report:
    """Inspect rank ``rank`` of a job on ``mesh``, simulated in this one process.

    Args:
        build: Called once with the ``DeviceMesh`` (dimension names as in ``mesh``),
            under ``torch.device("meta")``; returns the model, its sharding plan
            (``parallelize_module``, ``fully_shard``) already applied on that mesh.
        *args: One rank's input, as in the real job (shapes, or tensors on meta).
        mesh: The mesh's dimension names and sizes, outermost first
            (``{"dp": 64, "tp": 8}``); the job has ``prod(mesh.values())`` ranks.
        rank: Which rank to be, ``0 <= rank < prod(mesh.values())``.
        **inspect_kwargs: Passed to ``inspectnn.inspect`` (not ``device``: the run
            is on meta).

    Returns:
        The ``Report`` of that rank: global parameter counts, this rank's share in
        ``totals.local_params`` and ``totals.param_bytes``; its device says meta (an
        FSDP2 model's fake CPU shards included).

    Raises:
        InvalidInputError: A process group is already initialised, ``mesh`` is empty
            or has a size that is not a positive int, ``rank`` is out of range, or
            ``device`` was passed.
    """
    import torch.distributed as dist

    names, sizes = _checked_mesh(mesh)
    world = prod(sizes)
    _check_rank(rank, world)
    if "device" in inspect_kwargs:
        raise InvalidInputError(
            "simulate() runs on meta: drop device= (the builder's model is built on meta)"
        )
    if not dist.is_available():
        raise InvalidInputError("simulate() needs torch.distributed, which this torch lacks")
    if dist.is_initialized():
        raise InvalidInputError(
            "simulate() joins its own fake process group, and one is already initialised: "
            "call simulate() outside a distributed job, or call inspect() on each rank"
        )
    from torch.distributed.device_mesh import init_device_mesh
    from torch.testing._internal.distributed.fake_pg import FakeStore

    from inspectnn.api import inspect
    from inspectnn.distributed.fsdp import fake_materialize

    hook = sys.excepthook  # init_process_group prefixes tracebacks with "[rank5]" for good
    dist.init_process_group("fake", store=FakeStore(), rank=rank, world_size=world)
    try:
        device_mesh = init_device_mesh("cpu", sizes, mesh_dim_names=names)
        with torch.device("meta"):
            model = build(device_mesh)
        fake_materialize(model)  # FSDP2 runs on fake shards, never on meta
        return inspect(model, *args, device="meta", **inspect_kwargs)
    finally:
        dist.destroy_process_group()
        sys.excepthook = hook


def _checked_mesh(mesh: Mapping[str, int]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """``mesh``'s names and sizes, refused unless names are strings and sizes positive ints."""
    if not isinstance(mesh, Mapping) or not mesh:
        raise InvalidInputError(
            f"mesh must be a non-empty mapping of dimension names to sizes, such as "
            f'{{"dp": 2, "tp": 4}}; got {mesh!r}'
        )
    for name, size in mesh.items():
        if not isinstance(name, str):
            raise InvalidInputError(f"mesh dimension names must be strings; got {name!r}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InvalidInputError(
                f"mesh sizes must be positive ints; got {name}={size!r} (pass e.g. {name}=2)"
            )
    return tuple(mesh), tuple(mesh.values())


def _check_rank(rank: int, world: int) -> None:
    """Refuse a ``rank`` that is not an int in ``range(world)``."""
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world:
        raise InvalidInputError(
            f"rank must be an int from 0 to {world - 1} (the mesh has {world} ranks); "
            f"got {rank!r}"
        )
