"""The public JSON schema ``inspectnn/1``.

::

    {"schema": "inspectnn/1", "model": str, "device": str, "mode": str,
     "totals": {"params", "trainable_params", "non_trainable_params", "buffers",
                "param_bytes", "buffer_bytes", "activation_bytes", "flops",
                ["uncounted_ops"]},
     "layers": [{"name", "type", "depth", "call", "inputs", "outputs",
                 "params", "trainable_params", "flops", ["shared"], ["failed"]}],
     "ops": [{"name", "module", "inputs", "outputs", ["args"], ["failed"]}],
     "findings": [{"kind", "severity", "layer", "message", "fix"}],
     "error": null | {"type", "message", "layer"}}

Tensors are ``{"shape": [...], "dtype": "float32", "device": "cpu"}`` (plus
``"path"`` inside a nested value, and ``"value"`` for a non-tensor, whose shape,
dtype and device are null).
"""

from __future__ import annotations

import json
from typing import Any

from inspectnn.records import SCHEMA, Report

__all__ = ["report_to_dict", "report_to_json"]


def report_to_dict(report: Report) -> dict[str, Any]:
    """The report as plain JSON-ready Python data."""
    return {
        "schema": SCHEMA,
        "model": report.model,
        "device": report.device,
        "mode": report.mode,
        "totals": report.totals.to_dict(),
        "layers": [rec.to_dict() for rec in report.layers],
        "ops": [op.to_dict() for op in report.ops],
        "findings": [f.to_dict() for f in report.findings],
        "error": report.error.to_dict() if report.error is not None else None,
    }


def report_to_json(report: Report, indent: int | None = 2) -> str:
    """The report as JSON text."""
    return json.dumps(report_to_dict(report), indent=indent)
