"""``preserve.Preserved`` on its own: a forward that changes the model is undone."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import pytest
import torch
from helpers import assert_unchanged, snapshot
from torch import Tensor, nn

from inspectnn.preserve import Preserved


class Meddler(nn.Module):
    """A forward that changes everything it can reach, then maybe raises."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.bn = nn.BatchNorm1d(4)
        self.drop = nn.Dropout(0.5)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.seen: list[int] = []
        self.fail = fail

    def forward(self, x: Tensor) -> Tensor:
        y = self.drop(self.bn(self.fc(x)))  # running stats updated, RNG drawn
        self.steps += 1  # a buffer written in place
        self.fc.bias = nn.Parameter(torch.ones(4))  # a parameter slot rebound
        self.bn.running_var = torch.zeros(4)  # a buffer slot rebound
        self.seen.append(len(self.seen))  # a plain list attribute grown
        self.last = y.detach()  # an attribute added
        self.fc.train(not self.fc.training)  # a flag flipped
        torch.rand(3)  # more RNG
        if self.fail:
            raise ValueError("boom")
        return y


@pytest.mark.parametrize("fail", [False, True])
@pytest.mark.parametrize("mode", ["train", "eval", "same"])
def test_everything_a_forward_changed_is_put_back(fail: bool, mode: Any) -> None:
    model = Meddler(fail)
    model.bn.eval()  # mixed flags
    before = snapshot(model)
    seen = model.seen
    raises = pytest.raises(ValueError, match="boom") if fail else nullcontext()
    with raises, Preserved(model, mode):
        model(torch.randn(8, 4))
    assert_unchanged(model, before)
    assert model.seen is seen and seen == [] and not hasattr(model, "last")


def test_the_mode_is_set_during_the_forward_and_only_then() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout())
    model[1].eval()
    with Preserved(model, "train"):
        assert all(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == [True, True, False]
    with Preserved(model, "same"):
        assert [m.training for m in model.modules()] == [True, True, False]
    with Preserved(model, "eval"):
        assert not any(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == [True, True, False]


def test_grads_put_back_only_when_asked() -> None:
    model = nn.Linear(3, 1)
    model(torch.randn(2, 3)).sum().backward()
    grad = model.weight.grad
    assert grad is not None
    saved = grad.clone()
    with Preserved(model, "same", save_grads=True):
        model(torch.randn(2, 3)).sum().backward()  # adds into .grad in place
        model.bias.grad = None
    assert model.weight.grad is grad and torch.equal(grad, saved)
    assert model.bias.grad is not None
    with Preserved(model, "same"):
        model(torch.randn(2, 3)).sum().backward()
    assert not torch.equal(grad, saved)  # not saved: the backward's sum stays


def test_buffer_values_are_left_alone_when_not_saved() -> None:
    bn = nn.BatchNorm1d(2)
    with Preserved(bn, "train", save_buffers=False):
        bn(torch.randn(4, 2) + 5)
    assert float(bn.running_mean.abs().sum()) > 0  # the forward's update stays
    assert int(bn.num_batches_tracked) == 1


def test_a_plain_tensor_attribute_written_in_place_is_reported_not_undone() -> None:
    holder = nn.Module()
    holder.cache = torch.zeros(2)
    holder.other = torch.zeros(2)
    with Preserved(holder, "same") as kept:
        holder.cache += 1
    assert kept.written == [holder.cache]
    assert torch.equal(holder.cache, torch.ones(2))


def test_eval_norm_stats_are_not_copied_since_torch_only_reads_them() -> None:
    bn = nn.BatchNorm2d(3).eval()
    with Preserved(bn, "same") as kept:
        assert kept._values == []
    with Preserved(bn, "train") as kept:
        assert len(kept._values) == 3  # mean, var and the batch counter
