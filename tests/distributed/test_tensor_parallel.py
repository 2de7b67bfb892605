"""A 2-rank tensor-parallel MLP inspected on each rank of a real gloo job (issue 16).

Pins what ``inspect()`` does today on a sharded model (its table mixes global and
local views; its counts are global) and that ``distributed/placement.py`` reads every
parameter's sharding as the rank holds it: local shapes equal ``to_local()``'s, global
shapes the unsharded model's.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from ranks import run_ranks
from torch import nn

WORLD = 2


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 8))


def _shapes(model: nn.Module) -> dict[str, list[int]]:
    return {name: list(p.shape) for name, p in model.named_parameters()}


def _tp_rank(rank: int, world: int) -> dict[str, Any]:
    """On one rank: the MLP made tensor parallel, inspected; what each view says."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor.parallel import (
        ColwiseParallel,
        RowwiseParallel,
        parallelize_module,
    )

    import inspectnn
    from inspectnn.distributed.placement import local_bytes, shard_facts

    model = _mlp()
    unsharded = _shapes(model)
    mesh = init_device_mesh("cpu", (world,))
    parallelize_module(model, mesh, {"0": ColwiseParallel(), "2": RowwiseParallel()})
    x = torch.randn(4, 8)
    plain = model(x)
    report = inspectnn.inspect(model, x)
    facts = {name: shard_facts(p) for name, p in model.named_parameters()}
    return {
        "unsharded": unsharded,
        "plain_output": list(plain.shape),
        "layers": {layer.name: [list(t.shape) for t in layer.outputs] for layer in report.layers},
        "inputs": {layer.name: [list(t.shape) for t in layer.inputs] for layer in report.layers},
        "params": report.totals.params,
        "param_bytes": report.totals.param_bytes,
        "table": report.table(),
        "to_local": {n: list(p.to_local().shape) for n, p in model.named_parameters()},
        "global": {n: list(f.global_shape) for n, f in facts.items() if f is not None},
        "local": {n: list(f.local_shape) for n, f in facts.items() if f is not None},
        "placements": {n: list(f.placements) for n, f in facts.items() if f is not None},
        "coordinate": {n: list(f.coordinate or ()) for n, f in facts.items() if f is not None},
        "local_bytes": sum(local_bytes(p) for p in model.parameters()),
    }


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Each rank's findings, from one 2-rank job shared by the tests below."""
    return run_ranks(_tp_rank, WORLD, tmp_path_factory.mktemp("tp"))


def test_shard_facts_on_each_rank_match_to_local_and_the_unsharded_model(
    results: list[dict[str, Any]],
) -> None:
    assert len(results) == WORLD
    for rank, got in enumerate(results):
        assert got["global"] == got["unsharded"] == {
            "0.weight": [32, 8], "0.bias": [32], "2.weight": [8, 32], "2.bias": [8],
        }  # fmt: skip
        assert got["local"] == got["to_local"] == {
            "0.weight": [16, 8], "0.bias": [16], "2.weight": [8, 16], "2.bias": [8],
        }  # fmt: skip
        assert got["placements"] == {
            "0.weight": ["Shard(0)"], "0.bias": ["Shard(0)"],
            "2.weight": ["Shard(1)"], "2.bias": ["Replicate()"],
        }  # fmt: skip
        assert set(map(tuple, got["coordinate"].values())) == {(rank,)}
        assert got["local_bytes"] == (16 * 8 + 16 + 8 * 16 + 8) * 4


def test_inspect_today_mixes_global_and_local_views_and_counts_globally(
    results: list[dict[str, Any]],
) -> None:
    """Today's behaviour, pinned so that the change issue 16 makes is seen.

    The ColwiseParallel Linear's output is recorded before its output hook turns it
    local (the global ``[4, 32]``), the ReLU after it sees the local ``[4, 16]``, and the
    RowwiseParallel Linear's input is recorded after its pre-hook made that local
    ``[4, 16]`` a global ``[4, 32]`` again; the parameter count is the unsharded model's
    on every rank.
    """
    for got in results:
        assert got["layers"] == {"": [[4, 8]], "0": [[4, 32]], "1": [[4, 16]], "2": [[4, 8]]}
        assert got["inputs"] == {"": [[4, 8]], "0": [[4, 8]], "1": [[4, 16]], "2": [[4, 32]]}
        assert got["plain_output"] == [4, 8]
        assert got["params"] == 32 * 8 + 32 + 8 * 32 + 8
        assert got["param_bytes"] == 4 * got["params"]
    assert results[0]["table"] == results[1]["table"]
