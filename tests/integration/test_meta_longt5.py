"""LongT5 on meta: its local attention looks CPU position indices up in a meta
``nn.Embedding``, which torch runs by design; inspect ran it and must not refuse it."""

from __future__ import annotations

import torch
import transformers as hf
from helpers import assert_unchanged, snapshot

import inspectnn as inn


def test_tiny_longt5_runs_on_meta_as_on_cpu() -> None:
    torch.manual_seed(0)
    config = hf.LongT5Config(
        d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4, vocab_size=100
    )
    model = hf.LongT5Model(config).eval()
    ids = torch.randint(0, 100, (1, 16))
    before = snapshot(model)
    on_meta = inn.inspect(model, input_ids=ids, decoder_input_ids=ids, device="meta")
    assert on_meta.error is None
    on_cpu = inn.inspect(model, input_ids=ids, decoder_input_ids=ids)
    shapes = [m.shape for m in on_cpu.outputs if m.is_tensor]
    assert [m.shape for m in on_meta.outputs if m.is_tensor] == shapes
    bias = "encoder.block.0.layer.0.LocalSelfAttention.relative_attention_bias"
    assert on_meta.layer(bias).inputs[0].device == "cpu"  # CPU indices, as torch made them
    assert on_meta.layer(bias).outputs[0].device == "meta"
    assert_unchanged(model, before)
