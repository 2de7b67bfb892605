"""pytest plugin for inspectnn, installed as ``pytest_inspectnn`` (entry point ``inspectnn``).

Fixtures:
    inspect_model   ``inspect_model(model, *args, **kw)`` is ``inspectnn.inspect`` with the
                    device from ``--inspectnn-device`` or ``@pytest.mark.inspectnn(device=)``;
                    the table of every model it inspected is added to a failing test's report.
    model_snapshot  ``model_snapshot.assert_match(report)`` compares the architecture to a
                    file under ``__snapshots__/`` next to the test; ``--inspectnn-update``
                    writes it.

This module imports neither torch nor inspectnn until a fixture or hook needs them,
so ``pytest -p no:inspectnn`` and test runs without models cost nothing.
"""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from inspectnn.records import Report

_DEVICE = pytest.StashKey[str | None]()
_UPDATE = pytest.StashKey[bool]()
_GRAPHS = pytest.StashKey[Path | None]()
_REPORTS = pytest.StashKey[list[tuple[str, "Report"]]]()
_DEVICE_RE = re.compile(r"^(cpu|meta|cuda(:\d+)?)$")


def _device_type(value: str) -> str:
    if not _DEVICE_RE.match(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not cpu, meta, cuda or cuda:N")
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
    marker = request.node.get_closest_marker("inspectnn")
    if marker is not None and "device" in marker.kwargs:
        return str(marker.kwargs["device"]) if marker.kwargs["device"] is not None else None
    return request.config.stash[_DEVICE]


@pytest.fixture
def inspect_model(request: pytest.FixtureRequest) -> Callable[..., Report]:
    """``inspectnn.inspect`` on the configured device; reports go into failure output."""
    import inspectnn

    device = _wanted_device(request)
    if device is not None and device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            pytest.skip(f"--inspectnn-device={device} but this machine has no CUDA GPU")
    reports = request.node.stash.setdefault(_REPORTS, [])

    def run(model: Any, *args: Any, **kwargs: Any) -> Report:
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
    """Compares a report's architecture with a file under ``__snapshots__/``."""

    def __init__(self, directory: Path, test_name: str, update: bool) -> None:
        self.directory = directory
        self.test_name = re.sub(r"[^\w.-]+", "_", test_name)
        self.update = update
        self._count = 0

    def path(self, name: str | None = None) -> Path:
        """The snapshot file for this test (and ``name``, for several per test)."""
        suffix = f".{name}" if name else (f".{self._count}" if self._count else "")
        return self.directory / f"{self.test_name}{suffix}.txt"

    def assert_match(self, report: Report, name: str | None = None) -> None:
        """Fail with a diff when the architecture differs from the stored one.

        The snapshot holds the table (paths, types, shapes, dtypes, parameters) and
        the JSON of the report: no tensor values, nothing random.
        """
        from inspectnn.records import Report as ReportType

        if not isinstance(report, ReportType):
            raise TypeError(f"assert_match takes an inspectnn Report, got {type(report)!r}")
        path = self.path(name)
        self._count += 1
        text = _snapshot_text(report)
        if self.update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            return
        if not path.exists():
            pytest.fail(
                f"no model snapshot at {path}.\nCreate it with: pytest --inspectnn-update "
                f"{self.test_name}", pytrace=False,
            )  # fmt: skip
        stored = path.read_text(encoding="utf-8")
        if stored != text:
            diff = difflib.unified_diff(
                stored.splitlines(), text.splitlines(), "snapshot", "now", lineterm="", n=2
            )
            lines = list(diff)
            shown = "\n".join(lines[:80]) + ("\n..." if len(lines) > 80 else "")
            pytest.fail(
                f"the model's architecture differs from {path}:\n{shown}\n"
                "If the change is intended, run pytest --inspectnn-update.", pytrace=False,
            )  # fmt: skip


def _arch_lines(report: Report) -> list[str]:
    from inspectnn.render.table import format_shapes

    lines = [
        f"{rec.label or '(root)'} ({rec.type}) -> {format_shapes(rec.outputs)} "
        f"params {rec.params:,}"
        for rec in report.layers
    ]
    t = report.totals
    return [*lines, f"totals: {t.params:,} params, {t.flops:,} FLOPs on {report.device}"]


def _snapshot_text(report: Report) -> str:
    columns = ("layer", "input", "output", "dtype", "params")
    return f"{report.table(columns=columns, fold=False)}\n\n{report.to_json(indent=1)}\n"


@pytest.fixture
def model_snapshot(request: pytest.FixtureRequest) -> ModelSnapshot:
    """``model_snapshot.assert_match(report)`` against ``__snapshots__/<file>/<test>.txt``."""
    test_file = Path(str(request.node.path))
    directory = test_file.parent / "__snapshots__" / test_file.stem
    return ModelSnapshot(directory, request.node.name, request.config.stash[_UPDATE])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[None]:
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
    directory: Path, nodeid: str, reports: list[tuple[str, Report]], report: Any
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
