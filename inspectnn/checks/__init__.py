"""Checks that turn a trace into findings, one module per concern.

Each check is a pure function of the records (and, before the forward, of the
model and its inputs) that returns Findings. ``api.inspect`` runs them all.
"""

from __future__ import annotations

from inspectnn.checks.coverage import fast_path_findings

__all__ = ["fast_path_findings"]
