"""``params.py`` on a sharded rank: global counts, this rank's elements and bytes (issue 16).

Each test joins torch's ``"fake"`` process group (``FakeStore``: one process, no
collective really runs) as one rank of a 4-rank job and leaves it at the end, as
``tests/unit/test_distributed_placement.py`` does. A ``Linear(6, 10)`` whose weight and
bias are sharded on dimension 0 over 4 ranks splits its 10 rows unevenly: 3, 3, 3, 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.tensor import Replicate, Shard, distribute_tensor
from torch.distributed.tensor.parallel import ColwiseParallel, parallelize_module
from torch.testing._internal.distributed.fake_pg import FakeStore

import inspectnn as inn
from inspectnn.params import count_parameters
from inspectnn.records import ParamMeta
from inspectnn.renderers.markdown import render_markdown

WORLD = 4


@contextmanager
def _rank(rank: int) -> Iterator[DeviceMesh]:
    """This process as rank ``rank`` of ``WORLD`` in the fake process group, with a 1-D mesh."""
    dist.init_process_group("fake", store=FakeStore(), rank=rank, world_size=WORLD)
    try:
        yield init_device_mesh("cpu", (WORLD,))
    finally:
        dist.destroy_process_group()


def _sharded_model(mesh: DeviceMesh) -> nn.Sequential:
    """``Linear(6, 10)`` sharded by rows (bias frozen), then a replicated ``Linear(10, 2)``,
    the first one held twice (a tied module counts once)."""
    torch.manual_seed(0)
    first, second = nn.Linear(6, 10), nn.Linear(10, 2)
    first.weight = nn.Parameter(distribute_tensor(first.weight.detach(), mesh, [Shard(0)]))
    first.bias = nn.Parameter(
        distribute_tensor(first.bias.detach(), mesh, [Shard(0)]), requires_grad=False
    )
    second.weight = nn.Parameter(distribute_tensor(second.weight.detach(), mesh, [Replicate()]))
    return nn.Sequential(first, nn.ReLU(), second, first)


@pytest.mark.parametrize(("rank", "rows"), [(0, 3), (1, 3), (2, 3), (3, 1)])
def test_counts_are_global_and_bytes_are_this_rank_s_shards(rank: int, rows: int) -> None:
    with _rank(rank) as mesh:
        model = _sharded_model(mesh)
        counts = count_parameters(model)
        held = {id(p): p.to_local() if hasattr(p, "to_local") else p for p in model.parameters()}
        assert (counts.params, counts.trainable) == (60 + 10 + 20 + 2, 60 + 20 + 2)
        assert counts.per_module[id(model[0])][:2] == (70, 60)
        assert counts.sharded
        assert counts.local_params == sum(t.numel() for t in held.values())
        assert counts.local_params == rows * 6 + rows + 20 + 2
        assert counts.param_bytes == sum(t.nbytes for t in held.values())
        assert counts.param_bytes == 4 * counts.local_params


def test_a_plain_model_holds_everything_it_counts() -> None:
    counts = count_parameters(nn.Sequential(nn.Linear(6, 10), nn.Linear(10, 2)))
    assert (counts.params, counts.local_params, counts.sharded) == (92, 92, False)
    assert counts.param_bytes == 92 * 4
    totals = inn.inspect(nn.Linear(6, 10), torch.randn(2, 6)).totals
    assert (totals.sharded, totals.local_params) == (False, None)
    assert "sharded" not in totals.to_dict() and "local_params" not in totals.to_dict()


def test_the_summary_without_input_says_what_this_rank_holds() -> None:
    with _rank(3) as mesh:
        report = inn.inspect(_sharded_model(mesh))
        totals = report.totals
        assert (totals.params, totals.sharded, totals.local_params) == (92, True, 1 * 6 + 1 + 22)
        assert totals.param_bytes == 4 * 29
        assert totals.to_dict()["sharded"] is True
        assert totals.to_dict()["local_params"] == 29
        assert "Params: 92 (global) · this rank holds 29 (116 B) ·" in report.table()
        assert report.layers[1].weights == (
            ParamMeta("weight", (10, 6), "float32", True, ("Shard(0)",), (1, 6), (4,)),
            ParamMeta("bias", (10,), "float32", False, ("Shard(0)",), (1,), (4,)),
        )
        assert report.layers[3].weights[1] == ParamMeta("bias", (2,), "float32", True)


def test_a_traced_tensor_parallel_rank_reports_its_share() -> None:
    """``ColwiseParallel`` on a ``Linear(8, 10)``: rank 3 of 4 holds 1 of its 10 rows."""
    with _rank(3) as mesh:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 10))
        parallelize_module(model, mesh, {"2": ColwiseParallel()})
        report = inn.inspect(model, torch.randn(4, 8))
        totals = report.totals
        assert report.error is None
        assert totals.params == 72 + 90
        assert totals.local_params == 72 + 1 * 8 + 1
        assert totals.param_bytes == 4 * totals.local_params
        assert "Params: 162 (global) · this rank holds 81 (324 B) ·" in report.table()
        assert "**Params:** 162 (global) · this rank holds 81 (324 B)," in render_markdown(report)
        rows = {w.name: (w.shape, w.local_shape, w.placements) for w in report.layers[3].weights}
        assert rows == {
            "weight": ((10, 8), (1, 8), ("Shard(0)",)), "bias": ((10,), (1,), ("Shard(0)",)),
        }  # fmt: skip
        assert report.layers[1].weights[0] == ParamMeta("weight", (8, 8), "float32", True)
