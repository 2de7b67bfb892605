"""``inspect(..., backward=True)`` gives what a plain PyTorch step gives, and says what to pass.

The reference is a plain ``loss.backward()`` on a deep copy of the model, on the same
input and seed, in train mode (the step's default): each parameter's ``.grad`` shape
and norm, a layer's output gradient caught with a plain tensor hook, the loss value.
Then the cases a training step meets: a loss with a target, autocast, tied and frozen
weights, meta; bad arguments; a forward that fails; a report that pickles.
"""

from __future__ import annotations

import copy
import pickle
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import pytest
import torch
from helpers import explains
from torch import Tensor, nn

import inspectnn as inn
from inspectnn.training.records import TRAINING_SCHEMA, TrainingReport

RTOL = 1e-5


def _classifier() -> nn.Sequential:
    """Linear, BatchNorm (batch statistics in train mode), ReLU, Linear: no dropout."""
    torch.manual_seed(0)
    layers = [("fc", nn.Linear(12, 16)), ("bn", nn.BatchNorm1d(16)), ("act", nn.ReLU()),
              ("head", nn.Linear(16, 3))]  # fmt: skip
    return nn.Sequential(OrderedDict(layers))


def _plain_step(
    model: nn.Module, x: Tensor, loss: Callable[[Tensor], Tensor], layer: str
) -> tuple[nn.Module, float, Tensor]:
    """A plain step on a copy of ``model`` in train mode: the copy (its ``.grad`` set),
    the loss value, and the gradient of ``layer``'s output caught by a tensor hook."""
    plain = copy.deepcopy(model).train()
    caught: list[Tensor] = []

    def hook(_m: nn.Module, _a: Any, out: Tensor) -> None:
        out.register_hook(caught.append)  # type: ignore[no-untyped-call]

    handle = plain.get_submodule(layer).register_forward_hook(hook)
    value = loss(plain(x))
    value.backward()  # type: ignore[no-untyped-call]
    handle.remove()
    return plain, float(value.detach()), caught[0]


def _training(report: inn.Report) -> TrainingReport:
    assert report.training is not None
    return report.training


def _assert_same_gradients(report: inn.Report, plain: nn.Module) -> None:
    """Every parameter's gradient shape and float32 norm equal the plain step's."""
    training = _training(report)
    by_name = {p.name: p for p in training.params}
    assert list(by_name) == [n for n, _ in plain.named_parameters()]
    for name, p in plain.named_parameters():
        got = by_name[name].grad
        assert p.grad is not None and got is not None, name
        assert got.shape == tuple(p.grad.shape), name
        assert got.dtype == str(p.grad.dtype).removeprefix("torch.")
        assert got.norm == pytest.approx(float(p.grad.norm()), rel=RTOL), name


def _assert_layer_output_gradient(report: inn.Report, layer: str, want: Tensor) -> None:
    training = _training(report)
    (grad,) = [g for g in training.layers if g.name == layer]
    assert report.layers[grad.index].name == layer
    (out,) = grad.outputs
    assert out.shape == tuple(want.shape) and out.dtype == str(want.dtype).removeprefix("torch.")
    assert out.norm == pytest.approx(float(want.float().norm()), rel=RTOL)
    assert grad.norm == pytest.approx(out.norm, rel=RTOL)


def test_default_loss_is_the_outputs_sum_and_gradients_equal_a_plain_backward() -> None:
    model, x = _classifier(), torch.randn(8, 12)
    report = inn.inspect(model, x, backward=True)
    plain, value, fc_grad = _plain_step(model, x, lambda out: out.sum(), "fc")
    training = _training(report)
    assert report.mode == "train" and training.loss == "sum of the output"
    assert training.loss_value == pytest.approx(value, rel=RTOL)
    _assert_same_gradients(report, plain)
    _assert_layer_output_gradient(report, "fc", fc_grad)
    assert all(p.grad is None for p in model.parameters())  # the plain step ran on a copy


def test_cross_entropy_with_a_target_equals_a_plain_backward() -> None:
    model, x, y = _classifier(), torch.randn(8, 12), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    report = inn.inspect(model, x, loss=nn.CrossEntropyLoss(), target=y, optimizer="adamw")
    plain, value, head_grad = _plain_step(model, x, lambda o: nn.CrossEntropyLoss()(o, y), "head")
    training = _training(report)
    assert training.loss == "CrossEntropyLoss"
    assert training.loss_value == pytest.approx(value, rel=RTOL)
    _assert_same_gradients(report, plain)
    _assert_layer_output_gradient(report, "head", head_grad)
    # the backward runs from the loss: the head's output gradient arrives first
    order = {g.name: g.order for g in training.layers}
    assert order["head"] < order["bn"] < order["fc"]
    assert report.memory is training.memory and training.memory.optimizer == "AdamW"


def _mlp(blocks: int, width: int) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(*[m for _ in range(blocks) for m in (nn.Linear(width, width), nn.ReLU())])


def test_bf16_autocast_saves_bf16_activations_and_equals_plain_autocast() -> None:
    """Under ``amp="bf16"`` on the CPU the saved activations are bf16: for a batch of
    ``b`` through ``n`` blocks of ``Linear(d, d), ReLU`` that is the input's bf16 copy
    and each ReLU's output (``b*d*2`` bytes each) and the bf16 weight copies of all but
    the first Linear (the first needs none: its input takes no gradient); in float32,
    each ReLU's output (``b*d*4``), the input and weights being counted as such."""
    b, d, n = 512, 8, 3
    model, x = _mlp(n, d), torch.randn(b, d)
    full = inn.inspect(model, x, backward=True)
    half = inn.inspect(model, x, backward=True, amp="bf16")
    assert full.memory is not None and half.memory is not None
    assert full.memory.category("activations") == n * b * d * 4
    assert half.memory.category("activations") == (n + 1) * b * d * 2 + (n - 1) * d * d * 2
    assert half.memory.category("activations") < full.memory.category("activations")
    assert half.memory.amp == "bfloat16" and full.memory.amp is None
    assert {g.dtype for layer in _training(half).layers for g in layer.outputs} == {"bfloat16"}

    def autocast_sum(out: Tensor) -> Tensor:
        return out.sum()

    plain = copy.deepcopy(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = autocast_sum(plain(x))
    value.backward()  # type: ignore[no-untyped-call]
    assert _training(half).loss_value == pytest.approx(float(value.detach()), rel=RTOL)
    _assert_same_gradients(half, plain)


class TiedLM(nn.Module):
    """An embedding and an output head sharing one weight."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(10, 6)
        self.mix = nn.Linear(6, 6)
        self.head = nn.Linear(6, 10, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, ids: Tensor) -> Tensor:
        out: Tensor = self.head(torch.tanh(self.mix(self.embed(ids))))
        return out


def test_tied_weights_are_one_parameter_with_both_uses_summed() -> None:
    model, ids = TiedLM(), torch.tensor([[1, 2, 3, 4], [5, 6, 7, 1]])
    target = torch.tensor([[2, 3, 4, 5], [6, 7, 1, 2]]).flatten()

    def loss(out: Tensor, y: Tensor) -> Tensor:
        return nn.functional.cross_entropy(out.flatten(0, 1), y)

    report = inn.inspect(model, ids, loss=loss, target=target)
    names = [p.name for p in _training(report).params]
    assert names.count("embed.weight") == 1 and "head.weight" not in names
    plain, value, _ = _plain_step(model, ids, lambda out: loss(out, target), "mix")
    assert _training(report).loss_value == pytest.approx(value, rel=RTOL)
    _assert_same_gradients(report, plain)  # embed.weight: the embedding's and the head's


def test_a_frozen_layer_gets_no_gradient_and_no_finding() -> None:
    model, x = _classifier(), torch.randn(8, 12)
    model.fc.requires_grad_(False)
    report = inn.inspect(model, x, backward=True)
    by_name = {p.name: p for p in _training(report).params}
    for name in ("fc.weight", "fc.bias"):
        assert by_name[name].grad is None and by_name[name].requires_grad is False
    assert by_name["bn.weight"].grad is not None and by_name["bn.weight"].requires_grad
    assert not [f for f in report.findings if f.layer == "fc" or "fc." in f.message]
    plain, _, _ = _plain_step(model, x, lambda out: out.sum(), "bn")
    for name, p in plain.named_parameters():
        if p.requires_grad:
            grad = by_name[name].grad
            assert grad is not None and p.grad is not None
            assert grad.norm == pytest.approx(float(p.grad.norm()), rel=RTOL)


def test_meta_gives_shapes_and_no_norms() -> None:
    model, x = _classifier(), torch.randn(8, 12)
    report = inn.inspect(model, x, device="meta", loss=nn.CrossEntropyLoss(),
                         target=torch.zeros(8, dtype=torch.long), optimizer="sgd")  # fmt: skip
    training = _training(report)
    assert report.device == "meta" and training.loss_value is None
    shapes = {p.name: p.grad.shape for p in training.params if p.grad is not None}
    assert shapes == {n: tuple(p.shape) for n, p in model.named_parameters()}
    assert all(p.grad is not None and p.grad.norm is None for p in training.params)
    (fc,) = [g for g in training.layers if g.name == "fc"]
    assert [g.shape for g in fc.outputs] == [(8, 16)] and fc.norm is None
    assert all(g.norm is None for layer in training.layers for g in layer.outputs + layer.inputs)
    assert training.memory.device == "meta" and training.memory.category("gradients") > 0


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"loss": lambda out: out}, "loss= that reduces"),
        ({"optimizer": "nonsense"}, "'adamw'"),
        ({"amp": "int8"}, "'bf16'"),
        ({"target": torch.zeros(8)}, "pass loss="),
        ({"loss": nn.CrossEntropyLoss(), "target": torch.zeros(3, dtype=torch.long)}, "target="),
    ],
    ids=["non-scalar loss", "unknown optimizer", "int8 amp", "target without loss", "bad target"],
)
def test_bad_arguments_say_what_to_pass(kwargs: dict[str, Any], words: str) -> None:
    """An InvalidInputError in inspectnn's words, not a ForwardError blaming the forward."""
    model = _classifier()
    with pytest.raises(inn.InvalidInputError) as info:
        inn.inspect(model, torch.randn(8, 12), **kwargs)
    assert not isinstance(info.value, inn.ForwardError)
    assert words in str(info.value) and explains(info.value)
    assert all(p.grad is None for p in model.parameters())


def test_a_failing_forward_with_backward_is_the_usual_diagnosed_error() -> None:
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(4, 3))
    x = torch.randn(4, 6)
    with pytest.raises(inn.ShapeMismatchError) as info:
        inn.inspect(model, x, backward=True, optimizer="adamw")
    err = info.value
    assert err.layer == "2" and err.expected == "[*, 4]" and err.got == "[4, 5]"
    assert "nn.Linear(5, 3)" in err.fix
    report = inn.inspect(model, x, backward=True, on_error="report")
    assert report.error is not None and report.error.type == "ShapeMismatchError"
    assert report.training is None and report.memory is None


def test_the_report_pickles_and_compares_equal_with_its_training_step() -> None:
    report = inn.inspect(_classifier(), torch.randn(8, 12), backward=True, optimizer="adamw")
    back = pickle.loads(pickle.dumps(report))
    assert back == report and hash(back) == hash(report)
    assert back.training == report.training and back.training is not None
    assert back.to_json() == report.to_json()
    assert back.to_dict()["training"]["schema"] == TRAINING_SCHEMA
    plain = inn.inspect(_classifier(), torch.randn(8, 12), mode="train")
    assert plain != report and plain.training is None


def test_amp_casts_are_not_reported_as_dtype_narrowing_or_promotion() -> None:
    """Under amp= the bf16 outputs of Linear and the float32 of LayerNorm are autocast's
    own casts, asked for (they were reported as narrowing before)."""
    model = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), nn.Linear(8, 2))
    x = torch.randn(4, 8)
    for report in (inn.inspect(model, x, amp="bf16"),
                   inn.inspect(model, x, backward=True, amp="bf16")):  # fmt: skip
        assert report.layer("0").outputs[0].dtype == "bfloat16"
        kinds = {f.kind for f in report.findings}
        assert not kinds & {"dtype-narrowing", "dtype-promotion"}, report.findings
