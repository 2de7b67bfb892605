"""Diagrams: DOT text (golden), real renders with `dot`, readability at GPT-2 size.

Golden DOT files live in tests/golden/dot/; regenerate them deliberately with
``INSPECTNN_UPDATE_GOLDEN=1 pytest tests/test_graph.py`` and look at the pictures.
"""

from __future__ import annotations

import itertools
import os
import re
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import models as zoo
import pytest
import torch
from helpers import assert_unchanged, snapshot
from torch import nn

import inspectnn as inn
from inspectnn.renderers.graph import MAX_NODES, build_graph

GOLDEN = Path(__file__).parent / "golden" / "dot"


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("INSPECTNN_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing {path}; run with INSPECTNN_UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(encoding="utf-8")


def _nodes(source: str) -> list[str]:
    return re.findall(r"^\t+(\w+) \[label=", source, flags=re.M)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


class PromotingModel(nn.Module):
    """A float64 buffer added in forward silently turns activations float64."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.shift = Shift()
        self.out = nn.Linear(4, 2).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.shift(self.fc(x)))


class Shift(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("offset", torch.zeros(4, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.offset


GOLDEN_CASES: dict[str, tuple[Any, Any, dict[str, Any]]] = {
    "simple_cnn": (zoo.SimpleCNN, lambda: (torch.randn(2, 1, 28, 28),), {}),
    "complex_model": (zoo.ComplexModel, lambda: (torch.randn(4, 10),), {}),
    "multi_input_output": (
        zoo.MultiInputOutputModel, lambda: (torch.randn(4, 10), torch.randn(4, 5)), {}
    ),
    "gpt2_tiny": (zoo.gpt2_tiny, lambda: (torch.randint(0, 64, (1, 8)),), {}),
    "my_model2_depth2": (zoo.MyModel2, lambda: (torch.randn(5, 2),), {"depth": 2}),
    "broken_flatten_cnn": (
        zoo.BrokenFlattenCNN, lambda: (torch.randn(1, 3, 64, 64),), {"depth": 2}
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(GOLDEN_CASES))
def test_dot_golden(name: str) -> None:
    factory, inputs, options = GOLDEN_CASES[name]
    torch.manual_seed(0)
    report = inn.inspect(factory(), *inputs(), on_error="report")
    _golden(f"{name}.dot", build_graph(report, **options).source)


def test_node_ids_are_stable_across_runs() -> None:
    sources = {
        build_graph(inn.inspect(zoo.SimpleCNN(), torch.randn(2, 1, 28, 28))).source
        for _ in range(2)
    }
    assert len(sources) == 1


def test_skip_branch_is_drawn_and_greyed_as_dead() -> None:
    report = inn.inspect(zoo.SimpleCNN(), torch.randn(2, 1, 28, 28))
    idx = {r.label: r.index for r in report.layers}
    source = build_graph(report).source
    assert f"L{idx['pool']} -> L{idx['conv_skip_adjust']}" in source
    assert f"L{idx['conv_skip_adjust']} -> L{idx['pool#2']}" in source
    for dead in ("conv_skip_adjust", "pool#2"):
        node = re.search(rf"\tL{idx[dead]} \[label=[^\]]*\]", source)
        assert node and 'color="#9a9a9a"' in node.group(0)


def test_two_inputs_shared_layer_two_outputs() -> None:
    report = inn.inspect(zoo.MultiInputOutputModel(), torch.randn(4, 10), torch.randn(4, 5))
    source = build_graph(report).source
    shared = report.layer("shared_layer").index
    assert {"in0", "in1", "out0", "out1"} <= set(_nodes(source))
    assert f"L{report.layer('output_branch1').index} -> out0" in source
    assert f"L{report.layer('output_branch2').index} -> out1" in source
    assert source.count(f"-> L{shared} ") == 1  # one input: the merged sum


def test_folded_blocks_and_unfolded() -> None:
    model = zoo.GPT2Like(n_layer=6, n_embd=32, n_head=2, vocab=64, n_positions=16)
    report = inn.inspect(model, torch.randint(0, 64, (1, 8)))
    folded = build_graph(report, depth=1).source
    assert "h.0 … h.5 ×6 · GPT2Block" in folded and "params each" in folded
    unfolded = build_graph(report, depth=1, fold=False).source
    assert all(f"h.{i} · GPT2Block" in unfolded for i in range(6))
    blocks = [report.layer(f"h.{i}").index for i in range(6)]
    assert all(f"L{a} -> L{b}" in unfolded for a, b in itertools.pairwise(blocks))


def test_parallel_identical_branches_are_not_folded() -> None:
    report = inn.inspect(zoo.ComplexModel(), torch.randn(4, 10))
    source = build_graph(report).source
    assert "branch1 · Linear" in source and "branch2 · Linear" in source


def test_expanded_modules_are_clusters() -> None:
    report = inn.inspect(zoo.MyModel2(), torch.randn(5, 2))
    source = build_graph(report, depth=2).source
    assert f"subgraph cluster_L{report.layer('linear').index}" in source
    assert "linear.0 · Linear 2→5 · 15 params" in source


def test_failing_layer_red_with_got_and_expected_on_its_edge() -> None:
    report = inn.inspect(zoo.BrokenFlattenCNN(), torch.randn(1, 3, 64, 64), on_error="report")
    source = build_graph(report, depth=2).source
    failing = report.layer("classifier.1").index
    assert re.search(rf"\tL{failing} \[label=[^\]]*color=\"#d00000\"", source)
    assert 'label="got [1, 4096]\nexpected [*, 1024]"' in source


def test_dtype_trouble_is_orange_and_dtype_changes_label_edges() -> None:
    report = inn.inspect(PromotingModel(), torch.randn(2, 4))
    source = build_graph(report).source
    shift = report.layer("shift").index
    assert re.search(rf"\tL{shift} \[label=[^\]]*color=\"#e07000\"", source)
    assert "2×4 float64" in source  # the edge out of the promoting layer says so


def test_gpt2_sized_default_picture_is_readable(tmp_path: Path) -> None:
    with torch.device("meta"):
        model = zoo.GPT2Like()
    report = inn.inspect(model, torch.randint(0, 50257, (1, 128), device="meta"))
    graph = build_graph(report)
    assert len(_nodes(graph.source)) <= MAX_NODES
    width, height = _png_size(report.render(tmp_path / "gpt2.png"))
    assert height < 4000 and width < 4000


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_render_real_files(tmp_path: Path, suffix: str) -> None:
    path = inn.render(zoo.MultiInputOutputModel(), torch.randn(4, 10), torch.randn(4, 5),
                      path=tmp_path / f"mio{suffix}")  # fmt: skip
    if suffix == ".png":
        width, height = _png_size(path)
        assert 100 < width < 2000 and 200 < height < 2000
    else:
        text = path.read_text()
        assert "<svg" in text and "shared_layer · Linear 20→30" in text


def test_render_one_liner_draws_a_failing_model(tmp_path: Path) -> None:
    path = inn.render(zoo.BrokenFlattenCNN(), torch.randn(1, 3, 64, 64),
                      path=tmp_path / "broken.dot", depth=2)  # fmt: skip
    assert "#d00000" in path.read_text()


def test_digraph_shows_inline_as_svg_in_notebooks() -> None:
    graph = inn.inspect(zoo.MyModel(), torch.randn(5, 2)).graph()
    bundle = graph._repr_mimebundle_()
    assert "image/svg+xml" in bundle and "<svg" in bundle["image/svg+xml"]


def test_without_dot_binary_dot_files_work_and_images_say_what_to_install(
    tmp_path: Path,
) -> None:
    script = (
        "import torch, inspectnn as inn\n"
        "r = inn.inspect(torch.nn.Linear(2, 2), torch.randn(1, 2))\n"
        f"r.render({str(tmp_path / 'a.dot')!r})\n"
        "try:\n"
        f"    r.render({str(tmp_path / 'a.png')!r})\n"
        "except inn.InspectnnError as e:\n"
        "    print('ERR', e)\n"
    )
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}  # no Graphviz on PATH
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=120, check=True)  # fmt: skip
    assert (tmp_path / "a.dot").read_text().startswith("digraph")
    assert "ERR writing .png needs Graphviz's 'dot' program" in proc.stdout
    assert "apt-get install graphviz" in proc.stdout


def test_autograd_graph_names_parameters_and_takes_structured_outputs() -> None:
    for factory in (zoo.DictOutputModel, zoo.DataclassOutputModel, zoo.ModelOutputLike):
        model, x = factory(), torch.randn(2, 8)
        before = snapshot(model)
        graph = inn.autograd_graph(model, x)
        assert_unchanged(model, before)
        names = [n for n, _ in model.named_parameters()]
        assert all(name in graph.source for name in names), factory.__name__
        assert "AddmmBackward0" in graph.source


def test_autograd_graph_without_grad_says_why() -> None:
    model = zoo.MyModel().requires_grad_(False)
    with pytest.raises(inn.InspectnnError, match="requires_grad=True"):
        inn.autograd_graph(model, torch.randn(5, 2))


# Diagrams that keep their promise: at most MAX_NODES nodes for every model with
# depth=None, loops rolled up, the root's own ops grouped, folded blocks opened up.


def _flat_sequential(n: int) -> nn.Sequential:
    kinds = [lambda: nn.Linear(8, 8), nn.ReLU, nn.Tanh, nn.Identity]
    return nn.Sequential(*(kinds[i % 4]() for i in range(n)))


class Scan(nn.Module):
    """A selective-scan style loop: one cell called once per time step."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(4, 8)
        self.cell = nn.GRUCell(8, 8)
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inp(x)
        h = x.new_zeros(x.shape[0], 8)
        outs = []
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h)
            outs.append(h)
        return self.head(torch.stack(outs, 1))


class LoopedBlock(nn.Module):
    """A module with parts, called 50 times in a loop."""

    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Linear(8, 8), nn.ReLU())
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(50):
            x = self.block(x) * 0.5
        return self.head(x)


class MaskBuilding(nn.Module):
    """About 100 functional ops in the root's own forward, around two modules."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 8)
        self.fc = nn.Linear(8, 8)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.emb(ids)
        n = ids.shape[1]
        mask = torch.zeros(n, n)
        for _ in range(16):
            pos = torch.arange(n)
            mask = mask + (pos[:, None] >= pos[None, :]).float()
        return self.fc(x) + mask.sum()


class PaddedBranches(nn.Module):
    """Two conv branches into one `cat` that differ only in padding (and dilation)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(3, 8, 3, padding=2, dilation=2)
        self.c = nn.Conv2d(16, 8, (3, 5), stride=2, groups=4)
        self.d = nn.Conv1d(3, 3, 3, padding="same", padding_mode="circular")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.c(torch.cat([self.a(x), self.b(x)], 1))
        return y.mean() + self.d(x[:, :, 0]).mean()


def _node_labels(source: str) -> dict[str, str]:
    found = re.findall(r'^\t+(\w+) \[label=(?:"([^"]*)"|(\S+))', source, flags=re.M)
    return {node: quoted or bare for node, quoted, bare in found}


def _render_bounded(report: inn.Report, path: Path, fold: bool = True) -> None:
    """Render through the real `dot`; the PNG stays a readable size."""
    width, height = _png_size(report.render(path, fold=fold))
    assert width < 3000 and height < 3000, (width, height)


def test_flat_sequential_of_1000_layers_keeps_the_promise(tmp_path: Path) -> None:
    report = inn.inspect(_flat_sequential(1000), torch.randn(2, 8))
    source = build_graph(report).source
    labels = _node_labels(source)
    assert len(labels) <= MAX_NODES
    ranged = [n for n, text in labels.items() if "3 … 997 (995 layers)" in text]
    assert len(ranged) == 1
    assert "Linear, ReLU" in labels[ranged[0]] and "17,928 params" in labels[ranged[0]]
    first, last = report.layer("2").index, report.layer("998").index
    assert f"L{first} -> {ranged[0]}" in source and f"{ranged[0]} -> L{last}" in source
    _render_bounded(report, tmp_path / "flat.png")
    assert len(_nodes(build_graph(report, depth=1).source)) == 1002  # asked for: all of it


@pytest.mark.parametrize("depth", [None, 1, 2])
def test_loop_over_one_module_is_one_node_at_every_depth(tmp_path: Path, depth: int | None) -> None:
    report = inn.inspect(Scan(), torch.randn(2, 199, 4))
    source = build_graph(report, depth=depth).source
    labels = _node_labels(source)
    assert len(labels) <= 10, labels
    cells = [n for n, text in labels.items() if "cell" in text]
    assert len(cells) == 1 and labels[cells[0]].startswith("cell ×199 calls · GRUCell")
    stack = next(n for n, text in labels.items() if text == "stack")
    assert f"{cells[0]} -> {stack}" in source
    assert len(_nodes(build_graph(report, depth=1, fold=False).source)) > 199 * 2
    path = report.render(tmp_path / "scan.svg", depth=depth)
    assert "cell ×199 calls" in path.read_text()


def test_loop_over_a_module_with_parts_opens_one_call() -> None:
    report = inn.inspect(LoopedBlock(), torch.randn(2, 8))
    source = build_graph(report).source
    assert 'label="block ×50 calls · Sequential"' in source
    labels = _node_labels(source)
    assert sorted(t for t in labels.values() if t.startswith("block")) == [
        "block.0 · Linear 8→8 · 72 params", "block.1 · ReLU"]  # fmt: skip
    relu, head = report.layer("block.1").index, report.layer("head").index
    assert re.search(rf"L{relu} -> op\d+ .*\n\top\d+ -> L{head} ", source)


def test_functional_ops_in_the_root_are_grouped(tmp_path: Path) -> None:
    report = inn.inspect(MaskBuilding(), torch.randint(0, 10, (2, 5)))
    assert len(report.ops) > 90
    source = build_graph(report).source
    labels = _node_labels(source)
    assert len(labels) <= 8, labels
    group = next(n for n, text in labels.items() if "ops: zeros, arange, __getitem__, …" in text)
    assert labels[group].startswith(f"{len(report.ops) - 2} ops")
    assert f"{group} -> " in source  # the mask still flows on to the output
    _render_bounded(report, tmp_path / "mask.png")
    deeper = _node_labels(build_graph(report, depth=1).source)  # a set depth shows every op
    assert sum(text == "arange" for text in deeper.values()) == 16


def test_folded_transformer_encoder_opens_one_block(tmp_path: Path) -> None:
    layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True)
    report = inn.inspect(nn.TransformerEncoder(layer, 6), torch.randn(2, 5, 16))
    source = build_graph(report).source
    assert 'label="layers.0 … layers.5 ×6 · TransformerEncoderLayer"' in source
    labels = _node_labels(source).values()
    assert "layers.0.linear1 · Linear 16→32 · 544 params" in labels
    assert not any(text.startswith("layers.1") for text in labels)
    assert f"L{report.layer('layers.0.norm2').index} -> out0" in source  # the last block's output
    _render_bounded(report, tmp_path / "encoder.png")


def test_conv_labels_show_padding_and_settings_that_are_not_default(tmp_path: Path) -> None:
    report = inn.inspect(PaddedBranches(), torch.randn(1, 3, 16, 16))
    labels = _node_labels(build_graph(report).source).values()
    assert "a · Conv2d 3→8 k3 p1 · 224 params" in labels
    assert "b · Conv2d 3→8 k3 p2 d2 · 224 params" in labels
    assert "c · Conv2d 16→8 k3x5 s2 p0 g4 · 488 params" in labels
    assert "d · Conv1d 3→3 k3 p=same circular · 30 params" in labels
    assert "k3 p2 d2" in report.render(tmp_path / "branches.svg").read_text()


class TwoModuleLoop(nn.Module):
    """A loop over two modules with ops between every call: no roll applies, ranges do."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(300):
            x = self.b(self.a(x) * 2) + 1
        return x


@pytest.mark.parametrize("fold", [True, False])
def test_promise_holds_with_ops_between_every_call(tmp_path: Path, fold: bool) -> None:
    report = inn.inspect(TwoModuleLoop(), torch.randn(1, 4))
    source = build_graph(report, fold=fold).source
    labels = _node_labels(source)
    assert len(labels) <= MAX_NODES
    ranged = next(n for n, text in labels.items() if "(595 layers) · Linear" in text)
    assert re.search(rf"op\d+ -> {ranged} .*\n\t{ranged} -> op\d+ ", source)  # still a chain
    _render_bounded(report, tmp_path / "loop.png", fold=fold)


class FailingMask(MaskBuilding):
    """The mask building fails in its last op: the group that holds it is red."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out = super().forward(ids)
        return out + torch.ones(3)


def test_a_group_holding_the_failing_op_is_red() -> None:
    report = inn.inspect(FailingMask(), torch.randint(0, 10, (2, 5)), on_error="report")
    assert report.error is not None
    source = build_graph(report).source
    assert re.search(r'\tg\d+ \[label="\d+ ops: [^"]*" color="#d00000"', source), source
