"""What torchinfo users expect: a summary with no input, per-parameter rows, the
kernel, params %, mult-adds and config columns, ASCII borders, repeated modules.

Exact text at the table's natural width on small real models.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from helpers import assert_unchanged, snapshot
from torch import nn
from torch.nn.parameter import is_lazy

import inspectnn as inn
from inspectnn.renderers.markdown import render_markdown


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


class Looped(nn.Module):
    """One conv called six times (with a ReLU between), then a head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 2, 3, padding=1)
        self.head = nn.Linear(2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(6):
            x = torch.relu(self.conv(x))
        return self.head(x.mean(-1))


class Generator(nn.Module):
    """A forward that takes no input: ``model()`` is its whole call."""

    def __init__(self) -> None:
        super().__init__()
        self.latent = nn.Parameter(torch.randn(1, 3))
        self.proj = nn.Linear(3, 2)

    def forward(self) -> torch.Tensor:
        return self.proj(self.latent)


class OptionalInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor | None = None) -> torch.Tensor:
        assert x is not None, "needs x"
        return self.lin(x)


# ---------------------------------------------------------------- no input


def test_summary_without_input_lists_modules_params_and_config() -> None:
    model = SmallCNN()
    before = snapshot(model)
    report = inn.inspect(model)
    assert_unchanged(model, before)
    assert report.table(max_width=80) == "\n".join([
        "SmallCNN: not run: no input given (modules, parameters and configuration only)",
        "Layer (type)         Config                                               Params",
        "─" * 80,
        "SmallCNN             -                                                       690",
        "├─ conv (Conv2d)     1, 4, kernel_size=(3, 3), stride=(1, 1), padding=(…      40",
        "├─ pool (MaxPool2d)  kernel_size=2, stride=2, padding=0, dilation=1, ce…       0",
        "└─ fc (Linear)       in_features=64, out_features=10, bias=True              650",
        "─" * 80,
        "Params: 690 (2.7 KB) · trainable 690 · non-trainable 0 · buffers 0",
        "FLOPs: - (not run) · activations - · device cpu · mode eval",
        "[info] (root): not run: no input given. This lists the modules, their parameters and "
        "configuration; shapes and FLOPs need a forward.",
        "    fix: Pass the inputs as for model(x): inspect(model, x), or "
        "inspect(model, input_size=(1, 3, 224, 224)) to build a random one.",
    ])  # fmt: skip


def test_summary_without_input_keeps_the_json_schema() -> None:
    data = json.loads(inn.inspect(SmallCNN()).to_json())
    assert data["schema"] == "inspectnn/1"
    assert [(la["name"], la["type"], la["depth"], la["params"]) for la in data["layers"]] == [
        ("", "SmallCNN", 0, 690), ("conv", "Conv2d", 1, 40), ("pool", "MaxPool2d", 1, 0),
        ("fc", "Linear", 1, 650),
    ]  # fmt: skip
    assert all(la["inputs"] == [] and la["outputs"] == [] and la["call"] == 0
               for la in data["layers"])  # fmt: skip
    assert data["findings"][0]["kind"] == "not-run"
    assert data["totals"]["flops"] == 0 and data["error"] is None
    expected = sorted(inn.inspect(SmallCNN(), torch.randn(1, 1, 8, 8)).to_dict())
    assert sorted(data) == expected


def test_summary_shows_shapes_once_run_and_agrees_on_counts() -> None:
    model = SmallCNN()
    static, ran = inn.inspect(model), inn.inspect(model, torch.randn(2, 1, 8, 8))
    assert static.totals == dataclasses.replace(ran.totals, activation_bytes=0, flops=0)
    assert [(r.name, r.params, r.extra) for r in static.layers] == [
        (r.name, r.params, r.extra) for r in ran.layers
    ]
    assert "not run" not in ran.table()
    assert ran.layer("fc").outputs[0].shape == (2, 10)


def test_a_forward_that_takes_no_input_is_run() -> None:
    model = Generator()
    before = snapshot(model)
    report = inn.inspect(model)
    assert_unchanged(model, before)
    assert report.layer("proj").outputs[0].shape == (1, 2)
    assert not any(f.kind == "not-run" for f in report.findings)
    assert report.totals.flops == 12


def test_a_forward_with_only_optional_inputs_is_not_run() -> None:
    report = inn.inspect(OptionalInput())
    assert report.findings[0].kind == "not-run"
    assert report.layer("lin").extra == "in_features=3, out_features=2, bias=True"


def test_bare_module_list() -> None:
    blocks = nn.ModuleList([nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)])
    table = inn.inspect(blocks).table(ascii=True)
    assert table.splitlines()[3:7] == [
        "ModuleList     -                                             13",
        "|- 0 (Linear)  in_features=2, out_features=3, bias=True       9",
        "|- 1 (ReLU)    -                                              0",
        "`- 2 (Linear)  in_features=3, out_features=1, bias=True       4",
    ]


def test_lazy_modules_shown_uninitialised() -> None:
    model = nn.Sequential(nn.LazyLinear(8), nn.ReLU(), nn.Linear(8, 2))
    report = inn.inspect(model)
    assert isinstance(model[0], nn.LazyLinear) and is_lazy(model[0].weight)  # still lazy
    assert report.totals.params == 18  # the lazy layer's parameters do not exist yet
    assert report.layer("0").uninitialised and not report.layer("2").uninitialised
    rows = report.table(parameters=True).splitlines()
    assert rows[4].startswith("├─ 0 (LazyLinear)  (uninitialised)")
    assert rows[5].split() == ["│", "├─", ".weight", "uninitialised", "0"]
    lazy = [f for f in report.findings if f.kind == "lazy"]
    assert [f.layer for f in lazy] == ["0"] and "weight, bias" in lazy[0].message
    # inspect with an input still refuses to create the parameters
    with pytest.raises(inn.InvalidInputError, match="lazy modules"):
        inn.inspect(model, torch.randn(1, 4))


def test_lazy_model_with_no_input_forward_is_summarised_not_refused() -> None:
    class LazyGen(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.z = nn.Parameter(torch.randn(1, 3))
            self.lin = nn.LazyLinear(2)

        def forward(self) -> torch.Tensor:
            return self.lin(self.z)

    report = inn.inspect(LazyGen())
    assert report.findings[0].kind == "not-run" and report.totals.params == 3


# ------------------------------------------------------------ new columns


def test_parameter_rows_with_shape_and_trainable_flag() -> None:
    model = SmallCNN()
    model.fc.bias.requires_grad_(False)
    report = inn.inspect(model, torch.randn(2, 1, 8, 8))
    assert report.table(columns=["layer", "params", "trainable"], parameters=True) == "\n".join([
        "Layer (type)                Params  Trainable",
        "─" * 45,
        "SmallCNN                       690        680",
        "├─ conv (Conv2d)                40         40",
        "│  ├─ .weight [4, 1, 3, 3]      36         36",
        "│  └─ .bias [4]                  4          4",
        "├─ pool (MaxPool2d)              0          0",
        "└─ fc (Linear)                 650        640",
        "   ├─ .weight [10, 64]         640        640",
        "   └─ .bias [10] (frozen)       10          0",
        "─" * 45,
        "Params: 690 (2.7 KB) · trainable 680 · non-trainable 10 · buffers 0",
        "FLOPs: 11.8 KFLOPs · activations 2.6 KB · device cpu · mode eval",
    ])  # fmt: skip
    assert ".weight" not in report.table()  # opt-in


def test_kernel_percent_and_mult_adds_columns() -> None:
    model = nn.Sequential(
        nn.Conv2d(4, 8, (3, 5), stride=2, padding="valid", dilation=2, groups=4),
        nn.Conv2d(8, 8, 3, padding="same"),
        nn.MaxPool2d((2, 1), stride=(2, 1)),
        nn.Flatten(),
    )
    report = inn.inspect(model, torch.randn(1, 4, 13, 13))
    table = report.table(columns=["layer", "kernel", "params_percent", "flops", "mult_adds"])
    assert table.splitlines()[:7] == [
        "Layer (type)      Kernel                     Params %        FLOPs   Mult-adds",
        "─" * 78,
        "Sequential        -                           100.00%  20.9 KFLOPs  10.4 KMACs",
        "├─ 0 (Conv2d)     k=3x5 s=2 p=valid d=2 g=4    17.98%   3.6 KFLOPs   1.8 KMACs",
        "├─ 1 (Conv2d)     k=3x3 s=1 p=same             82.02%  17.3 KFLOPs   8.6 KMACs",
        "├─ 2 (MaxPool2d)  k=2x1 s=2x1 p=0               0.00%            0           0",
        "└─ 3 (Flatten)    -                             0.00%            0           0",
    ]
    conv = report.layer("1")
    assert conv.params == 8 * 8 * 9 + 8 and report.totals.params == 712  # 82.02%
    # FlopCounterMode counts a multiply-add as 2 FLOPs: conv 1 is 8 out x 8 in x 3x3 x 5x3
    assert conv.flops == 2 * 8 * 8 * 9 * 5 * 3


def test_repeated_module_is_marked_recursive() -> None:
    report = inn.inspect(Looped(), torch.randn(1, 2, 5))
    table = report.table(columns=["layer", "params", "params_percent", "flops"])
    assert table.splitlines()[2:11] == [
        "Looped                       17   100.00%  724 FLOPs",
        "├─ conv (Conv1d)             14    82.35%  120 FLOPs",
        "├─ conv#1 (Conv1d)  (recursive)         -  120 FLOPs",
        "├─ conv#2 (Conv1d)  (recursive)         -  120 FLOPs",
        "├─ conv#3 (Conv1d)  (recursive)         -  120 FLOPs",
        "├─ conv#4 (Conv1d)  (recursive)         -  120 FLOPs",
        "├─ conv#5 (Conv1d)  (recursive)         -  120 FLOPs",
        "└─ head (Linear)              3    17.65%    4 FLOPs",
        "─" * 52,
    ]
    assert report.totals.params == 17


def test_a_folded_loop_over_one_module_counts_its_params_once() -> None:
    class Chain(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c = nn.Conv1d(2, 2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for _ in range(3):
                x = self.c(x)
            return x

    table = inn.inspect(Chain(), torch.randn(1, 2, 5)).table(columns=["layer", "params", "flops"])
    assert table.splitlines()[3] == "└─ c (Conv1d) x3 calls       6  40 FLOPs each"
    assert " 6 each" not in table


def test_ascii_only_borders() -> None:
    report = inn.inspect(SmallCNN(), torch.randn(2, 1, 8, 8))
    table = report.table(ascii=True, parameters=True, max_width=38)
    assert table.isascii()
    assert table.splitlines()[:11] == [
        "Layer (type)      Output shape  Params",
        "-" * 38,
        "SmallCNN          [2, 10]          690",
        "|- conv (Conv2d)  [2, 4, 8, 8]      40",
        "|  |- .weight...                    36",
        "|  `- .bias [4]                      4",
        "|- pool (MaxP...  [2, 4, 4, 4]       0",
        "`- fc (Linear)    [2, 10]          650",
        "   |- .weight...                   640",
        "   `- .bias [10]                    10",
        "-" * 38,
    ]
    assert "Params: 690 (2.7 KB) | trainable 690" in table


def test_markdown_and_html_share_the_new_columns() -> None:
    report = inn.inspect(Looped(), torch.randn(1, 2, 5))
    md = render_markdown(report, columns=["kernel", "params_percent", "mult_adds"])
    lines = md.splitlines()
    assert lines[0] == "| Layer | Type | Output | Kernel | Params % | Mult-adds | Params |"
    assert lines[3] == (
        "| &nbsp;&nbsp;`conv` | Conv1d | [1, 2, 5] | k=3 s=1 p=1 | 82.35% | 60 MACs | 14 |"
    )
    assert lines[4].endswith("| k=3 s=1 p=1 | - | 60 MACs | (recursive) |")
    html = report._repr_html_()
    assert html.count("(recursive)") == 5
    static = render_markdown(inn.inspect(Looped()), columns=["config"])
    assert static.startswith("**Looped: not run, no input given**")
    conv = (
        "| &nbsp;&nbsp;`conv` | Conv1d | - "
        "| 2, 2, kernel_size=(3,), stride=(1,), padding=(1,) | 14 |"
    )
    assert conv in static.splitlines()
    assert "**FLOPs:** - (not run)" in static
    assert "not run: no input given" in inn.inspect(Looped())._repr_html_()


def test_unknown_column_names_the_new_ones() -> None:
    with pytest.raises(ValueError, match="params_percent, trainable, flops, mult_adds"):
        inn.inspect(SmallCNN()).table(columns=["layer", "macs"])
