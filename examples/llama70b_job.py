"""A 512-rank job simulated in one CPU process: a LLaMA-70B-shaped model (Hugging Face
``LlamaConfig``, no weights), FSDP2 over ``dp=64`` and tensor parallelism over ``tp=8``,
one AdamW step of 1 x 4096 tokens per rank::

    python examples/llama70b_job.py

It prints the job, rank by rank (``inn.simulate_job``: the shards are even, so one
simulated rank stands for all 512), whether a rank fits in 80 GB, and rank 5's memory
for the whole training step. Nothing is allocated for the model: it is built on meta
and FSDP2's shards are fake tensors under torch's fake process group. Needs
``transformers`` (``pip install transformers``).
"""

from __future__ import annotations

import sys

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh

import inspectnn as inn
from inspectnn.renderers.memory import render_memory

LAYERS, TOKENS = 80, 4096


def build(mesh: DeviceMesh) -> nn.Module:
    """The model and its plan: Megatron-style TP on ``tp``, then FSDP2 per layer on ``dp``."""
    import transformers
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor.parallel import (
        ColwiseParallel,
        RowwiseParallel,
        parallelize_module,
    )

    config = transformers.LlamaConfig(
        hidden_size=8192, intermediate_size=28672, num_hidden_layers=LAYERS,
        num_attention_heads=64, num_key_value_heads=8, vocab_size=32000,
    )  # fmt: skip
    model = transformers.LlamaForCausalLM(config)  # simulate() builds it on meta
    plan: dict[str, ColwiseParallel | RowwiseParallel] = {}
    for i in range(LAYERS):
        for name in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                     "mlp.gate_proj", "mlp.up_proj"):  # fmt: skip
            plan[f"model.layers.{i}.{name}"] = ColwiseParallel()
        for name in ("self_attn.o_proj", "mlp.down_proj"):
            plan[f"model.layers.{i}.{name}"] = RowwiseParallel()
    parallelize_module(model, mesh["tp"], plan)
    for layer in model.model.layers:
        fully_shard(layer, mesh=mesh["dp"])
    fully_shard(model, mesh=mesh["dp"])
    return model


def main() -> int:
    try:
        import transformers  # noqa: F401
    except ImportError:
        print("this example needs transformers: pip install transformers", file=sys.stderr)
        return 2
    ids = torch.zeros(1, TOKENS, dtype=torch.long, device="meta")
    mesh = {"dp": 64, "tp": 8}
    job = inn.simulate_job(build, ids, mesh=mesh, optimizer="adamw", device_memory="80GB")
    print(job)
    print()
    report = inn.simulate(build, ids, mesh=mesh, rank=5, optimizer="adamw")
    print(report.rank.describe() if report.rank else "")
    assert report.memory is not None  # optimizer= runs the whole step
    print(render_memory(report.memory, top=3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
