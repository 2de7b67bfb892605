"""Sequence parallelism (``SequenceParallel`` norms between ``ColwiseParallel`` and
``RowwiseParallel(output_layouts=Shard(1))`` layers), simulated and on 2 real gloo ranks
(issue 16).

A correct plan: every activation's producer is followed through the tensor-parallel
hooks (a ``SequenceParallel`` norm's ``Shard(1)`` output all-gathered by the layer
after it), so nothing is called dead; a vocabulary-parallel embedding's masked partial
sum shows as ``P``. The classic mistake, an embedding left with its default
``Replicate()`` output before a sequence-parallel norm, runs without an error on a
sequence ``tp`` times too long: ``sequence-unsharded`` says so, in the simulation and
in the real job alike.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from ranks import run_ranks
from torch import nn

import inspectnn as inn

WORLD = 2
VOCAB, DIM, SEQ = 64, 16, 8


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm, self.up, self.down = nn.LayerNorm(DIM), nn.Linear(DIM, 32), nn.Linear(32, DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(torch.relu(self.up(self.norm(x))))


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, DIM)
        self.blocks = nn.Sequential(Block(), Block())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.emb(ids))


def _plan(mesh: Any, sequence_sharded: bool = True) -> nn.Module:
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor.parallel import (
        ColwiseParallel,
        RowwiseParallel,
        SequenceParallel,
        parallelize_module,
    )

    torch.manual_seed(0)
    model = Net()
    tp, out = mesh["tp"], Shard(1) if sequence_sharded else Replicate()
    emb = RowwiseParallel(input_layouts=Replicate(), output_layouts=out)
    parallelize_module(model, tp, {"emb": emb})
    for block in model.blocks:
        parallelize_module(block, tp, {
            "norm": SequenceParallel(),
            "up": ColwiseParallel(input_layouts=Shard(1)),
            "down": RowwiseParallel(output_layouts=Shard(1)),
        })  # fmt: skip
    return model


def _unsharded(mesh: Any) -> nn.Module:
    return _plan(mesh, sequence_sharded=False)


def _ids() -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, SEQ), generator=torch.Generator().manual_seed(1))


def _summary(report: Any) -> dict[str, Any]:
    return {
        "kinds": sorted(f.kind for f in report.findings),
        "findings": {f.kind: [f.layer, f.message] for f in report.findings},
        "norm_in": [
            [list(m.shape), list(m.held_shape), list(m.placements)]
            for layer in report.layers if layer.name == "blocks.0.norm" for m in layer.inputs
        ],
        "output": [list(m.held_shape) for m in report.outputs],
        "emb_placement": [list(m.placements) for m in report.layer("emb").outputs],
    }  # fmt: skip


def test_a_sequence_parallel_plan_has_no_dead_layer_and_shows_the_masked_sum_as_p() -> None:
    report = inn.simulate(_plan, _ids(), mesh={"tp": 4}, rank=1)
    found = _summary(report)
    assert "dead-computation" not in found["kinds"]
    assert "sequence-unsharded" not in found["kinds"]
    assert found["norm_in"] == [[[2, SEQ, DIM], [2, SEQ // 4, DIM], ["Shard(1)"]]]
    assert found["output"] == [[2, SEQ // 4, DIM]]  # each rank holds its slice of the sequence
    emb = report.layer("emb").outputs[0]
    assert emb.placements[0].startswith("_MaskPartial(")
    table = report.table(columns=["layer", "input", "output", "placement"])
    assert "\n├─ emb (Embedding)                    [2, 8]       [2, 8, 16]    P\n" in table


def test_an_embedding_left_replicated_before_a_sequence_parallel_norm_is_named() -> None:
    report = inn.simulate(_unsharded, _ids(), mesh={"tp": 4}, rank=1)
    assert report.error is None  # nothing fails: the sequence is silently 4 times too long
    found = _summary(report)
    assert found["norm_in"] == [[[2, 4 * SEQ, DIM], [2, SEQ, DIM], ["Shard(1)"]]]
    layer, message = found["findings"]["sequence-unsharded"]
    assert layer == "blocks.0.norm"
    assert "(and 1 more like it) was given this rank's whole sequence [2, 8, 16]" in message
    assert "a global [2, 32, 16], a sequence 4 times the model's 8" in message


def _both_plans(rank: int, world: int) -> dict[str, Any]:
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh("cpu", (world,), mesh_dim_names=("tp",))
    ids = _ids()
    out: dict[str, Any] = {}
    for name, build in (("sharded", _plan), ("unsharded", _unsharded)):
        model = build(mesh)
        plain = model(ids)
        out[name] = {**_summary(inn.inspect(model, ids)), "plain": list(plain.shape)}
    return out


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return run_ranks(_both_plans, WORLD, tmp_path_factory.mktemp("sp"))


def test_the_real_job_and_its_simulation_agree(real: list[dict[str, Any]]) -> None:
    for rank, got in enumerate(real):
        for name, build in (("sharded", _plan), ("unsharded", _unsharded)):
            simulated = _summary(inn.simulate(build, _ids(), mesh={"tp": WORLD}, rank=rank))
            assert {k: got[name][k] for k in simulated} == simulated
            assert got[name]["output"] == [got[name]["plain"]]
    assert "sequence-unsharded" in real[0]["unsharded"]["kinds"]
    assert "dead-computation" not in real[0]["sharded"]["kinds"]
