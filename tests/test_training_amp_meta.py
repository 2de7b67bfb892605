"""A training step on meta with ``amp=``: ``inspect`` runs it on fake CPU tensors.

torch's autocast does nothing on meta tensors, so a meta step with ``amp="bf16"``
would report float32 activations. ``inspect`` runs it under a ``FakeTensorMode``
on fake CPU tensors instead, where CPU autocast casts: the memory is bf16's (as
on the real CPU), while the report, every tensor record and the memory say meta.
"""

from __future__ import annotations

import pytest
import torch
from helpers import assert_unchanged, snapshot
from torch import nn
from torch.utils._python_dispatch import _len_torch_dispatch_stack

import inspectnn as inn
from inspectnn.report import Report


class Block(nn.Module):
    """A transformer-like block: embedding, one attention head, LayerNorm, an MLP, a head."""

    def __init__(self, vocab: int = 100, width: int = 64) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(vocab, width)
        self.q = nn.Linear(width, width)
        self.k = nn.Linear(width, width)
        self.v = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)
        self.fc = nn.Linear(width, 4 * width)
        self.out = nn.Linear(4 * width, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.emb(ids)
        scores = self.q(h) @ self.k(h).transpose(-1, -2) / 8.0
        h = self.norm(h + scores.softmax(-1) @ self.v(h))
        return self.out(torch.relu(self.fc(h)))


def _step(model: nn.Module, device: str | None, amp: str | None = "bf16") -> Report:
    return inn.inspect(
        model, input_size=(8, 32), dtypes="long", device=device, backward=True,
        optimizer="adamw", amp=amp,
    )  # fmt: skip


def test_meta_with_amp_reports_the_real_cpu_s_bf16_memory() -> None:
    model = Block()
    before = snapshot(model)
    on_meta = _step(model, "meta")
    on_cpu = _step(model, "cpu")
    full = _step(model, "meta", amp=None)
    assert_unchanged(model, before)
    assert _len_torch_dispatch_stack() == 0  # no fake mode left behind
    meta_mem, cpu_mem = on_meta.memory, on_cpu.memory
    assert meta_mem is not None and cpu_mem is not None and full.memory is not None
    acts = meta_mem.category("activations")
    assert acts == pytest.approx(cpu_mem.category("activations"), rel=0.03)
    assert meta_mem.peak == pytest.approx(cpu_mem.peak, rel=0.03)
    assert acts < 0.9 * full.memory.category("activations")  # bf16 saved, not float32
    assert meta_mem.amp == "bfloat16" and meta_mem.optimizer == "AdamW"


def test_meta_with_amp_records_bf16_outputs_on_the_meta_device() -> None:
    report = _step(Block(), "meta")
    assert report.device == "meta"
    assert report.memory is not None and report.memory.device == "meta"
    linear = [rec for rec in report.layers if rec.type == "Linear"]
    assert len(linear) == 5
    assert {rec.outputs[0].dtype for rec in linear} == {"bfloat16"}  # autocast cast them
    assert report.layer("norm").outputs[0].dtype == "float32"  # LayerNorm runs in float32
    records = (*report.layers, *report.ops)
    devices = {t.device for rec in records for t in (*rec.inputs, *rec.outputs)}
    assert devices == {"meta"}
    assert report.totals.flops == _step(Block(), "cpu").totals.flops > 0
    assert report.training is not None and report.training.loss_value is None
    grads = [p.grad for p in report.training.params]
    assert all(g is not None and g.norm is None for g in grads)  # shapes, no values


def test_a_model_on_meta_with_a_loss_and_target_and_check_numerics() -> None:
    with torch.device("meta"):
        model = Block()
    ids = torch.zeros(4, 16, dtype=torch.long, device="meta")
    target = torch.zeros(4, 16, dtype=torch.long, device="meta")
    loss = nn.CrossEntropyLoss()
    before = snapshot(model)
    report = inn.inspect(
        model, ids, backward=True, loss=lambda out, y: loss(out.flatten(0, 1), y.flatten()),
        target=target, optimizer="sgd", amp="fp16", check_numerics=True,
    )  # fmt: skip
    assert_unchanged(model, before)
    assert report.device == "meta" and report.layer("fc").outputs[0].dtype == "float16"
    assert report.memory is not None and report.memory.category("optimizer_state") > 0
    assert all(p.device.type == "meta" for p in model.parameters())


def test_a_forward_alone_on_meta_with_amp_runs_in_bf16() -> None:
    # autocast on meta used to fail the forward: "unsupported autocast device_type 'meta'"
    model = Block()
    before = snapshot(model)
    report = inn.inspect(model, input_size=(2, 8), dtypes="long", device="meta", amp="bf16")
    assert_unchanged(model, before)
    assert report.error is None and report.training is None and report.memory is None
    out = report.layer("fc").outputs[0]
    assert (out.shape, out.dtype, out.device) == ((2, 8, 256), "bfloat16", "meta")
    on_cpu = inn.inspect(model, input_size=(2, 8), dtypes="long", amp="bf16")
    assert [r.outputs[0].dtype for r in report.layers] == [
        r.outputs[0].dtype for r in on_cpu.layers
    ]


class Scaled(nn.Module):
    """A 0-dim constant held as a plain attribute (not a buffer): plain meta runs take it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.scale = torch.tensor(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) * self.scale


def test_a_plain_tensor_attribute_joins_the_fake_run() -> None:
    model = Scaled()
    report = inn.inspect(model, torch.randn(2, 4), device="meta", backward=True, amp="bf16")
    assert report.error is None and report.outputs[0].dtype == "bfloat16"
    assert report.outputs[0].device == "meta" and model.scale.device.type == "cpu"


class _SelfCast(nn.Module):
    """A model whose own forward enters CPU autocast (a model written for the CPU)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            return self.fc(x)


def test_autocast_on_meta_is_said_only_where_autocast_did_nothing() -> None:
    x = torch.randn(2, 8, device="meta")
    plain = inn.inspect(_SelfCast(), x, device="meta")
    assert "autocast-on-meta" in {f.kind for f in plain.findings}  # meta: it cast nothing
    faked = inn.inspect(_SelfCast(), x, device="meta", amp="bf16")
    assert faked.layer("fc").outputs[0].dtype == "bfloat16"  # on fake CPU tensors it cast
    assert "autocast-on-meta" not in {f.kind for f in faked.findings}
