"""How inspect ran the forward, where that differs from calling the model: ``eval-mode``,
``grad-enabled``.

* ``inspect`` runs in eval mode by default; a model in training mode whose
  BatchNorm or dropout layers behave differently is told so.
* A forward that takes gradients itself fails under ``torch.no_grad()``; inspect
  runs it again with autograd on and says so.
"""

from __future__ import annotations

from torch import nn

from inspectnn.records import Finding

__all__ = ["mode_findings", "mode_sensitive"]

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
