"""Sharding findings, the tensor-parallel input diagnosis and ``device_memory=``, through
``inspectnn.simulate`` (one rank of a job on torch's fake process group, on meta).

The MLP is ``Linear(8, h)``, ``ReLU``, ``Linear(h, 8)``; at tp=8 a hidden size of 36 does
not divide (shards 5, 5, 5, 5, 5, 5, 5, 1) and ``RowwiseParallel``'s input hook, which
takes every rank's shard to be as wide as its own, builds a global ``[4, 40]`` on rank 5.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor.parallel import (
    ColwiseParallel,
    ParallelStyle,
    RowwiseParallel,
    parallelize_module,
)

import inspectnn as inn

TP8 = {"tp": 8}


@pytest.fixture(autouse=True)
def _no_group_left() -> Iterator[None]:
    assert not dist.is_initialized()
    yield
    assert not dist.is_initialized()


def _mlp(hidden: int, colwise: bool = True) -> object:
    """A builder of the MLP with ``hidden`` units, ``RowwiseParallel`` on ``"2"`` and,
    when ``colwise``, ``ColwiseParallel`` on ``"0"``."""

    def build(mesh: DeviceMesh) -> nn.Module:
        model = nn.Sequential(nn.Linear(8, hidden), nn.ReLU(), nn.Linear(hidden, 8))
        plan = {"0": ColwiseParallel(), "2": RowwiseParallel()} if colwise else {
            "2": RowwiseParallel()}  # fmt: skip
        return parallelize_module(model, mesh["tp"], plan)  # type: ignore[arg-type]

    return build


def test_36_over_tp_8_is_said_as_the_input_hook_s_doing() -> None:
    with pytest.raises(inn.ShapeMismatchError) as caught:
        inn.simulate(_mlp(36), torch.randn(4, 8), mesh=TP8, rank=5)
    error = caught.value
    text = str(error)
    assert error.layer == "2"
    assert "a tensor the module holds" not in text
    assert (
        "  input from: RowwiseParallel's input hook on '2', which built a global [4, 40] from "
        "this rank's shard, '1' (ReLU): [4, 5], taking every rank's shard to be 5 wide "
        "(5 x tp=8)\n"
    ) in text
    assert (
        "  because:    36 does not divide by tp=8: the ranks hold shards of 5, 5, 5, 5, 5, 5, "
        "5, 1, and DTensor.from_local assumes even shards\n"
    ) in text
    assert text.endswith(
        "  fix:        choose a size divisible by 8 for the 36 features sharded over tp (e.g. "
        "40 or 32), in '0', which makes them, and in '2'"
    )
    assert error.producer == "1"
    assert error.fix is not None and "40 or 32" in error.fix


def test_the_last_rank_s_shard_of_1_is_said_too() -> None:
    """Rank 7 holds one column: its hook builds a global [4, 8]."""
    with pytest.raises(inn.ShapeMismatchError) as caught:
        inn.simulate(_mlp(36), torch.randn(4, 8), mesh=TP8, rank=7)
    text = str(caught.value)
    assert "built a global [4, 8] from this rank's shard, '1' (ReLU): [4, 1]" in text
    assert "36 does not divide by tp=8: the ranks hold shards of 5, 5, 5, 5, 5, 5, 5, 1" in text


def test_the_report_of_the_failed_rank_has_the_uneven_shards_finding() -> None:
    report = inn.simulate(_mlp(36), torch.randn(4, 8), mesh=TP8, rank=5, on_error="report")
    assert report.error is not None and report.error.layer == "2"
    uneven = [f for f in report.findings if f.kind == "uneven-shards"]
    assert [(f.severity, f.layer) for f in uneven] == [("warning", "0")]
    assert uneven[0].message == (
        "36 does not divide by tp=8: 0.weight (dimension 0), 0.bias (dimension 0) and 2.weight "
        "(dimension 1) are cut into shards of 5, 5, 5, 5, 5, 5, 5, 1 over the 8 ranks (this "
        "rank holds 5)."
    )
    mismatch = next(f for f in report.findings if f.kind == "shape-mismatch")
    assert "nn.Linear(40, 8)" not in mismatch.fix  # resizing the layer is no fix here
    assert "RowwiseParallel's input hook" in mismatch.fix
    assert "uneven-shards" in report.to_json()


def test_a_summary_without_input_has_the_uneven_shards_finding_too() -> None:
    report = inn.simulate(_mlp(36), mesh=TP8, rank=7)
    kinds = [f.kind for f in report.findings]
    assert kinds == ["not-run", "uneven-shards"]
    assert "(this rank holds 1)" in report.findings[1].message


def test_a_rowwise_layer_fed_a_replicated_input() -> None:
    with pytest.raises(inn.ShapeMismatchError) as caught:
        inn.simulate(_mlp(32, colwise=False), torch.randn(4, 8), mesh=TP8, rank=5)
    text = str(caught.value)
    assert "got:        [4, 256] (float32, meta)" in text
    assert (
        "  input from: '1' (ReLU): [4, 32], the full tensor on every rank; RowwiseParallel's "
        "input hook on '2' took it as this rank's shard of the last dimension and built a "
        "global [4, 256] (32 x tp=8)\n"
    ) in text
    assert "was fed a full (replicated) tensor" in text
    assert text.endswith(
        "  fix:        shard the input before '2': ColwiseParallel() on '0', or "
        "RowwiseParallel(input_layouts=Replicate()) on '2' to have it split a full input itself"
    )


def test_an_even_plan_has_no_sharding_finding() -> None:
    report = inn.simulate(_mlp(32), torch.randn(4, 8), mesh=TP8, rank=5)
    assert report.error is None
    kinds = {"uneven-shards", "empty-shards", "replicated-param", "device-memory"}
    assert not [f for f in report.findings if f.kind in kinds]


class _Mlp(nn.Module):
    """A SwiGLU MLP: gate and up project the same input, down projects back."""

    def __init__(self) -> None:
        super().__init__()
        self.gate, self.up = nn.Linear(16, 64), nn.Linear(16, 64)
        self.down = nn.Linear(64, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(nn.functional.silu(self.gate(x)) * self.up(x))


def _swiglu(forget: bool) -> object:
    def build(mesh: DeviceMesh) -> nn.Module:
        model = nn.Sequential(nn.LayerNorm(16), _Mlp(), nn.LayerNorm(16), _Mlp())
        plan: dict[str, ParallelStyle] = {}
        for block in ("1", "3"):
            plan |= {f"{block}.gate": ColwiseParallel(), f"{block}.down": RowwiseParallel()}
            if not forget:
                plan[f"{block}.up"] = ColwiseParallel()
        return parallelize_module(model, mesh["tp"], plan)  # type: ignore[arg-type]

    return build


def test_a_projection_the_plan_forgot_is_found() -> None:
    """The plan left ``up`` out: its weight is whole on every rank, the forward fails where
    the shard meets the whole, and the finding says which module the plan forgot."""
    report = inn.simulate(_swiglu(True), torch.randn(4, 16), mesh=TP8, rank=3, on_error="report")
    assert report.error is not None
    (found,) = [f for f in report.findings if f.kind == "replicated-param"]
    assert (found.severity, found.layer) == ("warning", "1.up")
    assert found.message.startswith(
        "'*.up' (2 Linear modules) each hold their whole weight [64, 16] on every tp rank "
        "(a plain tensor), while the plan shards their siblings '1.gate' (Shard(0)), '1.down' "
        "(Shard(1)) over tp"
    )
    assert "{'*.up': ColwiseParallel()}" in found.fix


def test_the_whole_plan_finds_nothing_replicated() -> None:
    report = inn.simulate(_swiglu(False), torch.randn(4, 16), mesh=TP8, rank=3)
    assert report.error is None
    assert not [f for f in report.findings if f.kind == "replicated-param"]


def test_device_memory_exceeded_by_a_forward_names_what_dominates() -> None:
    """Rank 5 holds 8*8+8 + 8*4+8 = 112 parameters (448 B) of the tp=8 MLP."""
    report = inn.simulate(_mlp(64), torch.randn(4, 8), mesh=TP8, rank=5, device_memory=400)
    (found,) = [f for f in report.findings if f.kind == "device-memory"]
    need = report.totals.param_bytes + report.totals.activation_bytes
    assert report.totals.param_bytes == 4 * (8 * 8 + 8 + 8 * 8 + 8)
    assert found.severity == "error" and report.findings[0] == found  # most severe first
    assert found.message.startswith(
        f"This rank needs {inn.renderers.table.format_size(need)} for its parameters, buffers "
        "and the forward's activations, more than device_memory=400 B"
    )
    fits = inn.simulate(_mlp(64), torch.randn(4, 8), mesh=TP8, rank=5, device_memory="1MB")
    assert not [f for f in fits.findings if f.kind == "device-memory"]


def test_device_memory_of_a_training_step_is_its_peak() -> None:
    report = inn.simulate(
        _mlp(64), torch.randn(4, 8), mesh=TP8, rank=5, optimizer="adamw", device_memory="1KB"
    )
    memory = report.memory
    assert memory is not None and memory.peak > 1024
    (found,) = [f for f in report.findings if f.kind == "device-memory"]
    assert found.message.startswith(
        f"This rank needs {inn.renderers.table.format_size(memory.peak)} at the training "
        f"step's peak (in the {memory.peak_phase}"
    )
    assert found.message.endswith("Optimizer state dominates.")
    roomy = inn.simulate(
        _mlp(64), torch.randn(4, 8), mesh=TP8, rank=5, optimizer="adamw",
        device_memory=memory.peak,
    )  # fmt: skip
    assert not [f for f in roomy.findings if f.kind == "device-memory"]


@pytest.mark.parametrize("value", ["80 apples", -1, 2.5])
def test_a_bad_device_memory_is_refused(value: object) -> None:
    with pytest.raises(inn.InvalidInputError, match="device_memory must be"):
        inn.inspect(nn.Linear(2, 2), torch.randn(1, 2), device_memory=value)  # type: ignore[arg-type]
