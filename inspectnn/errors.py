"""The exceptions inspectnn raises.

Every exception also subclasses the built-in a caller would already catch::

    InspectnnError (Exception)
    ├── InvalidInputError (ValueError)        bad arguments: says what to pass instead
    │   ├── SpecError                         a shape spec or layer selector that does not parse
    │   └── LayerNotFoundError (KeyError)     ``report.layer(name)`` of a call not traced
    ├── DependencyError (RuntimeError)        a package or program drawing needs is missing
    └── ForwardError (RuntimeError)           the model's forward raised
        │   .layer   dotted path of the innermost module that was running ("" = root)
        │   .report  the partial Report traced up to the failure
        │   __cause__ the original exception (None when inspectnn stopped the call
        │             before PyTorch could fail: device and dtype mismatches)
        ├── ShapeMismatchError                a layer got a shape it cannot take
        ├── DtypeMismatchError                input dtype differs from the layer's
        └── DeviceMismatchError               input on another device than the layer

The three diagnosed errors also carry ``.expected``, ``.got``, ``.producer``
(the layer or op that made the input, ``None`` for a model input) and ``.fix``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inspectnn.report import Report

__all__ = [
    "DependencyError",
    "DeviceMismatchError",
    "DtypeMismatchError",
    "ForwardError",
    "InspectnnError",
    "InvalidInputError",
    "LayerNotFoundError",
    "ShapeMismatchError",
    "SpecError",
]


class InspectnnError(Exception):
    """Base class of every error inspectnn raises on purpose."""


class InvalidInputError(InspectnnError, ValueError):
    """An argument to inspectnn was wrong; the message says what to pass instead."""


class SpecError(InvalidInputError):
    """A shape spec (``"B 3 H W"``) or layer selector (``"fc1:in"``) that does not parse.

    The message says what the language allows.
    """


class LayerNotFoundError(InvalidInputError, KeyError):
    """No call of that name was traced; the message names the calls that were.

    A ``KeyError`` too, as a mapping lookup would raise.
    """

    __str__ = BaseException.__str__  # the message as written, not KeyError's repr of it


class DependencyError(InspectnnError, RuntimeError):
    """A package or program inspectnn needs (Graphviz's ``dot``) is missing; says how to get it."""


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


class _DiagnosedError(ForwardError):
    """A ForwardError whose cause inspectnn understood, with the facts as data.

    Attributes:
        expected: What the layer needed, e.g. ``"[*, 1024]"``.
        got: What it was given, e.g. ``"[1, 4096]"``.
        producer: Dotted path (layers) or op name that produced the input,
            ``None`` when it was a model input.
        fix: The concrete change to make.
    """

    def __init__(
        self,
        message: str,
        *,
        layer: str,
        expected: str,
        got: str,
        producer: str | None = None,
        fix: str = "",
        report: Report | None = None,
    ) -> None:
        super().__init__(message, layer=layer, report=report)
        self.expected = expected
        self.got = got
        self.producer = producer
        self.fix = fix


class ShapeMismatchError(_DiagnosedError):
    """A layer was given a tensor whose shape it cannot take."""


class DtypeMismatchError(_DiagnosedError):
    """A layer was given a tensor of a dtype that does not match its parameters."""


class DeviceMismatchError(_DiagnosedError):
    """A layer was given a tensor on another device than its parameters."""
