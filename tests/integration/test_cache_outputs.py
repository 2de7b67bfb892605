"""Hugging Face KV caches are nested outputs like any other: every key/value tensor listed."""

from __future__ import annotations

import re

import torch
import transformers as hf
from helpers import assert_unchanged, snapshot

import inspectnn as inn


def _cache_leaves(outputs: tuple[inn.TensorMeta, ...]) -> dict[str, tuple[int, ...] | None]:
    return {t.path: t.shape for t in outputs if ".layers[" in t.path}


def test_gpt2_dynamic_cache_lists_keys_and_values_per_layer() -> None:
    torch.manual_seed(0)
    config = hf.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100)
    model = hf.GPT2LMHeadModel(config).eval()
    ids = torch.randint(0, 100, (1, 5))
    before = snapshot(model)
    report = inn.inspect(model, ids, use_cache=True)
    with torch.no_grad():
        plain = model(ids, use_cache=True)
    cache = plain.past_key_values
    assert isinstance(cache, hf.DynamicCache)
    found = _cache_leaves(report.outputs)
    expected = {}
    for i, layer in enumerate(cache.layers):
        for part in ("keys", "values"):
            expected[f"layers[{i}].{part}"] = tuple(getattr(layer, part).shape)
    assert {re.sub(r"^.*?\.(layers\[)", r"\1", p): s for p, s in found.items()} == expected
    assert len(found) == 2 * config.n_layer
    assert all(t.source is not None for t in report.outputs if t.path in found)
    assert not [t for t in report.outputs if t.value == "<DynamicCache>"]
    # inside the model the one cache object, handed to every block, is shown whole
    block = report.layer("transformer.h.1")
    assert [t.value for t in block.inputs if not t.is_tensor].count("<DynamicCache>") == 1
    assert "transformer.h.0 … transformer.h.1" in str(report)  # the blocks still fold
    assert_unchanged(model, before)


def test_t5_encoder_decoder_cache_lists_self_and_cross_attention() -> None:
    torch.manual_seed(0)
    config = hf.T5Config(
        vocab_size=50, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
        decoder_start_token_id=0,
    )  # fmt: skip
    model = hf.T5ForConditionalGeneration(config).eval()
    ids = torch.randint(0, 50, (1, 4))
    report = inn.inspect(model, input_ids=ids, decoder_input_ids=ids[:, :3], use_cache=True)
    paths = list(_cache_leaves(report.outputs))
    assert any(".self_attention_cache.layers[0].keys" in p for p in paths), paths
    assert any(".cross_attention_cache.layers[0].values" in p for p in paths), paths
    assert not [t for t in report.outputs if t.value == "<EncoderDecoderCache>"]


def test_model_output_is_rebuilt_as_its_own_type() -> None:
    from transformers.modeling_outputs import BaseModelOutput

    from inspectnn.values import map_tensors

    out = BaseModelOutput(last_hidden_state=torch.ones(1, 2))
    moved = map_tensors(out, lambda t: t.to("meta"))
    assert type(moved) is BaseModelOutput and out.last_hidden_state.device.type == "cpu"
    assert moved.last_hidden_state.device.type == "meta"
    assert moved["last_hidden_state"] is moved.last_hidden_state
