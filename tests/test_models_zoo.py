"""Self-check of the model zoo in ``tests/models.py`` with plain forwards (no inspectnn)."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from helpers import tensors
from torch import nn

try:  # tests/ as a package (tests/__init__.py) or rootdir on sys.path
    from tests import models as zoo
except ImportError:  # pytest's default "prepend" import mode puts tests/ itself on sys.path
    import models as zoo  # type: ignore[no-redef, import-not-found, unused-ignore]


def _shapes(out: Any) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(t.shape) for t in tensors(out))


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class _InnermostTracker:
    """Records the dotted path of the innermost module running when a forward raises."""

    def __init__(self, model: nn.Module) -> None:
        self.stack: list[str] = []
        self.handles: list[Any] = []
        for name, module in model.named_modules():
            self.handles.append(module.register_forward_pre_hook(self._pre(name)))
            self.handles.append(module.register_forward_hook(self._post()))

    def _pre(self, name: str) -> Any:
        def hook(module: nn.Module, args: Any) -> None:
            self.stack.append(name)

        return hook

    def _post(self) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            self.stack.pop()

        return hook

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


@pytest.fixture(autouse=True)
def _seed() -> Iterator[None]:
    torch.manual_seed(0)
    yield


# --------------------------------------------------------------------------- seeds


@pytest.mark.parametrize("name", sorted(zoo.SEED_MODELS))
def test_seed_model_forward_shapes(name: str) -> None:
    factory, inputs = zoo.SEED_MODELS[name]
    model = factory()
    with torch.no_grad():
        out = model(*inputs())
    assert _shapes(out) == zoo.SEED_OUTPUT_SHAPES[name]


def test_seed_tables_agree() -> None:
    assert set(zoo.SEED_MODELS) == set(zoo.SEED_OUTPUT_SHAPES)
    assert set(zoo.EXTRA_MODELS) == set(zoo.EXTRA_OUTPUT_SHAPES)


@pytest.mark.parametrize(
    ("factory", "expected"),
    [
        (zoo.MyModel, 108),
        (zoo.MyModel2, 108),
        (zoo.sequential_linears, 108),
        (zoo.linear_1_1, 2),
        (zoo.two_linear, 10),
        (zoo.mnist_mlp_sequential, 784 * 128 + 128 + 128 * 10 + 10),
    ],
)
def test_seed_param_counts(factory: zoo.ModelFactory, expected: int) -> None:
    assert _n_params(factory()) == expected


def test_simple_net_matches_sequential_params() -> None:
    assert _n_params(zoo.SimpleNet()) == _n_params(zoo.mnist_mlp_sequential())
    assert [n for n, _ in zoo.SimpleNet().named_children()] == ["layer1", "layer2"]


def test_seed_layer_names() -> None:
    assert [n for n, _ in zoo.MyModel().named_children()] == ["fc1", "fc2", "fc3", "act"]
    assert [n for n, _ in zoo.MyModel2().named_modules()][1:3] == ["linear", "linear.0"]
    assert [n for n, _ in zoo.two_linear().named_children()] == ["fc1", "fc2"]
    assert [n for n, _ in zoo.SimpleCNN().named_children()] == [
        "conv1",
        "pool",
        "conv2",
        "conv_skip_adjust",
        "fc1",
        "fc2",
    ]
    assert [n for n, _ in zoo.MultiInputOutputModel().named_children()] == [
        "layer1_input1",
        "layer1_input2",
        "shared_layer",
        "output_branch1",
        "output_branch2",
    ]


def test_my_model_calls_shared_act_three_times() -> None:
    model = zoo.MyModel()
    calls: list[int] = []
    model.act.register_forward_hook(lambda m, a, o: calls.append(1))
    model(torch.randn(5, 2))
    assert len(calls) == 3


def test_simple_cnn_runs_unused_skip_path() -> None:
    model = zoo.SimpleCNN()
    calls: dict[str, int] = {}
    for name, module in model.named_children():
        module.register_forward_hook(
            lambda m, a, o, name=name: calls.__setitem__(name, calls.get(name, 0) + 1)
        )
    with torch.no_grad():
        model(torch.randn(2, 1, 28, 28))
    assert calls == {"conv1": 1, "pool": 3, "conv2": 1, "conv_skip_adjust": 1, "fc1": 1, "fc2": 1}


def test_softmax_outputs_are_probabilities() -> None:
    with torch.no_grad():
        for factory, shape in ((zoo.softmax_mlp, (1, 784)), (zoo.cnn32, (1, 3, 32, 32))):
            out = factory()(torch.randn(*shape))
            torch.testing.assert_close(out.sum(dim=1), torch.ones(1))


# --------------------------------------------------------------------------- extras


@pytest.mark.parametrize("name", sorted(zoo.EXTRA_MODELS))
def test_extra_model_forward_shapes(name: str) -> None:
    factory, inputs = zoo.EXTRA_MODELS[name]
    model = factory()
    with torch.no_grad():
        out = model(*inputs())
    assert _shapes(out) == zoo.EXTRA_OUTPUT_SHAPES[name]


def test_tied_lm_shares_weight() -> None:
    model = zoo.TiedLM()
    assert model.head.weight is model.embed.weight
    assert _n_params(model) == 100 * 16 + 16 * 16 + 16 + 2 * 16
    with_dups = sum(p.numel() for _, p in model.named_parameters(remove_duplicate=False))
    assert with_dups == _n_params(model) + 100 * 16


def test_repeated_call_runs_fc_three_times() -> None:
    model = zoo.RepeatedCall()
    calls: list[int] = []
    model.fc.register_forward_hook(lambda m, a, o: calls.append(1))
    model(torch.randn(2, 8))
    assert len(calls) == 3
    assert _n_params(model) == 72


def test_structured_outputs() -> None:
    x = torch.randn(2, 8)
    d = zoo.DictOutputModel()(x)
    assert isinstance(d, dict)
    assert list(d) == ["logits", "features"]

    dc = zoo.DataclassOutputModel()(x)
    assert isinstance(dc, zoo.ClassifierOutput)
    assert dc.aux_loss is None

    mo = zoo.ModelOutputLike()(x)
    assert isinstance(mo, OrderedDict)
    assert dataclasses.is_dataclass(mo)
    assert list(mo.keys()) == ["logits", "hidden_states"]
    assert mo.attentions is None
    assert mo[0] is mo["logits"] is mo.logits
    assert len(mo.to_tuple()) == 2


def test_kwargs_model() -> None:
    model = zoo.KwargsModel()
    x = torch.randn(2, 8)
    mask = torch.tensor([[True, False, True, False], [False, True, True, True]])
    with torch.no_grad():
        base = model(x)
        out = model(x, scale=2.0, mask=mask)
    assert out.shape == (2, 4)
    torch.testing.assert_close(out, (base * 2.0).masked_fill(~mask, 0.0))
    with pytest.raises(TypeError):
        model(x, 2.0)  # keyword-only


def test_mlp_stack_size() -> None:
    model = zoo.MLPStack()
    assert len(model.blocks) == 400
    assert len(list(model.modules())) == 1 + 1 + 400 * 3


def test_llama_tiny_rotary_buffer_not_persistent() -> None:
    model = zoo.llama_tiny()
    assert "rotary_emb.inv_freq" in dict(model.named_buffers())
    assert not any("inv_freq" in k for k in model.state_dict())
    assert model.lm_head.weight is not model.embed_tokens.weight


# --------------------------------------------------------------------------- broken


@pytest.mark.parametrize("name", sorted(zoo.BROKEN_MODELS))
def test_broken_models_raise_in_documented_layer(name: str) -> None:
    case = zoo.BROKEN_MODELS[name]
    model = case.model()
    tracker = _InnermostTracker(model)
    with torch.no_grad(), pytest.raises(case.error):
        model(*case.inputs())
    tracker.remove()
    assert tracker.stack, "the root module should still be on the stack"
    assert tracker.stack[-1] == case.layer


def test_broken_flatten_cnn_works_on_32x32() -> None:
    with torch.no_grad():
        assert zoo.BrokenFlattenCNN()(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_bn_dropout_mlp_batch1_works_in_eval() -> None:
    model = zoo.bn_dropout_mlp().eval()
    with torch.no_grad():
        assert model(torch.randn(1, 784)).shape == (1, 10)


# --------------------------------------------------------------------------- big ones


def test_resnet50_like() -> None:
    model = zoo.ResNet50Like().eval()
    assert _n_params(model) == 25_557_032
    with torch.no_grad():
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 1000)


def test_gpt2_like_default() -> None:
    model = zoo.GPT2Like()
    assert model.lm_head.weight is model.wte.weight
    assert model.lm_head.bias is None
    assert _n_params(model) == 124_439_808
    assert model.h[0].attn.c_attn.weight.shape == (2304, 768)
    with torch.no_grad():
        out = model(torch.randint(0, 50257, (1, 8)))
    assert out.shape == (1, 8, 50257)


def test_gpt2_tiny_is_causal() -> None:
    model = zoo.gpt2_tiny().eval()
    ids = torch.randint(0, 64, (1, 8))
    with torch.no_grad():
        full = model(ids)
        prefix = model(ids[:, :5])
    torch.testing.assert_close(full[:, :5], prefix)


def test_llama_like_default_on_meta() -> None:
    with torch.device("meta"):
        model = zoo.LlamaLike()
    assert all(p.is_meta for p in model.parameters())
    assert _n_params(model) == 6_738_415_616
    ids = torch.randint(0, 32000, (1, 16), device="meta")
    with torch.no_grad():
        out = model(ids)
    assert out.is_meta
    assert out.shape == (1, 16, 32000)


def test_llama_tiny_is_causal() -> None:
    model = zoo.llama_tiny().eval()
    ids = torch.randint(0, 128, (1, 16))
    with torch.no_grad():
        full = model(ids)
        prefix = model(ids[:, :9])
    torch.testing.assert_close(full[:, :9], prefix)
