"""The exceptions inspectnn raises.

Every exception also subclasses the built-in a caller would already catch::

    InspectnnError (Exception)
    ├── InvalidInputError (ValueError)        bad arguments: says what to pass instead
    └── ForwardError (RuntimeError)           the model's forward raised
            .layer   dotted path of the innermost module that was running ("" = root)
            .report  the partial Report traced up to the failure
            __cause__ the original exception

The diagnostics layer adds subclasses of ``ForwardError`` for shape, dtype and
device problems; catching ``ForwardError`` catches them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inspectnn.records import Report

__all__ = ["ForwardError", "InspectnnError", "InvalidInputError"]


class InspectnnError(Exception):
    """Base class of every error inspectnn raises on purpose."""


class InvalidInputError(InspectnnError, ValueError):
    """An argument to inspectnn was wrong; the message says what to pass instead."""


class ForwardError(InspectnnError, RuntimeError):
    """The model's forward raised.

    Attributes:
        layer: Dotted path of the innermost module that was running when the
            forward failed (``""`` for the root module).
        report: The partial :class:`~inspectnn.records.Report`, traced up to the failure.
    """

    def __init__(self, message: str, *, layer: str, report: Report | None = None) -> None:
        super().__init__(message)
        self.layer = layer
        self.report = report
