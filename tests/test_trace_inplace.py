"""In-place writes are ops like any other: recorded, marked, and the source of later reads."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import inspectnn as inn


class FunctionalInplace(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc(x)
        F.relu(h, inplace=True)
        return h * 2


class PositionalInplace(FunctionalInplace):
    def forward(self, x: Tensor) -> Tensor:
        h = self.fc(x)
        F.leaky_relu(h, 0.1, True)
        return h * 2


class UnregisteredReLU(FunctionalInplace):
    def __init__(self) -> None:
        super().__init__()
        self.acts = [nn.ReLU(inplace=True)]  # a plain list: not a submodule

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc(x)
        self.acts[0](h)
        return h * 2


class SetItem(FunctionalInplace):
    def forward(self, x: Tensor) -> Tensor:
        h = self.fc(x)
        h[0] = 0.0
        return h * 2


@pytest.mark.parametrize(
    ("model", "op"),
    [
        (FunctionalInplace, "F.relu"),
        (PositionalInplace, "F.leaky_relu"),
        (UnregisteredReLU, "F.relu"),
        (SetItem, "Tensor.__setitem__"),
    ],
)
def test_inplace_write_is_recorded_and_feeds_the_next_op(model: type[nn.Module], op: str) -> None:
    report = inn.inspect(model(), torch.randn(2, 4))
    names = [o.name for o in report.ops]
    assert op in names, names
    write = report.ops[names.index(op)]
    assert write.inplace
    assert write.outputs[0].shape == (2, 4)
    mul = report.ops[-1]
    assert mul.name == "Tensor.mul" and not mul.inplace
    assert mul.inputs[0].source == f"ops[{write.index}]"  # it read what the write left
    as_json = json.loads(report.to_json())["ops"]
    assert as_json[write.index]["inplace"] is True and "inplace" not in as_json[-1]


def test_method_inplace_and_out_are_marked() -> None:
    class Net(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            y = x.clone()
            y.add_(1)
            z = torch.empty_like(x)
            torch.mul(x, 2, out=z)
            return y + z

    report = inn.inspect(Net(), torch.randn(3))
    marked = {o.name: o.inplace for o in report.ops}
    assert marked["Tensor.add_"] and marked["torch.mul"]
    assert not marked["Tensor.clone"] and not marked["Tensor.add"]


def test_graph_marks_inplace_ops() -> None:
    dot = inn.inspect(FunctionalInplace(), torch.randn(2, 4)).graph().source
    line = next(ln for ln in dot.splitlines() if "relu (in-place)" in ln)
    assert "dashed" in line
    assert "mul (in-place)" not in dot


def test_noop_that_returns_its_input_is_still_not_recorded() -> None:
    class Net(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return x.contiguous().to(x.dtype) + 1

    assert [o.name for o in inn.inspect(Net(), torch.randn(3)).ops] == ["Tensor.add"]


def test_property_reads_returning_the_tensor_are_no_writes_and_not_remembered() -> None:
    from inspectnn.trace import ops

    class Net(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            for _ in range(5):
                x = x.real  # a property: a new bound getter on every read, returns x itself
            return x + 1

    size = len(ops._INPLACE_AT)
    report = inn.inspect(Net(), torch.randn(3))
    assert [o.name for o in report.ops] == ["Tensor.add"]
    assert len(ops._INPLACE_AT) == size
