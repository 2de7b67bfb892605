"""The public JSON schema ``inspectnn/1``.

A report is ``{"schema", "model", "device", "mode", "totals", "layers", "ops",
"findings", "error"}``, plus ``"training"`` after a training step
(``inspect(..., backward=True)``): ``TrainingReport.to_dict()``, a section versioned by
its own ``"schema": "inspectnn.training/1"``; without one the key is absent, so a plain
run's JSON is as it was. Each record's ``to_dict`` (in :mod:`inspectnn.records` and
:mod:`inspectnn.training.records`) writes its own object. Every key, which ones appear
only when they apply, and what each means: the README's section "JSON schema
``inspectnn/1``", which ``tests/test_schema.py`` checks against golden files that hold
every key (``tests/golden/schema_*.json``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from inspectnn.records import SCHEMA

if TYPE_CHECKING:
    from inspectnn.report import Report

__all__ = ["report_to_dict", "report_to_json"]


def report_to_dict(report: Report) -> dict[str, Any]:
    """The report as plain JSON-ready Python data."""
    out = {
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
    if report.training is not None:
        out["training"] = report.training.to_dict()
    if report.rank is not None:
        out["sharding"] = report.rank.to_dict()
    return out


def report_to_json(report: Report, indent: int | None = 2) -> str:
    """The report as JSON text."""
    return json.dumps(report_to_dict(report), indent=indent)
