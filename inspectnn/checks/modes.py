"""How inspect ran the forward, where that differs from calling the model: ``eval-mode``,
``grad-enabled``, ``ddp-batch``.

* ``inspect`` runs in eval mode by default; a model in training mode whose
  BatchNorm or dropout layers behave differently is told so.
* A forward that takes gradients itself fails under ``torch.no_grad()``; inspect
  runs it again with autograd on and says so.
* A ``DistributedDataParallel`` model is inspected through the model it wraps
  (``distributed/ddp.py``); the finding says this rank's batch and the job's.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn
from torch.utils._pytree import tree_leaves

from inspectnn.records import Finding

__all__ = ["ddp_finding", "mode_findings", "mode_sensitive"]

_MODE_SENSITIVE = (nn.modules.batchnorm._NormBase, nn.modules.dropout._DropoutNd)


def mode_sensitive(named: list[tuple[str, nn.Module]]) -> bool:
    """Whether some module behaves differently in train and eval mode (BatchNorm, dropout)."""
    return any(isinstance(m, _MODE_SENSITIVE) for _, m in named)


def mode_findings(*, with_grad: bool, eval_of_training: bool) -> list[Finding]:
    """Info findings on how the forward ran, where it is not how the model would run.

    Args:
        with_grad: The forward was run with autograd on (it takes gradients itself).
        eval_of_training: A model in training mode, with mode-sensitive layers, was
            run in eval mode.

    Returns:
        A ``"grad-enabled"`` and an ``"eval-mode"`` finding, each when it applies.
    """
    out: list[Finding] = []
    if with_grad:
        out.append(
            Finding(
                "grad-enabled",
                "info",
                "",
                "The forward takes gradients itself (torch.autograd.grad or backward()), which "
                "fails under torch.no_grad(); inspect ran it with autograd on. The model's "
                ".grad values are put back as they were.",
                "Nothing to do; expect the memory of a forward that keeps its graph.",
            )
        )
    if eval_of_training:
        out.append(
            Finding(
                "eval-mode",
                "info",
                "",
                "The model is in training mode; inspect ran it in eval mode (the default), so "
                "BatchNorm used its running statistics and dropout was off.",
                "Pass mode='train' (or mode='same') to check training-time behaviour.",
            )
        )
    return out


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
