"""``report.gather()`` on a real 4-rank gloo job, and ``simulate_job`` of the same job (issue 16).

The model: ``Linear(8, 16)`` (``ColwiseParallel``), ``ReLU``, ``Linear(16, 8)``
(``RowwiseParallel``) and a head ``Linear(8, 18)`` (``ColwiseParallel``, its output left
local) on ``tp=4``. 18 is cut 5, 5, 5, 3: rank 3 holds the smaller shard of the head and
outputs ``[4, 3]`` where the others output ``[4, 5]``. Every rank inspects its own shard
and calls ``gather`` twice (to rank 0, then to rank 3 with ``device_memory``); only the
destination gets the ``JobReport``.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from ranks import run_ranks
from torch import nn

WORLD = 4
VOCAB = 18


def _build(mesh: Any) -> nn.Module:
    from torch.distributed.tensor.parallel import (
        ColwiseParallel,
        RowwiseParallel,
        parallelize_module,
    )

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 8), nn.Linear(8, VOCAB))
    plan = {"0": ColwiseParallel(), "2": RowwiseParallel(), "3": ColwiseParallel()}
    return parallelize_module(model, mesh["tp"], plan)  # type: ignore[arg-type]


def _x() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(4, 8)


def _gather_rank(rank: int, world: int) -> dict[str, Any]:
    from torch.distributed.device_mesh import init_device_mesh

    import inspectnn

    mesh = init_device_mesh("cpu", (world,), mesh_dim_names=("tp",))
    report = inspectnn.inspect(_build(mesh), _x())
    to_0 = report.gather()
    to_last = inspectnn.gather(report, dst=world - 1, device_memory=600)
    t = report.totals
    return {
        "own": [t.local_params, t.param_bytes, t.buffer_bytes, t.activation_bytes, t.flops],
        "head": list(report.layer("3").outputs[0].held_shape or ()),
        "to_0": None if to_0 is None else to_0.to_dict(),
        "to_last": None if to_last is None else to_last.to_dict(),
        "text": None if to_0 is None else str(to_0),
    }


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Each rank's figures and what gather returned to it, from one 4-rank job."""
    return run_ranks(_gather_rank, WORLD, tmp_path_factory.mktemp("gather"))


def _figures(row: dict[str, Any]) -> list[int]:
    return [row[k] for k in ("local_params", "param_bytes", "buffer_bytes",
                             "activation_bytes", "flops")]  # fmt: skip


def test_only_the_destination_gets_the_job(results: list[dict[str, Any]]) -> None:
    assert [r["to_0"] is not None for r in results] == [True, False, False, False]
    assert [r["to_last"] is not None for r in results] == [False, False, False, True]


def test_the_job_holds_each_rank_s_own_figures(results: list[dict[str, Any]]) -> None:
    job = results[0]["to_0"]
    assert job["schema"] == "inspectnn.job/1" and not job["simulated"]
    assert (job["world_size"], job["mesh_dim_names"], job["mesh_shape"]) == (4, ["tp"], [4])
    for rank, got in enumerate(results):
        row = job["ranks"][rank]
        assert (row["rank"], row["coordinate"], row["like"]) == (rank, [rank], rank)
        assert _figures(row) == got["own"]
    # 4 x 8 + 4, 8 x 4 + 8 and 5 x 8 + 5 (rank 3: 3 x 8 + 3) parameters, float32
    assert [r["own"][:2] for r in results] == [[121, 484]] * 3 + [[103, 412]]
    assert [r["head"] for r in results] == [[4, 5]] * 3 + [[4, 3]]
    assert [bool(r["differs"]) for r in job["ranks"]] == [False, False, False, True]
    head = job["ranks"][3]["differs"][-1]
    assert head == {"layer": "3", "type": "Linear", "shapes": [[4, 3]], "reference": [[4, 5]]}
    (weight, bias) = job["uneven"]
    assert weight["held"] == [[[5, 8], [0, 1, 2]], [[3, 8], [3]]]
    assert (weight["smaller"], weight["empty"], bias["smaller"]) == ([3], [], [3])
    assert job["largest"] == 0 and job["first_out_of_memory"] is None
    assert "  rank 3: '(root)' (Sequential) [4, 3] (rank 0: [4, 5]); '3' (Linear) [4, 3] " \
           "(rank 0: [4, 5])" in results[0]["text"].splitlines()  # fmt: skip


def test_device_memory_at_another_destination(results: list[dict[str, Any]]) -> None:
    job = results[3]["to_last"]
    needs = [row["need"] for row in job["ranks"]]
    assert needs == [r["own"][1] + r["own"][3] for r in results]
    assert job["device_memory"] == 600
    assert job["first_out_of_memory"] == 0  # the first of the ranks that need the most
    assert job["ranks"] == results[0]["to_0"]["ranks"]


def test_simulate_job_agrees_with_the_real_job(results: list[dict[str, Any]]) -> None:
    import inspectnn

    simulated = inspectnn.simulate_job(_build, _x(), mesh={"tp": WORLD}).to_dict()
    real = results[0]["to_0"]
    assert [row["like"] for row in simulated["ranks"]] == [0, 0, 0, 3]
    for sim, got in zip(simulated["ranks"], real["ranks"], strict=True):
        assert {**sim, "like": got["like"]} == got
    assert simulated["uneven"] == real["uneven"] and simulated["shards"] == real["shards"]
