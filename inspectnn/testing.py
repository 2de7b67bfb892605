"""Assertions about models and reports, usable with or without pytest.

Each raises its own ``AssertionError`` with the whole story (what was asserted,
what was found, the layer's row, the shape bindings), so the message is the
same under pytest's assertion rewriting, plain ``python -O``, or a notebook.
Under pytest their frames are hidden (``__tracebackhide__``): a failure shows the
test's own line, then the message.

>>> import torch, inspectnn
>>> report = inspectnn.inspect(torch.nn.Linear(784, 10), torch.randn(64, 784))
>>> assert_shapes(report, {"": "B 10", ":in": "B 784"})
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from inspectnn.errors import InvalidInputError, SpecError
from inspectnn.records import SEVERITIES, LayerCall, Severity, TensorMeta
from inspectnn.renderers.columns import COLUMNS, Context, format_count, format_shapes
from inspectnn.shapes import SpecLike, format_bindings, match_shape, parse_spec

if TYPE_CHECKING:
    from inspectnn.report import Report

__all__ = [
    "assert_device",
    "assert_dtype",
    "assert_no_findings",
    "assert_output_shape",
    "assert_params",
    "assert_shapes",
    "select",
]

_SELECTOR = re.compile(r"^(?P<name>[^#:]*)(?:#(?P<call>\d+))?(?::(?P<side>in|out)(?P<pos>\d*))?$")


def _row(rec: LayerCall) -> str:
    """One call in an assertion message; input, dtype and device cells as the table's."""
    ctx = Context()
    ins = COLUMNS["input"].cell(rec, ctx)
    outs = format_shapes(rec.outputs) if rec.outputs else "(failed)"
    where = rec.label if rec.name else f"(root) {rec.type}"
    dtypes = COLUMNS["dtype"].cell(rec, ctx) or "-"
    devices = COLUMNS["device"].cell(rec, ctx) or "-"
    return (
        f"{where} ({rec.type})  input {ins} -> output {outs}  {dtypes} on {devices}  "
        f"params {format_count(rec.params)}"
    )


def select(report: Report, selector: str) -> tuple[list[LayerCall], str, int]:
    """The calls a selector names, and which side (``"in"``/``"out"``) and position.

    Selectors: a dotted path (``"fc1"``; ``""`` is the root), a glob
    (``"layers.*.attn"``), a call index (``"block#2"`` for the third call), and
    an optional ``":in"``, ``":in1"``, ``":out"``, ``":out1"`` (default: the first
    tensor output).

    Raises:
        SpecError: The selector does not parse; the message gives its forms.
        AssertionError: The selector matches no call; the message lists the names.
    """
    __tracebackhide__ = True
    found = _SELECTOR.match(selector) if isinstance(selector, str) else None
    if found is None:
        raise SpecError(
            f"bad selector {selector!r}: use a dotted path, a glob, 'name#2' for a call, "
            "and ':in' / ':out' for a side"
        )
    name, call = found["name"], found["call"]
    side, pos = found["side"] or "out", int(found["pos"] or 0)
    is_glob = any(c in name for c in "*?[")
    calls = [
        rec
        for rec in report.layers
        if (fnmatch.fnmatchcase(rec.name, name) if is_glob else rec.name == name)
        and (call is None or rec.call == int(call))
    ]
    if not calls:
        known = sorted({rec.label for rec in report.layers if rec.name})
        shown = ", ".join(known[:30]) + (" ..." if len(known) > 30 else "")
        raise AssertionError(
            f"selector {selector!r} matches no call in the {report.model} report.\n"
            f"  calls: (root), {shown}"
        )
    return calls, side, pos


def _tensor(rec: LayerCall, side: str, pos: int) -> TensorMeta | None:
    metas = [m for m in (rec.inputs if side == "in" else rec.outputs) if m.is_tensor]
    return metas[pos] if pos < len(metas) else None


def assert_shapes(report: Report, specs: Mapping[str, SpecLike]) -> None:
    """Every selected call's tensor matches its spec; names bind across the whole dict.

    Args:
        report: From ``inspect``.
        specs: ``{selector: spec}``, e.g. ``{"fc1": "B 128", "": "B 10"}``.

    Raises:
        AssertionError: With the spec, the actual shape, the dimension at fault,
            the bindings and the layer's row, for every mismatch.
        SpecError: A spec or selector that does not parse (before anything is checked).
    """
    __tracebackhide__ = True
    bindings: dict[str, int] = {}
    problems: list[str] = []
    parsed_specs = {selector: parse_spec(spec) for selector, spec in specs.items()}
    for selector, parsed in parsed_specs.items():
        calls, side, pos = select(report, selector)
        for rec in calls:
            meta = _tensor(rec, side, pos)
            what = f"{rec.label or '(root)'} {'input' if side == 'in' else 'output'} {pos}"
            if meta is None or meta.shape is None:
                problems.append(f"{what}: no such tensor\n    layer:    {_row(rec)}")
                continue
            problem = match_shape(parsed, meta.shape, bindings)
            if problem is not None:
                problems.append(
                    f"{what}: {list(meta.shape)} does not match {str(parsed)!r}\n"
                    f"    at fault: {problem}\n"
                    f"    layer:    {_row(rec)}"
                )
    if problems:
        asserted = json.dumps({k: str(v) for k, v in parsed_specs.items()})
        raise AssertionError(
            f"assert_shapes: {len(problems)} mismatch{'es' if len(problems) > 1 else ''} "
            f"in the {report.model} report\n  "
            + "\n  ".join(problems)
            + f"\n  bindings: {format_bindings(bindings)}\n  asserted: {asserted}"
        )


def assert_output_shape(model: Any, *args: Any, spec: SpecLike, **kwargs: Any) -> Report:
    """Inspect ``model(*args, **kwargs)`` and check its first output against ``spec``.

    Returns:
        The report, for more assertions.
    """
    __tracebackhide__ = True
    from inspectnn.api import inspect

    report = inspect(model, *args, **kwargs)
    assert_shapes(report, {"": spec})
    return report


def assert_params(
    model_or_report: Any, total: int | None = None, trainable: int | None = None
) -> None:
    """The unique parameter count (tied weights once), and the trainable count."""
    __tracebackhide__ = True
    from inspectnn.report import Report  # report.py imports this module for its facades

    if isinstance(model_or_report, Report):
        have_total = model_or_report.totals.params
        have_trainable = model_or_report.totals.trainable_params
        name = model_or_report.model
    else:
        from inspectnn.inputs import check_model
        from inspectnn.params import count_parameters

        counts = count_parameters(check_model(model_or_report))
        have_total, have_trainable = counts.params, counts.trainable
        name = type(model_or_report).__name__
    wrong = []
    if total is not None and have_total != total:
        wrong.append(f"total: expected {total:,}, found {have_total:,}")
    if trainable is not None and have_trainable != trainable:
        wrong.append(f"trainable: expected {trainable:,}, found {have_trainable:,}")
    if wrong:
        raise AssertionError(
            f"assert_params: {name} parameter counts differ\n  " + "\n  ".join(wrong)
            + f"\n  found: {have_total:,} total, {have_trainable:,} trainable, "
            f"{have_total - have_trainable:,} frozen (tied weights counted once)"
        )  # fmt: skip


def assert_no_findings(
    report: Report, min_severity: Severity = "warning", kinds: Sequence[str] | None = None
) -> None:
    """No finding of at least ``min_severity`` (optionally only of ``kinds``).

    Raises:
        AssertionError: Such findings, or an error, are in the report; all listed.
        InvalidInputError: ``min_severity`` is not a severity, or ``kinds`` is a
            single string rather than a list of kinds.
    """
    __tracebackhide__ = True
    if min_severity not in SEVERITIES:
        raise InvalidInputError(
            f"min_severity must be one of {', '.join(map(repr, SEVERITIES))} "
            f"(got {min_severity!r})."
        )
    if isinstance(kinds, str):
        raise InvalidInputError(
            f"kinds is a list of finding kinds, e.g. kinds=[{kinds!r}] (got the string {kinds!r})."
        )
    floor = SEVERITIES.index(min_severity)
    found = [
        f
        for f in report.findings
        if SEVERITIES.index(f.severity) >= floor and (kinds is None or f.kind in kinds)
    ]
    if report.error is not None:
        found_text = [f"[error] {report.error.layer or '(root)'}: {report.error.message}"]
    else:
        found_text = []
    found_text += [
        f"[{f.severity}] {f.kind} at {f.layer or '(root)'}: {f.message}"
        + (f"\n      fix: {f.fix}" if f.fix else "")
        for f in found
    ]
    if found_text:
        raise AssertionError(
            f"assert_no_findings: {len(found_text)} finding(s) of severity >= {min_severity} "
            f"in the {report.model} report\n  " + "\n  ".join(found_text)
        )


def _assert_attr(report: Report, selector: str, attr: str, want: str) -> None:
    __tracebackhide__ = True
    calls, side, pos = select(report, selector)
    problems = []
    for rec in calls:
        meta = _tensor(rec, side, pos)
        have = getattr(meta, attr) if meta is not None else None
        if have != want:
            problems.append(
                f"{rec.label or '(root)'}: expected {attr} {want}, found {have}\n"
                f"    layer:    {_row(rec)}"
            )
    if problems:
        raise AssertionError(f"assert_{attr}: {selector!r}\n  " + "\n  ".join(problems))


def assert_dtype(report: Report, layer: str, dtype: Any) -> None:
    """The selected calls' tensor has ``dtype`` (``"float32"`` or ``torch.float32``)."""
    __tracebackhide__ = True
    _assert_attr(report, layer, "dtype", str(dtype).removeprefix("torch."))


def assert_device(report: Report, layer: str, device: Any) -> None:
    """The selected calls' tensor is on ``device`` (``"cpu"``, ``"meta"``, ``"cuda:0"``)."""
    __tracebackhide__ = True
    _assert_attr(report, layer, "device", str(device))
