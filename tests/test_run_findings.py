"""The findings about how a run went, each built in ``checks/`` from hand-made records.

``non-finite`` (``checks/numerics.py``), ``eval-mode`` and ``grad-enabled``
(``checks/modes.py``), ``attribute-written`` (``checks/state.py``), ``not-run`` and
``lazy`` (``checks/coverage.py``): the same kinds, severities and texts ``inspect``
has always reported, now callable without a forward. Also ``inspect()``'s own
arguments, checked once in ``api.InspectOptions``.
"""

from __future__ import annotations

import dataclasses
import inspect as pyinspect

import pytest
import torch
from torch import nn

import inspectnn as inn
from inspectnn.api import InspectOptions, _inspect
from inspectnn.checks.coverage import NOT_RUN, not_run_findings
from inspectnn.checks.modes import mode_findings, mode_sensitive
from inspectnn.checks.numerics import nonfinite_findings
from inspectnn.checks.state import written_findings
from inspectnn.errors import InvalidInputError
from inspectnn.records import Finding, LayerCall, ParamMeta


def _layer(name: str, type_: str, call: int = 0, weights: tuple[ParamMeta, ...] = ()) -> LayerCall:
    return LayerCall(0, name, type_, name.count(".") + 1 if name else 0, call, -1, (), (), 0, 0,
                     weights=weights)  # fmt: skip


def test_nonfinite_names_the_layer_and_its_input_ranges() -> None:
    layers = (_layer("", "Net"), _layer("head", "Linear", call=1))
    found = nonfinite_findings(layers, (1, True, [(-1.0, 2.5), (0.0, 1e9)]))
    assert found == [
        Finding(
            "non-finite",
            "error",
            "head",
            "head#1 (Linear) is the first layer whose output holds NaN; its input ranged over "
            "[-1, 2.5]; [0, 1e+09].",
            "Look for a division by zero, log/sqrt of a non-positive value, or an overflow "
            "(float16 saturates at 65504) in this layer or just before it.",
        )
    ]
    inf = nonfinite_findings(layers, (0, False, []))
    assert inf[0].layer == ""
    assert inf[0].message.startswith("(root) (Net) is the first layer whose output holds Inf;")
    assert inf[0].message.endswith("its input ranged over no float input.")
    assert nonfinite_findings(layers, None) == []


def test_mode_findings_each_when_it_applies() -> None:
    grad = Finding(
        "grad-enabled",
        "info",
        "",
        "The forward takes gradients itself (torch.autograd.grad or backward()), which fails "
        "under torch.no_grad(); inspect ran it with autograd on. The model's .grad values are "
        "put back as they were.",
        "Nothing to do; expect the memory of a forward that keeps its graph.",
    )
    note = Finding(
        "eval-mode",
        "info",
        "",
        "The model is in training mode; inspect ran it in eval mode (the default), so "
        "BatchNorm used its running statistics and dropout was off.",
        "Pass mode='train' (or mode='same') to check training-time behaviour.",
    )
    assert mode_findings(with_grad=True, eval_of_training=True) == [grad, note]
    assert mode_findings(with_grad=False, eval_of_training=True) == [note]
    assert mode_findings(with_grad=True, eval_of_training=False) == [grad]
    assert mode_findings(with_grad=False, eval_of_training=False) == []


def test_mode_sensitive_layers() -> None:
    plain = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    assert not mode_sensitive(list(plain.named_modules()))
    for layer in (nn.BatchNorm1d(2), nn.Dropout(0.1), nn.InstanceNorm2d(2), nn.AlphaDropout()):
        assert mode_sensitive(list(nn.Sequential(nn.Linear(2, 2), layer).named_modules()))


def test_written_attribute_is_a_warning_on_its_module() -> None:
    found = written_findings(["block.0.cache", "steps"])
    assert [(f.kind, f.severity, f.layer) for f in found] == [
        ("attribute-written", "warning", "block.0"),
        ("attribute-written", "warning", ""),
    ]
    assert found[0].message == (
        "The forward wrote the tensor attribute block.0.cache in place. It is not a parameter "
        "or a buffer, so inspect did not save its values and cannot put them back: the model "
        "now holds what this run wrote."
    )
    assert found[1].fix == (
        "Make it a buffer (self.register_buffer('steps', tensor, persistent=False)): inspect "
        "restores buffers bit for bit."
    )
    assert written_findings([]) == []


def test_not_run_then_one_lazy_finding_per_uninitialised_module() -> None:
    lazy = (ParamMeta("weight", None, "float32", True), ParamMeta("bias", None, "float32", True))
    layers = (
        _layer("", "Net"),
        _layer("fc", "LazyLinear", weights=lazy),
        _layer("out", "Linear", weights=(ParamMeta("weight", (2, 3), "float32", True),)),
    )
    found = not_run_findings(layers)
    assert found == [
        Finding(
            NOT_RUN,
            "info",
            "",
            "not run: no input given. This lists the modules, their parameters and "
            "configuration; shapes and FLOPs need a forward.",
            "Pass the inputs as for model(x): inspect(model, x), or "
            "inspect(model, input_size=(1, 3, 224, 224)) to build a random one.",
        ),
        Finding(
            "lazy",
            "info",
            "fc",
            "fc (LazyLinear) is uninitialised: its parameters (weight, bias) are created by "
            "the model's first forward, so they count as 0 here.",
            "Run model(x) once with a real input, then inspect it.",
        ),
    ]
    assert NOT_RUN == "not-run"


def test_inspect_uses_the_checks_findings() -> None:
    """End to end: a training-mode model with dropout given no input, then run."""
    model = nn.Sequential(nn.LazyLinear(3), nn.Dropout(0.1)).train()
    summary = inn.inspect(model)
    assert list(summary.findings) == not_run_findings(summary.layers)
    model(torch.randn(2, 4))
    report = inn.inspect(model, torch.randn(2, 4))
    assert list(report.findings) == mode_findings(with_grad=False, eval_of_training=True)


def test_options_are_checked_once_where_they_are_built() -> None:
    options = InspectOptions.checked(
        device="cpu",
        mode="same",
        input_size=(1, 3),
        dtypes="float64",
        on_error="report",
        check_numerics=True,
        torch_functions=True,
    )
    assert options.device == torch.device("cpu")  # parsed
    assert (options.mode, options.on_error, options.check_numerics) == ("same", "report", True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.mode = "train"  # type: ignore[misc]
    assert not hasattr(options, "__dict__")  # slotted
    for wrong, says in (
        ({"mode": "training"}, "mode must be one of 'eval', 'train', 'same'"),
        ({"on_error": "warn"}, "on_error must be one of 'raise', 'report'"),
        ({"input_size": None}, "dtypes goes with input_size"),
    ):
        arguments = {
            "device": None,
            "mode": "eval",
            "input_size": (1, 3),
            "dtypes": "float32",
            "on_error": "raise",
            "check_numerics": False,
            "torch_functions": True,
        }
        with pytest.raises(InvalidInputError, match=says):
            InspectOptions.checked(**{**arguments, **wrong})  # type: ignore[arg-type]
    assert list(pyinspect.signature(_inspect).parameters) == ["model", "args", "kwargs", "options"]
