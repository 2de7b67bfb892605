"""``renderers/table.py`` on hand-made reports, compared character for character."""

from __future__ import annotations

import pytest

from inspectnn.errors import InvalidInputError
from inspectnn.records import ErrorInfo, Finding, Report
from inspectnn.renderers.table import fold_runs, render_table, to_ascii

from .reports import MLP_LAYERS, call, mlp, stack, t, totals

FOOTER = (
    "Params: 58 (232 B) · trainable 58 · non-trainable 0 · buffers 0\n"
    "FLOPs: 240 FLOPs · activations 224 B · device cpu · mode eval"
)


def test_default_columns() -> None:
    assert render_table(mlp()) == (
        "Layer (type)     Output shape  Params\n"
        "─────────────────────────────────────\n"
        "Net              [3, 2]            58\n"
        "├─ fc1 (Linear)  [3, 8]            40\n"
        "├─ act (ReLU)    [3, 8]             0\n"
        "└─ fc2 (Linear)  [3, 2]            18\n"
        "─────────────────────────────────────\n" + FOOTER
    )


def test_every_column() -> None:
    columns = ["layer", "input", "output", "dtype", "device", "params", "params_percent",
               "trainable", "flops", "mult_adds"]  # fmt: skip
    assert render_table(mlp(), columns=columns).splitlines()[:6] == [
        "Layer (type)     Input shape  Output shape  Dtype    Device  Params  Params %"
        "  Trainable      FLOPs  Mult-adds",
        "─" * 110,
        "Net              [3, 4]       [3, 2]        float32  cpu         58   100.00%"
        "         58  240 FLOPs   120 MACs",
        "├─ fc1 (Linear)  [3, 4]       [3, 8]        float32  cpu         40    68.97%"
        "         40  192 FLOPs    96 MACs",
        "├─ act (ReLU)    [3, 8]       [3, 8]        float32  cpu          0     0.00%"
        "          0          0          0",
        "└─ fc2 (Linear)  [3, 8]       [3, 2]        float32  cpu         18    31.03%"
        "         18   48 FLOPs    24 MACs",
    ]


def test_parameter_rows_error_and_findings_under_the_table() -> None:
    report = mlp(
        findings=[Finding("dead-computation", "info", "act", "act's output is unused.", "drop it"),
                  Finding("shape-mismatch", "error", "fc2", "said in the error line")],
        error=ErrorInfo("ShapeMismatchError", "fc2 wants 8 features, got 7", "fc2"),
    )  # fmt: skip
    assert render_table(report, parameters=True) == (
        "Layer (type)          Output shape  Params\n"
        "──────────────────────────────────────────\n"
        "Net                   [3, 2]            58\n"
        "├─ fc1 (Linear)       [3, 8]            40\n"
        "│  ├─ .weight [8, 4]                    32\n"
        "│  └─ .bias [8]                          8\n"
        "├─ act (ReLU)         [3, 8]             0\n"
        "└─ fc2 (Linear)       [3, 2]            18\n"
        "──────────────────────────────────────────\n" + FOOTER + "\n"
        "Error in 'fc2' (Linear): ShapeMismatchError: fc2 wants 8 features, got 7\n"
        "[info] act: act's output is unused.\n"
        "    fix: drop it"
    )


def test_ascii_draws_no_box_characters() -> None:
    text = render_table(mlp(), ascii=True)
    assert text.isascii()
    assert text.splitlines()[1:4] == ["-" * 37, "Net              [3, 2]            58",
                                      "|- fc1 (Linear)  [3, 8]            40"]  # fmt: skip
    assert text.splitlines()[5] == "`- fc2 (Linear)  [3, 2]            18"
    assert to_ascii("a · b … c × d → e ≠ f µs") == "a | b ... c x d -> e != f us"
    assert to_ascii("ü") == "?"


def test_max_width_cuts_config_then_layer_to_twelve() -> None:
    text = render_table(mlp(), columns=["layer", "config", "params"], max_width=30)
    assert text.splitlines()[:3] == [
        "Layer (type)  Config        Params",  # 12 + 2 + 12 + 2 + 6: twelve is the floor
        "─" * 34,
        "Net           -                 58",
    ]
    assert text.splitlines()[3] == "├─ fc1 (Lin…  in_features…      40"


def test_depth_zero_is_the_root_alone() -> None:
    assert render_table(mlp(), depth=0).splitlines()[2:4] == ["Net           [3, 2]            58",
                                                              "─" * 34]  # fmt: skip


def test_a_stack_of_identical_blocks_folds_into_one_row() -> None:
    assert render_table(stack(3)).splitlines()[:4] == [
        "Layer (type)                        Output shape   Params",
        "─" * 57,
        "Stack                               [2, 4]             60",
        "└─ blocks.0 … blocks.2 (Linear) x3  [2, 4]        20 each",
    ]
    assert len(render_table(stack(3), fold=False).splitlines()) == 3 + 4 + 2


def test_fold_runs_needs_each_block_fed_by_the_one_before() -> None:
    blocks = stack(3).layers
    kids = {0: [1, 2, 3]}
    assert fold_runs([1, 2, 3], kids, blocks) == [(1, 3)]
    parallel = [call(0, "", "Two", -1, [t(2, 4, source="inputs[0]")], [t(2, 4)], 40)]
    parallel += [call(i + 1, f"b{i}", "Linear", 0, [t(2, 4, source="inputs[0]")], [t(2, 4)], 20)
                 for i in range(2)]  # fmt: skip
    assert fold_runs([1, 2], {0: [1, 2]}, parallel) == [(1, 1), (2, 1)]
    other = [*blocks[:3], call(3, "blocks.2", "Linear", 0, [t(2, 4, source="layers[2]")],
                              [t(2, 5)], 20)]  # fmt: skip
    assert fold_runs([1, 2, 3], kids, other) == [(1, 2), (3, 1)]


def test_a_module_called_again_is_recursive_or_folds_into_calls() -> None:
    layers = [
        call(0, "", "Loop", -1, [t(2, 4, source="inputs[0]")], [t(2, 4, source="layers[2]")], 20),
        call(1, "cell", "Linear", 0, [t(2, 4, source="inputs[0]")], [t(2, 4)], 20),
        call(2, "cell", "Linear", 0, [t(2, 4, source="layers[1]")], [t(2, 4)], 20, call=1),
    ]
    report = Report("Loop", "cpu", "train", totals(20), layers)
    columns = ["layer", "params", "params_percent"]
    assert render_table(report, columns=columns).splitlines()[3] == (
        "└─ cell (Linear) x2 calls      20   100.00%"
    )
    assert render_table(report, columns=columns, fold=False).splitlines()[3:5] == [
        "├─ cell (Linear)             20   100.00%",
        "└─ cell#1 (Linear)  (recursive)         -",
    ]


def test_tied_weight_is_starred_and_named_in_the_footer() -> None:
    layers = [
        call(0, "", "Tied", -1, [t(2, source="inputs[0]", dtype="int64")],
             [t(2, 10, source="layers[2]")], 40),
        call(1, "emb", "Embedding", 0, [t(2, source="inputs[0]", dtype="int64")], [t(2, 4)], 40),
        call(2, "head", "Linear", 0, [t(2, 4, source="layers[1]")], [t(2, 10)], 40,
             shared=("weight=emb.weight",)),
    ]  # fmt: skip
    lines = render_table(Report("Tied", "cpu", "eval", totals(40), layers)).splitlines()
    assert lines[4] == "└─ head (Linear)    [2, 10]          40*"
    assert lines[-1] == "* shared tensors, counted once: emb.weight = head.weight"


def test_a_model_not_run_shows_its_configuration() -> None:
    layers = [call(0, "", "Net", -1, [], [], 58), MLP_LAYERS[1]]
    found = [Finding("not-run", "info", "", "Net was not run.")]
    text = render_table(Report("Net", "cpu", "eval", totals(58), layers, findings=found))
    assert text.splitlines()[:5] == [
        "Net: not run: no input given (modules, parameters and configuration only)",
        "Layer (type)     Config                                    Params",
        "─" * 65,
        "Net              -                                             58",
        "└─ fc1 (Linear)  in_features=4, out_features=8, bias=True      40",
    ]
    assert "FLOPs: - (not run) · activations - · device cpu · mode eval" in text
    # a run-only column is "-" for every row
    assert render_table(Report("Net", "cpu", "eval", totals(58), layers, findings=found),
                        columns=["layer", "output"]).splitlines()[3] == "Net              -"


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"columns": "output"}, "a list of column names"),
        ({"columns": ["shape"]}, "unknown column 'shape'"),
        ({"depth": -1}, "depth is the deepest nesting"),
        ({"depth": True}, "depth is the deepest nesting"),
        ({"max_width": 0}, "max_width is the table's width"),
    ],
)
def test_bad_arguments_say_what_to_pass(kwargs: dict[str, object], says: str) -> None:
    with pytest.raises(InvalidInputError, match=says):
        render_table(mlp(), **kwargs)  # type: ignore[arg-type]
