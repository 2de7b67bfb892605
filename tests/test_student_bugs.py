"""The classic student bugs: each diagnosis names the real cause, and its fix, applied as
written, makes the forward run (a fix that breaks the model is worse than none)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import inspectnn as inn


def mnist_cnn() -> nn.Sequential:
    """Written for a batch of 1-channel 28x28 images: [N, 1, 28, 28]."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.MaxPool2d(4), nn.Flatten(), nn.Linear(32 * 7 * 7, 10)
    )


def test_missing_batch_dimension_says_unsqueeze() -> None:
    x = torch.randn(1, 28, 28)  # one image without its batch dimension
    with pytest.raises(inn.ShapeMismatchError) as info:
        inn.inspect(mnist_cnn(), x)
    err = info.value
    assert err.fix == "add the batch dimension to the input: x.unsqueeze(0), giving [1, 1, 28, 28]"
    assert "nn.Linear(49, 10)" not in str(err)  # the old fix, which breaks the model
    assert "the model input [1, 28, 28] has no batch dimension: '0' (Conv2d)" in str(err)
    report = inn.inspect(mnist_cnn(), x.unsqueeze(0))  # the fix, applied
    assert report.error is None and report.outputs[0].shape == (1, 10)


def test_missing_batch_dimension_before_batchnorm2d_says_unsqueeze() -> None:
    """Without the check, BatchNorm2d's rank rule said to use BatchNorm1d instead."""
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
    x = torch.randn(1, 28, 28)
    with pytest.raises(inn.ShapeMismatchError) as info:
        inn.inspect(model, x)
    assert info.value.layer == "1"
    assert info.value.fix.startswith("add the batch dimension to the input: x.unsqueeze(0)")
    assert inn.inspect(model, x.unsqueeze(0)).error is None  # applied


def test_a_batched_input_of_the_wrong_size_is_not_called_unbatched() -> None:
    with pytest.raises(inn.ShapeMismatchError) as info:
        inn.inspect(mnist_cnn(), torch.randn(2, 1, 32, 32))
    assert "unsqueeze" not in str(info.value)
    assert info.value.fix.startswith("nn.Linear(2048, 10)")


class Tagger(nn.Module):
    """Token ids [batch, seq] -> one class per sequence from the last time step."""

    def __init__(self, batch_first: bool = False, seq_first_code: bool = False) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 8)
        self.lstm = nn.LSTM(8, 16, batch_first=batch_first)
        self.fc = nn.Linear(16, 3)
        self.seq_first_code = seq_first_code

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.lstm(self.emb(x))
        last = out[-1] if self.seq_first_code else out[:, -1, :]
        y: Tensor = self.fc(last)
        return y


def _batch_first(report: inn.Report) -> list[inn.Finding]:
    return [f for f in report.findings if f.kind == "batch-first"]


def test_lstm_without_batch_first_fed_batch_first_is_a_warning() -> None:
    ids = torch.randint(0, 50, (4, 7))  # (batch, seq)
    report = inn.inspect(Tagger(), ids)
    assert report.error is None  # it runs: torch says nothing
    (found,) = _batch_first(report)
    assert found.severity == "warning" and found.layer == "lstm"
    assert "(seq=4, batch=7, features=8)" in found.message
    assert "removing dimension 1" in found.message
    assert found.fix.startswith("nn.LSTM(8, 16, batch_first=True)")
    fixed = Tagger(batch_first=True)  # the fix, applied
    after = inn.inspect(fixed, ids)
    assert after.error is None and not _batch_first(after)
    assert after.outputs[0].shape == (4, 3)


def test_correct_lstms_get_no_batch_first_warning() -> None:
    seq_first = inn.inspect(Tagger(seq_first_code=True), torch.randint(0, 50, (7, 4)))
    assert seq_first.error is None and not _batch_first(seq_first)
    batch_first = inn.inspect(Tagger(batch_first=True), torch.randint(0, 50, (4, 7)))
    assert batch_first.error is None and not _batch_first(batch_first)


class StateFromBatch(nn.Module):
    """h_0 built from x.size(0), the batch of a batch-first input, with a seq-first LSTM."""

    def __init__(self, batch_first: bool = False) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 16, batch_first=batch_first)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.zeros(1, x.size(0), 16)
        out: Tensor = self.lstm(x, (h, torch.zeros_like(h)))[0]
        return out


def test_h0_from_the_batch_says_batch_first_not_a_new_state() -> None:
    x = torch.randn(4, 7, 8)
    with pytest.raises(inn.ShapeMismatchError) as info:
        inn.inspect(StateFromBatch(), x)
    err = info.value
    assert err.fix.startswith("nn.LSTM(8, 16, batch_first=True): the state's batch (4)")
    assert "torch.zeros" not in err.fix
    assert inn.inspect(StateFromBatch(batch_first=True), x).error is None  # applied


def test_h0_of_a_seq_first_lstm_is_not_flagged() -> None:
    class SeqFirst(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(8, 16)

        def forward(self, x: Tensor) -> Tensor:
            h = torch.zeros(1, x.size(1), 16)
            out: Tensor = self.lstm(x, (h, torch.zeros_like(h)))[0]
            return out.mean(0)

    report = inn.inspect(SeqFirst(), torch.randn(7, 4, 8))
    assert report.error is None and not _batch_first(report)


class Shifted(nn.Module):
    """Labels 0..99 shifted to -1..98 before the lookup."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(100, 16)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.emb(x - 1)
        return out


def test_negative_embedding_index_names_the_producer_not_the_same_layer() -> None:
    with pytest.raises(inn.ShapeMismatchError) as info:
        inn.inspect(nn.Embedding(100, 16), torch.tensor([[3, -1]]))
    err = info.value
    assert "nn.Embedding(100, 16)" not in err.fix  # the old fix: the same layer
    assert "negative index is never valid" in str(err)
    assert err.got == "index -1"
    assert "input from: the model input [1, 2]" in str(err)
    assert "x.masked_fill(x < 0, 0)" in err.fix
    fixed = torch.tensor([[3, -1]]).masked_fill(torch.tensor([[3, -1]]) < 0, 0)
    assert inn.inspect(nn.Embedding(100, 16), fixed).error is None  # applied
    with pytest.raises(inn.ShapeMismatchError) as info:
        inn.inspect(Shifted(), torch.tensor([[0, 5]]))
    assert info.value.producer == "Tensor.sub"
    assert "input from: Tensor.sub in the root module" in str(info.value)


@pytest.mark.parametrize(
    ("given", "fix", "convert"),
    [
        (np.ones((2, 3), dtype=np.float32), "torch.from_numpy(x).float()",
         lambda x: torch.from_numpy(x).float()),
        (np.ones((2, 3)), "torch.from_numpy(x).float()", lambda x: torch.from_numpy(x).float()),
        ([[1.0, 2.0, 3.0]], "torch.tensor(x, dtype=torch.float32)",
         lambda x: torch.tensor(x, dtype=torch.float32)),
    ],
)  # fmt: skip
def test_numpy_and_list_inputs_say_how_to_make_a_tensor(
    given: object, fix: str, convert: Callable[[Any], Tensor]
) -> None:
    with pytest.raises(inn.ForwardError) as info:
        inn.inspect(nn.Linear(3, 2), given)
    text = str(info.value)
    assert "torch layers take torch tensors" in text
    assert text.splitlines()[-1].startswith("  fix:        convert the ")
    assert fix in text
    assert inn.inspect(nn.Linear(3, 2), convert(given)).error is None  # applied


class Branches(nn.Module):
    def __init__(self, padding: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(3, 8, 3, padding=padding)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.a(x), self.b(x)], dim=1)


def test_cat_names_every_producer_and_the_dimension() -> None:
    with pytest.raises(inn.ForwardError) as info:
        inn.inspect(Branches(padding=0), torch.randn(1, 3, 16, 16))
    text = str(info.value)
    assert "input 0:    [1, 8, 16, 16] from a (Conv2d): [1, 3, 16, 16] -> [1, 8, 16, 16]" in text
    assert "input 1:    [1, 8, 14, 14] from b (Conv2d): [1, 3, 16, 16] -> [1, 8, 14, 14]" in text
    assert "at fault:   dimension 2: sizes 16, 14" in text
    assert text.splitlines()[-1] == (
        "  fix:        make dimension 2 agree before torch.cat: make 'b' nn.Conv2d(3, 8, "
        "kernel_size=(3, 3), stride=(1, 1), padding='same') (padding='same' keeps a stride-1 "
        "conv's size)"
    )
    model = Branches(padding=0)
    model.b = nn.Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding="same")  # applied
    assert inn.inspect(model, torch.randn(1, 3, 16, 16)).error is None


def test_cat_of_unrelated_sizes_says_how_to_make_them_agree() -> None:
    class Pooled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(3, 8, 3, padding=1)
            self.pool = nn.MaxPool2d(2)

        def forward(self, x: Tensor) -> Tensor:
            return torch.cat([self.a(x), self.pool(x)], dim=1)

    with pytest.raises(inn.ForwardError) as info:
        inn.inspect(Pooled(), torch.randn(1, 3, 16, 16))
    last = str(info.value).splitlines()[-1]
    assert "input 1:    [1, 3, 8, 8] from pool (MaxPool2d)" in str(info.value)
    assert last.startswith("  fix:        make dimension 2 agree before torch.cat: change the ")
    assert "F.interpolate(..., size=...)" in last


def test_stack_checks_every_dimension() -> None:
    class Stack(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 3), nn.Linear(4, 5)

        def forward(self, x: Tensor) -> Tensor:
            return torch.stack([self.a(x), self.b(x)])

    with pytest.raises(inn.ForwardError) as info:
        inn.inspect(Stack(), torch.randn(2, 4))
    assert "at fault:   dimension 1: sizes 3, 5 (torch.stack needs every dimension" in str(
        info.value
    )


def test_empty_input_size_says_the_input_has_no_dimensions() -> None:
    with pytest.raises(inn.InvalidInputError, match=r"input_size \(\) has no dimensions"):
        inn.inspect(nn.Linear(3, 2), input_size=())


def test_a_0d_input_is_not_told_to_build_linear_0() -> None:
    with pytest.raises(inn.ShapeMismatchError) as info:
        inn.inspect(nn.Linear(3, 2), torch.tensor(1.0))
    assert "nn.Linear(0" not in info.value.fix
    assert info.value.fix == "give the model a tensor with its features last, e.g. shape (1, 3)"
    assert inn.inspect(nn.Linear(3, 2), torch.ones(1, 3)).error is None


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(8, 16)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.rnn(x)[0]
        return out


def test_batch_first_warning_sees_through_a_module_that_returns_the_output() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = Encoder()

        def forward(self, x: Tensor) -> Tensor:
            return self.enc(x).mean(dim=1)  # time of a batch-first input: batch here

    (found,) = _batch_first(inn.inspect(Net(), torch.randn(4, 7, 8)))
    assert found.layer == "enc.rnn"
    assert found.fix.startswith("nn.GRU(8, 16, batch_first=True)")


def test_a_numpy_input_to_a_conv_says_how_to_make_a_tensor() -> None:
    """conv2d words its refusal differently from F.linear; the fix is the same."""
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 8 * 8, 2))
    given = np.zeros((1, 1, 8, 8), dtype=np.float32)
    with pytest.raises(inn.ForwardError) as info:
        inn.inspect(model, given)
    assert str(info.value).splitlines()[-1] == (
        "  fix:        convert the NumPy array to a tensor first: torch.from_numpy(x).float() "
        "(or torch.as_tensor(x, dtype=torch.float32))"
    )
    assert inn.inspect(model, torch.from_numpy(given).float()).error is None  # applied
