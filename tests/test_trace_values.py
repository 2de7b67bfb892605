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


class KV:
    """A cache-like object: one per forward, handed to every layer, filled layer by layer."""

    def __init__(self) -> None:
        self.layers: list[Tensor] = []


class Fill(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x: Tensor, cache: KV) -> Tensor:
        out = self.fc(x)
        cache.layers.append(out)
        return out


class Stack(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([Fill() for _ in range(3)])

    def forward(self, x: Tensor, cache: KV) -> tuple[Tensor, KV]:
        for block in self.blocks:
            x = block(x, cache)
        return x, cache


def test_cache_objects_listed_in_outputs_and_model_inputs_whole_inside() -> None:
    given = KV()
    given.layers.append(torch.zeros(1, 3))  # a cache from an earlier step
    report = inn.inspect(Stack(), torch.randn(1, 3), given)
    assert [m.path for m in report.layers[0].inputs] == ["[0]", "[1].layers[0]"]
    inner = report.layer("blocks.2").inputs
    assert [(m.path, m.value) for m in inner] == [("[0]", None), ("[1]", "<KV>")]
    assert [m.path for m in report.outputs] == ["[0]"] + [f"[1].layers[{i}]" for i in range(4)]
    # the three blocks fold: the growing cache does not make their inputs differ
    assert "blocks.0 … blocks.2 (Fill) x3" in str(report)


class ManyStates(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(3, 3) for _ in range(4)])

    def forward(self, x: Tensor) -> dict[str, object]:
        states = []
        for block in self.blocks:
            x = block(x)
            states.append(x)
        return {"out": x, "states": states}


def test_graph_draws_a_nested_output_group_as_one_node() -> None:
    report = inn.inspect(ManyStates(), torch.randn(1, 3))
    assert len(report.outputs) == 5
    dot = report.graph().source
    outs = [ln for ln in dot.splitlines() if ln.strip().startswith("out") and "label=" in ln]
    assert len(outs) == 2 and "['states']" in outs[1] and "4 tensors" in dot
    assert sum("-> out1" in ln for ln in dot.splitlines()) == 1  # one edge, not one per tensor
