"""Mixture-of-experts FLOPs on a real ``transformers`` Mixtral built from a tiny config.

transformers runs the experts through ``torch._grouped_mm`` (its ``grouped_mm``
experts implementation, the default); with ``experts_implementation="eager"`` the
same experts run as a loop of ``F.linear`` over the experts that got tokens. Both
must count the same work; before ``_grouped_mm`` had a formula the grouped run
counted the experts as 0 (about two thirds of this model's FLOPs).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import AutoModel, MixtralConfig

import inspectnn as inn

HIDDEN, INTERMEDIATE, TOKENS, TOP_K = 32, 64, 8, 2


def _mixtral(experts_implementation: str) -> nn.Module:
    config = MixtralConfig(
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_local_experts=4,
        num_experts_per_tok=TOP_K,
        vocab_size=100,
    )
    torch.manual_seed(0)
    model = AutoModel.from_config(config, experts_implementation=experts_implementation)
    assert model.config._experts_implementation == experts_implementation
    return model.eval()


def test_grouped_experts_count_what_eager_experts_count() -> None:
    ids = torch.randint(0, 100, (1, TOKENS))
    grouped = inn.inspect(_mixtral("grouped_mm"), ids)
    eager = inn.inspect(_mixtral("eager"), ids)
    assert any(op.name == "torch._grouped_mm" for op in grouped.ops)  # the grouped kernel
    # each routed (token, expert) row goes through gate_up (E -> 2I) and down (I -> E)
    rows = TOKENS * TOP_K
    experts = 2 * rows * HIDDEN * 2 * INTERMEDIATE + 2 * rows * INTERMEDIATE * HIDDEN
    name = "layers.0.mlp.experts"
    assert grouped.layer(name).flops == eager.layer(name).flops == experts
    assert grouped.totals.flops == eager.totals.flops
    assert grouped.totals.uncounted_ops == eager.totals.uncounted_ops == ()


def test_grouped_experts_on_meta_say_why_and_the_fixes_work() -> None:
    """torch's meta kernel for ``_grouped_mm`` takes bfloat16 only: the refusal says so,
    and both fixes it gives run."""
    ids = torch.randint(0, 100, (1, TOKENS))
    why = r"meta kernel for torch\._grouped_mm takes bfloat16"
    with pytest.raises(inn.ForwardError, match=why):
        inn.inspect(_mixtral("grouped_mm"), ids, device="meta")
    on_cpu = inn.inspect(_mixtral("grouped_mm"), ids, device="cpu")
    on_meta = inn.inspect(_mixtral("grouped_mm").to(torch.bfloat16), ids, device="meta")
    assert on_meta.outputs[0].shape == on_cpu.outputs[0].shape == (1, TOKENS, HIDDEN)
    assert on_meta.totals.flops == on_cpu.totals.flops
