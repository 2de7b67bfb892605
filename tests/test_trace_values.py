"""The trace over nested values: exact provenance, one walker for every output kind."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from helpers import assert_unchanged, snapshot
from torch import Tensor, nn

import inspectnn as inn


class Many(nn.Module):
    """Returns 70 tensors."""

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return tuple(x + i for i in range(70))


class PickOne(nn.Module):
    def __init__(self, pick: int) -> None:
        super().__init__()
        self.pick = pick
        self.many = Many()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.many(x)[self.pick])


@pytest.mark.parametrize("pick", [0, 1, 63, 64, 65, 69])
def test_source_names_the_exact_output_position(pick: int) -> None:
    report = inn.inspect(PickOne(pick), torch.randn(2, 4))
    many = report.layer("many")
    expected = f"layers[{many.index}]" + (f".outputs[{pick}]" if pick else "")
    assert report.layer("fc").inputs[0].source == expected


@dataclasses.dataclass
class Result:
    hidden: Tensor
    score: Tensor


class NaNInDataclass(nn.Module):
    def forward(self, x: Tensor) -> Result:
        return Result(x, x.log())  # log of a negative: NaN


class NaNInTuple(nn.Module):
    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x, x.log()


class Wraps(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> object:
        return self.inner(x)


@pytest.mark.parametrize("inner", [NaNInDataclass, NaNInTuple])
def test_check_numerics_finds_nan_in_any_output_kind(inner: type[nn.Module]) -> None:
    report = inn.inspect(Wraps(inner()), -torch.ones(2, 3), check_numerics=True)
    found = [f for f in report.findings if f.kind == "non-finite"]
    assert [f.layer for f in found] == ["inner"]


class TakesNested(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, batch: Result) -> Tensor:
        return self.fc(batch.hidden) + batch.score


def test_dataclass_input_is_listed_and_moved_to_meta() -> None:
    model = TakesNested()
    batch = Result(torch.randn(2, 3), torch.randn(2, 3))
    before = snapshot(model)
    report = inn.inspect(model, batch, device="meta")
    assert report.error is None
    assert [(t.path, t.device) for t in report.layers[0].inputs] == [
        ("[0].hidden", "meta"), ("[0].score", "meta"),
    ]  # fmt: skip
    assert report.layer("fc").inputs[0].source == "inputs[0]"
    assert batch.hidden.device.type == "cpu"  # the caller's object is not changed
    assert_unchanged(model, before)
