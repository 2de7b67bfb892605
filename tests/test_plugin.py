"""The pytest plugin, tested through real pytest runs (pytester)."""

from __future__ import annotations

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
            "*Create it with: pytest --inspectnn-update test_arch*",
        ]
    )
    pytester.runpytest("-q", "--inspectnn-update").assert_outcomes(passed=1)
    snap = pytester.path / "__snapshots__" / "test_models" / "test_arch.txt"
    assert '"schema": "inspectnn/1"' in snap.read_text()
    pytester.runpytest("-q").assert_outcomes(passed=1)
    pytester._monkeypatch.setenv("WIDTH", "64")
    changed = pytester.runpytest("-q")
    changed.assert_outcomes(failed=1)
    changed.stdout.fnmatch_lines([
        "*the model's architecture differs from *test_arch.txt:",
        "*-├─ 1 (Linear)*[[]2, 128[]]*100,480",
        "*+├─ 1 (Linear)*[[]2, 64[]]*50,240",
        "*If the change is intended, run pytest --inspectnn-update.",
    ])  # fmt: skip


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
    result.stdout.fnmatch_lines(["*--inspectnn-device=cuda:0 but this machine has no CUDA GPU*"])


def test_bad_device_option_is_a_usage_error(pytester: pytest.Pytester) -> None:
    _write(pytester, "\ndef test_nothing():\n    pass\n")
    result = pytester.runpytest("-q", "--inspectnn-device=gpu")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*'gpu' is not cpu, meta, cuda or cuda:N*"])


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
