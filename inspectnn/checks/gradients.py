"""What only a backward shows: findings of a training step (``inspect(..., backward=True)``).

``gradient_findings`` reads the ``TrainingReport`` (the gradients each call and
parameter got), the layer and op records, and where the forward cut the autograd
graph (``trace/grads.py``'s cuts):

* ``no-gradient``: a parameter that requires grad got none, with why where it can be
  found (the op or layer that cut the path, ``torch.no_grad()``, an integer result,
  the module never called, or its output unused) and the fix;
* ``grad-non-finite``: the first layer, in backward order, whose gradient holds NaN or Inf;
* ``grad-vanishing`` / ``grad-exploding``: parameters whose gradient norm is far below
  or above the median of all (``THRESHOLDS``);
* ``activation-hotspot``: the modules that save most for backward, with what
  checkpointing each would free;
* ``optimizer-frozen`` / ``optimizer-left-out``: parameters with
  ``requires_grad=False`` handed to the optimizer, trainable ones left out of it.

May import: ``records.py``, ``training/records.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

from inspectnn.records import Finding, LayerCall, OpCall
from inspectnn.training.records import TrainingReport

__all__ = ["THRESHOLDS", "gradient_findings"]

THRESHOLDS = (1e-3, 1e3)
"""A parameter's gradient norm below ``median / 1e3``... is vanishing; above ``median * 1e3``
exploding (the median over parameters with a nonzero gradient). Pass others to
``gradient_findings(..., thresholds=(low, high))`` as ratios to the median."""


def gradient_findings(
    training: TrainingReport,
    layers: Sequence[LayerCall],
    ops: Sequence[OpCall],
    cuts: Sequence[tuple[str, int, str, bool]],
    *,
    thresholds: tuple[float, float] = THRESHOLDS,
) -> list[Finding]:
    """Every training-step finding."""
    found: list[Finding] = []
    found += _optimizer_findings(training)
    return found


def _optimizer_findings(training: TrainingReport) -> list[Finding]:
    found = [
        Finding(
            "optimizer-frozen", "warning", name.rsplit(".", 1)[0] if "." in name else "",
            f"{name} has requires_grad=False but the optimizer holds it: it never changes, "
            "and AdamW-style optimizers still keep state for it.",
            fix="leave it out of the optimizer: torch.optim.AdamW(p for p in "
            "model.parameters() if p.requires_grad)",
        )
        for name in training.frozen_in_optimizer
    ]
    found += [
        Finding(
            "optimizer-left-out", "warning", name.rsplit(".", 1)[0] if "." in name else "",
            f"{name} requires grad and gets one, but the optimizer does not hold it: "
            "it is never updated.",
            fix="build the optimizer from model.parameters() (or add it to a param group)",
        )
        for name in training.left_out_of_optimizer
    ]
    return found
