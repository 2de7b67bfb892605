"""The memory of one training step (training/memory.py through training/step.py).

Every figure here is computed by hand from the model's shapes: float32 tensors,
4 bytes per element; a storage shared by views or tied weights counts once.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

import inspectnn
from inspectnn.training.memory import MAX_POINTS, AllocationTracker, ModuleInfo
from inspectnn.training.records import CATEGORIES, MemoryReport
from inspectnn.training.standalone import measure_step

F32 = 4


def mlp() -> nn.Sequential:
    """Linear(10, 20) -> ReLU -> Linear(20, 5): 325 parameters, 1,300 bytes."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 5))


MLP_PARAMS = (10 * 20 + 20 + 20 * 5 + 5) * F32
BATCH = 4


def held(report: MemoryReport) -> dict[str, int]:
    return dict(zip(CATEGORIES, report.held, strict=True))


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_mlp_parameters_gradients_inputs_and_saved_activations_by_hand(device: str) -> None:
    model = mlp().to(device)
    x = torch.randn(BATCH, 10, device=device)
    report, _ = measure_step(model, x)
    h = held(report)
    assert h["parameters"] == MLP_PARAMS == 1300
    assert h["gradients"] == MLP_PARAMS
    assert h["inputs"] == BATCH * 10 * F32
    assert h["buffers"] == 0 and h["optimizer_state"] == 0
    # Linear(10, 20) saves its input x (an input) and its weight (a parameter);
    # ReLU saves its output, which Linear(20, 5) saves too: one storage, 4 x 20.
    assert h["activations"] == BATCH * 20 * F32
    assert report.optimizer is None and report.device == device


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_adamw_state_is_two_moments_and_a_step_count_per_parameter(device: str) -> None:
    model = mlp().to(device)
    report, _ = measure_step(model, torch.randn(BATCH, 10, device=device), optimizer="adamw")
    steps = 4 * F32  # one float32 step count per parameter tensor (4 tensors), on the CPU
    assert held(report)["optimizer_state"] == 2 * MLP_PARAMS + steps
    assert report.optimizer == "AdamW"
    assert report.peak_phase == "optimizer"
    rows = {m.name: m for m in report.modules}
    assert rows["0"].optimizer_state == 2 * (10 * 20 + 20) * F32 + 2 * F32
    assert rows["1"].optimizer_state == 0


def test_sgd_with_momentum_holds_one_buffer_per_parameter() -> None:
    report, _ = measure_step(mlp(), torch.randn(BATCH, 10), optimizer="sgd")
    assert held(report)["optimizer_state"] == MLP_PARAMS


def test_plain_sgd_holds_no_state() -> None:
    report, _ = measure_step(
        mlp(), torch.randn(BATCH, 10), optimizer=lambda ps: torch.optim.SGD(ps, lr=0.1)
    )
    assert held(report)["optimizer_state"] == 0


def test_the_peak_of_a_one_linear_step_by_hand() -> None:
    # W (20x10) 800 B, x (4x10) 160 B; out (4x20) 320 B; loss 4 B; its grad (ones) 4 B;
    # W.grad 800 B. AdamW then adds a step count (4), exp_avg and exp_avg_sq (800 each)
    # and, for the update's denominator, sqrt(v) and sqrt(v) / c (800 each) at once,
    # while out and loss are still held.
    model = nn.Linear(10, 20, bias=False)
    x = torch.randn(4, 10)
    plain, _ = measure_step(model, x)
    assert plain.peak == 800 + 160 + 320 + 4 + 4 + 800
    assert plain.peak_phase == "backward"
    sgd, _ = measure_step(model, x, optimizer="sgd")
    assert sgd.peak == 800 + 160 + 320 + 4 + 800 + 800
    adamw, _ = measure_step(model, x, optimizer="adamw")
    assert adamw.peak == 800 + 160 + 320 + 4 + 800 + (4 + 800 + 800) + (800 + 800)
    at_peak = dict(zip(CATEGORIES, adamw.at_peak, strict=True))
    assert at_peak["temporary"] == 320 + 4 + 1600 and at_peak["optimizer_state"] == 1604


class Tied(nn.Module):
    """An embedding whose weight is also the output projection's (one storage)."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 8)
        self.out = nn.Linear(8, 50, bias=False)
        self.out.weight = self.emb.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.emb(ids)
        return self.out(h.view(-1, 8)).view(ids.shape[0], ids.shape[1], 50)


def test_tied_weights_and_views_count_once() -> None:
    report, _ = measure_step(Tied(), torch.zeros(2, 3, dtype=torch.long), optimizer="sgd")
    h = held(report)
    assert h["parameters"] == 50 * 8 * F32
    assert h["gradients"] == 50 * 8 * F32
    assert h["optimizer_state"] == 50 * 8 * F32
    rows = {m.name: m for m in report.modules}
    assert rows["emb"].parameters == 50 * 8 * F32 and rows["out"].parameters == 0


def test_module_rows_own_and_total_activations_and_checkpoint_saving() -> None:
    model = nn.Sequential(nn.Sequential(nn.Linear(10, 20), nn.ReLU()), nn.Linear(20, 5))
    report, _ = measure_step(model, torch.randn(BATCH, 10))
    rows = {m.name: m for m in report.modules}
    relu = BATCH * 20 * F32
    assert [m.name for m in report.modules] == ["", "0", "0.0", "0.1", "1"]
    assert rows["0.1"].activations == relu and rows["0.1"].type == "ReLU"
    assert rows["0"].activations == 0 and rows["0"].activations_total == relu
    assert rows[""].activations_total == relu
    # checkpointing block 0 would keep its input x (160 B) instead: no saving below 0
    assert rows["0"].checkpoint_saving == max(0, relu - BATCH * 10 * F32)
    assert rows["0.0"].parameters == (10 * 20 + 20) * F32
    assert rows["0.0"].gradients == rows["0.0"].parameters


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(64, 256)
        self.b = nn.Linear(256, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b(torch.relu(self.a(x)))


class Net(nn.Module):
    def __init__(self, ckpt: str | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block() for _ in range(4))
        self.ckpt = ckpt

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            if self.ckpt is None:
                x = block(x)
            else:
                x = checkpoint(block, x, use_reentrant=self.ckpt == "reentrant")
        return x


@pytest.mark.parametrize("device", ["cpu", "meta"])
@pytest.mark.parametrize("ckpt", ["non-reentrant", "reentrant"])
def test_activation_checkpointing_saves_only_the_blocks_inputs(device: str, ckpt: str) -> None:
    x = torch.randn(512, 64, device=device, requires_grad=ckpt == "reentrant")
    plain, _ = measure_step(Net(None).to(device), x)
    block_input = 512 * 64 * F32
    checked, _ = measure_step(Net(ckpt).to(device), x)
    # Unchecked, each block saves relu(a(x)) (512x256) once (relu and b share it)
    # and its input (a saves it); the first block's input is the model's input.
    assert held(plain)["activations"] == 4 * 512 * 256 * F32 + 3 * block_input
    # Checkpointed, each block keeps only its input; the first is the model's input.
    assert held(checked)["activations"] == 3 * block_input
    assert checked.peak < plain.peak
    # the recompute's tensors appear in the backward, as temporaries
    recomputed = max(
        p.live[CATEGORIES.index("temporary")] for p in checked.timeline if p.phase == "backward"
    )
    assert recomputed >= 512 * 256 * F32


def test_amp_on_cpu_saves_bfloat16_copies_and_meta_matches_it() -> None:
    model = mlp()
    x = torch.randn(BATCH, 10)
    full, _ = measure_step(model, x, optimizer="adamw")
    cpu, _ = measure_step(model, x, optimizer="adamw", amp="bf16")
    meta, _ = measure_step(model.to("meta"), x.to("meta"), optimizer="adamw", amp="bf16")
    assert cpu.amp == "bfloat16" and meta.amp == "bfloat16"
    assert meta.device == "meta"
    assert held(cpu) == held(meta) and cpu.peak == meta.peak
    # Under autocast (2 B per element) Linear(10, 20) saves the bfloat16 cast of x
    # (4x10; its weight's cast is not needed: x needs no gradient), ReLU its bfloat16
    # output (4x20, which Linear(20, 5) saves too) and Linear(20, 5) the cast of its
    # weight (20x5), needed for the gradient of its input.
    bf16 = 2 * (BATCH * 10 + BATCH * 20 + 20 * 5)
    assert held(cpu)["activations"] == bf16
    assert held(cpu)["activations"] != held(full)["activations"]
    assert held(cpu)["gradients"] == MLP_PARAMS  # gradients stay in the parameters' dtype


def test_the_timeline_is_thinned_keeping_the_peak() -> None:
    tracker = AllocationTracker(lambda: "")
    tracker.enter_phase("forward")
    kept = []
    with tracker:
        for i in range(3 * MAX_POINTS):  # 6,000 allocations, every other one freed at once
            t = torch.empty(1000 if i == 4321 else 10)
            if i % 2:
                kept.append(t)
            del t
    report = tracker.finish(modules=[ModuleInfo("", "None")], device="cpu")
    assert len(report.timeline) <= MAX_POINTS
    assert max(p.total for p in report.timeline) == report.peak
    # the end: 2,999 kept tensors of 10 elements and the one of 1,000
    assert report.peak == (2999 * 10 + 1000) * F32
    assert report.timeline[-1].total == report.peak


class Spike(nn.Module):
    """Makes a 1 MB temporary and frees it before returning."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():  # 64 x 8 x 4096 x 4 B = 8 MiB, gone before the backward
            scale = (x.unsqueeze(-1).expand(*x.shape, 4096) * 2.0).mean(-1)
        return x * scale


def test_peak_module_and_phase_name_where_the_peak_is() -> None:
    model = nn.Sequential(nn.Linear(8, 8), nn.Sequential(Spike()), nn.Linear(8, 2))
    report, _ = measure_step(model, torch.randn(64, 8))
    assert report.peak_phase == "forward"
    assert report.peak_module == "1.0"
    at_peak = dict(zip(CATEGORIES, report.at_peak, strict=True))
    assert at_peak["temporary"] >= 64 * 8 * 4096 * F32
    assert sum(report.at_peak) == report.peak


def test_cuda_granularity_rounds_every_storage_up_to_512_bytes() -> None:
    tracker = AllocationTracker(lambda: "", granularity=512)
    x = torch.empty(1000)
    tracker.register([x], "inputs")  # 4,000 B -> 4,096
    tracker.enter_phase("forward")
    with tracker:
        scalar = torch.ones(())  # 4 B -> 512
    report = tracker.finish(modules=[ModuleInfo("", "None")], device="cuda:0")
    assert report.category("inputs") == 4096
    assert report.peak == 4096 + 512
    del scalar, x


@pytest.mark.parametrize("ckpt", ["non-reentrant", "reentrant"])
def test_inspect_measures_checkpointing_as_measure_step_does(ckpt: str) -> None:
    """Through the traced run too: checkpointed blocks save only their inputs, the
    recompute in the backward runs outside the tracer, and the model is left as it was."""
    x = torch.randn(512, 64, requires_grad=ckpt == "reentrant")
    net = Net(ckpt)
    before = [p.detach().clone() for p in net.parameters()]
    report = inspectnn.inspect(net, x, backward=True)
    alone, _ = measure_step(Net(ckpt), x)
    assert report.memory is not None
    assert held(report.memory)["activations"] == held(alone)["activations"] == 3 * 512 * 64 * F32
    assert report.memory.peak == alone.peak
    assert all(p.grad is None for p in net.parameters()) and x.grad is None
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    assert [layer.name for layer in report.layers][:2] == ["", "blocks.0"]


def test_module_rows_count_the_part_of_a_shared_buffer_they_view() -> None:
    """FSDP2's gradients are views of one flat buffer a reduce-scatter wrote: each
    module's row counts its own views, the step's total the buffer once."""
    from inspectnn.training.memory import owned_bytes, storage_bytes

    flat = torch.zeros(100)
    norm, linear = flat[:4], flat[4:100]
    assert storage_bytes([norm]) == 100 * F32  # the whole buffer, counted once in totals
    assert owned_bytes([norm]) == 4 * F32
    assert owned_bytes([linear]) == 96 * F32
    assert owned_bytes([norm, linear, norm]) == 100 * F32  # a tensor twice counts once
    tied = torch.zeros(10)
    assert owned_bytes([tied, tied.view(2, 5)]) == 10 * F32  # views overlap: never past the storage


def test_a_simulated_fsdp2_rank_s_module_rows_hold_their_own_gradient_shards() -> None:
    from torch.distributed.fsdp import fully_shard

    def build(mesh: object) -> nn.Module:
        blocks = (nn.Sequential(nn.LayerNorm(64), nn.Linear(64, 64)) for _ in range(2))
        model = nn.Sequential(*blocks)
        for block in model:
            fully_shard(block, mesh=mesh["dp"])  # type: ignore[index]
        return fully_shard(model, mesh=mesh["dp"])  # type: ignore[index]

    x = torch.randn(8, 64, device="meta")
    report = inspectnn.simulate(build, x, mesh={"dp": 4}, rank=1, backward=True)
    assert report.memory is not None
    rows = {m.name: m for m in report.memory.modules}
    assert rows["0.0"].gradients == rows["0.0"].parameters == 2 * 64 // 4 * F32
    assert rows["0.1"].gradients == rows["0.1"].parameters == (64 * 64 + 64) // 4 * F32
    assert sum(rows[f"{b}.{i}"].gradients for b in "01" for i in "01") == (
        report.memory.category("gradients")
    )
