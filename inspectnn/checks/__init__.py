"""Checks that turn a trace into findings, one module per concern.

Each check is a pure function of the records (and of the model's tensors) that
returns Findings; ``contracts`` checks layer calls as they happen, and
``diagnose`` turns a failed forward into an error that names the layer.
"""

from __future__ import annotations

from inspectnn.checks.coverage import fast_path_findings, uncounted_findings, uncounted_ops
from inspectnn.checks.dataflow import batch_findings, dead_findings, uncalled_findings
from inspectnn.checks.dtypes import mixed_tensor_findings, promotion_findings, violation_findings

__all__ = [
    "batch_findings",
    "dead_findings",
    "fast_path_findings",
    "mixed_tensor_findings",
    "promotion_findings",
    "uncalled_findings",
    "uncounted_findings",
    "uncounted_ops",
    "violation_findings",
]
