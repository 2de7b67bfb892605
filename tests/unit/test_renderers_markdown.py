"""``renderers/markdown.py`` on hand-made reports, compared character for character."""

from __future__ import annotations

from dataclasses import replace

import pytest

from inspectnn.errors import InvalidInputError
from inspectnn.records import ErrorInfo, Finding, Report
from inspectnn.renderers.markdown import render_markdown

from .reports import mlp

TOTALS = "**Params:** 58 (232 B), trainable 58 · **FLOPs:** 240 FLOPs · device cpu · mode eval"


def test_layers_indented_by_depth_then_totals() -> None:
    assert render_markdown(mlp()) == (
        "| Layer | Type | Output | Params |\n"
        "|---|---|---|---|\n"
        "| (root) | Net | [3, 2] | 58 |\n"
        "| &nbsp;&nbsp;`fc1` | Linear | [3, 8] | 40 |\n"
        "| &nbsp;&nbsp;`act` | ReLU | [3, 8] | 0 |\n"
        "| &nbsp;&nbsp;`fc2` | Linear | [3, 2] | 18 |\n"
        "\n" + TOTALS + "\n"
    )


def test_input_comes_before_output_whatever_the_order_asked() -> None:
    assert render_markdown(mlp(), depth=0, columns=["flops", "input", "params"]) == (
        "| Layer | Type | Input | Output | Flops | Params |\n"
        "|---|---|---|---|---|---|\n"
        "| (root) | Net | [3, 4] | [3, 2] | 240 FLOPs | 58 |\n"
        "\n" + TOTALS + "\n"
    )


def test_error_block_and_findings_with_pipes_escaped() -> None:
    report = mlp(
        findings=[Finding("dead-computation", "info", "act", "a | b is unused.", "drop it")],
        error=ErrorInfo("ShapeMismatchError", "fc2 wants 8 features, got 7", "fc2"),
    )
    assert render_markdown(report).split(TOTALS + "\n")[1] == (
        "\n**Error** in `fc2`:\n\n```\nfc2 wants 8 features, got 7\n```\n"
        "- **info** `act`: a \\| b is unused. Fix: drop it\n"
    )


def test_a_pipe_in_a_cell_is_escaped() -> None:
    report = mlp()
    odd = replace(report.layers[1], type="A|B")
    text = render_markdown(Report("Net", "cpu", "eval", report.totals, [report.layers[0], odd]))
    assert "| &nbsp;&nbsp;`fc1` | A\\|B | [3, 8] | 40 |" in text


@pytest.mark.parametrize("bad", [{"columns": ["nope"]}, {"depth": -2}])
def test_bad_arguments(bad: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        render_markdown(mlp(), **bad)  # type: ignore[arg-type]
