"""The demo through a real subprocess, and diagrams rendered by the real `dot`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import models as zoo
import pytest
import torch

import inspectnn as inn
from inspectnn.renderers.graph import build_graph

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_demo_prints_the_table_and_writes_a_png(tmp_path: Path) -> None:
    out = tmp_path / "cnn.png"
    proc = subprocess.run(
        [sys.executable, "-m", "inspectnn", "demo", "-o", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "├─ conv_skip_adjust (Conv2d)  [64, 32, 14, 14]" in proc.stdout
    assert "Params: 207,466" in proc.stdout
    assert out.read_bytes().startswith(PNG_MAGIC)


def test_command_without_arguments_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "inspectnn"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "inspectnn demo" in proc.stdout


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf", ".dot"])
def test_render_every_format(tmp_path: Path, suffix: str) -> None:
    report = inn.inspect(zoo.SimpleCNN(), torch.randn(2, 1, 28, 28))
    path = report.render(tmp_path / f"cnn{suffix}")
    data = path.read_bytes()
    expected = {".png": PNG_MAGIC, ".svg": b"<?xml", ".pdf": b"%PDF", ".dot": b"digraph"}
    assert data.startswith(expected[suffix])


def test_render_unknown_suffix() -> None:
    report = inn.inspect(zoo.MyModel(), torch.randn(5, 2))
    with pytest.raises(inn.InspectnnError, match=r"\.png, \.svg, \.pdf, \.dot"):
        report.render("model.jpeg")


def test_graph_draws_the_skip_branch_and_merges() -> None:
    report = inn.inspect(zoo.SimpleCNN(), torch.randn(2, 1, 28, 28))
    idx = {r.label: r.index for r in report.layers}
    source = build_graph(report).source
    assert f"L{idx['pool']} -> L{idx['conv2']}" in source
    assert f"L{idx['pool']} -> L{idx['conv_skip_adjust']}" in source  # the branch
    report = inn.inspect(zoo.ComplexModel(), torch.randn(4, 10))
    source = build_graph(report).source
    b1, b2 = report.layer("branch1").index, report.layer("branch2").index
    assert f"L{b1} -> op0" in source and f"L{b2} -> op0" in source  # both into torch.cat
    assert f"op0 -> L{report.layer('combine').index}" in source


def test_graph_of_a_failed_forward_marks_the_layer() -> None:
    report = inn.inspect(zoo.BrokenFlattenCNN(), torch.randn(1, 3, 64, 64), on_error="report")
    source = build_graph(report, depth=2).source
    failing = report.layer("classifier.1").index
    assert re.search(rf"\tL{failing} \[label=[^\]]*color=\"#d00000\"", source)
