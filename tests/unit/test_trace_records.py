"""The raw trace's named slots (inspectnn/trace/raw.py): what each slot holds, that
finished records stay plain tuples the garbage collector stops tracking, and
provenance codes with no cap."""

from __future__ import annotations

import gc
from typing import NamedTuple

import pytest
import torch
from torch import Tensor, nn

import inspectnn as inn
from inspectnn.trace import raw
from inspectnn.trace.raw import (
    CALL,
    CODE,
    DEVICE,
    DTYPE,
    FAILED,
    FLOPS,
    INPUTS,
    LEAF,
    MODULE,
    OUTPUTS,
    PARENT,
    PATH,
    POSITION,
    SHAPE,
    TEXT,
    decode,
    finished,
    input_code,
    layer_code,
    op_code,
)
from inspectnn.trace.tracer import Tracer


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.act = nn.ReLU()

        self.proj = nn.Parameter(torch.ones(3, 3))

    def forward(self, x: Tensor, scale: float = 2.0) -> Tensor:
        return (self.act(self.fc(x)) * scale) @ self.proj


def _trace(model: nn.Module, *args: object) -> Tracer:
    with Tracer(model) as tracer:
        model(*args)
    return tracer


def test_each_slot_of_a_finished_call_holds_what_its_name_says() -> None:
    model = Net()
    root, fc, act = _trace(model, torch.randn(2, 4)).raw_calls()
    assert [r[MODULE] for r in (root, fc, act)] == [id(model), id(model.fc), id(model.act)]
    assert [r[CALL] for r in (root, fc, act)] == [0, 0, 0]
    assert [r[PARENT] for r in (root, fc, act)] == [-1, 0, 0]
    assert [r[FAILED] for r in (root, fc, act)] == [False, False, False]
    assert [r[LEAF] for r in (root, fc, act)] == [None, "linear", None]
    # the root's own matmul, 2 * 2*3*3; fc's FLOPs follow from its shapes in build()
    assert [r[FLOPS] for r in (root, fc, act)] == [36, 0, 0]
    (x,) = fc[INPUTS]
    assert (x[PATH], x[SHAPE], x[DTYPE], x[DEVICE], x[TEXT]) == (
        "[0]", (2, 4), torch.float32, torch.device("cpu"), None,
    )  # fmt: skip
    assert decode(x[CODE]) == ("inputs", 0) and x[POSITION] == 0
    (y,) = act[INPUTS]
    assert decode(y[CODE]) == ("layers", 1) and y[SHAPE] == (2, 3)
    (out,) = root[OUTPUTS]
    assert decode(out[CODE]) == ("ops", 1)  # the root's output was made by its matmul


def test_a_non_tensor_value_has_text_and_no_source() -> None:
    (root, *_) = _trace(Net(), torch.randn(2, 4), 3.0).raw_calls()
    scale = root[INPUTS][1]
    assert (scale[PATH], scale[SHAPE], scale[TEXT], scale[CODE]) == ("[1]", None, "3.0", -1)


def _collect() -> None:
    """Full collections, one per level of nesting: a pass untracks a tuple only once
    the tuples inside it are untracked (call -> metas -> meta -> shape)."""
    for _ in range(4):
        gc.collect()


def test_finished_records_are_plain_tuples_the_collector_stops_tracking() -> None:
    tracer = _trace(Net(), torch.randn(2, 4))
    records = [*tracer.raw_calls(), *tracer._ops]
    _collect()
    assert all(type(r) is tuple for r in records)
    assert not any(gc.is_tracked(r) for r in records)
    metas = [m for r in tracer.raw_calls() for m in (*r[INPUTS], *r[OUTPUTS])]
    assert metas and not any(gc.is_tracked(m) for m in metas)


def test_a_named_tuple_would_stay_tracked_which_is_why_records_are_plain() -> None:
    class Record(NamedTuple):
        module: int
        shape: tuple[int, ...]

    named, plain = Record(1, (2, 3)), (1, (2, 3))
    _collect()
    assert gc.is_tracked(named) and not gc.is_tracked(plain)


def test_finished_makes_outputs_empty_and_drops_the_running_slots() -> None:
    running = [7, 1, 0, (), None, 12, True, "linear", 3, True]
    assert running[raw.INDEX] == 3 and running[raw.WAS_ON] is True
    assert finished(running) == (7, 1, 0, (), (), 12, True, "linear")


@pytest.mark.parametrize("index", [0, 1, 63, 64, 65, 127, 128, 10**9])
def test_provenance_codes_round_trip_with_no_cap(index: int) -> None:
    codes = {layer_code(index), op_code(index), input_code(index)}
    assert len(codes) == 3 and raw.NO_CODE not in codes
    assert decode(layer_code(index)) == ("layers", index)
    assert decode(op_code(index)) == ("ops", index)
    assert decode(input_code(index)) == ("inputs", index)


@pytest.mark.parametrize("encode", [layer_code, op_code, input_code])
def test_a_negative_index_has_no_code(encode: object) -> None:
    assert callable(encode)
    with pytest.raises(ValueError, match=">= 0"):
        encode(-1)


class Many(nn.Module):
    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return tuple(x + i for i in range(130))


class PickLate(nn.Module):
    """Takes output 129 of a layer, and piece 99 of a 100-way split (an op)."""

    def __init__(self) -> None:
        super().__init__()
        self.many = Many()
        self.fc = nn.Linear(100, 4)
        self.head = nn.Linear(1, 4)

    def forward(self, x: Tensor) -> Tensor:
        late = self.many(x)[129]
        pieces = torch.split(late, 1, dim=1)
        return self.fc(late) + self.head(pieces[99])


def test_sources_past_64_outputs_of_a_layer_and_of_an_op() -> None:
    report = inn.inspect(PickLate(), torch.randn(2, 100))
    many = report.layer("many").index
    split = next(op.index for op in report.ops if op.name == "torch.split")
    assert report.layer("fc").inputs[0].source == f"layers[{many}].outputs[129]"
    assert report.layer("head").inputs[0].source == f"ops[{split}].outputs[99]"
