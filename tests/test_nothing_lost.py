"""After inspect returns or raises, the model is exactly what it was."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import models as zoo
import pytest
import torch
from helpers import assert_unchanged, snapshot
from torch import nn

import inspectnn as inn


def _mixed_state_model() -> nn.Module:
    """BatchNorm with running stats, dropout, a frozen layer, grads set, mixed flags."""
    torch.manual_seed(0)
    model = zoo.bn_dropout_mlp()
    model[0].weight.requires_grad_(False)
    model(torch.randn(4, 784)).sum().backward()  # .grad on the trainable tensors
    model[1].eval()  # one submodule in eval while the rest train
    return model


class Interrupting(nn.Module):
    """A model whose second layer raises KeyboardInterrupt in the middle of the forward."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(8)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.bn(x))
        raise KeyboardInterrupt


def _run(fn: Callable[[], Any]) -> BaseException | None:
    try:
        fn()
    except BaseException as err:  # the test inspects whatever was raised
        return err
    return None


@pytest.mark.parametrize("mode", ["eval", "train", "same"])
def test_success_leaves_everything(mode: str) -> None:
    model, x = _mixed_state_model(), torch.randn(4, 784)
    before = snapshot(model)
    inn.inspect(model, x, mode=mode)  # type: ignore[arg-type]
    assert_unchanged(model, before)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_shape_error_leaves_everything(mode: str) -> None:
    model, x = _mixed_state_model(), torch.randn(4, 100)
    before = snapshot(model)
    err = _run(lambda: inn.inspect(model, x, mode=mode))  # type: ignore[arg-type]
    assert isinstance(err, inn.ForwardError)
    assert_unchanged(model, before)


def test_keyboard_interrupt_propagates_and_leaves_everything() -> None:
    model, x = Interrupting().train(), torch.randn(4, 8)
    before = snapshot(model)
    err = _run(lambda: inn.inspect(model, x, mode="train"))
    assert isinstance(err, KeyboardInterrupt)
    assert_unchanged(model, before)


def test_batchnorm_statistics_restored_in_train_mode() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    stats = model[1].running_mean.clone(), model[1].running_var.clone()
    count = model[1].num_batches_tracked.clone()
    inn.inspect(model, torch.randn(8, 4) * 5 + 3, mode="train")
    assert torch.equal(model[1].running_mean, stats[0])
    assert torch.equal(model[1].running_var, stats[1])
    assert torch.equal(model[1].num_batches_tracked, count)


def test_rng_restored_even_with_dropout_in_train_mode() -> None:
    model, x = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)), torch.randn(8, 4)
    state = torch.get_rng_state()
    inn.inspect(model, x, mode="train")
    assert torch.equal(torch.get_rng_state(), state)


def test_input_size_does_not_touch_global_rng() -> None:
    model = zoo.SimpleCNN()
    state = torch.get_rng_state()
    inn.inspect(model, input_size=(2, 1, 28, 28))
    assert torch.equal(torch.get_rng_state(), state)


def test_meta_device_does_not_move_the_model() -> None:
    model, x = _mixed_state_model(), torch.randn(4, 784)
    before = snapshot(model)
    report = inn.inspect(model, x, device="meta", mode="train")
    assert report.device == "meta"
    assert report.outputs[0].device == "meta"
    assert_unchanged(model, before)


def test_meta_device_error_leaves_everything() -> None:
    model, x = _mixed_state_model(), torch.randn(4, 100)
    before = snapshot(model)
    err = _run(lambda: inn.inspect(model, x, device="meta"))
    assert isinstance(err, inn.ForwardError)
    assert_unchanged(model, before)


def test_user_hooks_stay_and_still_run() -> None:
    model = zoo.SimpleCNN()
    calls: list[str] = []
    handle = model.fc1.register_forward_hook(lambda m, a, o: calls.append("user"))
    x = torch.randn(2, 1, 28, 28)
    before = snapshot(model)
    inn.inspect(model, x)
    assert calls == ["user"]
    assert_unchanged(model, before)
    handle.remove()


def test_forward_that_replaces_a_buffer_object_is_undone() -> None:
    class Replacer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("count", torch.zeros(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.count = self.count + 1  # a new tensor object in the buffer slot
            return x * self.count

    model, x = Replacer(), torch.randn(2)
    before = snapshot(model)
    inn.inspect(model, x)
    assert_unchanged(model, before)


def test_tied_model_unchanged() -> None:
    model, ids = zoo.gpt2_tiny(), torch.randint(0, 64, (1, 8))
    before = snapshot(model)
    inn.inspect(model, ids, device="meta")
    inn.inspect(model, ids)
    assert_unchanged(model, before)
    assert model.lm_head.weight is model.wte.weight


def test_no_mode_left_on_torch_stacks_after_errors() -> None:
    from torch.utils._python_dispatch import _len_torch_dispatch_stack

    cases = [
        (zoo.BrokenFlattenCNN(), torch.randn(1, 3, 64, 64)),  # fails inside a torch Linear
        (zoo.BrokenViewCNN(), torch.randn(2, 1, 32, 32)),  # fails in the root's own code
        (Interrupting(), torch.randn(4, 8)),  # KeyboardInterrupt
    ]
    for model, x in cases:
        _run(lambda m=model, x=x: inn.inspect(m, x))
        assert torch._C._len_torch_function_stack() == 0
        assert _len_torch_dispatch_stack() == 0
    assert inn.inspect(zoo.SimpleCNN(), torch.randn(2, 1, 28, 28)).ops  # still traced after


def test_instance_forward_is_traced_and_put_back() -> None:
    """A module whose ``forward`` was replaced on the instance (as accelerate does) is
    traced through that replacement, which is back in place afterwards."""
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    lin = model[0]
    original = lin.forward
    calls: list[int] = []

    def patched(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return original(x) * 2

    lin.forward = patched  # type: ignore[method-assign]
    x = torch.randn(2, 4)
    before = snapshot(model)
    report = inn.inspect(model, x)
    assert calls == [1]
    assert report.layer("0").outputs[0].shape == (2, 3)
    assert lin.forward is patched
    assert_unchanged(model, before)
    with torch.no_grad():
        assert torch.equal(model(x), torch.relu(original(x) * 2))


class SignatureReader(nn.Module):
    """Reads its own ``forward`` signature during the forward, as some libraries do."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        import inspect as pyinspect

        assert list(pyinspect.signature(self.forward).parameters) == ["x", "scale"]
        assert list(pyinspect.signature(self.fc.forward).parameters) == ["input"]
        return self.fc(x) * scale


def test_forward_signature_visible_during_the_trace() -> None:
    model = SignatureReader()
    x = torch.randn(3, 4)
    before = snapshot(model)
    report = inn.inspect(model, x, scale=2.0)
    assert report.outputs[0].shape == (3, 2)
    assert report.layers[0].inputs[1].path == "scale"
    assert_unchanged(model, before)


def test_user_hook_that_changes_input_and_output() -> None:
    """User hooks run around the traced forward: the pre-hook's result is what the layer
    gets, the forward hook's result is what the model returns."""
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    h1 = model[0].register_forward_pre_hook(lambda m, a: (a[0][:, :4] * 0 + 1,))
    h2 = model[0].register_forward_hook(lambda m, a, out: out.unsqueeze(0))
    try:
        x = torch.randn(5, 6)
        with torch.no_grad():
            expected = model(x)
        before = snapshot(model)
        report = inn.inspect(model, x)
        assert report.layer("0").inputs[0].shape == (5, 4)  # after the pre-hook
        assert report.layer("0").outputs[0].shape == (5, 3)  # before the forward hook
        assert report.layer("1").inputs[0].shape == (1, 5, 3)
        assert report.outputs[0].shape == tuple(expected.shape)
        assert_unchanged(model, before)
    finally:
        h1.remove()
        h2.remove()


@pytest.mark.parametrize("kind", [nn.LSTM, nn.GRU, nn.RNN])
def test_rnn_flat_weights_are_the_parameters_again(kind: type[nn.RNNBase]) -> None:
    """An RNN keeps its weights twice: as parameters and in ``_flat_weights``. A run on
    substituted tensors (another device) must leave both holding the model's own."""
    rnn, x = kind(4, 3, num_layers=2, bidirectional=True), torch.randn(5, 2, 4)
    before = snapshot(rnn)
    inn.inspect(rnn, x, device="meta")
    for name, w in zip(rnn._flat_weights_names, rnn._flat_weights, strict=True):
        assert w is getattr(rnn, name), f"_flat_weights entry {name} is not the parameter"
    assert_unchanged(rnn, before)
    with torch.no_grad():
        assert rnn(x)[0].device.type == "cpu"  # and it still runs where it is


class Stateful(nn.Module):
    """A forward that rebinds, adds and mutates instance attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.n = 0
        self.cache: torch.Tensor | None = None
        self.seen: list[int] = []
        self.table: dict[str, int] = {"a": 1}
        self.tags: set[str] = set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.n += 1
        self.cache = self.fc(x)
        self.added = True
        self.seen.append(x.shape[0])
        self.table["b"] = 2
        self.tags.add("ran")
        self.fc.calls = getattr(self.fc, "calls", 0) + 1  # another module's attribute
        return self.cache


@pytest.mark.parametrize("device", [None, "meta"])
def test_instance_attributes_set_in_forward_are_put_back(device: str | None) -> None:
    model, x = Stateful(), torch.randn(2, 4)
    seen, table, tags = model.seen, model.table, model.tags
    before = snapshot(model)
    report = inn.inspect(model, x, device=device)
    assert report.outputs[0].shape == (2, 4)
    assert model.n == 0 and model.cache is None
    assert not hasattr(model, "added") and not hasattr(model.fc, "calls")
    assert model.seen is seen and seen == []
    assert model.table is table and table == {"a": 1}
    assert model.tags is tags and tags == set()
    assert_unchanged(model, before)


def test_instance_attributes_put_back_when_the_forward_fails() -> None:
    model, x = Stateful(), torch.randn(2, 5)
    before = snapshot(model)
    err = _run(lambda: inn.inspect(model, x))
    assert isinstance(err, inn.ForwardError)
    assert model.n == 0 and model.seen == []
    assert_unchanged(model, before)


class EarlyAttribute(nn.Module):
    """Sets a list before ``nn.Module.__init__`` (so it comes first in ``__dict__``) and
    switches a child to training mode in ``forward``."""

    def __init__(self) -> None:
        self.log: list[int] = []
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.log.append(1)
        self.fc.train()
        return self.fc(x)


def test_attributes_before_module_init_and_flags_set_in_forward() -> None:
    model, x = EarlyAttribute().eval(), torch.randn(1, 2)
    before = snapshot(model)
    inn.inspect(model, x, mode="same")  # inspect flips no flag: the forward does
    assert model.log == [] and not model.fc.training
    assert_unchanged(model, before)


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("norm", [nn.utils.weight_norm, nn.utils.spectral_norm])
def test_weight_computed_in_a_pre_hook_is_the_models_own_again(norm: Any) -> None:
    """The old weight_norm/spectral_norm set ``module.weight`` as a plain attribute in a
    forward pre-hook: after a meta run it must not be left a meta tensor."""
    model, x = norm(nn.Linear(3, 3)), torch.randn(2, 3)
    with torch.no_grad():
        model(x)  # the pre-hook has set .weight once, as a user's model would have
    weight = model.weight
    before = snapshot(model)
    for device in ("meta", None):
        inn.inspect(model, x, device=device, mode="train")
        assert model.weight is weight and weight.device.type == "cpu"
        assert_unchanged(model, before)


# --- a training step (backward=True) --------------------------------------------------


def _tensor_hooks(model: nn.Module) -> dict[str, tuple[int, int]]:
    """The number of tensor hooks on each parameter: ``register_hook`` (its
    ``_backward_hooks``) and ``register_post_accumulate_grad_hook``."""
    return {
        name: (len(p._backward_hooks or {}), len(p._post_accumulate_grad_hooks or {}))
        for name, p in model.named_parameters(remove_duplicate=False)
    }


def _optimizer_state(opt: torch.optim.Optimizer) -> tuple[Any, list[dict[str, Any]], list[int]]:
    """The optimizer's state dict, a copy of its param groups, and its parameters' ids."""
    groups = [dict(g, params=list(g["params"])) for g in opt.param_groups]
    return opt.state_dict(), groups, [id(p) for g in opt.param_groups for p in g["params"]]


def _step_model() -> tuple[nn.Module, Any]:
    """The mixed-state model with one ``.grad`` that is None, a user's tensor hook on a
    parameter, and AdamW holding every trainable parameter (never stepped)."""
    model = _mixed_state_model()
    model[8].bias.grad = None  # None must stay None
    model[4].weight.register_hook(lambda g: g)
    trainable = [p for p in model.parameters() if p.requires_grad]
    return model, torch.optim.AdamW(trainable, lr=0.1)


STEPS: dict[str, dict[str, Any]] = {
    "sum": {"backward": True},
    "adamw": {"backward": True, "optimizer": "adamw"},
    "cross-entropy": {"loss": nn.CrossEntropyLoss(), "target": torch.tensor([0, 3, 9, 1])},
    "instance": {"optimizer": None},  # the user's own optimizer, filled in by the test
}


@pytest.mark.parametrize("device", [None, "meta"])
@pytest.mark.parametrize("case", list(STEPS))
def test_training_step_leaves_everything(case: str, device: str | None) -> None:
    """Values, buffers (BatchNorm's running stats written in train mode), every ``.grad``
    (None stays None; an existing one is the same object with the same values),
    requires_grad, flags, module and tensor hooks, the RNG, and a user's optimizer."""
    model, opt = _step_model()
    kwargs = dict(STEPS[case], optimizer=opt) if case == "instance" else STEPS[case]
    x = torch.randn(4, 784)
    before, hooks, state = snapshot(model), _tensor_hooks(model), _optimizer_state(opt)
    grad = model[4].weight.grad
    report = inn.inspect(model, x, device=device, **kwargs)
    assert report.training is not None and report.mode == "train"
    assert_unchanged(model, before)
    assert model[8].bias.grad is None and model[4].weight.grad is grad
    assert _tensor_hooks(model) == hooks, "tensor hooks left on parameters"
    after = _optimizer_state(opt)
    assert opt.state == {} and after[0] == state[0] and after[2] == state[2]
    assert [dict(g, params=None) for g in after[1]] == [dict(g, params=None) for g in state[1]]


@pytest.mark.parametrize("device", [None, "meta"])
def test_training_step_that_fails_leaves_everything(device: str | None) -> None:
    model, opt, x = *_step_model(), torch.randn(4, 100)
    before, hooks, state = snapshot(model), _tensor_hooks(model), _optimizer_state(opt)
    err = _run(lambda: inn.inspect(model, x, device=device, optimizer=opt))
    assert isinstance(err, inn.ForwardError)
    assert_unchanged(model, before)
    assert _tensor_hooks(model) == hooks and opt.state == {}
    assert _optimizer_state(opt)[0] == state[0]


def test_training_step_whose_loss_fails_leaves_everything() -> None:
    """A loss that raises after the forward (a target of the wrong shape)."""
    model, opt, x = *_step_model(), torch.randn(4, 784)
    y = torch.tensor([0, 1])  # 2 targets for a batch of 4
    before, hooks = snapshot(model), _tensor_hooks(model)
    err = _run(lambda: inn.inspect(model, x, loss=nn.CrossEntropyLoss(), target=y))
    assert isinstance(err, inn.InvalidInputError) and "target" in str(err)
    assert_unchanged(model, before)
    assert _tensor_hooks(model) == hooks and opt.state == {}


@pytest.mark.parametrize("device", [None, "meta"])
def test_training_step_leaves_input_and_target_gradients_and_the_rng(device: str | None) -> None:
    """Leaf inputs and a target that require grad keep their ``.grad`` (None, or the
    user's own); on meta the backward does not reach back into the CPU input."""
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    x = torch.randn(8, 4, requires_grad=True)
    y = torch.randn(8, 4, requires_grad=True)
    kept = y.grad = torch.ones(8, 4)
    state = torch.get_rng_state()
    report = inn.inspect(model, x, device=device, loss=nn.MSELoss(), target=y)
    assert report.training is not None and report.error is None
    assert x.grad is None and y.grad is kept and torch.equal(kept, torch.ones(8, 4))
    assert torch.equal(torch.get_rng_state(), state)


def test_training_step_stays_out_of_the_graph_its_input_came_from() -> None:
    """An input computed by another model (a non-leaf): that model's parameters get
    no ``.grad`` and the input keeps no hook of the tracer's."""
    encoder, model = nn.Linear(3, 4), nn.Linear(4, 2)
    x = encoder(torch.randn(5, 3))
    x.register_hook(lambda g: g)  # the user's own hook stays
    report = inn.inspect(model, x, backward=True)
    assert report.training is not None
    assert encoder.weight.grad is None and encoder.bias.grad is None
    assert len(x._backward_hooks or {}) == 1
    by_name = {p.name: p.grad for p in report.training.params}
    assert by_name["weight"] is not None and by_name["weight"].shape == (2, 4)
    model.requires_grad_(False)
    err = _run(lambda: inn.inspect(model, x, backward=True))
    assert isinstance(err, inn.InvalidInputError) and "unfreeze" in str(err)
    assert encoder.weight.grad is None
