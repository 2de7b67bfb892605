"""The collectives a sharded rank's forward ran, per call, and the diagram of it (issue 16).

Simulated ranks (``inspectnn.simulate``: torch's fake process group, the model on
meta) of the tensor-parallel MLP ``Linear(8, 32)`` (``ColwiseParallel``), ``ReLU``,
``Linear(32, 8)`` (``RowwiseParallel``): the Rowwise layer's output hook all-reduces
its partial sum, the Colwise one runs nothing (its input is replicated already). With
a sharded input and output (``input_layouts=Shard(0)``, ``output_layouts=Shard(0)``)
the Colwise pre-hook all-gathers and the Rowwise hook reduce-scatters. The real
2-rank gloo run of the same model is ``tests/distributed/test_tensor_parallel.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor import Shard
from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

import inspectnn as inn
from inspectnn.records import Collective
from inspectnn.trace.collectives import is_collective
from inspectnn.trace.tracer import Tracer

ALL_REDUCE = "_c10d_functional.all_reduce"


def _mlp(mesh: DeviceMesh) -> nn.Module:
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 8))
    return parallelize_module(model, mesh["tp"], {"0": ColwiseParallel(), "2": RowwiseParallel()})


def _sharded_io(mesh: DeviceMesh) -> nn.Module:
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 8))
    plan = {"0": ColwiseParallel(input_layouts=Shard(0)),
            "2": RowwiseParallel(output_layouts=Shard(0))}  # fmt: skip
    return parallelize_module(model, mesh["tp"], plan)


@pytest.fixture(scope="module")
def rank5() -> inn.Report:
    """Rank 5 of a tp=8 job."""
    return inn.simulate(_mlp, torch.randn(4, 8), mesh={"tp": 8}, rank=5)


def test_the_rowwise_layer_ran_one_all_reduce_of_its_local_output(rank5: inn.Report) -> None:
    by_name = {layer.name: layer.collectives for layer in rank5.layers}
    # the partial sum all-reduced: this rank's [4, 8] float32, 128 bytes
    assert by_name == {"": (), "0": (), "1": (), "2": (Collective(ALL_REDUCE, 1, 128),)}
    assert rank5.layers[3].to_dict()["collectives"] == [
        {"op": ALL_REDUCE, "count": 1, "bytes": 128}
    ]
    assert "collectives" not in rank5.layers[1].to_dict()
    assert rank5.table().splitlines()[-1] == "Collectives: 1 all_reduce (128 B)"
    assert "FLOPs 512 · Collectives: 1 all_reduce (128 B)</p>" in rank5._repr_html_()


def test_the_graph_shows_placements_and_the_all_reduce(rank5: inn.Report) -> None:
    dot = rank5.graph().source
    assert 'in0 -> L1 [label="4×8 R"]' in dot  # replicated by the Colwise pre-hook
    assert 'L1 -> L2 [label="4×4"]' in dot  # the Colwise output hook's local shard
    assert 'L2 -> L3 [label="4×4 S(1)"]' in dot  # made Shard(1) by the Rowwise pre-hook
    assert 'L3 -> out0 [label="4×8"]' in dot
    assert 'L3 [label="2 · Linear 32→8 · 264 params\n⇄ all_reduce ×1 (128 B)"' in dot
    assert 'color="#1a73e8"' in dot.split("L3 [label=")[1].split("\n\t")[0]
    assert "⇄" not in dot.split("L3 [label=")[0]  # no other node ran one
    assert "rank 5 of 8 · mesh tp=8 at (5,) · local shapes" in dot
    # the global view: whole shapes on the edges
    glob = inn.simulate(_mlp, torch.randn(4, 8), mesh={"tp": 8}, rank=5, view="global")
    assert 'L2 -> L3 [label="4×32 S(1)"]' in glob.graph().source


def test_pre_hook_and_output_hook_collectives_belong_to_their_layer() -> None:
    """The Colwise pre-hook's all-gather of the Shard(0) input is layer 0's (its pre-hooks
    run before its call starts), the Rowwise hook's reduce-scatter layer 2's; the
    gathered input still comes from the model's input (an edge from it)."""
    report = inn.simulate(_sharded_io, torch.randn(1, 8), mesh={"tp": 4}, rank=1)
    by_name = {layer.name: layer.collectives for layer in report.layers}
    assert by_name == {
        "": (),
        "0": (Collective("_c10d_functional.all_gather_into_tensor", 1, 1 * 8 * 4),),
        "1": (),
        "2": (Collective("_c10d_functional.reduce_scatter_tensor", 1, 4 * 8 * 4),),
    }
    footer = report.table().splitlines()[-1]
    assert footer == (
        "Collectives: 1 all_gather_into_tensor (32 B) · 1 reduce_scatter_tensor (128 B)"
    )
    dot = report.graph().source
    assert 'in0 -> L1 [label="4×8 R"]' in dot
    assert "⇄ all_gather_into_tensor ×1 (32 B)" in dot
    assert "⇄ reduce_scatter_tensor ×1 (128 B)" in dot


@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_the_sharded_graph_renders_with_dot(rank5: inn.Report, tmp_path: Path,
                                            suffix: str) -> None:  # fmt: skip
    path = rank5.render(tmp_path / f"tp{suffix}")
    if suffix == ".svg":
        text = path.read_text(encoding="utf-8")
        assert "<svg" in text
        assert "⇄ all_reduce ×1 (128 B)" in text and "4×4 S(1)" in text and "4×8 R" in text
    else:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def test_a_plain_model_pays_nothing_and_records_none() -> None:
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 8))
    with Tracer(model) as tracer:
        model(torch.randn(4, 8))
        assert tracer._comms is None  # no dispatch mode pushed for a plain model
    report = inn.inspect(model, torch.randn(4, 8))
    assert all(layer.collectives == () for layer in report.layers)
    assert "collectives" not in report.to_json()
    assert "Collectives" not in report.table()
    assert "⇄" not in report.graph().source


def test_which_ops_are_collectives() -> None:
    ops = torch.ops
    assert is_collective(ops._c10d_functional.all_reduce.default)
    assert is_collective(ops._c10d_functional.all_gather_into_tensor.default)
    assert is_collective(ops.c10d.allreduce_.default)
    assert not is_collective(ops._c10d_functional.wait_tensor.default)
    assert not is_collective(ops._c10d_functional._wrap_tensor_autograd.default)
    assert not is_collective(ops.aten.add.Tensor)
    assert Collective("c10d.allreduce_", 1, 4).name == "all_reduce"
    assert Collective("c10d._allgather_base_", 1, 4).name == "all_gather_into_tensor"
    assert Collective(ALL_REDUCE, 1, 4).name == "all_reduce"


class _Stack(nn.Module):
    """Three tensor-parallel MLP blocks in a row: folded into one ``×3`` node."""

    def __init__(self, mesh: DeviceMesh) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(_mlp(mesh) for _ in range(3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


def test_a_folded_run_says_its_collectives_are_each_block_s() -> None:
    """A node shows the collectives of the calls it stands for: a fold's first block's
    with ``each``; a closed module's whole subtree's."""
    report = inn.simulate(_Stack, torch.randn(4, 8), mesh={"tp": 8}, rank=5)
    assert [layer.label for layer in report.layers if layer.collectives] == [
        "blocks.0.2", "blocks.1.2", "blocks.2.2"
    ]
    assert report.table().splitlines()[-1] == "Collectives: 3 all_reduce (384 B)"
    dot = report.graph(depth=2).source
    assert "blocks.0 … blocks.2 ×3" in dot
    assert "⇄ all_reduce ×1 (128 B) each" in dot
    # a node stands for its subtree: at depth 1 the one "blocks" node ran all three
    assert "blocks · Sequential · 1,656 params\n⇄ all_reduce ×3 (384 B)" in report.graph(
        depth=1
    ).source
