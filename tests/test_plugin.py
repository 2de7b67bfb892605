"""The pytest plugin, tested through real pytest runs (pytester)."""

from __future__ import annotations

import dataclasses
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

MODELS = """
import pytest
import torch
from torch import nn


def simple_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
"""


def _write(pytester: pytest.Pytester, body: str) -> None:
    pytester.makepyfile(test_models=MODELS + body)


def test_passing_shape_assertions(pytester: pytest.Pytester) -> None:
    _write(
        pytester,
        """
def test_shapes(inspect_model):
    report = inspect_model(simple_net(), torch.randn(64, 1, 28, 28))
    report.assert_shapes({"1": "B 128", "": "B 10", "0:in": "B 1 H W"})
    report.assert_params(total=101_770, trainable=101_770)
    report.assert_no_findings()
""",
    )
    result = pytester.runpytest("-q")
    result.assert_outcomes(passed=1)


def test_failing_assertion_text_and_report_section(pytester: pytest.Pytester) -> None:
    _write(
        pytester,
        """
def test_shapes(inspect_model):
    report = inspect_model(simple_net(), torch.randn(64, 1, 28, 28))
    report.assert_shapes({"1": "B 100", "": "B 10"})
""",
    )
    result = pytester.runpytest("-q")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*AssertionError: assert_shapes: 1 mismatch in the Sequential report",
        "*1 output 0: [[]64, 128[]] does not match 'B 100'",
        "*at fault: dimension 1: expected 100, got 128",
        "*layer:    1 (Linear)  input [[]64, 784[]] -> output [[]64, 128[]]  float32 on cpu*",
        "*bindings: B=64",
        '*asserted: {"1": "B 100", "": "B 10"}',
        "*- inspectnn: Sequential #0 -*",
        "*├─ 1 (Linear)*[[]64, 128[]]*100,480",
    ])  # fmt: skip


def test_names_must_agree_across_one_assertion(pytester: pytest.Pytester) -> None:
    _write(
        pytester,
        """
def test_batch(inspect_model):
    report = inspect_model(simple_net(), torch.randn(64, 1, 28, 28))
    report.assert_shapes({"0:in": "B 1 28 28", "1": "N 128", "": "N 10"})
    with pytest.raises(AssertionError, match="expected C=128 .bound earlier., got 64"):
        report.assert_shapes({"1": "B C", "3": "C 10"})
""",
    )
    pytester.runpytest("-q").assert_outcomes(passed=1)


def test_forward_error_adds_the_partial_report(pytester: pytest.Pytester) -> None:
    _write(
        pytester,
        """
def test_broken(inspect_model):
    inspect_model(simple_net(), torch.randn(64, 1, 32, 32))
""",
    )
    result = pytester.runpytest("-q")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*ShapeMismatchError*'1' (Linear(in_features=784, out_features=128, bias=True))*",
        "*- inspectnn: Sequential #0 -*",
        "*└─ 1 (Linear)  <-- failed*",
    ])  # fmt: skip


def test_snapshot_create_update_mismatch(pytester: pytest.Pytester) -> None:
    _write(
        pytester,
        """
import os

def test_arch(inspect_model, model_snapshot):
    width = int(os.environ.get("WIDTH", "128"))
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, width), nn.ReLU(), nn.Linear(width, 10))
    model_snapshot.assert_match(inspect_model(model, torch.randn(2, 1, 28, 28)))
""",
    )
    missing = pytester.runpytest("-q")
    missing.assert_outcomes(failed=1)
    missing.stdout.fnmatch_lines(
        [
            "*no model snapshot at *test_arch.txt*",
            "*Create it with: pytest --inspectnn-update test_models.py::test_arch",
        ]
    )
    pytester.runpytest("-q", "--inspectnn-update").assert_outcomes(passed=1)
    snap = pytester.path / "__snapshots__" / "test_models" / "test_arch.txt"
    assert [json.loads(line)["type"] for line in snap.read_text().splitlines()[1:]] == [
        "Sequential", "Flatten", "Linear", "ReLU", "Linear",
    ]  # fmt: skip
    pytester.runpytest("-q").assert_outcomes(passed=1)
    pytester._monkeypatch.setenv("WIDTH", "64")
    changed = pytester.runpytest("-q")
    changed.assert_outcomes(failed=1)
    changed.stdout.fnmatch_lines([
        "*the model's architecture differs from *test_arch.txt:",
        '*-{"layer": "1", "type": "Linear", "in": [[][[]2, 784[]][]], "out": [[][[]2, 128[]][]],'
        ' "dtype": "float32", "params": 100480, "config": "*out_features=128*"}',
        '*+{"layer": "1", "type": "Linear", "in": [[][[]2, 784[]][]], "out": [[][[]2, 64[]][]],'
        ' "dtype": "float32", "params": 50240, "config": "*out_features=64*"}',
        "*If the change is intended, run: pytest --inspectnn-update test_models.py::test_arch",
    ])  # fmt: skip


def test_printed_update_command_runs_and_writes_the_snapshot(pytester: pytest.Pytester) -> None:
    pytester.mkpydir("sub")
    (pytester.path / "sub" / "test_models.py").write_text(
        MODELS
        + """
@pytest.mark.parametrize("width", [128], ids=["wide net"])
def test_arch(inspect_model, model_snapshot, width):
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, width), nn.ReLU(), nn.Linear(width, 10))
    model_snapshot.assert_match(inspect_model(model, torch.randn(2, 1, 28, 28)))
"""
    )
    missing = pytester.runpytest("-q", "sub")
    missing.assert_outcomes(failed=1)
    printed = [line for line in missing.outlines if "Create it with: " in line]
    command = printed[0].split("Create it with: ", 1)[1]
    assert command == "pytest --inspectnn-update 'sub/test_models.py::test_arch[wide net]'"
    # Run the printed command as a shell would, with this interpreter's pytest.
    shell = command.replace("pytest", f"{shlex.quote(sys.executable)} -m pytest", 1)
    created = pytester.run("sh", "-c", shell, timeout=300)
    assert created.ret == pytest.ExitCode.OK, created.outlines
    snap = pytester.path / "sub" / "__snapshots__" / "test_models" / "test_arch_wide_net_.txt"
    assert json.loads(snap.read_text().splitlines()[0])["params"] == 101_770
    pytester.runpytest("-q", "sub").assert_outcomes(passed=1)


def test_snapshot_is_one_line_per_call_and_the_same_on_every_device(
    pytester: pytest.Pytester,
) -> None:
    example = Path(__file__).parent.parent / "examples" / "test_with_inspectnn.py"
    pytester.makepyfile(test_with_inspectnn=example.read_text())
    select = ("-q", "-k", "test_architecture_snapshot")
    pytester.runpytest(*select, "--inspectnn-update").assert_outcomes(passed=1)
    snap = pytester.path / "__snapshots__" / "test_with_inspectnn" / "test_architecture_snapshot.txt"  # noqa: E501
    lines = [json.loads(line) for line in snap.read_text().splitlines()]
    assert [line.get("layer") for line in lines] == [
        None, "(root)", "conv1", "pool", "conv2", "pool#1", "fc1", "fc2",
    ]  # fmt: skip
    assert lines[2] == {
        "layer": "conv1", "type": "Conv2d", "in": [[2, 1, 28, 28]], "out": [[2, 16, 28, 28]],
        "dtype": "float32", "params": 160,
        "config": "1, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1)",
    }  # fmt: skip
    assert "cpu" not in snap.read_text()
    devices = ["meta", "cpu"] + (["cuda"] if __import__("torch").cuda.is_available() else [])
    for device in devices:  # a subprocess: a meta run in-process upsets later runs' torch
        result = pytester.runpytest_subprocess(*select, f"--inspectnn-device={device}")
        result.assert_outcomes(passed=1)


def test_snapshot_dtype_and_config_are_the_column_registry_cells(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch
    from pytest_inspectnn import snapshot_text
    from torch import nn

    import inspectnn
    from inspectnn.renderers import columns

    torch.manual_seed(0)
    report = inspectnn.inspect(nn.Sequential(nn.Linear(4, 3), nn.ReLU()), torch.randn(2, 4))
    entries = [json.loads(line) for line in snapshot_text(report).splitlines()[1:]]
    plain = columns.Context()
    dtype, config = columns.COLUMNS["dtype"], columns.COLUMNS["config"]
    assert [e["dtype"] for e in entries] == [dtype.cell(r, plain) for r in report.layers]
    assert entries[1]["config"] == config.cell(report.layers[1], plain)
    assert entries[1]["config"] == "in_features=4, out_features=3, bias=True"
    # the snapshot reads the registry: a dtype column that writes otherwise shows there
    loud = dataclasses.replace(dtype, cell=lambda rec, ctx: "DTYPE")
    monkeypatch.setitem(columns.COLUMNS, "dtype", loud)
    assert {json.loads(line)["dtype"] for line in snapshot_text(report).splitlines()[1:]} == {
        "DTYPE"
    }


def test_snapshot_leaves_out_object_addresses(pytester: pytest.Pytester) -> None:
    _write(
        pytester,
        """
class Act(nn.Module):
    def __init__(self):
        super().__init__()
        self.fn = lambda x: x * 2

    def extra_repr(self):
        return f"fn={self.fn}"

    def forward(self, x):
        return self.fn(x)

def test_arch(inspect_model, model_snapshot):
    model_snapshot.assert_match(inspect_model(Act(), torch.randn(2, 3)))
""",
    )
    pytester.runpytest("-q", "--inspectnn-update").assert_outcomes(passed=1)
    snap = pytester.path / "__snapshots__" / "test_models" / "test_arch.txt"
    assert '"config": "fn=<function Act.__init__.<locals>.<lambda>>"' in snap.read_text()
    pytester.runpytest("-q").assert_outcomes(passed=1)


def test_old_format_snapshot_says_regenerate(pytester: pytest.Pytester) -> None:
    _write(
        pytester,
        """
def test_arch(inspect_model, model_snapshot):
    model_snapshot.assert_match(inspect_model(simple_net(), torch.randn(2, 1, 28, 28)))
""",
    )
    snap = pytester.path / "__snapshots__" / "test_models" / "test_arch.txt"
    snap.parent.mkdir(parents=True)
    snap.write_text('Layer (type)  Input  Output\n...\n\n{\n "schema": "inspectnn/1",\n}\n')
    old = pytester.runpytest("-q")
    old.assert_outcomes(failed=1)
    old.stdout.fnmatch_lines([
        "*test_arch.txt is a model snapshot in an older format (a table and the full JSON*"
        "regenerate it with: pytest --inspectnn-update test_models.py::test_arch",
    ])  # fmt: skip
    pytester.runpytest("-q", "--inspectnn-update").assert_outcomes(passed=1)
    pytester.runpytest("-q").assert_outcomes(passed=1)


def _failure_lines(result: pytest.RunResult, test: str) -> list[str]:
    """The lines of one test's failure, from its ``___ test ___`` header to the next one."""
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if line.startswith("_") and f" {test} " in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith(("_", "-", "=")))
    return lines[start:end]


HELPER_FAILURES = """
from inspectnn.testing import assert_device, assert_params, assert_shapes

def test_shapes():
    report = inspectnn.inspect(simple_net(), torch.randn(2, 1, 28, 28))
    assert_shapes(report, {"1": "B 100"})

def test_selector():
    report = inspectnn.inspect(simple_net(), torch.randn(2, 1, 28, 28))
    assert_device(report, "fc9", "cpu")

def test_params():
    assert_params(simple_net(), total=5)
"""


def test_failing_helpers_show_the_test_line_then_the_message(pytester: pytest.Pytester) -> None:
    _write(pytester, "\nimport inspectnn\n" + HELPER_FAILURES)
    result = pytester.runpytest("-q")
    result.assert_outcomes(failed=3)
    for test, call, message in [
        ("test_shapes", 'assert_shapes(report, {"1": "B 100"})', "assert_shapes: 1 mismatch"),
        ("test_selector", 'assert_device(report, "fc9", "cpu")', "selector 'fc9' matches no"),
        ("test_params", "assert_params(simple_net(), total=5)", "assert_params: Sequential"),
    ]:
        lines = _failure_lines(result, test)
        text = "\n".join(lines)
        at = next(i for i, line in enumerate(lines) if line.startswith(">"))
        assert lines[at].endswith(call), text
        assert lines[at + 1].startswith(f"E       AssertionError: {message}"), text
        assert "inspectnn/testing.py" not in text and "raise AssertionError" not in text, text
        assert len(lines) < 20, text


def test_failing_report_method_shows_the_test_line_then_the_message(
    pytester: pytest.Pytester,
) -> None:
    _write(
        pytester,
        """
def test_shapes(inspect_model):
    report = inspect_model(simple_net(), torch.randn(2, 1, 28, 28))
    report.assert_shapes({"1": "B 100"})
""",
    )
    result = pytester.runpytest("-q")
    result.assert_outcomes(failed=1)
    lines = _failure_lines(result, "test_shapes")
    at = next(i for i, line in enumerate(lines) if line.startswith(">"))
    assert lines[at].endswith('report.assert_shapes({"1": "B 100"})')
    assert lines[at + 1].startswith("E       AssertionError: assert_shapes: 1 mismatch")
    assert not any("inspectnn/" in line for line in lines), "\n".join(lines)


def test_device_option_and_marker(pytester: pytest.Pytester) -> None:
    _write(
        pytester,
        """
def test_default(inspect_model):
    assert inspect_model(simple_net(), torch.randn(2, 1, 28, 28)).device == "meta"

@pytest.mark.inspectnn(device="cpu")
def test_marked(inspect_model):
    assert inspect_model(simple_net(), torch.randn(2, 1, 28, 28)).device == "cpu"
""",
    )
    pytester.runpytest("-q", "--inspectnn-device=meta").assert_outcomes(passed=2)


@pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="checks the skip on machines without GPU"
)
def test_cuda_device_skips_without_gpu(pytester: pytest.Pytester) -> None:
    _write(
        pytester,
        """
def test_on_gpu(inspect_model):
    inspect_model(simple_net(), torch.randn(2, 1, 28, 28))
""",
    )
    result = pytester.runpytest("-q", "-rs", "--inspectnn-device=cuda:0")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        ["*--inspectnn-device=cuda:0: device 'cuda:0' was asked for but this machine has no CUDA*"]
    )


def test_bad_device_option_is_a_usage_error(pytester: pytest.Pytester) -> None:
    _write(pytester, "\ndef test_nothing():\n    pass\n")
    result = pytester.runpytest("-q", "--inspectnn-device=gpu")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*'gpu' is not a device. Pass 'cpu', 'meta', 'cuda' or 'cuda:N'*"])


def test_misspelt_device_marker_fails_the_test(pytester: pytest.Pytester) -> None:
    _write(
        pytester,
        """
@pytest.mark.inspectnn(device="gpu")
def test_marked(inspect_model):
    pass
""",
    )
    result = pytester.runpytest("-q")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*@pytest.mark.inspectnn(device='gpu'): 'gpu' is not a device. Pass 'cpu'*"]
    )


def test_graphs_option_writes_pngs_of_failing_tests(pytester: pytest.Pytester) -> None:
    _write(
        pytester,
        """
def test_fails(inspect_model):
    inspect_model(simple_net(), torch.randn(2, 1, 28, 28))
    assert False

def test_passes(inspect_model):
    inspect_model(simple_net(), torch.randn(2, 1, 28, 28))
""",
    )
    out = pytester.path / "graphs"
    result = pytester.runpytest("-q", f"--inspectnn-graphs={out}")
    result.assert_outcomes(failed=1, passed=1)
    pngs = sorted(out.glob("*.png"))
    assert [p.name for p in pngs] == ["test_models.py_test_fails-0-Sequential.png"]
    assert pngs[0].read_bytes().startswith(b"\x89PNG")


def test_assertrepr_for_reports_and_shapes(pytester: pytest.Pytester) -> None:
    _write(
        pytester,
        """
import inspectnn

def test_reports():
    a = inspectnn.inspect(simple_net(), torch.randn(2, 1, 28, 28))
    small = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    b = inspectnn.inspect(small, torch.randn(2, 1, 28, 28))
    assert a == b

def test_shape():
    meta = inspectnn.inspect(simple_net(), torch.randn(2, 1, 28, 28)).layer("1").outputs[0]
    assert meta == (2, 100)

def test_foreign():
    assert (1, 2) == (1, 3)
""",
    )
    result = pytester.runpytest("-vv")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines([
        "*Sequential report == Sequential report",
        "*-1 (Linear) -> [[]2, 128[]] params 100,480",
        "*+1 (Linear) -> [[]2, 10[]] params 7,850",
        "*tensor shape (2, 128) == (2, 100)",
        "*dimension 1: 128 != 100",
        "*At index 1 diff: 2 != 3*",
    ])  # fmt: skip


def test_plugin_can_be_disabled(pytester: pytest.Pytester) -> None:
    _write(pytester, "\ndef test_uses(inspect_model):\n    pass\n")
    result = pytester.runpytest("-q", "-p", "no:inspectnn")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'inspect_model' not found*"])


def test_plugin_module_does_not_import_torch() -> None:
    code = "import sys, pytest_inspectnn; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)  # fmt: skip
    assert out.stdout.strip() == "False"


def test_example_test_file_runs(pytester: pytest.Pytester) -> None:
    example = Path(__file__).parent.parent / "examples" / "test_with_inspectnn.py"
    pytester.makepyfile(test_with_inspectnn=example.read_text())
    result = pytester.runpytest("-q", "--inspectnn-update")
    result.assert_outcomes(passed=5)
    pytester.runpytest("-q").assert_outcomes(passed=5)
