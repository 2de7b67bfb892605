"""``distributed/gather.py`` and ``distributed/job.py``: a job's per-rank view (issue 16),
from ``simulate_job`` (ranks simulated one by one on torch's fake process group, on meta).

The model is ``Linear(8, 16)`` (``ColwiseParallel``), ``ReLU``, ``Linear(16, 8)``
(``RowwiseParallel``) and a head ``Linear(8, vocab)`` (``ColwiseParallel``, its output
left local as a vocabulary-parallel loss takes it) on ``tp=8``. A vocabulary of 36 is
cut 5, 5, 5, 5, 5, 5, 5, 1: rank 7 holds a smaller shard and outputs ``[4, 1]``; one
of 12 is cut 2, 2, 2, 2, 2, 2, 0, 0: ranks 6 and 7 hold nothing of it.

Rank 0 holds 2 x 8 + 2 (the first layer's rows), 8 x 2 + 8 (the second's columns and its
replicated bias) and 5 x 8 + 5 of the head: 87 parameters, 348 bytes; its activations
are [4, 2] twice, [4, 8] and [4, 5]: 272 bytes; its FLOPs 2 x 4 x 8 x 2 twice and
2 x 4 x 8 x 5: 576. Rank 7: 51 parameters (204 B), 208 B, 320 FLOPs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

import inspectnn as inn
from inspectnn.distributed.job import RankSummary
from inspectnn.units import format_size

TP8 = {"tp": 8}


@pytest.fixture(autouse=True)
def _no_group_left() -> Iterator[None]:
    assert not dist.is_initialized()
    yield
    assert not dist.is_initialized()


def _model(vocab: int, built: list[int] | None = None) -> Callable[[DeviceMesh], nn.Module]:
    def build(mesh: DeviceMesh) -> nn.Module:
        if built is not None:
            built.append(dist.get_rank())
        model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 8), nn.Linear(8, vocab))
        plan = {"0": ColwiseParallel(), "2": RowwiseParallel(), "3": ColwiseParallel()}
        return parallelize_module(model, mesh["tp"], plan)  # type: ignore[arg-type]

    return build


def _figures(r: RankSummary) -> tuple[int, int, int, int, int]:
    return r.local_params, r.param_bytes, r.buffer_bytes, r.activation_bytes, r.flops


def test_36_over_tp_8_simulates_two_ranks_and_names_the_smaller_shard() -> None:
    built: list[int] = []
    hook = sys.excepthook
    job = inn.simulate_job(_model(36, built), torch.randn(4, 8), mesh=TP8)
    assert sys.excepthook is hook  # no "[rank7]: " prefix left on later tracebacks
    assert built == [0, 7]  # rank 0, then one rank per other kind: 7
    assert (job.world_size, job.mesh_dim_names, job.mesh_shape, job.params) == (
        8, ("tp",), (8,), 16 * 8 + 16 + 8 * 16 + 8 + 36 * 8 + 36)
    assert [r.rank for r in job.ranks] == list(range(8))
    assert [r.like for r in job.ranks] == [0] * 7 + [7]
    assert [r.coordinate for r in job.ranks] == [(i,) for i in range(8)]
    assert all(_figures(r) == (87, 348, 0, 272, 576) for r in job.ranks[:7])
    assert _figures(job.ranks[7]) == (51, 204, 0, 208, 320)
    (head_w, head_b) = job.uneven
    assert head_w.params == ("3.weight",) and head_w.shape == (36, 8)
    assert head_w.held == (((5, 8), (0, 1, 2, 3, 4, 5, 6)), ((1, 8), (7,)))
    assert (head_w.smaller, head_w.empty) == ((7,), ())
    assert head_b.held == (((5,), (0, 1, 2, 3, 4, 5, 6)), ((1,), (7,)))
    assert [r.rank for r in job.differing] == [7]
    (root, head) = job.ranks[7].differs
    assert (head.layer, head.type, head.shapes, head.reference) == ("3", "Linear", ((4, 1),),
                                                                   ((4, 5),))  # fmt: skip
    assert root.layer == "(root)"
    assert job.largest.rank == 0 and job.largest.need == 348 + 272
    assert job.first_out_of_memory is None


def test_a_rank_not_simulated_is_what_simulating_it_gives() -> None:
    """Rank 3 stands in for itself through rank 0, rank 15 of dp=2 x tp=8 through rank 7."""
    job = inn.simulate_job(_model(36), torch.randn(4, 8), mesh={"dp": 2, "tp": 8})
    assert sorted({r.like for r in job.ranks}) == [0, 7]
    for rank in (3, 15):
        alone = inn.simulate(_model(36), torch.randn(4, 8), mesh={"dp": 2, "tp": 8}, rank=rank)
        totals = alone.totals
        assert _figures(job.ranks[rank]) == (
            totals.local_params, totals.param_bytes, totals.buffer_bytes,
            totals.activation_bytes, totals.flops,
        )  # fmt: skip
    assert job.ranks[15].coordinate == (1, 7) and job.ranks[15].like == 7
    assert job.where(job.groups()[1]) == "dp=*, tp=7"


def test_12_over_tp_8_leaves_ranks_6_and_7_empty() -> None:
    job = inn.simulate_job(_model(12), torch.randn(4, 8), mesh=TP8)
    weight = job.uneven[0]
    assert weight.held == (((2, 8), (0, 1, 2, 3, 4, 5)), ((0, 8), (6, 7)))
    assert weight.empty == weight.smaller == (6, 7)
    assert job.ranks[6].differs[1].shapes == ((4, 0),)
    assert "  3.weight [12, 8] (Shard(0) over tp=8): ranks 0-5 hold [2, 8]; ranks 6-7 hold " \
           "[0, 8]; empty on ranks 6-7" in job.table().splitlines()  # fmt: skip


def test_device_memory_names_the_rank_that_runs_out_first() -> None:
    job = inn.simulate_job(_model(36), torch.randn(4, 8), mesh=TP8, device_memory="500B")
    assert job.device_memory == 500
    assert [r.rank for r in job.out_of_memory] == [0, 1, 2, 3, 4, 5, 6]  # 620 B each; 7: 412
    assert job.first_out_of_memory is job.out_of_memory[0]
    assert job.table().endswith(
        "Rank 0 would run out of device_memory=500 B first: it needs 620 B, 120 B more; "
        "7 of 8 ranks do not fit (0-6)."
    )
    fits = inn.simulate_job(_model(36), torch.randn(4, 8), mesh=TP8, device_memory="1KB")
    assert fits.first_out_of_memory is None
    spare = "Every rank fits in device_memory=1.0 KB (404 B to spare on rank 0)."
    assert fits.table().endswith(spare)


def test_the_table() -> None:
    job = inn.simulate_job(_model(36), torch.randn(4, 8), mesh=TP8)
    assert job.table() == str(job) == "\n".join([
        "Job: 8 ranks · mesh tp=8 · params 604 (global) · simulated: ranks 0, 7, each standing "
        "for the ranks that hold the same shards",
        "Ranks  Mesh    Params held  Activations      FLOPs  Memory  Layers ≠ rank 0",
        "─" * 75,
        "0-6    tp=0-6   87 (348 B)        272 B  576 FLOPs   620 B                -",
        "7      tp=7     51 (204 B)        208 B  320 FLOPs   412 B                2",
        "─" * 75,
        "Output shapes not rank 0's:",
        "  rank 7: '(root)' (Sequential) [4, 1] (rank 0: [4, 5]); '3' (Linear) [4, 1] "
        "(rank 0: [4, 5])",
        "Shards not alike on every rank:",
        "  3.weight [36, 8] (Shard(0) over tp=8): ranks 0-6 hold [5, 8]; rank 7 holds [1, 8]",
        "  3.bias [36] (Shard(0) over tp=8): ranks 0-6 hold [5]; rank 7 holds [1]",
        "Rank 0 holds the most: 620 B (parameters 348 B, activations 272 B) (so do ranks 1-6).",
    ])  # fmt: skip


def test_to_dict_is_json_and_reads_back() -> None:
    job = inn.simulate_job(_model(36), torch.randn(4, 8), mesh=TP8, device_memory="500B")
    data = job.to_dict()
    assert data["schema"] == "inspectnn.job/1"
    assert (data["largest"], data["first_out_of_memory"]) == (0, 0)
    assert data["uneven"][0]["smaller"] == [7]
    assert data["ranks"][7]["need"] == 412 and data["ranks"][7]["like"] == 7
    back = inn.JobReport.from_dict(json.loads(json.dumps(data)))
    assert back == job and str(back) == str(job) and back.to_dict() == data
    with pytest.raises(inn.InvalidInputError, match=r"not an inspectnn\.job/1 document"):
        inn.JobReport.from_dict({"schema": "inspectnn/1"})


def test_ranks_given_are_the_ranks_simulated() -> None:
    built: list[int] = []
    job = inn.simulate_job(_model(36, built), torch.randn(4, 8), mesh=TP8, ranks=[7, 3])
    assert built == [0, 3, 7]
    assert [(r.rank, r.like) for r in job.ranks] == [(0, 0), (3, 3), (7, 7)]
    assert job.table().splitlines()[0] == (
        "Job: 8 ranks · mesh tp=8 · params 604 (global) · ranks 0, 3, 7 only · simulated")
    with pytest.raises(inn.InvalidInputError, match="rank must be an int from 0 to 7"):
        inn.simulate_job(_model(36), torch.randn(4, 8), mesh=TP8, ranks=[8])


def test_a_training_step_s_peak_is_the_rank_s_need() -> None:
    def even(mesh: DeviceMesh) -> nn.Module:
        model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 16))
        plan = {"0": ColwiseParallel(), "2": RowwiseParallel()}
        return parallelize_module(model, mesh["tp"], plan)  # type: ignore[arg-type]

    job = inn.simulate_job(even, torch.randn(4, 16), mesh={"dp": 2, "tp": 4}, backward=True,
                           optimizer="adamw")  # fmt: skip
    alone = inn.simulate(even, torch.randn(4, 16), mesh={"dp": 2, "tp": 4}, rank=5,
                         backward=True, optimizer="adamw")  # fmt: skip
    assert alone.memory is not None
    assert {r.peak for r in job.ranks} == {alone.memory.peak} and {r.like for r in job.ranks} == {0}
    assert job.ranks[5].need == alone.memory.peak
    assert "Step peak" in job.table().splitlines()[1]
    over = inn.simulate_job(even, torch.randn(4, 16), mesh={"dp": 2, "tp": 4}, backward=True,
                            optimizer="adamw", device_memory=alone.memory.peak - 1)  # fmt: skip
    assert [r.rank for r in over.out_of_memory] == list(range(8))
    assert over.table().splitlines()[-1] == (
        f"Every rank would run out of device_memory={format_size(alone.memory.peak - 1)}: "
        f"each needs {format_size(alone.memory.peak)}, 1 B more."
    )


def test_gather_outside_a_job_says_to_call_it_on_every_rank() -> None:
    report = inn.inspect(nn.Linear(4, 2), torch.randn(3, 4))
    for call in (report.gather, lambda: inn.gather(report)):
        with pytest.raises(inn.InvalidInputError, match="call it on every rank of a"):
            call()
    with pytest.raises(inn.InvalidInputError, match="device_memory must be"):
        report.gather(device_memory="lots")


def test_gather_refuses_a_dst_outside_the_group() -> None:
    from torch.testing._internal.distributed.fake_pg import FakeStore

    report = inn.inspect(nn.Linear(4, 2), torch.randn(3, 4))
    hook = sys.excepthook
    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=2)
    try:
        with pytest.raises(inn.InvalidInputError, match="dst must be the rank that gets the "
                           "JobReport, an int from 0 to 1; got 2"):  # fmt: skip
            report.gather(dst=2)
    finally:
        dist.destroy_process_group()
        sys.excepthook = hook


def _flat(name: str | None) -> Callable[[DeviceMesh], nn.Module]:
    """``Linear(8, 36)`` column-parallel over the dp x tp mesh flattened into one dimension."""

    def build(mesh: DeviceMesh) -> nn.Module:
        flat = mesh["dp", "tp"]._flatten(name)  # type: ignore[arg-type]
        return parallelize_module(nn.Linear(8, 36), flat, ColwiseParallel())

    return build


def test_a_flattened_mesh_dimension_is_placed_by_its_name() -> None:
    """``_flatten()`` names it ``dp_tp``: 36 over 32 ranks is 2 on ranks 0-17, 0 on 18-31."""
    job = inn.simulate_job(_flat(None), torch.randn(4, 8), mesh={"dp": 4, "tp": 8})
    assert sorted({r.like for r in job.ranks}) == [0, 18]
    (weight, _) = job.uneven
    assert weight.mesh == ("dp_tp=32",)
    assert weight.empty == tuple(range(18, 32)) and job.ranks[31].local_params == 0
    assert job.ranks[17].local_params == 2 * 8 + 2


def test_a_mesh_dimension_it_cannot_place_simulates_every_rank_of_a_small_job() -> None:
    job = inn.simulate_job(_flat("odd"), torch.randn(4, 8), mesh={"dp": 2, "tp": 4})
    assert [r.like for r in job.ranks] == list(range(8))
    assert [r.local_params for r in job.ranks] == [5 * 8 + 5] * 7 + [8 + 1]
    with pytest.raises(inn.InvalidInputError, match=r"of the 32 ranks .* pass ranks="):
        inn.simulate_job(_flat("odd"), torch.randn(4, 8), mesh={"dp": 4, "tp": 8})


def test_a_second_simulated_rank_reports_its_own_coordinate() -> None:
    """torch maps a submesh to its root mesh process-wide, keyed by layout: rank 5's
    ``mesh["tp"]`` found rank 0's root mesh, whose coordinate was (0, 0)."""
    for rank, coordinate in ((0, (0, 0)), (5, (1, 1)), (6, (1, 2))):
        report = inn.simulate(_model(16), torch.randn(4, 8), mesh={"dp": 2, "tp": 4}, rank=rank)
        assert report.rank is not None and report.rank.coordinate == coordinate


def test_a_failed_forward_is_the_rank_s_error_and_its_activations_are_not_needed() -> None:
    """Rowwise after 36 over tp=8: every rank's input hook builds a wrong global shape."""

    def build(mesh: DeviceMesh) -> nn.Module:
        model = nn.Sequential(nn.Linear(8, 36), nn.ReLU(), nn.Linear(36, 8))
        plan = {"0": ColwiseParallel(), "2": RowwiseParallel()}
        return parallelize_module(model, mesh["tp"], plan)  # type: ignore[arg-type]

    job = inn.simulate_job(build, torch.randn(4, 8), mesh=TP8, on_error="report")
    assert {r.error for r in job.ranks} == {"ShapeMismatchError in '2'"}
    assert [r.need for r in job.ranks] == [r.param_bytes for r in job.ranks]
    assert [r.local_params for r in job.ranks] == [5 * 8 + 5 + 8 * 5 + 8] * 7 + [8 + 1 + 8 + 8]
    assert job.table().splitlines()[1].endswith("Layers ≠ rank 0  Error")
