"""A 2-rank tensor-parallel MLP inspected on each rank of a real gloo job (issue 16).

Pins what ``inspect()`` does today on a sharded model (its table mixes global and
local views), that its counts are the unsharded model's and its bytes this rank's
shards', and that ``distributed/placement.py`` reads every
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


def _weights(report: Any) -> dict[str, dict[str, list[list[Any]]]]:
    """Each layer's parameter rows: global shape, local shape, placements."""
    return {
        layer.name: {
            w.name: [list(w.shape or ()), list(w.local_shape or ()), list(w.placements)]
            for w in layer.weights
        }
        for layer in report.layers
        if layer.weights
    }


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
        "local_params": report.totals.local_params,
        "sharded": report.totals.sharded,
        "totals_json": report.totals.to_dict(),
        "weights": _weights(report),
        "local_numel": sum(p.to_local().numel() for p in model.parameters()),
        "local_nbytes": sum(p.to_local().nbytes for p in model.parameters()),
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


def test_inspect_today_mixes_global_and_local_views(
    results: list[dict[str, Any]],
) -> None:
    """Today's behaviour, pinned so that the change issue 16 makes is seen.

    The ColwiseParallel Linear's output is recorded before its output hook turns it
    local (the global ``[4, 32]``), the ReLU after it sees the local ``[4, 16]``, and the
    RowwiseParallel Linear's input is recorded after its pre-hook made that local
    ``[4, 16]`` a global ``[4, 32]`` again.
    """
    for got in results:
        assert got["layers"] == {"": [[4, 8]], "0": [[4, 32]], "1": [[4, 16]], "2": [[4, 8]]}
        assert got["inputs"] == {"": [[4, 8]], "0": [[4, 8]], "1": [[4, 16]], "2": [[4, 32]]}
        assert got["plain_output"] == [4, 8]
    assert results[0]["table"] == results[1]["table"]


def test_counts_are_the_unsharded_model_s_and_bytes_this_rank_s(
    results: list[dict[str, Any]],
) -> None:
    """The parameter count is the unsharded model's on every rank (552); what the rank
    holds is its shards' elements (280: half of each sharded tensor, all of the
    replicated bias) and their bytes, and the table's totals line says both."""
    for got in results:
        assert got["params"] == 32 * 8 + 32 + 8 * 32 + 8
        assert got["sharded"] is True
        assert got["local_params"] == got["local_numel"] == 16 * 8 + 16 + 8 * 16 + 8
        assert got["param_bytes"] == got["local_nbytes"] == got["local_bytes"] == 4 * 280
        assert got["totals_json"]["params"] == 552
        assert (got["totals_json"]["sharded"], got["totals_json"]["local_params"]) == (True, 280)
        assert "Params: 552 (global) · this rank holds 280 (1.1 KB) ·" in got["table"]
        assert got["weights"] == {
            "0": {"weight": [[32, 8], [16, 8], ["Shard(0)"]], "bias": [[32], [16], ["Shard(0)"]]},
            "2": {"weight": [[8, 32], [8, 16], ["Shard(1)"]], "bias": [[8], [8], ["Replicate()"]]},
        }
