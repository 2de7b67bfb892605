"""Our step's memory against torch's MemTracker (training/reference.py), and MemTracker pinned.

MemTracker (``torch.distributed._tools.mem_tracker``) is private: the first tests
pin what it says about steps whose every byte is counted by hand, so that a torch
release that changes it fails here, not in the comparisons below. The
comparisons run real-sized models on meta (both trackers count meta storages at
their real size) and two on the real CPU at a small batch.
"""

from __future__ import annotations

from typing import Any

import models as zoo
import pytest
import torch
import transformers
from helpers import assert_unchanged, snapshot
from torch import nn

from inspectnn.training.reference import reference_step
from inspectnn.training.standalone import measure_step

# One Linear(10, 20, bias=False) on a 4x10 input, loss = output sum, float32:
# W 800 B, x 160 B, output 320 B, loss 4 B, the loss's gradient 4 B, W.grad 800 B.
# SGD(momentum) adds its buffer (800 B); AdamW a step count (4 B), two moments
# (800 B each) and, at once, sqrt(v) and sqrt(v) / c (800 B each).
BY_HAND = {
    None: 800 + 160 + 320 + 4 + 4 + 800,
    "sgd": 800 + 160 + 320 + 4 + 800 + 800,
    "adamw": 800 + 160 + 320 + 4 + 800 + 4 + 800 + 800 + 800 + 800,
}


@pytest.mark.parametrize("optimizer", [None, "sgd", "adamw"])
@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_memtracker_peak_of_one_linear_is_the_hand_count(
    optimizer: str | None, device: str
) -> None:
    model = nn.Linear(10, 20, bias=False).to(device)
    x = torch.randn(4, 10).to(device)
    ref = reference_step(model, x, optimizer=optimizer)
    assert ref.peak == BY_HAND[optimizer]
    assert ref.at_peak["parameters"] == 800 and ref.at_peak["inputs"] == 160
    ours, _ = measure_step(model, x, optimizer=optimizer)
    assert ours.peak == ref.peak


def test_memtracker_categories_are_mapped_to_ours() -> None:
    ref = reference_step(nn.Linear(10, 20, bias=False), torch.randn(4, 10), optimizer="sgd")
    # at the peak (the optimizer step) MemTracker says: the gradient, the momentum
    # buffer, and what the forward made (output and loss) as "Activation"
    assert ref.at_peak["gradients"] == 800
    assert ref.at_peak["optimizer_state"] == 800
    assert ref.at_peak["activations"] == 320 + 4
    assert sum(ref.at_peak.values()) == ref.peak


def test_the_reference_leaves_the_model_alone() -> None:
    model, x = zoo.ResNet50Like(layers=(1, 1, 1, 1), num_classes=10), torch.randn(2, 3, 32, 32)
    before = snapshot(model)
    reference_step(model, x, optimizer="adamw")
    assert_unchanged(model, before)


def _ids(batch: int, length: int, device: str) -> torch.Tensor:
    return torch.zeros(batch, length, dtype=torch.long, device=device)


def _no_mask(batch: int, length: int, device: str) -> torch.Tensor:
    """A 4-D additive mask of zeros: Hugging Face's mask building reads values
    (``.all()``), which meta tensors do not have; a ready 4-D mask skips it."""
    return torch.zeros(batch, 1, length, length, device=device)


def gpt2(device: str) -> tuple[nn.Module, tuple[Any, ...], dict[str, Any]]:
    """GPT-2 small (GPT2Config() defaults: 124M parameters), batch 2 x 128 tokens."""
    with torch.device(device):
        model = transformers.GPT2LMHeadModel(transformers.GPT2Config(attn_implementation="eager"))
    return model, (_ids(2, 128, device),), {"attention_mask": _no_mask(2, 128, device),
                                              "use_cache": False}  # fmt: skip


def bert(device: str) -> tuple[nn.Module, tuple[Any, ...], dict[str, Any]]:
    """BERT-base (BertConfig() defaults: 110M parameters), batch 2 x 128 tokens."""
    with torch.device(device):
        model = transformers.BertModel(transformers.BertConfig(attn_implementation="eager"))
    return model, (_ids(2, 128, device),), {"attention_mask": _no_mask(2, 128, device)}


def resnet50(device: str) -> tuple[nn.Module, tuple[Any, ...], dict[str, Any]]:
    """A ResNet-50-sized CNN (25.6M parameters), batch 2 x 3 x 224 x 224."""
    with torch.device(device):
        model = zoo.ResNet50Like()
    return model, (torch.empty(2, 3, 224, 224, device=device),), {}


def llama(device: str) -> tuple[nn.Module, tuple[Any, ...], dict[str, Any]]:
    """LLaMA-7B's widths (LlamaConfig() defaults) with 2 layers, batch 2 x 128 tokens."""
    config = transformers.LlamaConfig(num_hidden_layers=2, attn_implementation="eager")
    with torch.device(device):
        model = transformers.LlamaForCausalLM(config)
    return model, (_ids(2, 128, device),), {"attention_mask": _no_mask(2, 128, device),
                                              "use_cache": False}  # fmt: skip


@pytest.mark.parametrize("make", [gpt2, bert, resnet50, llama])
@pytest.mark.parametrize("optimizer", ["adamw", None])
def test_peak_within_5_percent_of_memtracker_on_meta(make: Any, optimizer: str | None) -> None:
    model, args, kwargs = make("meta")
    ours, _ = measure_step(model, args, kwargs, optimizer=optimizer)
    ref = reference_step(model, args, kwargs, optimizer=optimizer)
    assert ours.peak == pytest.approx(ref.peak, rel=0.05)
    assert ours.category("parameters") == ref.at_peak["parameters"]


def tiny_llama(device: str) -> tuple[nn.Module, tuple[Any, ...], dict[str, Any]]:
    """A LLaMA-style model with small widths, real weights."""
    config = transformers.LlamaConfig(
        hidden_size=128, intermediate_size=344, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=1000, attn_implementation="eager",
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).to(device)
    ids = torch.randint(0, 1000, (2, 32), device=device)
    return model, (ids,), {"use_cache": False}


def small_resnet(device: str) -> tuple[nn.Module, tuple[Any, ...], dict[str, Any]]:
    """ResNet-50's stages with one bottleneck each, on a 2 x 3 x 32 x 32 batch, real weights."""
    torch.manual_seed(0)
    model = zoo.ResNet50Like(layers=(1, 1, 1, 1), num_classes=10).to(device)
    return model, (torch.randn(2, 3, 32, 32, device=device),), {}


@pytest.mark.parametrize("make", [tiny_llama, small_resnet])
def test_peak_within_5_percent_of_memtracker_on_the_real_cpu(make: Any) -> None:
    model, args, kwargs = make("cpu")
    before = snapshot(model)
    ours, _ = measure_step(model, args, kwargs, optimizer="adamw")
    ref = reference_step(model, args, kwargs, optimizer="adamw")
    assert ours.peak == pytest.approx(ref.peak, rel=0.05)
    assert_unchanged(model, before)


def test_fake_tensors_run_hugging_face_on_meta_without_a_ready_mask() -> None:
    # Hugging Face builds its attention mask from values unless it is being traced;
    # on fake tensors it is, so GPT-2 runs with its default attention and no mask.
    with torch.device("meta"):
        model = transformers.GPT2LMHeadModel(transformers.GPT2Config())
    ids = _ids(2, 128, "meta")
    before = snapshot(model)
    on_fake, _ = measure_step(model, ids, {"use_cache": False}, optimizer="adamw", fake=True)
    assert_unchanged(model, before)
    assert on_fake.device == "meta"
    eager, args, kwargs = gpt2("meta")
    ref = reference_step(eager, args, kwargs, optimizer="adamw")
    assert on_fake.peak == pytest.approx(ref.peak, rel=0.05)
