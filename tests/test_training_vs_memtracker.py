"""``inspect(..., backward=True)``'s memory against torch's MemTracker (training/reference.py).

tests/test_training_reference.py compares ``measure_step`` (the step without the
tracer) with the tracker; here the same models go through ``inspect``, whose step
runs inside the traced forward: the tracer's own work (wrappers, op records, FLOP
counting, gradient hooks and norms, numerics checks) must add nothing to the
figures. Real-sized models run on meta (both count meta storages at their real
size), small ones on the real CPU, and a bf16 step on meta (fake CPU tensors)
against the tracker's bf16 step on real ones.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from helpers import assert_unchanged, snapshot
from test_training_amp_meta import Block
from test_training_reference import bert, gpt2, llama, resnet50, small_resnet, tiny_llama
from torch import nn

import inspectnn as inn
from inspectnn.training.records import CATEGORIES, MemoryReport
from inspectnn.training.reference import ReferenceMemory, reference_step

# Categories both trackers define alike. Gradients too, once on ``.grad`` (at the
# optimizer's peak); in the backward MemTracker calls one ``Temp`` until it lands
# there. The rest of the peak (MemTracker: forward outputs as activations, the
# optimizer's scratch as optimizer state; ours: temporary) is compared as one sum.
_ALIKE = ("parameters", "buffers", "inputs")


def _memory(model: nn.Module, args: Any, kwargs: dict[str, Any], **step: Any) -> MemoryReport:
    report = inn.inspect(model, *args, backward=True, **step, **kwargs)
    assert report.memory is not None
    return report.memory


def _at_peak(memory: MemoryReport, name: str) -> int:
    return memory.at_peak[CATEGORIES.index(name)]


def _agree(ours: MemoryReport, ref: ReferenceMemory) -> None:
    assert ours.peak == pytest.approx(ref.peak, rel=0.05)
    alike = _ALIKE + (("gradients",) if ours.peak_phase == "optimizer" else ())
    for name in alike:
        assert _at_peak(ours, name) == pytest.approx(ref.at_peak[name], rel=0.05), name
    rest = ours.peak - sum(_at_peak(ours, n) for n in alike)
    assert rest == pytest.approx(sum(ref.at_peak[n] for n in ref.at_peak if n not in alike),
                                 rel=0.05)  # fmt: skip


@pytest.mark.parametrize("make", [gpt2, bert, resnet50, llama])
@pytest.mark.parametrize("optimizer", ["adamw", None])
def test_inspect_s_peak_within_5_percent_of_memtracker_on_meta(
    make: Any, optimizer: str | None
) -> None:
    model, args, kwargs = make("meta")
    ours = _memory(model, args, kwargs, optimizer=optimizer, device="meta")
    ref = reference_step(model, args, kwargs, optimizer=optimizer)
    _agree(ours, ref)
    params = ours.category("parameters")
    if optimizer is None:
        assert ours.peak_phase == "backward" and ours.category("optimizer_state") == 0
        return
    # the peak is the optimizer's step: every gradient is held, and AdamW's two
    # moments (plus a 4-byte step count per parameter); MemTracker adds its scratch
    assert ours.peak_phase == "optimizer"
    assert ours.category("gradients") == _at_peak(ours, "gradients")
    held = ours.category("optimizer_state")
    steps = 4 * sum(1 for _ in model.parameters())
    assert held == 2 * params + steps <= ref.at_peak["optimizer_state"]


@pytest.mark.parametrize("make", [tiny_llama, small_resnet])
def test_inspect_s_peak_within_5_percent_of_memtracker_on_the_real_cpu(make: Any) -> None:
    model, args, kwargs = make("cpu")
    before = snapshot(model)
    ours = _memory(model, args, kwargs, optimizer="adamw", check_numerics=True)
    ref = reference_step(model, args, kwargs, optimizer="adamw")
    _agree(ours, ref)
    assert_unchanged(model, before)


@pytest.mark.parametrize("optimizer", ["adamw", None])
def test_a_bf16_step_on_meta_agrees_with_memtracker_s_on_the_real_cpu(
    optimizer: str | None,
) -> None:
    model, ids = Block(), torch.randint(0, 100, (8, 32))
    ours = _memory(model, (ids,), {}, optimizer=optimizer, amp="bf16", device="meta")
    ref = reference_step(model, ids, optimizer=optimizer, amp="bf16")
    _agree(ours, ref)
