"""pytest plugin for inspectnn, installed as ``pytest_inspectnn`` (entry point ``inspectnn``).

Fixtures:
    inspect_model   ``inspect_model(model, *args, **kw)`` is ``inspectnn.inspect`` with the
                    device from ``--inspectnn-device`` or ``@pytest.mark.inspectnn(device=)``;
                    the table of every model it inspected is added to a failing test's report.
    model_snapshot  ``model_snapshot.assert_match(report)`` compares the architecture to a
                    file under ``__snapshots__/`` next to the test; ``--inspectnn-update``
                    writes it. One JSON line per layer call, the same on every device.

This module imports neither torch nor inspectnn until a fixture or hook needs them,
so ``pytest -p no:inspectnn`` and test runs without models cost nothing.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shlex
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from inspectnn.records import LayerCall, Report, TensorMeta

_DEVICE = pytest.StashKey[str | None]()
_UPDATE = pytest.StashKey[bool]()
_GRAPHS = pytest.StashKey[Path | None]()
_REPORTS = pytest.StashKey[list[tuple[str, "Report"]]]()
SNAPSHOT_FORMAT = "inspectnn-snapshot/2"
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _check_device(value: str, check_available: bool = False) -> str | None:
    """``inspectnn.inputs.parse_device``'s complaint about ``value``, or None (imports torch)."""
    from inspectnn.errors import InvalidInputError
    from inspectnn.inputs import parse_device

    try:
        parse_device(value, check_available=check_available)
    except InvalidInputError as err:
        return str(err)
    return None


def _device_type(value: str) -> str:
    """The ``type=`` of ``--inspectnn-device``: a misspelt device is a usage error."""
    problem = _check_device(value)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return value


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("inspectnn", "inspectnn: model inspection")
    group.addoption(
        "--inspectnn-device", metavar="DEVICE", type=_device_type, default=None,
        help="device for the inspect_model fixture: cpu, meta, cuda or cuda:N "
             "(cuda tests skip when there is no GPU); unset runs where the model is. "
             "Default: %(default)r",
    )  # fmt: skip
    group.addoption(
        "--inspectnn-update", action="store_true", default=False,
        help="write model_snapshot files instead of comparing with them. Default: %(default)r",
    )  # fmt: skip
    group.addoption(
        "--inspectnn-graphs", metavar="DIR", type=Path, default=None,
        help="write a PNG of every model inspected in a failing test to DIR. "
             "Default: %(default)r",
    )  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "inspectnn(device=None): options for the inspect_model fixture in this test, "
        "e.g. @pytest.mark.inspectnn(device='meta')",
    )
    config.stash[_DEVICE] = config.getoption("inspectnn_device")
    config.stash[_UPDATE] = bool(config.getoption("inspectnn_update"))
    config.stash[_GRAPHS] = config.getoption("inspectnn_graphs")


def _wanted_device(request: pytest.FixtureRequest) -> str | None:
    """The device this test asks for; fails a misspelt marker, skips a missing GPU."""
    marker = request.node.get_closest_marker("inspectnn")
    if marker is not None and "device" in marker.kwargs:
        wanted = marker.kwargs["device"]
        device = str(wanted) if wanted is not None else None
        source = f"@pytest.mark.inspectnn(device={wanted!r})"
    else:
        device = request.config.stash[_DEVICE]
        source = f"--inspectnn-device={device}"
    if device is None:
        return None
    problem = _check_device(device)
    if problem is not None:
        pytest.fail(f"{source}: {problem}", pytrace=False)
    problem = _check_device(device, check_available=True)
    if problem is not None:
        pytest.skip(f"{source}: {problem}")
    return device


@pytest.fixture
def inspect_model(request: pytest.FixtureRequest) -> Callable[..., Report]:
    """``inspectnn.inspect`` on the configured device; reports go into failure output."""
    import inspectnn

    device = _wanted_device(request)
    reports = request.node.stash.setdefault(_REPORTS, [])

    def run(model: Any, *args: Any, **kwargs: Any) -> Report:
        __tracebackhide__ = True
        if device is not None:
            kwargs.setdefault("device", device)
        try:
            report = inspectnn.inspect(model, *args, **kwargs)
        except inspectnn.ForwardError as err:
            if err.report is not None:
                reports.append((type(model).__name__, err.report))
            raise
        reports.append((type(model).__name__, report))
        return report

    return run


class ModelSnapshot:
    """Compares a report's architecture with a file under ``__snapshots__/``.

    Args:
        directory: Where the test file's snapshots live.
        test_name: The test's name (``request.node.name``), made a file name.
        update: Write the snapshot instead of comparing (``--inspectnn-update``).
        update_command: The shell command that reruns this test with
            ``--inspectnn-update``, shown when a snapshot is missing or differs.
    """

    def __init__(
        self, directory: Path, test_name: str, update: bool, update_command: str = ""
    ) -> None:
        self.directory = directory
        self.test_name = re.sub(r"[^\w.-]+", "_", test_name)
        self.update = update
        self.update_command = update_command or "pytest --inspectnn-update"
        self._count = 0

    def path(self, name: str | None = None) -> Path:
        """The snapshot file for this test (and ``name``, for several per test)."""
        suffix = f".{name}" if name else (f".{self._count}" if self._count else "")
        return self.directory / f"{self.test_name}{suffix}.txt"

    def assert_match(self, report: Report, name: str | None = None) -> None:
        """Fail with a diff when the architecture differs from the stored one.

        The snapshot (:func:`snapshot_text`) holds one JSON line per layer call: its
        path, type, input and output shapes, dtype, parameters and configuration. No
        device, FLOPs or findings, no tensor values: the same file on cpu, meta and cuda.
        """
        __tracebackhide__ = True
        from inspectnn.records import Report as ReportType

        if not isinstance(report, ReportType):
            raise TypeError(f"assert_match takes an inspectnn Report, got {type(report)!r}")
        path = self.path(name)
        self._count += 1
        text = snapshot_text(report)
        if self.update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            return
        if not path.exists():
            pytest.fail(
                f"no model snapshot at {path}.\nCreate it with: {self.update_command}",
                pytrace=False,
            )
        stored = path.read_text(encoding="utf-8")
        if not _is_current_format(stored):
            pytest.fail(
                f"{path} is a model snapshot in an older format (a table and the full "
                "JSON report, with the device). Snapshots are now one line per layer call "
                f"and the same on every device: regenerate it with: {self.update_command}",
                pytrace=False,
            )  # fmt: skip
        if stored != text:
            diff = difflib.unified_diff(
                stored.splitlines(), text.splitlines(), "snapshot", "now", lineterm="", n=2
            )
            lines = list(diff)
            shown = "\n".join(lines[:80]) + ("\n..." if len(lines) > 80 else "")
            pytest.fail(
                f"the model's architecture differs from {path}:\n{shown}\n"
                f"If the change is intended, run: {self.update_command}", pytrace=False,
            )  # fmt: skip


def _arch_lines(report: Report) -> list[str]:
    """The lines a failed ``report == other`` diffs: each call's output shapes and parameters.

    The counts and shapes are written by the column registry's formatters
    (``format_count``, ``format_shapes``), not by its ``layer``, ``output`` and ``params``
    cells: ``tests/test_plugin.py`` pins these lines, and the cells write them otherwise
    (the root as its bare type, ``(failed)`` for a call that failed before any output,
    ``(recursive)`` and a ``*`` where this line counts every call's parameters).
    """
    from inspectnn.renderers.columns import format_count, format_shapes

    lines = [
        f"{rec.label or '(root)'} ({rec.type}) -> {format_shapes(rec.outputs)} "
        f"params {format_count(rec.params)}"
        for rec in report.layers
    ]
    t = report.totals
    totals = f"{format_count(t.params)} params, {format_count(t.flops)} FLOPs"
    return [*lines, f"totals: {totals} on {report.device}"]


def snapshot_text(report: Report) -> str:
    """The snapshot of ``report``: a header line, then one JSON line per layer call.

    Example lines::

        {"format": "inspectnn-snapshot/2", "model": "Net", "params": 7850, "trainable_params": 7850}
        {"layer": "fc", "type": "Linear", "in": [[2, 784]], "out": [[2, 10]], "dtype": "float32", "params": 7850, "config": "in_features=784, out_features=10, bias=True"}
    """  # noqa: E501
    t = report.totals
    header = {"format": SNAPSHOT_FORMAT, "model": report.model, "params": t.params,
              "trainable_params": t.trainable_params}  # fmt: skip
    lines = [header, *(_layer_entry(rec) for rec in report.layers)]
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)


def _layer_entry(rec: LayerCall) -> dict[str, Any]:
    """One layer call's line: what its architecture fixes, nothing device-dependent.

    ``dtype`` and ``config`` are the column registry's cells (``renderers/columns.py``),
    the text the table shows; ``in`` and ``out`` are JSON lists of sizes, which no column
    writes (the ``input`` and ``output`` cells are text, cut after three tensors), and
    ``params`` is a number, so those stay as the stored format has them.
    """
    from inspectnn.renderers.columns import COLUMNS, Context

    plain = Context()
    entry: dict[str, Any] = {
        "layer": rec.label,
        "type": rec.type,
        "in": [_shape_or_value(m) for m in rec.inputs],
        "out": [_shape_or_value(m) for m in rec.outputs],
        "dtype": COLUMNS["dtype"].cell(rec, plain),
        "params": rec.params,
    }
    config = COLUMNS["config"].cell(rec, plain)
    if config:  # without " at 0x7f..." addresses, which change every run
        entry["config"] = _ADDRESS.sub("", config)
    if rec.failed:
        entry["failed"] = True
    return entry


def _shape_or_value(meta: TensorMeta) -> list[int] | str:
    return list(meta.shape) if meta.shape is not None else (meta.value or "?")


def _is_current_format(stored: str) -> bool:
    """Whether a stored snapshot starts with this version's header line."""
    first = stored.partition("\n")[0]
    try:
        header = json.loads(first)
    except ValueError:
        return False
    return isinstance(header, dict) and header.get("format") == SNAPSHOT_FORMAT


def _update_command(item: pytest.Item) -> str:
    """``pytest --inspectnn-update <node id>``, runnable from where pytest was started."""
    try:
        where = os.path.relpath(item.path, item.config.invocation_params.dir)
    except ValueError:  # another drive (Windows): only the absolute path works
        where = str(item.path)
    _, sep, inside = item.nodeid.partition("::")
    return f"pytest --inspectnn-update {shlex.quote(where + sep + inside)}"


@pytest.fixture
def model_snapshot(request: pytest.FixtureRequest) -> ModelSnapshot:
    """``model_snapshot.assert_match(report)`` against ``__snapshots__/<file>/<test>.txt``."""
    test_file = Path(str(request.node.path))
    directory = test_file.parent / "__snapshots__" / test_file.stem
    return ModelSnapshot(
        directory, request.node.name, request.config.stash[_UPDATE],
        _update_command(request.node),
    )  # fmt: skip


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    reports = item.stash.get(_REPORTS, [])
    if reports and report.failed and call.when == "call":
        for i, (name, rep) in enumerate(reports):
            report.sections.append((f"inspectnn: {name} #{i}", str(rep)))
        graphs = item.config.stash[_GRAPHS]
        if graphs is not None:
            _write_graphs(graphs, item.nodeid, reports, report)
    return report


def _write_graphs(
    directory: Path, nodeid: str, reports: list[tuple[str, Report]], report: pytest.TestReport
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^\w.-]+", "_", nodeid)
    for i, (name, rep) in enumerate(reports):
        target = directory / f"{stem}-{i}-{name}.png"
        try:
            rep.render(target)
        except Exception as err:  # a drawing problem must not hide the test failure
            report.sections.append(("inspectnn graphs", f"could not draw {target}: {err}"))
        else:
            report.sections.append(("inspectnn graphs", f"wrote {target}"))


def pytest_assertrepr_compare(config: pytest.Config, op: str, left: Any, right: Any) -> Any:
    if op != "==":
        return None
    ours = {type(left).__module__, type(right).__module__} & {"inspectnn.records"}
    if not ours:
        return None
    from inspectnn.records import Report, TensorMeta

    if isinstance(left, Report) and isinstance(right, Report):
        diff = difflib.unified_diff(
            _arch_lines(left), _arch_lines(right), "left", "right", lineterm="", n=1
        )
        return [f"{left.model} report == {right.model} report", *list(diff)[:60]]
    if isinstance(left, TensorMeta) or isinstance(right, TensorMeta):
        a = left.shape if isinstance(left, TensorMeta) else left
        b = right.shape if isinstance(right, TensorMeta) else right
        lines = [f"tensor shape {a} == {b}"]
        if isinstance(a, tuple) and isinstance(b, tuple):
            if len(a) != len(b):
                lines.append(f"rank differs: {len(a)} vs {len(b)}")
            pairs = enumerate(zip(a, b, strict=False))
            lines += [f"dimension {i}: {x} != {y}" for i, (x, y) in pairs if x != y]
        return lines
    return None
