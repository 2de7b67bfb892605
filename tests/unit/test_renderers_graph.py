"""``renderers/graph.py``: the DOT source built from hand-made reports (no ``dot`` run)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from inspectnn.errors import InvalidInputError
from inspectnn.records import ErrorInfo, Finding, Report
from inspectnn.renderers.graph import build_graph, output_groups

from .reports import mlp, stack, t

HEAD = (
    "digraph {model} {{\n"
    '\tgraph [fontname=Helvetica fontsize=12 label="{model} · cpu · eval mode" labelloc=t'
    " rankdir={rankdir}]\n"
    "\tnode [fontname=Helvetica fontsize=10]\n"
    "\tedge [fontname=Helvetica fontsize=9]\n"
)
BOX = 'fillcolor="#ffffff" shape=box style="rounded,filled"'
IN = 'fillcolor="#e8f0fe" shape=oval style=filled'
OUT = 'fillcolor="#e6f4ea" shape=oval style=filled'


def test_one_node_per_layer_and_an_edge_per_tensor() -> None:
    assert build_graph(mlp(), depth=1).source == HEAD.format(model="Net", rankdir="TB") + (
        f'\tin0 [label="input [0]\n3×4 float32" {IN}]\n'
        f'\tL1 [label="fc1 · Linear 4→8 · 40 params" {BOX}]\n'
        f'\tL2 [label="act · ReLU" {BOX}]\n'
        f'\tL3 [label="fc2 · Linear 8→2 · 18 params" {BOX}]\n'
        '\tin0 -> L1 [label="3×4"]\n'
        '\tL1 -> L2 [label="3×8"]\n'
        '\tL2 -> L3 [label="3×8"]\n'
        f'\tout0 [label="output\n3×2 float32" {OUT}]\n'
        '\tL3 -> out0 [label="3×2"]\n'
        "}\n"
    )


def test_identical_blocks_fold_into_one_node_unless_asked_not_to() -> None:
    source = build_graph(stack(3), depth=1, direction="LR").source
    assert source.startswith(HEAD.format(model="Stack", rankdir="LR"))
    assert f'\tL1 [label="blocks.0 … blocks.2 ×3 · Linear · 20 params each" {BOX}]\n' in source
    assert "L2" not in source and '\tL1 -> out0 [label="2×4"]\n' in source
    unfolded = build_graph(stack(3), depth=1, fold=False).source
    assert '\tL1 -> L2 [label="2×4"]\n\tL2 -> L3 [label="2×4"]\n' in unfolded


def test_failed_layer_red_dtype_finding_orange() -> None:
    base = mlp()
    layers = list(base.layers)
    layers[0] = replace(layers[0], failed=True, outputs=())
    layers[3] = replace(layers[3], failed=True, outputs=())
    report = Report("Net", "cpu", "eval", base.totals, layers,
                    findings=[Finding("dtype-promotion", "warning", "fc1", "float64 in")],
                    error=ErrorInfo("ShapeMismatchError", "m", "fc2"))  # fmt: skip
    source = build_graph(report, depth=1).source
    assert ('\tL1 [label="fc1 · Linear 4→8 · 40 params" color="#e07000" fillcolor="#fff0dd"'
            " shape=box") in source  # fmt: skip
    assert ('\tL3 [label="fc2 · Linear 8→2 · 18 params" color="#d00000" fillcolor="#ffe5e5"'
            " shape=box") in source  # fmt: skip
    assert "out0" not in source


def test_a_layer_whose_output_is_unused_is_grey() -> None:
    base = mlp()
    layers = list(base.layers)
    layers[3] = replace(layers[3], inputs=(t(3, 8, source="layers[1]", path="[0]"),))
    source = build_graph(Report("Net", "cpu", "eval", base.totals, layers), depth=1).source
    assert ('\tL2 [label="act · ReLU" color="#9a9a9a" fillcolor="#f0f0f0" fontcolor="#9a9a9a"'
            " shape=box") in source  # fmt: skip
    assert '\tL1 -> L3 [label="3×8"]\n' in source


def test_no_depth_opens_every_level_of_a_small_model() -> None:
    assert build_graph(mlp()).source == build_graph(mlp(), depth=1).source
    assert build_graph(stack(2)).source == build_graph(stack(2), depth=1).source


def test_output_groups_gather_three_or_more_under_one_key() -> None:
    outputs = (t(2, path="[0]"), *(t(1, path=f"[1][{k}]") for k in range(3)),
               t(5, path=".a[0]"), t(5, path=".a[1]"))  # fmt: skip
    assert [(k, prefix, len(metas)) for k, prefix, metas in output_groups(outputs)] == [
        (0, "[0]", 1), (1, "[1]", 3), (4, ".a[0]", 1), (5, ".a[1]", 1)
    ]


@pytest.mark.parametrize("bad", [{"direction": "UP"}, {"depth": -1}])
def test_bad_arguments(bad: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        build_graph(mlp(), **bad)  # type: ignore[arg-type]
