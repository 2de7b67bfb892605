"""measure_step leaves the model as it was, builds the optimizer on shadows, and says why not.

Also: the gradients it reports equal a plain ``loss.backward()``'s.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from helpers import assert_unchanged, snapshot
from torch import nn
from torch.utils._python_dispatch import _len_torch_dispatch_stack

from inspectnn.errors import InvalidInputError
from inspectnn.training.optim import shadow_optimizer
from inspectnn.training.records import CATEGORIES
from inspectnn.training.standalone import measure_step


class Classifier(nn.Module):
    """BatchNorm (buffers written in train mode), dropout (RNG) and an unused layer."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(12, 16)
        self.bn = nn.BatchNorm1d(16)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(16, 3)
        self.unused = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(torch.relu(self.bn(self.fc(x)))))


def test_the_model_and_its_gradients_are_left_exactly_as_they_were() -> None:
    model = Classifier().eval()
    model.fc.weight.grad = torch.full_like(model.fc.weight, 3.0)  # a gradient the user had
    x, y = torch.randn(8, 12), torch.randint(0, 3, (8,))
    before = snapshot(model)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    measure_step(model, x, loss=nn.CrossEntropyLoss(), target=y, optimizer=opt)
    assert_unchanged(model, before)  # values, .grad (3.0, same object), flags, hooks, RNG
    assert model.head.weight.grad is None
    assert opt.state == {}  # the user's optimizer never stepped
    assert all(p.device.type == "cpu" for g in opt.param_groups for p in g["params"])


def test_input_gradients_are_put_back() -> None:
    x = torch.randn(4, 12, requires_grad=True)
    measure_step(nn.Linear(12, 2), x)
    assert x.grad is None


def test_gradients_equal_a_plain_backward_on_the_same_input_and_seed() -> None:
    model = Classifier()
    x, y = torch.randn(8, 12), torch.randint(0, 3, (8,))
    torch.manual_seed(7)
    _, grads = measure_step(model, x, loss=nn.CrossEntropyLoss(), target=y)
    torch.manual_seed(7)
    nn.CrossEntropyLoss()(model(x), y).backward()
    by_name = {g.name: g.grad for g in grads.params if g.grad is not None}
    for name, p in model.named_parameters():
        if p.grad is None:
            assert name in grads.missing
            continue
        assert by_name[name].shape == tuple(p.grad.shape)
        assert by_name[name].norm == pytest.approx(float(p.grad.norm()), rel=1e-6)
    assert grads.missing == ("unused.weight", "unused.bias")


def test_meta_gradients_have_shapes_and_no_norms() -> None:
    model = Classifier().to("meta")
    _, grads = measure_step(model, torch.empty(8, 12, device="meta"))
    got = {g.name: g.grad for g in grads.params if g.grad is not None}
    assert got["fc.weight"].shape == (16, 12)
    assert all(g.norm is None for g in got.values())


def test_an_optimizer_instance_reports_frozen_and_left_out_parameters() -> None:
    model = Classifier()
    model.fc.bias.requires_grad_(False)
    opt = torch.optim.SGD([model.fc.weight, model.fc.bias], lr=0.1, momentum=0.9)
    report, grads = measure_step(model, torch.randn(8, 12), optimizer=opt)
    assert grads.frozen_in_optimizer == ("fc.bias",)
    assert "head.weight" in grads.left_out_of_optimizer
    assert "fc.weight" not in grads.left_out_of_optimizer
    # only fc.weight is stepped: one momentum buffer of its size
    assert report.category("optimizer_state") == 16 * 12 * 4
    assert report.optimizer == "SGD"


@pytest.mark.parametrize(
    "spec",
    ["adamw", torch.optim.AdamW, lambda ps: torch.optim.AdamW(ps, lr=0.5)],
    ids=["name", "class", "callable"],
)
def test_every_way_of_naming_adamw_gives_the_same_state(spec: Any) -> None:
    report, _ = measure_step(nn.Linear(12, 4), torch.randn(2, 12), optimizer=spec)
    assert report.category("optimizer_state") == 2 * (12 * 4 + 4) * 4 + 2 * 4


def test_shadows_are_meta_and_cuda_gets_foreach() -> None:
    model = nn.Linear(3, 3)
    named = list(model.named_parameters())
    cpu = shadow_optimizer("adamw", named, real_device="cpu")
    cuda = shadow_optimizer("adamw", named, real_device="cuda")
    assert cpu.optimizer.param_groups[0]["foreach"] is None  # torch's own default
    assert cuda.optimizer.param_groups[0]["foreach"] is True
    shadows = list(cuda.shadows.values())
    assert all(s.device.type == "meta" and s.is_leaf for s in shadows)
    assert {id(p) for _, p in named}.isdisjoint(id(s) for s in shadows)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"optimizer": "lion"}, "adamw"),
        ({"optimizer": 3}, "Optimizer class"),
        ({"optimizer": lambda ps: None}, "returned NoneType"),
        ({"amp": "int8"}, "bf16"),
        ({"target": torch.zeros(2)}, "loss="),
        ({"loss": lambda out: out}, "one-element"),
    ],
)
def test_bad_arguments_get_an_inspectnn_error_that_says_what_to_pass(
    kwargs: dict[str, Any], words: str
) -> None:
    model, x = nn.Linear(3, 2), torch.randn(2, 3)
    before = snapshot(model)
    with pytest.raises(InvalidInputError, match=words):
        measure_step(model, x, **kwargs)
    assert_unchanged(model, before)


def test_a_frozen_model_is_told_to_unfreeze() -> None:
    model = nn.Linear(3, 2).requires_grad_(False)
    with pytest.raises(InvalidInputError, match="requires grad"):
        measure_step(model, torch.randn(2, 3))
    assert model.weight.grad is None


def test_a_model_output_with_several_tensors_sums_the_floating_ones() -> None:
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> dict[str, Any]:
            h = self.a(x)
            return {"h": h, "pair": (h * 2, h.argmax(-1))}

    report, grads = measure_step(Two(), torch.randn(2, 3))
    assert {g.name for g in grads.params if g.grad is not None} == {"a.weight", "a.bias"}
    assert report.category("gradients") == (3 * 2 + 2) * 4
    assert len(report.timeline) > 0 and set(CATEGORIES) == set(report.to_dict()["held"])


class Failing(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.fc(x)
        raise RuntimeError("broken forward")


def test_a_failing_forward_leaves_no_hook_no_grad_and_no_mode() -> None:
    model, x = Failing(), torch.randn(2, 3)
    before = snapshot(model)
    with pytest.raises(RuntimeError, match="broken forward"):
        measure_step(model, x, optimizer="adamw")
    assert_unchanged(model, before)
    assert _len_torch_dispatch_stack() == 0


def test_amp_on_meta_puts_the_models_own_tensors_back() -> None:
    model = Classifier().to("meta")
    before = snapshot(model)
    report, grads = measure_step(model, torch.empty(8, 12, device="meta"), amp="fp16")
    assert_unchanged(model, before)  # the fake stand-ins are gone from every slot
    assert report.amp == "float16" and report.device == "meta"
    assert {g.name for g in grads.params if g.grad is not None} >= {"fc.weight", "head.weight"}
