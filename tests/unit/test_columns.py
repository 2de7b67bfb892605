"""``renderers/columns.py``: the value formatters and the cells, on hand-made records."""

from __future__ import annotations

from dataclasses import replace

import pytest

from inspectnn.records import TensorMeta
from inspectnn.renderers.columns import (
    COLUMNS,
    RECURSIVE,
    Context,
    cell_text,
    format_count,
    format_shapes,
    format_size,
    kernel_text,
    mult_adds_text,
    params_text,
    percent_text,
)

from .reports import MLP_LAYERS, call, t

FC1 = MLP_LAYERS[1]


@pytest.mark.parametrize(
    ("n", "unit", "text"),
    [
        (0, "B", "0 B"),
        (1023, "B", "1023 B"),
        (1536, "B", "1.5 KB"),
        (3 * 1024**3, "B", "3.0 GB"),
        (3 * 1024**6, "B", "3072.0 PB"),  # no prefix past P
        (-2048, "B", "-2.0 KB"),
        (999, "FLOPs", "999 FLOPs"),
        (2_500_000, "FLOPs", "2.5 MFLOPs"),  # powers of 1000 for anything but bytes
    ],
)
def test_format_size(n: int, unit: str, text: str) -> None:
    assert format_size(n, unit) == text


def test_format_count_and_mult_adds() -> None:
    assert (format_count(0), format_count(1234567)) == ("0", "1,234,567")
    assert (mult_adds_text(0), mult_adds_text(3), mult_adds_text(4_000)) == (
        "0", "1 MACs", "2.0 KMACs")  # fmt: skip


def test_format_shapes() -> None:
    assert format_shapes([]) == "-"
    assert format_shapes([t(64, 10)]) == "[64, 10]"
    assert format_shapes([t(), TensorMeta(None, None, None, value="None")]) == "[], None"
    assert format_shapes([TensorMeta(None, None, None)]) == "?"
    assert format_shapes([t(1), t(2), t(3), t(4), t(5)]) == "[1], [2], [3], +2 more"
    assert format_shapes([t(1), t(2)], limit=1) == "[1], +1 more"


@pytest.mark.parametrize(
    ("kind", "extra", "text"),
    [
        ("Conv2d", "3, 16, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1)", "k=3x3 s=2 p=1"),
        ("Conv2d", "3, 16, kernel_size=(3, 3), stride=(1, 1)", "k=3x3 s=1 p=0"),
        ("Conv1d", "3, 6, kernel_size=(5,), stride=(1,), dilation=(2,), groups=3",
         "k=5 s=1 p=0 d=2 g=3"),
        ("MaxPool2d", "kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False",
         "k=2x2 s=2 p=0"),
        ("Conv3d", "1, 1, kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=same",
         "k=1x3x3 s=1x2x2 p=same"),
        ("Linear", "in_features=4, out_features=8, bias=True", ""),
    ],
)  # fmt: skip
def test_kernel_text(kind: str, extra: str, text: str) -> None:
    assert kernel_text(call(1, "m", kind, 0, [], [], extra=extra)) == text


def test_params_and_percent_of_a_repeat_call() -> None:
    again = replace(FC1, call=1)
    assert (params_text(FC1), params_text(again)) == ("40", RECURSIVE)
    assert (percent_text(FC1, 80), percent_text(again, 80), percent_text(FC1, 0)) == (
        "50.00%", "-", "-")  # fmt: skip
    stateless = replace(MLP_LAYERS[2], call=1)
    assert (params_text(stateless), percent_text(stateless, 80)) == ("0", "0.00%")


def test_a_tied_count_is_starred_where_marks_are_wanted() -> None:
    tied = replace(FC1, shared=("weight=other.weight",), trainable_params=8)
    params, trainable = COLUMNS["params"], COLUMNS["trainable"]
    assert cell_text(params, tied, Context()) == "40*"
    assert cell_text(params, tied, Context(marks=False)) == "40"
    assert cell_text(trainable, tied, Context()) == "8"


def test_a_folded_run_says_each_and_names_its_ends() -> None:
    run = Context(count=3, last_name="blocks.2", prefix="└─ ")
    block = call(1, "blocks.0", "Linear", 0, [], [t(2, 4)], 20, flops=32)
    assert cell_text(COLUMNS["layer"], block, run) == "└─ blocks.0 … blocks.2 (Linear) x3"
    assert cell_text(COLUMNS["params"], block, run) == "20 each"
    assert cell_text(COLUMNS["flops"], block, run) == "32 FLOPs each"
    assert cell_text(COLUMNS["mult_adds"], block, run) == "16 MACs each"
    assert cell_text(COLUMNS["output"], block, run) == "[2, 4]"
    # one module called three times: its parameters once, its name once
    loop = Context(count=3, last_name="blocks.0")
    assert cell_text(COLUMNS["layer"], block, loop) == "blocks.0 (Linear) x3 calls"
    assert cell_text(COLUMNS["params"], block, loop) == "20"


def test_layer_cell_marks_failed_and_uninitialised() -> None:
    failed = replace(FC1, failed=True, outputs=())
    assert cell_text(COLUMNS["layer"], failed, Context()) == "fc1 (Linear)  <-- failed"
    assert cell_text(COLUMNS["output"], failed, Context()) == "(failed)"
    lazy = replace(FC1, weights=(replace(FC1.weights[0], shape=None),))
    assert cell_text(COLUMNS["layer"], lazy, Context()) == "fc1 (Linear)  (uninitialised)"
    assert cell_text(COLUMNS["layer"], MLP_LAYERS[0], Context()) == "Net"


def test_input_dtype_and_device_cells() -> None:
    half = t(2, dtype="float16")
    outputs = [half, half, TensorMeta((2,), "int64", "meta")]
    mixed = call(1, "m", "M", 0, [TensorMeta(None, None, None, value="None"), t(2, 3)], outputs)
    assert cell_text(COLUMNS["input"], mixed, Context()) == "[2, 3]"  # tensors before values
    assert cell_text(COLUMNS["dtype"], mixed, Context()) == "float16, int64"
    assert cell_text(COLUMNS["device"], mixed, Context()) == "cpu, meta"
    only_values = call(1, "m", "M", 0, [TensorMeta(None, None, None, value="3")], [])
    assert cell_text(COLUMNS["input"], only_values, Context()) == "3"


def test_run_only_columns_are_a_dash_for_a_model_not_run() -> None:
    not_run = Context(total=80, ran=False)
    for name, column in COLUMNS.items():
        text = cell_text(column, FC1, not_run)
        assert (text == "-") is column.needs_run, name
