"""inspect() on every seed model and the structural cases: shapes, counts, records."""

from __future__ import annotations

import json
from typing import Any

import models as zoo
import pytest
import torch
import torchinfo
from helpers import reference_shapes, tensors
from torch import nn

import inspectnn as inn

ALL_CASES = {**zoo.SEED_MODELS, **zoo.EXTRA_MODELS}
ALL_SHAPES = {**zoo.SEED_OUTPUT_SHAPES, **zoo.EXTRA_OUTPUT_SHAPES}


def _unique_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _shapes(metas: tuple[inn.TensorMeta, ...]) -> list[tuple[int, ...]]:
    return [m.shape for m in metas if m.shape is not None]


@pytest.mark.parametrize("name", sorted(ALL_CASES))
def test_shapes_equal_a_real_forward(name: str) -> None:
    factory, make_inputs = ALL_CASES[name]
    torch.manual_seed(0)
    model, inputs = factory(), make_inputs()
    expected, out = reference_shapes(model, *inputs)
    report = inn.inspect(model, *inputs)
    assert [(r.name, _shapes(r.outputs)) for r in report.layers] == expected
    assert _shapes(report.outputs) == list(ALL_SHAPES[name])
    assert _shapes(report.outputs) == [tuple(t.shape) for t in tensors(out)]


@pytest.mark.parametrize("name", sorted(ALL_CASES))
def test_totals_are_unique_parameter_counts(name: str) -> None:
    factory, make_inputs = ALL_CASES[name]
    model = factory()
    report = inn.inspect(model, *make_inputs())
    assert report.totals.params == _unique_params(model)
    assert report.layers[0].params == report.totals.params
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert report.totals.trainable_params == trainable
    assert report.totals.buffers == sum(b.numel() for b in model.buffers())


@pytest.mark.parametrize(
    "name", ["mnist_mlp_sequential", "simple_net", "cnn32", "bn_dropout_mlp", "my_model",
             "my_model2", "complex_model", "simple_cnn", "multi_input_output", "lstm"]
)  # fmt: skip
def test_totals_equal_torchinfo_without_tied_weights(name: str) -> None:
    factory, make_inputs = ALL_CASES[name]
    model = factory().eval()
    stats = torchinfo.summary(model, input_data=list(make_inputs()), verbose=0)
    assert inn.inspect(model, *make_inputs()).totals.params == stats.total_params


def test_seed_count_of_108_for_my_model() -> None:
    for factory in (zoo.MyModel, zoo.MyModel2, zoo.sequential_linears):
        report = inn.inspect(factory(), torch.randn(5, 2))
        assert report.totals.params == 108
        assert report.totals.trainable_params == 108


def test_per_layer_params_are_subtree_counts() -> None:
    model = zoo.MyModel2()
    report = inn.inspect(model, torch.randn(5, 2))
    for rec in report.layers:
        mod = model.get_submodule(rec.name)
        assert rec.params == _unique_params(mod), rec.name


def test_tied_weights_counted_once_and_marked_shared() -> None:
    model = zoo.TiedLM()
    x = torch.randint(0, 100, (2, 7))
    report = inn.inspect(model, x)
    assert report.totals.params == _unique_params(model) == 1904
    stats = torchinfo.summary(model, input_data=[x], verbose=0)
    assert stats.total_params > report.totals.params  # torchinfo counts the tie twice
    shared = [(r.name, r.shared) for r in report.layers if r.shared]
    assert shared, "the tied rows must say they share"
    assert any("embed.weight" in s for _, pairs in shared for s in pairs)
    assert "shared tensors, counted once" in str(report)


def test_gpt2_tiny_tied_head() -> None:
    model = zoo.gpt2_tiny()
    report = inn.inspect(model, torch.randint(0, 64, (1, 8)))
    assert report.totals.params == _unique_params(model)
    assert report.layer("lm_head").shared


def test_module_called_three_times_gives_three_rows() -> None:
    report = inn.inspect(zoo.RepeatedCall(), torch.randn(2, 8))
    rows = [r for r in report.layers if r.name == "fc"]
    assert [r.call for r in rows] == [0, 1, 2]
    assert [r.label for r in rows] == ["fc", "fc#1", "fc#2"]
    acts = [r for r in inn.inspect(zoo.MyModel(), torch.randn(5, 2)).layers if r.name == "act"]
    assert len(acts) == 3


def test_dict_input_is_flattened_with_paths() -> None:
    inputs = {"image": torch.randn(2, 3, 8, 8), "meta": torch.randn(2, 5)}
    root = inn.inspect(zoo.DictInputModel(), inputs).layers[0]
    assert [(m.path, m.shape) for m in root.inputs] == [
        ("[0]['image']", (2, 3, 8, 8)),
        ("[0]['meta']", (2, 5)),
    ]


def test_dict_dataclass_and_model_output_outputs() -> None:
    out = inn.inspect(zoo.DictOutputModel(), torch.randn(2, 8)).outputs
    assert [(m.path, m.shape) for m in out] == [("['logits']", (2, 3)), ("['features']", (2, 16))]
    out = inn.inspect(zoo.DataclassOutputModel(), torch.randn(2, 8)).outputs
    assert [m.path for m in out] == [".logits", ".features", ".aux_loss"]
    assert out[2].shape is None and out[2].value == "None"  # None stays visible
    out = inn.inspect(zoo.ModelOutputLike(), torch.randn(2, 8)).outputs
    assert [m.path for m in out] == ["['logits']", "['hidden_states']"]


def test_lstm_tuple_outputs() -> None:
    report = inn.inspect(zoo.LSTMModel(), torch.randint(0, 50, (2, 7)))
    lstm = next(r for r in report.layers if r.type == "LSTM")
    assert [m.path for m in lstm.outputs] == ["[0]", "[1][0]", "[1][1]"]
    assert lstm.outputs[0].shape is not None and lstm.outputs[0].shape[:2] == (2, 7)


def test_transformer_encoder_layer_eval_says_fast_path() -> None:
    layer = zoo.transformer_encoder_layer().eval()
    report = inn.inspect(layer, torch.randn(2, 5, 32))
    assert report.outputs[0].shape == (2, 5, 32)
    kinds = [f.kind for f in report.findings]
    assert kinds == ["fast-path"]
    assert "fast path" in report.findings[0].message
    assert not inn.inspect(layer, torch.randn(2, 5, 32), mode="train").findings


def test_kwargs_go_to_forward() -> None:
    x = torch.randn(2, 8)
    mask = torch.rand(2, 4) > 0.5
    root = inn.inspect(zoo.KwargsModel(), x, scale=2.0, mask=mask).layers[0]
    assert [(m.path, m.shape, m.value) for m in root.inputs] == [
        ("[0]", (2, 8), None),
        ("scale", None, "2.0"),
        ("mask", (2, 4), None),
    ]


def test_multi_input_two_outputs_shared_layer() -> None:
    report = inn.inspect(zoo.MultiInputOutputModel(), torch.randn(4, 10), torch.randn(4, 5))
    assert len(report.layers[0].inputs) == 2
    assert _shapes(report.outputs) == [(4, 1), (4, 1)]


def test_depth_and_parent_follow_call_nesting() -> None:
    report = inn.inspect(zoo.MyModel2(), torch.randn(5, 2))
    assert [(r.name, r.depth, r.parent) for r in report.layers[:3]] == [
        ("", 0, -1),
        ("linear", 1, 0),
        ("linear.0", 2, 1),
    ]


def test_ops_between_modules_are_recorded() -> None:
    report = inn.inspect(zoo.SimpleCNN(), torch.randn(2, 1, 28, 28))
    names = [op.name for op in report.ops]
    assert names == ["F.relu", "F.relu", "Tensor.view", "F.relu"]
    view = report.ops[2]
    assert view.module == "" and view.args == "-1, 1568"
    assert view.inputs[0].shape == (2, 32, 7, 7) and view.outputs[0].shape == (2, 1568)
    assert report.layers[view.after].name == "fc1"  # the next call after the view
    cat = [op for op in inn.inspect(zoo.ComplexModel(), torch.randn(4, 10)).ops]
    assert [op.name for op in cat] == ["torch.cat"]
    assert [m.shape for m in cat[0].inputs] == [(4, 5), (4, 5)]


def test_ops_inside_torch_leaf_modules_are_not_recorded() -> None:
    report = inn.inspect(nn.Sequential(nn.Linear(4, 4), nn.ReLU()), torch.randn(2, 4))
    assert report.ops == ()


def test_input_size_builds_float_inputs() -> None:
    report = inn.inspect(zoo.SimpleCNN(), input_size=(8, 1, 28, 28))
    assert report.layers[0].inputs[0].shape == (8, 1, 28, 28)
    assert report.layers[0].inputs[0].dtype == "float32"
    assert report.outputs[0].shape == (8, 10)


def test_input_size_integer_inputs_are_valid_embedding_indices() -> None:
    report = inn.inspect(zoo.TiedLM(), input_size=(2, 7), dtypes="long")
    assert report.layers[0].inputs[0].dtype == "int64"
    report = inn.inspect(zoo.LSTMModel(), input_size=[(3, 5)], dtypes=[torch.int64])
    assert report.outputs[0].shape == (3, 5)


def test_input_size_several_inputs() -> None:
    report = inn.inspect(zoo.MultiInputOutputModel(), input_size=[(4, 10), (4, 5)])
    assert _shapes(report.outputs) == [(4, 1), (4, 1)]


def test_mode_train_runs_batchnorm_in_train_mode() -> None:
    model = zoo.bn_dropout_mlp()
    assert inn.inspect(model, torch.randn(4, 784), mode="train").mode == "train"
    assert inn.inspect(model, torch.randn(4, 784)).mode == "eval"
    model.eval()
    assert inn.inspect(model, torch.randn(4, 784), mode="same").mode == "eval"


def test_to_dict_schema() -> None:
    report = inn.inspect(zoo.SimpleCNN(), torch.randn(2, 1, 28, 28))
    data = json.loads(report.to_json())
    assert data == report.to_dict()
    assert data["schema"] == "inspectnn/1"
    assert {"model", "device", "totals", "layers", "findings", "error"} <= data.keys()
    assert data["model"] == "SimpleCNN" and data["device"] == "cpu" and data["error"] is None
    assert {"params", "trainable_params", "non_trainable_params", "buffers", "param_bytes",
            "flops"} <= data["totals"].keys()  # fmt: skip
    layer = data["layers"][1]
    assert {"name", "type", "depth", "call", "inputs", "outputs", "params",
            "trainable_params"} <= layer.keys()  # fmt: skip
    assert layer["outputs"][0] == {"shape": [2, 16, 28, 28], "dtype": "float32", "device": "cpu"}
    assert data["totals"]["params"] == report.totals.params


def test_report_layer_lookup_says_what_exists() -> None:
    report = inn.inspect(zoo.SimpleCNN(), torch.randn(2, 1, 28, 28))
    assert report.layer("pool", 2).call == 2
    with pytest.raises(KeyError, match="fc1"):
        report.layer("fc")


def _flop_counter_total(model: nn.Module, inputs: tuple[Any, ...]) -> int:
    """FlopCounterMode's total for a plain forward of a meta copy of ``model``.

    On meta, scaled_dot_product_attention decomposes into the bmm calls that
    FlopCounterMode counts; on the CPU it runs a kernel FlopCounterMode has no
    formula for and counts 0. Grad stays enabled so that TransformerEncoderLayer
    skips its fused fast path, which FlopCounterMode cannot see into either.
    """
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    meta_model = copy.deepcopy(model).to("meta").eval()
    meta_inputs = tuple(t.to("meta") for t in inputs)
    counter = FlopCounterMode(display=False)
    with counter:
        meta_model(*meta_inputs)
    return counter.get_total_flops()


def test_flops_equal_flop_counter_mode() -> None:
    cases: list[tuple[nn.Module, tuple[Any, ...]]] = [
        (zoo.SimpleCNN(), (torch.randn(2, 1, 28, 28),)),
        (zoo.gpt2_tiny(), (torch.randint(0, 64, (1, 8)),)),
        (zoo.llama_tiny(), (torch.randint(0, 128, (1, 16)),)),
        (zoo.LSTMModel(), (torch.randint(0, 50, (2, 7)),)),
        (zoo.transformer_encoder_layer(), (torch.randn(2, 5, 32),)),
        (zoo.linear_2_3(), (torch.randn(2),)),
        (nn.ConvTranspose2d(4, 2, 3, stride=2), (torch.randn(1, 4, 5, 5),)),
        (nn.MultiheadAttention(16, 2, batch_first=True), (torch.randn(2, 3, 16),) * 3),
    ]
    for model, inputs in cases:
        expected = _flop_counter_total(model, inputs)
        assert inn.inspect(model, *inputs).totals.flops == expected, type(model).__name__
        meta = inn.inspect(model, *inputs, device="meta").totals.flops
        assert meta == expected, type(model).__name__


def test_attention_flops_counted_on_cpu() -> None:
    model = zoo.gpt2_tiny()
    ids = torch.randint(0, 64, (1, 8))
    report = inn.inspect(model, ids)
    attn = report.layer("h.0.attn")
    c_attn, c_proj = report.layer("h.0.attn.c_attn"), report.layer("h.0.attn.c_proj")
    batch_heads, seq, head_dim = 4, 8, 8  # gpt2_tiny: 4 heads of 8
    sdpa = 2 * batch_heads * seq * seq * (head_dim + head_dim)
    assert attn.flops == c_attn.flops + c_proj.flops + sdpa


def test_per_layer_flops_add_up() -> None:
    report = inn.inspect(zoo.SimpleCNN(), torch.randn(2, 1, 28, 28))
    children = [r for r in report.layers if r.parent == 0]
    assert report.layers[0].flops == sum(r.flops for r in children) == report.totals.flops
    assert report.layer("fc1").flops == 2 * 2 * 1568 * 128


def test_inputs_name_their_producer() -> None:
    report = inn.inspect(zoo.SimpleCNN(), torch.randn(2, 1, 28, 28))
    idx = {r.label: r.index for r in report.layers}
    view = next(op for op in report.ops if op.name == "Tensor.view")
    assert report.layer("fc1").inputs[0].source == f"ops[{view.index}]"
    assert view.inputs[0].source == f"layers[{idx['pool#1']}]"
    # the skip path branches off the first pool's output
    assert report.layer("conv_skip_adjust").inputs[0].source == f"layers[{idx['pool']}]"
    assert report.layer("conv1").inputs[0].source == "inputs[0]"  # the model input
    assert report.layers[0].outputs[0].source == f"layers[{idx['fc2']}]"
    report = inn.inspect(zoo.ComplexModel(), torch.randn(4, 10))
    cat = report.ops[0]
    assert [m.source for m in cat.inputs] == [
        f"layers[{report.layer('branch1').index}]",
        f"layers[{report.layer('branch2').index}]",
    ]
    assert report.layer("combine").inputs[0].source == "ops[0]"


def test_train_mode_model_inspected_in_eval_says_so() -> None:
    model = zoo.bn_dropout_mlp().train()
    report = inn.inspect(model, torch.randn(1, 784))  # the seed's own batch of 1
    note = [f for f in report.findings if f.kind == "eval-mode"]
    assert len(note) == 1 and note[0].severity == "info" and "mode='train'" in note[0].fix
    assert not [f for f in inn.inspect(model.eval(), torch.randn(1, 784)).findings]


def test_view_that_changes_the_batch_is_a_warning() -> None:
    report = inn.inspect(zoo.SimpleCNN(), torch.randn(49, 1, 32, 32))  # runs: 49 -> 64 rows
    found = [f for f in report.findings if f.kind == "batch-changed"]
    assert len(found) == 1 and found[0].layer == "" and found[0].severity == "warning"
    assert "turns the batch of 49 into 64 rows" in found[0].message
    assert "x.flatten(1)" in found[0].fix


def test_report_holds_no_model_and_builds_its_records_later() -> None:
    """Records are built on first use, from metadata only: the model can be gone."""
    import gc
    import pickle
    import weakref

    model = zoo.SimpleCNN()
    gone = weakref.ref(model)
    x = torch.randn(2, 1, 28, 28)
    report = inn.inspect(model, x)
    del model
    gc.collect()
    assert gone() is None, "the report keeps the model alive"
    assert report.layer("fc1").outputs[0].shape == (2, 128)
    assert report.layer("conv1").extra.startswith("1, 16, kernel_size=(3, 3)")
    assert report.totals.params == 207_466
    assert "fc1" in report.table()
    again = pickle.loads(pickle.dumps(report))
    assert again == report and again.to_dict() == report.to_dict()
    with pytest.raises(AttributeError):
        report.model = "Other"  # type: ignore[misc]
    assert repr(report).startswith("Report(model='SimpleCNN', device='cpu', mode='eval'")


@pytest.mark.parametrize(
    "build",
    [
        lambda: (zoo.MyModel(), torch.randn(5, 2)),
        lambda: (zoo.SimpleCNN(), torch.randn(1, 1, 28, 28)),
        lambda: (nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3)), torch.randn(2, 3)),
    ],
    ids=["MyModel", "SimpleCNN", "tied"],
)
def test_a_dropped_report_leaves_no_garbage_cycles(build: Any) -> None:
    """Everything inspect makes is freed by reference counting once the report goes.

    Left-over cycles wait for the garbage collector, whose full passes over a process
    holding torch cost milliseconds: a loop of inspect calls would pay them.
    """
    import gc

    model, x = build()
    if isinstance(model, nn.Sequential):
        model[1].weight = model[0].weight  # a tied weight takes the recount path
    assert inn.inspect(model, x).layers  # warm the per-class caches
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        report = inn.inspect(model, x)
        assert report.layers and report.findings is not None
        del report
        assert gc.collect() == 0
    finally:
        if was:
            gc.enable()


@pytest.mark.parametrize(
    "build",
    [
        lambda: (
            nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 2))),
            torch.randn(3, 4),
        ),
        lambda: (zoo.ComplexModel(), torch.randn(4, 10)),  # torch.cat recorded as an op
        lambda: (zoo.SimpleCNN(), torch.randn(1, 1, 28, 28)),  # F.relu, .view
        lambda: (nn.LSTM(4, 8, 2), torch.randn(5, 3, 4)),  # a fused kernel's FLOPs
    ],
    ids=["Sequential", "ComplexModel", "SimpleCNN", "LSTM"],
)
def test_a_users_torch_function_mode_sees_only_the_models_own_calls(build: Any) -> None:
    """inspect counts parameters, saves the RNG state, reads the shape, dtype and
    device of every input and output and counts a fused kernel's FLOPs;
    a TorchFunctionMode the user has active around the call sees none of that,
    only the calls the model itself makes, as in a plain forward."""
    from torch.overrides import TorchFunctionMode

    class Seen(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.names: list[str] = []

        def __torch_function__(
            self, func: Any, types: Any, args: Any = (), kwargs: Any = None
        ) -> Any:
            self.names.append(getattr(func, "__name__", repr(func)))
            return func(*args, **(kwargs or {}))

    model, x = build()
    model.eval()
    with torch.no_grad(), Seen() as plain:
        model(x)
    with Seen() as seen:
        report = inn.inspect(model, x)
    assert plain.names and seen.names == plain.names
    assert report.layers[0].outputs and report.totals.flops > 0
