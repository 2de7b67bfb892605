"""Renderers are pure functions of a Report: exact text at a fixed width.

Golden files live in tests/golden/; regenerate them deliberately with
``INSPECTNN_UPDATE_GOLDEN=1 pytest tests/test_render.py`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import models as zoo
import pytest
import torch

import inspectnn as inn
from inspectnn.renderers.table import COLUMNS, render_table

GOLDEN = Path(__file__).parent / "golden"


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("INSPECTNN_UPDATE_GOLDEN") == "1":
        path.write_text(text + "\n", encoding="utf-8")
    assert path.exists(), f"missing {path}; run with INSPECTNN_UPDATE_GOLDEN=1 to create it"
    assert text + "\n" == path.read_text(encoding="utf-8")


def test_simple_cnn_table_golden() -> None:
    report = inn.inspect(zoo.SimpleCNN(), torch.randn(64, 1, 28, 28))
    _check_golden("simple_cnn.txt", str(report))


def test_simple_cnn_all_columns_golden() -> None:
    report = inn.inspect(zoo.SimpleCNN(), torch.randn(64, 1, 28, 28))
    _check_golden("simple_cnn_all_columns.txt", report.table(columns=COLUMNS))


def test_tied_lm_golden() -> None:
    report = inn.inspect(zoo.TiedLM(), torch.randint(0, 100, (2, 7)))
    _check_golden("tied_lm.txt", str(report))


def test_failed_forward_golden() -> None:
    report = inn.inspect(zoo.BrokenFlattenCNN(), torch.randn(1, 3, 64, 64), on_error="report")
    _check_golden("broken_flatten_cnn.txt", str(report))


def test_identical_blocks_fold() -> None:
    report = inn.inspect(zoo.GPT2Like(n_layer=12, n_embd=32, n_head=2, vocab=64, n_positions=16),
                         torch.randint(0, 64, (1, 8)))  # fmt: skip
    folded = report.table(depth=1)
    block_rows = [line for line in folded.splitlines() if "GPT2Block" in line]
    assert len(block_rows) == 1
    assert "h.0 … h.11 (GPT2Block) x12" in block_rows[0]
    assert " each" in block_rows[0]
    unfolded = report.table(depth=1, fold=False)
    assert len([line for line in unfolded.splitlines() if "GPT2Block" in line]) == 12


def test_blocks_fold_only_when_every_shown_value_agrees() -> None:
    pair = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    pair[1].weight.requires_grad_(False)
    table = inn.inspect(pair, torch.randn(1, 2)).table(columns=["layer", "trainable"])
    assert [line.split()[-1] for line in table.splitlines()[3:5]] == ["6", "2"]
    assert " each" not in table
    convs = torch.nn.Sequential(*[torch.nn.Conv1d(2, 2, 1) for _ in range(3)])
    convs[1].weight.requires_grad_(False)
    convs[2].requires_grad_(False)
    report = inn.inspect(convs, torch.randn(1, 2, 5))
    rows = report.table(columns=["layer", "params", "trainable"]).splitlines()[3:6]
    assert [row.split()[-2:] for row in rows] == [["6", "6"], ["6", "2"], ["6", "0"]]
    drawn = report.graph(depth=1).source
    assert "×3" not in drawn and "x3" not in drawn
    same = torch.nn.Sequential(*[torch.nn.Conv1d(2, 2, 1) for _ in range(3)]).requires_grad_(False)
    folded = inn.inspect(same, torch.randn(1, 2, 5))
    assert "0 … 2 (Conv1d) x3" in folded.table(columns=["layer", "trainable"])
    assert "0 each" in folded.table(columns=["layer", "trainable"])
    assert "×3" in folded.graph(depth=1).source


def test_depth_limits_rows() -> None:
    report = inn.inspect(zoo.MyModel2(), torch.randn(5, 2))
    assert "linear.0" not in report.table(depth=1)
    assert "linear.0" in report.table(depth=2)


def test_max_width_cuts_the_layer_column() -> None:
    report = inn.inspect(zoo.GPT2Like(n_layer=2, n_embd=32, n_head=2, vocab=64, n_positions=16),
                         torch.randint(0, 64, (1, 8)))  # fmt: skip
    table = report.table(max_width=60)
    body = table.split("Params:")[0]
    assert max(len(line) for line in body.splitlines()) <= 60
    assert "…" in body


def test_unknown_column_says_which_exist() -> None:
    report = inn.inspect(zoo.MyModel(), torch.randn(5, 2))
    with pytest.raises(ValueError, match="choose from layer, input"):
        render_table(report, columns=["layer", "weights"])


def test_findings_print_under_the_table() -> None:
    report = inn.inspect(zoo.transformer_encoder_layer(), torch.randn(2, 5, 32))
    assert "[info] (root): In a plain eval forward" in str(report)


def test_repr_html() -> None:
    report = inn.inspect(zoo.SimpleCNN(), torch.randn(2, 1, 28, 28))
    html = report._repr_html_()
    assert html.startswith("<div><b>SimpleCNN</b>")
    assert "<td>[2, 16, 28, 28]</td>" in html
    assert html.count("<tr") == len(report.layers) + 1


def test_markdown_and_html_say_a_failure_once_as_the_table_does() -> None:
    from inspectnn.renderers.html import render_html
    from inspectnn.renderers.markdown import render_markdown

    report = inn.inspect(zoo.mismatched_mlp(), torch.randn(2, 784), on_error="report")
    assert report.error is not None
    (finding,) = [f for f in report.findings if f.layer == report.error.layer]
    assert finding.severity == "error"  # the error below repeats it
    for text in (str(report), render_markdown(report), render_html(report)):
        assert "in_features=64" in text  # the error, in full
        assert "got input [2, 128]" not in text  # not the finding again
