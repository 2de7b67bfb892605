"""Bad arguments get InvalidInputError; a failing forward gets ForwardError with the layer."""

from __future__ import annotations

from typing import Any

import models as zoo
import pytest
import torch
from torch import nn

import inspectnn as inn


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: inn.inspect(zoo.SimpleCNN, torch.randn(1, 1, 28, 28)), "not its class"),
        (lambda: inn.inspect(zoo.SimpleCNN().state_dict(), torch.randn(1)), "nn.Module"),
        (lambda: inn.inspect("model.pt", torch.randn(1)), "must be a torch.nn.Module"),
        (lambda: inn.inspect(zoo.SimpleCNN(), input_size=(1, -1, 28, 28)), "negative"),
        (lambda: inn.inspect(zoo.SimpleCNN(), input_size="1x28x28"), "one shape such as"),
        (lambda: inn.inspect(zoo.SimpleCNN(), input_size=(1, 1, 28, 28), dtypes="floaty"),
         "not a torch dtype"),
        (lambda: inn.inspect(zoo.SimpleCNN(), input_size=(1, 1, 28, 28), dtypes=["long"] * 2),
         "2 entries for 1 input"),
        (lambda: inn.inspect(zoo.SimpleCNN(), torch.randn(1), input_size=(1,)), "not both"),
        (lambda: inn.inspect(zoo.SimpleCNN(), torch.randn(1), dtypes="long"), "goes with"),
        (lambda: inn.inspect(zoo.SimpleCNN(), torch.randn(1), device="gpu"), "not a device"),
        (lambda: inn.inspect(zoo.SimpleCNN(), torch.randn(1), device=3.0), "string or torch"),
        (lambda: inn.inspect(zoo.SimpleCNN(), torch.randn(1), mode="inference"), "mode must"),
        (lambda: inn.inspect(zoo.SimpleCNN(), torch.randn(1), on_error="ignore"), "on_error"),
    ],
)  # fmt: skip
def test_bad_arguments(call: Any, match: str) -> None:
    with pytest.raises(inn.InvalidInputError, match=match) as info:
        call()
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, inn.InspectnnError)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_gpu_says_what_to_pass() -> None:
    with pytest.raises(inn.InvalidInputError, match=r"no CUDA GPU.*device='meta'"):
        inn.inspect(zoo.SimpleCNN(), torch.randn(1, 1, 28, 28), device="cuda")


def test_script_module_is_refused() -> None:
    scripted = torch.jit.script(nn.Linear(2, 2))
    with pytest.raises(inn.InvalidInputError, match=r"TorchScript.*eager nn\.Module"):
        inn.inspect(scripted, torch.randn(1, 2))


@pytest.mark.parametrize("name", sorted(zoo.BROKEN_MODELS))
def test_forward_error_names_the_innermost_layer(name: str) -> None:
    case = zoo.BROKEN_MODELS[name]
    model, inputs = case.model(), case.inputs()
    with pytest.raises(inn.ForwardError) as info:
        inn.inspect(model, *inputs, mode="train" if "batch1" in name else "eval")
    err = info.value
    assert err.layer == case.layer
    assert isinstance(err.__cause__, case.error)
    assert isinstance(err, RuntimeError) and isinstance(err, inn.InspectnnError)
    assert err.report is not None and err.report.error is not None
    assert err.report.error.layer == case.layer
    failed = [r.name for r in err.report.layers if r.failed]
    assert failed[-1] == case.layer  # the innermost comes last in call order...
    for outer in failed[:-1]:  # ...after the ancestors it raised through
        assert outer == "" or case.layer.startswith(outer + ".")


def test_forward_error_message_names_layer_config_and_input() -> None:
    with pytest.raises(inn.ForwardError) as info:
        inn.inspect(zoo.BrokenFlattenCNN(), torch.randn(1, 3, 64, 64))
    err = info.value
    assert isinstance(err, inn.ShapeMismatchError)
    text = str(err)
    assert "'classifier.1'" in text
    assert "Linear(in_features=1024, out_features=10" in text
    assert "got:        [1, 4096]" in text
    assert "mat1 and mat2" in str(err.__cause__)


def test_partial_report_keeps_the_calls_before_the_failure() -> None:
    with pytest.raises(inn.ForwardError) as info:
        inn.inspect(zoo.BrokenViewCNN(), torch.randn(2, 1, 32, 32))
    report = info.value.report
    assert report is not None
    assert [r.name for r in report.layers][:3] == ["", "conv1", "pool"]
    assert "fc1" not in {r.name for r in report.layers}
    view = [op for op in report.ops if op.name == "Tensor.view"]
    assert view and view[0].failed and view[0].inputs[0].shape == (2, 32, 8, 8)
    assert "Error in the root module (BrokenViewCNN): ForwardError: Tensor.view failed" in str(
        report
    )


def test_on_error_report_returns_the_partial_report() -> None:
    report = inn.inspect(zoo.BrokenFlattenCNN(), torch.randn(1, 3, 64, 64), on_error="report")
    assert report.error is not None
    assert report.error.layer == "classifier.1"
    assert report.error.type == "ShapeMismatchError"
    assert report.to_dict()["error"]["layer"] == "classifier.1"


def test_same_failing_layer_on_meta() -> None:
    with pytest.raises(inn.ForwardError) as info:
        inn.inspect(zoo.BrokenFlattenCNN(), torch.randn(1, 3, 64, 64), device="meta")
    assert info.value.layer == "classifier.1"


def test_exception_caught_inside_forward_is_not_a_failure() -> None:
    class Fallback(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.small = nn.Linear(4, 2)
            self.big = nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            try:
                return self.small(x)
            except RuntimeError:
                return self.big(x)

    report = inn.inspect(Fallback(), torch.randn(3, 8))
    assert report.error is None
    assert report.outputs[0].shape == (3, 2)
    assert [r.failed for r in report.layers] == [False, True, False]


def test_inspect_called_inside_an_except_block() -> None:
    try:
        raise ValueError("unrelated")
    except ValueError:
        report = inn.inspect(zoo.SimpleCNN(), torch.randn(2, 1, 28, 28))
    assert not any(r.failed for r in report.layers)
    assert report.outputs[0].shape == (2, 10)


def test_uninitialized_lazy_module_gets_a_clear_error() -> None:
    """A LazyLinear has no parameters until its first forward, which inspect must not run
    for real; the error names it and says what to do."""
    model = nn.Sequential(nn.Linear(3, 3), nn.LazyLinear(4), nn.ReLU())
    x = torch.randn(2, 3)
    with pytest.raises(inn.InvalidInputError, match=r"1 \(LazyLinear\).*run model\(x\) once"):
        inn.inspect(model, x)
    assert type(model[1]).__name__ == "LazyLinear" and "forward" not in model[1].__dict__
    model(x)  # materialise, then it inspects
    assert inn.inspect(model, x).totals.params == 12 + 16
