"""Sharding diagnoses and findings on real gloo ranks (issue 16), as ``simulate`` gives them.

One 2-rank job inspects two broken tensor-parallel MLPs on each rank:

- ``RowwiseParallel`` on ``"2"`` alone: ``"0"`` stays a plain ``Linear(8, 32)``, so every
  rank feeds the whole ``[4, 32]`` to ``"2"``, whose input hook takes it for this rank's
  shard and builds a global ``[4, 64]``;
- a hidden size of 9 over tp=2 (shards 5, 4): each rank's hook builds a global from its
  own shard, ``[4, 10]`` on rank 0 and ``[4, 8]`` on rank 1, neither the 9 of the weight.

The forward fails on both ranks before any collective, exactly as the plain forward does.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from ranks import run_ranks
from torch import nn

WORLD = 2


def _inspected(model: nn.Module, plan: dict[str, Any], mesh: Any) -> dict[str, Any]:
    """The plan applied, a plain forward's error and inspect's report of the same forward."""
    from torch.distributed.tensor.parallel import parallelize_module

    import inspectnn

    parallelize_module(model, mesh, plan)
    x = torch.randn(4, 8)
    try:
        model(x)
        plain = ""
    except RuntimeError as err:
        plain = str(err)
    report = inspectnn.inspect(model, x, on_error="report", device_memory=64)
    assert report.error is not None
    return {
        "plain": plain,
        "error": report.error.message,
        "layer": report.error.layer,
        "findings": [[f.kind, f.severity, f.layer, f.message] for f in report.findings],
    }


def _broken_plans(rank: int, world: int) -> dict[str, Any]:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel

    mesh = init_device_mesh("cpu", (world,), mesh_dim_names=("tp",))
    torch.manual_seed(0)
    replicated = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 8))
    uneven = nn.Sequential(nn.Linear(8, 9), nn.ReLU(), nn.Linear(9, 8))
    return {
        "replicated": _inspected(replicated, {"2": RowwiseParallel()}, mesh),
        "uneven": _inspected(uneven, {"0": ColwiseParallel(), "2": RowwiseParallel()}, mesh),
    }


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Each rank's diagnoses, from one 2-rank job shared by the tests below."""
    return run_ranks(_broken_plans, WORLD, tmp_path_factory.mktemp("shard-checks"))


def test_a_rowwise_layer_fed_a_replicated_input_on_real_ranks(
    results: list[dict[str, Any]],
) -> None:
    for got in (r["replicated"] for r in results):
        assert "[4, 64]" in got["plain"]  # torch's own error: the global its hook built
        assert got["layer"] == "2"
        assert (
            "  input from: '1' (ReLU): [4, 32], the full tensor on every rank; "
            "RowwiseParallel's input hook on '2' took it as this rank's shard of the last "
            "dimension and built a global [4, 64] (32 x tp=2)\n"
        ) in got["error"]
        fix = "ColwiseParallel() on '0', or RowwiseParallel(input_layouts=Replicate())"
        assert fix in got["error"]
        assert "a tensor the module holds" not in got["error"]


def test_an_uneven_hidden_size_on_real_ranks(results: list[dict[str, Any]]) -> None:
    for rank, (width, built) in enumerate([(5, 10), (4, 8)]):
        got = results[rank]["uneven"]
        assert f"[4, {built}]" in got["plain"]
        assert (
            f"which built a global [4, {built}] from this rank's shard, '1' (ReLU): "
            f"[4, {width}], taking every rank's shard to be {width} wide ({width} x tp=2)"
        ) in got["error"]
        assert "9 does not divide by tp=2: the ranks hold shards of 5, 4" in got["error"]
        uneven = [f for f in got["findings"] if f[0] == "uneven-shards"]
        assert uneven == [[
            "uneven-shards", "warning", "0",
            "9 does not divide by tp=2: 0.weight (dimension 0), 0.bias (dimension 0) and "
            f"2.weight (dimension 1) are cut into shards of 5, 4 over the 2 ranks (this rank "
            f"holds {width}).",
        ]]  # fmt: skip


def test_device_memory_on_real_ranks_holds_this_rank_s_parameters(
    results: list[dict[str, Any]],
) -> None:
    """The forward failed: only parameters and buffers are held against 64 bytes."""
    for got in results:
        (memory,) = [f for f in got["uneven"]["findings"] if f[0] == "device-memory"]
        assert memory[1] == "error"
        assert memory[3].startswith("This rank needs ")
        assert "for its parameters and buffers, more than device_memory=64 B" in memory[3]
