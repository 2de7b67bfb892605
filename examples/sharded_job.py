"""A small LLaMA-style model, FSDP2 over ``dp`` and tensor parallel over ``tp``, on 4 ranks.

Run it as a real job on this CPU (gloo), every rank inspecting its own shard::

    python -m torch.distributed.run --standalone --nproc-per-node 4 examples/sharded_job.py

Rank 0 prints its table (each ``DTensor`` value's local shape and placement) and the
job's per-rank view from ``report.gather()`` (a collective: every rank calls it, rank 0
gets the ``JobReport``). The same rank of the same job, simulated in one process on
torch's fake process group::

    python examples/sharded_job.py --simulate 0

The mesh is ``dp=2 x tp=2``: ranks 0 and 1 hold the same tensor-parallel shards of
different FSDP2 shards, ranks 0 and 2 the other way round.
"""

from __future__ import annotations

import argparse
import os

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh

import inspectnn as inn

DIM, HIDDEN, HEAD_DIM, BLOCKS = 64, 160, 16, 2


class Attention(nn.Module):
    """Causal self-attention whose head count follows its (local) projection's width."""

    def __init__(self) -> None:
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(DIM, DIM, bias=False) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = (p(x).view(b, t, -1, HEAD_DIM).transpose(1, 2) for p in (self.q, self.k, self.v))
        y = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o(y.transpose(1, 2).reshape(b, t, -1))


class Block(nn.Module):
    """Pre-norm attention and a SwiGLU MLP, with residuals."""

    def __init__(self) -> None:
        super().__init__()
        self.attn_norm, self.mlp_norm = nn.RMSNorm(DIM), nn.RMSNorm(DIM)
        self.attn = Attention()
        self.gate, self.up = nn.Linear(DIM, HIDDEN, bias=False), nn.Linear(DIM, HIDDEN, bias=False)
        self.down = nn.Linear(HIDDEN, DIM, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x))
        h = self.mlp_norm(x)
        return x + self.down(nn.functional.silu(self.gate(h)) * self.up(h))


def build(mesh: DeviceMesh) -> nn.Module:
    """The model with its plan: Megatron-style TP on ``tp``, then FSDP2 on ``dp``."""
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor.parallel import (
        ColwiseParallel,
        RowwiseParallel,
        parallelize_module,
    )

    torch.manual_seed(0)
    model = nn.Sequential(*(Block() for _ in range(BLOCKS)))
    plan = {"attn.q": ColwiseParallel(), "attn.k": ColwiseParallel(), "attn.v": ColwiseParallel(),
            "attn.o": RowwiseParallel(), "gate": ColwiseParallel(), "up": ColwiseParallel(),
            "down": RowwiseParallel()}  # fmt: skip
    for block in model:
        parallelize_module(block, mesh["tp"], plan)
        fully_shard(block, mesh=mesh["dp"])
    fully_shard(model, mesh=mesh["dp"])
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulate", type=int, metavar="RANK", help="simulate this rank")
    args = parser.parse_args()
    x = torch.randn(2, 8, DIM)
    if args.simulate is not None:
        report = inn.simulate(build, x, mesh={"dp": 2, "tp": 2}, rank=args.simulate)
        print(report.table(depth=2))
        return
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    dist.init_process_group("gloo")
    try:
        mesh = init_device_mesh("cpu", (2, 2), mesh_dim_names=("dp", "tp"))
        model = build(mesh)
        report = inn.inspect(model, x)
        if int(os.environ.get("RANK", "0")) == 0:
            print(report.table(depth=2))
        job = report.gather()  # every rank calls it; rank 0 gets the JobReport, others None
        if job is not None:
            print(job)
        dist.barrier()  # no rank tears its group down while another still uses it
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
