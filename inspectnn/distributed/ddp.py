"""``DistributedDataParallel``: the wrapped model inspected as the user's, and its batch.

``inspect(ddp_model, x)`` inspects ``ddp_model.module``, the user's own model (layer
paths without ``module.``, its parameter counts, its class name as the model's name),
by calling it directly: DDP's own forward, which prepares the gradient all-reduce of
the next backward (its reducer, ``require_backward_grad_sync``, the buffers'
broadcast), never runs, so the next real training step finds DDP as it was. An
info finding, ``ddp-batch``, says the batch this rank ran and the job's (this rank's
times the world size): a table of one rank is one rank's share of the batch.

May import: ``records.py`` (and torch). Imports nothing of ``torch.distributed``
that was not already loaded.
"""

from __future__ import annotations

import sys
from typing import Any

from torch import Tensor, nn
from torch.utils._pytree import tree_leaves

from inspectnn.records import Finding

__all__ = ["ddp_finding", "unwrap_ddp"]


def unwrap_ddp(model: nn.Module) -> tuple[nn.Module, int | None]:
    """The module a ``DistributedDataParallel`` wraps and its world size; else ``(model, None)``."""
    parallel = sys.modules.get("torch.nn.parallel.distributed")
    kind = getattr(parallel, "DistributedDataParallel", None)
    if kind is None or not isinstance(model, kind):
        return model, None
    dist = sys.modules["torch.distributed"]
    group = getattr(model, "process_group", None)
    world = int(dist.get_world_size(group)) if dist.is_initialized() else 1
    inner = model.module
    assert isinstance(inner, nn.Module)
    return inner, world


def ddp_finding(world: int, args: Any, kwargs: Any) -> Finding:
    """The ``ddp-batch`` info finding: this rank's batch (the first input's dimension 0),
    the world size and the job's batch, their product."""
    first = next(
        (t for t in tree_leaves((args, kwargs)) if isinstance(t, Tensor) and t.dim() > 0), None
    )
    ranks = f"{world} rank{'s' if world != 1 else ''}"
    if first is None:
        batch = "this rank's batch size is unknown (no input tensor has a batch dimension)"
        fix = "Pass a batched input to see this rank's batch and the job's."
    else:
        n = int(first.shape[0])
        batch = (
            f"this rank's batch is {n}, the job's is {n * world} ({n} per rank × {ranks})"
        )
        fix = (
            "Nothing to do. Activations, FLOPs and memory here are one rank's; to change the "
            "job's batch, change the per-rank batch or the number of ranks."
        )
    return Finding(
        "ddp-batch",
        "info",
        "",
        f"DistributedDataParallel over {ranks}: {batch}. inspect ran the wrapped model "
        "directly, without DDP's forward or gradient synchronisation.",
        fix,
    )
