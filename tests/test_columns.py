"""The column registry (``inspectnn.renderers.columns``): one place for each column's
header, alignment and cell, read by the plain-text table, Markdown and HTML."""

from __future__ import annotations

import torch
from torch import nn

import inspectnn as inn
from inspectnn.records import Report
from inspectnn.renderers import markdown, table
from inspectnn.renderers.columns import COLUMNS, Column, Context, cell_text
from inspectnn.renderers.html import render_html


def _report() -> Report:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(2 * 4 * 4, 3))  # fmt: skip
    return inn.inspect(model, torch.randn(2, 1, 4, 4))


def test_every_column_has_a_header_an_alignment_and_a_cell() -> None:
    report = _report()
    assert tuple(COLUMNS) == table.COLUMNS
    for name, column in COLUMNS.items():
        assert column.name == name
        assert column.header and column.title
        assert column.align in ("left", "right")
        for rec in report.layers:
            assert isinstance(column.cell(rec, Context(report.totals.params)), str)
    assert cell_text(COLUMNS["output"], report.layers[1], Context(ran=False)) == "-"
    assert cell_text(COLUMNS["output"], report.layers[1], Context()) == "[2, 2, 4, 4]"


def test_table_and_markdown_headers_come_from_the_registry() -> None:
    report = _report()
    names = list(COLUMNS)
    head = table.render_table(report, columns=names).splitlines()[0].split()
    assert " ".join(head) == " ".join(COLUMNS[c].header for c in names)
    md_head = markdown.render_markdown(report, columns=names).splitlines()[0]
    # the layer as name and type; input and output first, params last, as before
    order = ["input", "output", *(c for c in names if c not in ("layer", "input", "output",
                                                                  "params")), "params"]
    titles = [COLUMNS[c].title for c in order]
    assert [t.strip() for t in md_head.strip("|").split("|")] == ["Layer", "Type", *titles]
    html = render_html(report)
    assert "<th>Layer (type)</th><th>Input shape</th><th>Output shape</th><th>Params</th>" in html


def test_a_column_added_to_a_copy_of_the_registry_shows_in_table_and_markdown() -> None:
    report = _report()
    known = dict(COLUMNS)
    known["rank"] = Column("rank", "Out rank", "Rank", "right",
                           lambda rec, ctx: str(len(rec.outputs[0].shape or ())))  # fmt: skip
    text = table._render(report, None, ["layer", "rank"], None, True, False, False, known)
    lines = text.splitlines()
    assert lines[0].endswith("Out rank")
    assert lines[3].endswith("       4") and lines[3].startswith("├─ 0 (Conv2d)")
    md = markdown._render(report, None, ["rank"], known)
    assert md.splitlines()[0] == "| Layer | Type | Output | Rank | Params |"
    assert md.splitlines()[3] == "| &nbsp;&nbsp;`0` | Conv2d | [2, 2, 4, 4] | 4 | 20 |"
    assert "rank" not in COLUMNS  # the copy, not the registry, was changed


def test_markdown_input_header_when_input_is_not_the_first_extra_column() -> None:
    # The header lost "Input" unless it came first, while every row still had it.
    md = markdown.render_markdown(_report(), columns=["flops", "input"])
    head, _, row, *_ = md.splitlines()
    assert head == "| Layer | Type | Input | Output | Flops | Params |"
    assert row == "| (root) | Sequential | [2, 1, 4, 4] | [2, 3] | 1.5 KFLOPs | 119 |"


def test_html_says_failed_as_table_and_markdown_do() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(5, 2))
    report = inn.inspect(model, torch.randn(2, 4), on_error="report")
    html = render_html(report)
    assert "<td>[2, 3]</td><td>(failed)</td><td style='text-align:right'>12</td>" in html
    assert "| &nbsp;&nbsp;`1` | Linear | (failed) | 12 |" in markdown.render_markdown(report)
