"""State the model does not own or does not show: unregistered modules, buffer writes."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import assert_unchanged, snapshot
from torch import Tensor, nn

import inspectnn as inn
from inspectnn.errors import DeviceMismatchError


class PlainList(nn.Module):
    """Blocks in a plain Python list: they run, but are not part of the model."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(4, 8)
        self.blocks = [nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8)]

    def forward(self, x: Tensor) -> Tensor:
        x = self.inp(x)
        for block in self.blocks:
            x = block(x)
        return x


class Registered(PlainList):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(self.blocks)  # type: ignore[assignment]


def test_unregistered_modules_get_a_finding_and_their_ops_are_shown() -> None:
    torch.manual_seed(0)
    model, x = PlainList(), torch.randn(2, 4)
    report = inn.inspect(model, x)
    found = [f for f in report.findings if f.kind == "unregistered-module"]
    assert [f.severity for f in found] == ["warning", "warning"]
    assert "blocks[0] (Linear)" in found[0].message and "blocks[2] (Linear)" in found[1].message
    assert all("nn.ModuleList" in f.fix for f in found)
    assert [op.name for op in report.ops] == ["F.linear", "F.relu", "F.linear"]
    assert report.outputs[0].shape == (2, 8)


def test_registered_modules_get_no_such_finding() -> None:
    report = inn.inspect(Registered(), torch.randn(2, 4))
    assert not [f for f in report.findings if f.kind == "unregistered-module"]
    assert [r.name for r in report.layers] == ["", "inp", "blocks.0", "blocks.1", "blocks.2"]


def test_parameter_made_in_forward_is_reported_without_a_holder() -> None:
    class MakesWeight(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            w = nn.Parameter(torch.ones(3, 3))
            return torch.nn.functional.linear(x, w)

    found = [f for f in inn.inspect(MakesWeight(), torch.randn(1, 3)).findings
             if f.kind == "unregistered-module"]  # fmt: skip
    assert len(found) == 1 and "no module of the model holds" in found[0].message


def test_meta_run_says_the_unregistered_module_is_the_cause() -> None:
    model, x = PlainList(), torch.randn(2, 4)
    before = snapshot(model)
    with pytest.raises(DeviceMismatchError) as err:
        inn.inspect(model, x, device="meta")
    text = str(err.value)
    assert "blocks[0] (Linear) is not registered in the model" in text
    assert "stayed on cpu" in text and "nn.ModuleList" in text
    assert err.value.producer == "blocks[0]" and err.value.expected == "meta"
    assert_unchanged(model, before)


class StepCounter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("last", torch.zeros(3))

    def forward(self, x: Tensor) -> Tensor:
        self.steps += 1  # in place
        out = self.fc(x)
        self.last = out.detach().mean(0)  # rebound
        return out


def test_buffer_writes_are_listed_per_call_and_warned_in_eval() -> None:
    model, x = nn.Sequential(StepCounter(), nn.BatchNorm1d(3)), torch.randn(4, 3)
    before = snapshot(model)
    report = inn.inspect(model, x)
    assert report.layer("0").buffers_written == ("steps", "last")
    assert report.layer("1").buffers_written == ()  # BatchNorm in eval reads its statistics
    assert json.loads(report.to_json())["layers"][1]["buffers_written"] == ["steps", "last"]
    assert "buffers_written" not in report.layer("0.fc").to_dict()
    found = [f for f in report.findings if f.kind == "buffer-write"]
    assert [(f.layer, f.severity) for f in found] == [("0", "warning")]
    assert "0.steps, 0.last" in found[0].message
    assert_unchanged(model, before)


def test_buffer_writes_in_train_mode_are_listed_without_warning() -> None:
    model = nn.Sequential(StepCounter(), nn.BatchNorm1d(3))
    report = inn.inspect(model, torch.randn(4, 3), mode="train")
    assert report.layer("1").buffers_written == (
        "running_mean", "running_var", "num_batches_tracked",
    )  # fmt: skip
    assert not [f for f in report.findings if f.kind == "buffer-write"]


def test_buffer_writes_on_meta() -> None:
    report = inn.inspect(StepCounter(), torch.randn(2, 3), device="meta")
    assert report.layers[0].buffers_written == ("steps", "last")
