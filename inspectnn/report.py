"""The Report: everything one ``inspect()`` call found, built lazily.

``Report`` holds the records of ``records.py`` (totals, layer calls, ops,
findings, the error) and builds them on first read when made with
``Report.deferred``. Its ``table``, ``graph``, ``render``, ``to_dict``,
``to_json`` and ``assert_*`` methods are facades over ``renderers/`` and
``testing.py``, each with the signature of the function it wraps, less the
report (``tests/test_entry_errors.py`` compares them).

Imports ``distributed/gather.py`` (``gather``, the collective), ``errors.py``,
``records.py``, ``renderers/html.py``, ``renderers/json.py``, ``renderers/table.py``
and ``testing.py`` at module level; those import the
Report type only under ``TYPE_CHECKING``. ``renderers/graph.py`` is imported
inside ``graph`` and ``render``: it still imports ``Report`` from ``records.py``
at module level.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inspectnn.distributed.gather import gather
from inspectnn.distributed.rank import RankInfo, View
from inspectnn.errors import LayerNotFoundError
from inspectnn.records import (
    ErrorInfo,
    Finding,
    LayerCall,
    OpCall,
    Parts,
    Severity,
    TensorMeta,
    Totals,
)
from inspectnn.renderers.graph import build_graph, render_graph
from inspectnn.renderers.html import render_html
from inspectnn.renderers.json import report_to_dict, report_to_json
from inspectnn.renderers.table import render_table
from inspectnn.testing import (
    assert_device,
    assert_dtype,
    assert_no_findings,
    assert_params,
    assert_shapes,
)
from inspectnn.training.records import MemoryReport, TrainingReport

if TYPE_CHECKING:
    import graphviz

    from inspectnn.distributed.job import JobReport
    from inspectnn.shapes import SpecLike

__all__ = ["Report"]


class Report:
    """Everything one ``inspect()`` call found. Print it for the table.

    A Report is immutable. ``inspect`` keeps the raw trace (small tuples of
    shapes, dtypes and device names, never tensors or modules) and turns it into
    records on first access of ``totals``, ``layers``, ``ops`` or ``findings``,
    so a forward whose report is only glanced at pays for no more than it reads.

    Attributes:
        model: Class name of the inspected model.
        device: Where the forward ran (``"cpu"``, ``"meta"``, ``"cuda:0"``).
        mode: ``"eval"`` or ``"train"``: the root module's flag during the forward.
        totals: Model-wide counts.
        layers: One record per module call, in call order.
        ops: Functional ops run between module calls, in order.
        findings: Problems and notes, most severe first.
        error: Why the forward failed, or ``None``.
        rank: The rank of a ``torch.distributed`` job, or ``None``.

    Example:
        >>> import torch, inspectnn
        >>> r = inspectnn.inspect(torch.nn.Linear(4, 2), torch.randn(3, 4))
        >>> r.layers[0].outputs[0].shape
        (3, 2)
    """

    __slots__ = (
        "_device", "_error", "_mode", "_model", "_parts", "_pending", "_rank", "_training",
    )  # fmt: skip

    _model: str
    _device: str
    _mode: str
    _error: ErrorInfo | None
    _parts: Parts | None
    _pending: Callable[[], Parts] | None
    _training: TrainingReport | None
    _rank: RankInfo | None

    def __init__(
        self,
        model: str,
        device: str,
        mode: str,
        totals: Totals,
        layers: Sequence[LayerCall],
        ops: Sequence[OpCall] = (),
        findings: Sequence[Finding] = (),
        error: ErrorInfo | None = None,
        training: TrainingReport | None = None,
        rank: RankInfo | None = None,
    ) -> None:
        parts = (totals, tuple(layers), tuple(ops), tuple(findings))
        self._init(model, device, mode, error, parts, None, training, rank)

    def _init(
        self,
        model: str,
        device: str,
        mode: str,
        error: ErrorInfo | None,
        parts: Parts | None,
        pending: Callable[[], Parts] | None,
        training: TrainingReport | None = None,
        rank: RankInfo | None = None,
    ) -> None:
        # The public names are read-only properties; only these private slots are set.
        self._model = model
        self._device = device
        self._mode = mode
        self._error = error
        self._parts = parts
        self._pending = pending
        self._training = training
        self._rank = rank

    @classmethod
    def deferred(
        cls,
        model: str,
        device: str,
        mode: str,
        build: Callable[[], Parts],
        error: ErrorInfo | None = None,
        training: TrainingReport | None = None,
        rank: RankInfo | None = None,
    ) -> Report:
        """A report whose totals, layers, ops and findings ``build()`` makes on first use.

        ``build`` must hold metadata only (no tensors, no modules): the report
        may outlive the model.
        """
        self = cls.__new__(cls)
        self._init(model, device, mode, error, None, build, training, rank)
        return self

    def with_error(self, error: ErrorInfo | None) -> Report:
        """The same report with ``error`` replaced."""
        out = type(self).__new__(type(self))
        out._init(
            self._model, self._device, self._mode, error, self._parts, self._pending,
            self._training, self._rank,
        )  # fmt: skip
        return out

    def _get(self) -> Parts:
        parts = self._parts
        if parts is None:
            assert self._pending is not None
            parts = self._parts = self._pending()
            self._pending = None
        return parts

    @property
    def model(self) -> str:
        """Class name of the inspected model."""
        return self._model

    @property
    def device(self) -> str:
        """Where the forward ran."""
        return self._device

    @property
    def mode(self) -> str:
        """``"eval"`` or ``"train"``."""
        return self._mode

    @property
    def error(self) -> ErrorInfo | None:
        """Why the forward failed, or ``None``."""
        return self._error

    @property
    def rank(self) -> RankInfo | None:
        """The rank of a ``torch.distributed`` job this report was made on (its mesh,
        the default shape view); ``None`` outside a process group."""
        return self._rank

    @property
    def totals(self) -> Totals:
        """Model-wide counts."""
        return self._get()[0]

    @property
    def layers(self) -> tuple[LayerCall, ...]:
        """One record per module call, in call order."""
        return self._get()[1]

    @property
    def ops(self) -> tuple[OpCall, ...]:
        """Functional ops run between module calls, in order."""
        return self._get()[2]

    @property
    def findings(self) -> tuple[Finding, ...]:
        """Problems and notes, most severe first."""
        return self._get()[3]

    @property
    def training(self) -> TrainingReport | None:
        """The training step's memory and gradients (``inspect(..., backward=True)``),
        or ``None`` for a forward alone."""
        return self._training

    @property
    def memory(self) -> MemoryReport | None:
        """The training step's memory (``print(report.memory)`` for the breakdown), or
        ``None`` without ``backward=True``."""
        return self._training.memory if self._training is not None else None

    def _key(self) -> tuple[Any, ...]:
        return (
            self._model, self._device, self._mode, self._error, *self._get(), self._training,
            self._rank,
        )  # fmt: skip

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Report):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __reduce__(self) -> tuple[Any, ...]:
        totals, layers, ops, findings = self._get()
        args = (self._model, self._device, self._mode, totals, layers, ops, findings, self._error,
                self._training, self._rank)  # fmt: skip
        return (type(self), args)

    def __repr__(self) -> str:
        error = f"{self._error.type} in {self._error.layer!r}" if self._error else None
        return (
            f"Report(model={self._model!r}, device={self._device!r}, mode={self._mode!r}, "
            f"layers={len(self.layers)}, ops={len(self.ops)}, findings={len(self.findings)}, "
            f"error={error})"
        )

    def layer(self, name: str, call: int = 0) -> LayerCall:
        """The record of module ``name``'s ``call``-th call.

        Raises:
            LayerNotFoundError: No such module call was traced (a ``KeyError``);
                the message names the calls that were.
        """
        for rec in self.layers:
            if rec.name == name and rec.call == call:
                return rec
        calls = [r.name for r in self.layers if r.name == name]
        if calls:
            raise LayerNotFoundError(
                f"module {name!r} was called {len(calls)} time(s) in this report: "
                f"pass call= from 0 to {len(calls) - 1} (got {call!r})."
            )
        known = sorted({r.name for r in self.layers if r.name})
        near = [k for k in known if name and (name in k or k in name)][:5] or known[:30]
        names = ", ".join(map(repr, near)) + (" ..." if len(near) < len(known) else "")
        raise LayerNotFoundError(
            f"no module {name!r} was called in this report: pass '' for the root"
            + (f" or one of {names}." if names else ".")
        )

    @property
    def outputs(self) -> tuple[TensorMeta, ...]:
        """The model's outputs (the root call's), flattened."""
        return self.layers[0].outputs if self.layers else ()

    def table(
        self,
        depth: int | None = None,
        columns: Sequence[str] | None = None,
        max_width: int | None = None,
        fold: bool = True,
        parameters: bool = False,
        ascii: bool = False,
        view: View | None = None,
    ) -> str:
        """The plain-text table; see :func:`inspectnn.renderers.table.render_table`.

        ``parameters=True`` adds a row per parameter; ``ascii=True`` draws no box
        characters; ``view="global"`` shows a ``DTensor``'s whole shape rather than
        this rank's shard.
        """
        return render_table(
            self,
            depth=depth,
            columns=columns,
            max_width=max_width,
            fold=fold,
            parameters=parameters,
            ascii=ascii,
            view=view,
        )

    def graph(
        self, depth: int | None = None, direction: str = "TB", fold: bool = True
    ) -> graphviz.Digraph:
        """The dataflow diagram as a ``graphviz.Digraph``; see ``render.graph.build_graph``."""
        return build_graph(self, depth=depth, direction=direction, fold=fold)

    def render(
        self,
        path: str | PathLike[str],
        depth: int | None = None,
        direction: str = "TB",
        fold: bool = True,
    ) -> Path:
        """Write the diagram to ``path`` (.png, .svg, .pdf or .dot by the suffix)."""
        return render_graph(self, path, depth=depth, direction=direction, fold=fold)

    def to_dict(self) -> dict[str, Any]:
        """The public JSON schema ``inspectnn/1`` as a dict."""
        return report_to_dict(self)

    def to_json(self, indent: int | None = 2) -> str:
        """The public JSON schema ``inspectnn/1`` as text."""
        return report_to_json(self, indent=indent)

    def assert_shapes(self, specs: Mapping[str, SpecLike]) -> None:
        """See :func:`inspectnn.testing.assert_shapes`."""
        __tracebackhide__ = True  # a failure points at the caller\'s line
        assert_shapes(self, specs)

    def assert_params(self, total: int | None = None, trainable: int | None = None) -> None:
        """See :func:`inspectnn.testing.assert_params`."""
        __tracebackhide__ = True  # a failure points at the caller\'s line
        assert_params(self, total=total, trainable=trainable)

    def assert_no_findings(
        self, min_severity: Severity = "warning", kinds: Sequence[str] | None = None
    ) -> None:
        """See :func:`inspectnn.testing.assert_no_findings`."""
        __tracebackhide__ = True  # a failure points at the caller\'s line
        assert_no_findings(self, min_severity=min_severity, kinds=kinds)

    def assert_dtype(self, layer: str, dtype: Any) -> None:
        """See :func:`inspectnn.testing.assert_dtype`."""
        __tracebackhide__ = True  # a failure points at the caller\'s line
        assert_dtype(self, layer, dtype)

    def assert_device(self, layer: str, device: Any) -> None:
        """See :func:`inspectnn.testing.assert_device`."""
        __tracebackhide__ = True  # a failure points at the caller\'s line
        assert_device(self, layer, device)

    def gather(
        self, dst: int = 0, device_memory: int | str | None = None
    ) -> JobReport | None:
        """The job's per-rank view; see :func:`inspectnn.distributed.gather.gather`.

        A collective: every rank of the ``torch.distributed`` job calls it. Rank ``dst``
        gets the ``JobReport``, every other rank ``None``.
        """
        return gather(self, dst=dst, device_memory=device_memory)

    def _repr_html_(self) -> str:
        return render_html(self)

    def __str__(self) -> str:
        return self.table()


# Where the class has always been named: pickles, reprs of the type and the pytest
# plugin's ``pytest_assertrepr_compare`` (which tells inspectnn's objects by their
# module) see ``inspectnn.records.Report``, which ``records.py`` still answers.
Report.__module__ = "inspectnn.records"

__test__ = {"Report": Report}  # its doctests, which the module rename would hide
