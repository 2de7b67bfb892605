"""``DistributedDataParallel``: the wrapped model inspected as the user's, and its batch.

``inspect(ddp_model, x)`` inspects ``ddp_model.module``, the user's own model (layer
paths without ``module.``, its parameter counts, its class name as the model's name),
by calling it directly: DDP's own forward, which prepares the gradient all-reduce of
the next backward (its reducer, ``require_backward_grad_sync``, the buffers'
broadcast), never runs, so the next real training step finds DDP as it was.
``checks/modes.py``'s ``ddp-batch`` info finding says the batch this rank ran and the
job's (this rank's times the world size): a table of one rank is one rank's share.

Imports torch only, and nothing of ``torch.distributed`` that was not already loaded.
"""

from __future__ import annotations

import sys

from torch import nn

__all__ = ["unwrap_ddp"]


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
