"""``DistributedDataParallel`` inspected on each of 2 real gloo ranks (issue 16).

inspect reports the wrapped model as the user's own (paths without ``module.``, its
class name, its parameter counts) with a ``ddp-batch`` info finding (this rank's
batch, the world size, the job's batch), and leaves DDP as it was: the next real
training step (forward, ``backward()`` with DDP's gradient all-reduce, optimizer
step) gives bit for bit what it gives on a twin never inspected, on both ranks.
"""

from __future__ import annotations

from typing import Any

import torch
from ranks import run_ranks
from torch import nn

WORLD = 2


class Net(nn.Module):
    """A small MLP with a BatchNorm (DDP broadcasts its buffers in its own forward)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.bn, self.fc2 = nn.Linear(6, 16), nn.BatchNorm1d(16), nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.bn(self.fc1(x))))


def _step(model: nn.Module, x: torch.Tensor) -> list[list[float]]:
    """One real training step; the parameters after it."""
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model(x).square().mean().backward()
    opt.step()
    return [p.detach().flatten().tolist() for p in model.parameters()]


def _ddp_rank(rank: int, world: int) -> dict[str, Any]:
    from torch.nn.parallel import DistributedDataParallel

    import inspectnn

    torch.manual_seed(0)
    ddp, twin = DistributedDataParallel(Net()), DistributedDataParallel(Net())
    twin.load_state_dict(ddp.state_dict())
    torch.manual_seed(1 + rank)  # each rank its own batch
    x = torch.randn(4, 6)
    sync = ddp.require_backward_grad_sync
    report = inspectnn.inspect(ddp, x)
    trained = inspectnn.inspect(ddp, x, backward=True)  # a step on shadows: DDP untouched too
    (note,) = [f for f in report.findings if f.kind == "ddp-batch"]
    return {
        "model": report.model,
        "layers": [layer.name for layer in report.layers],
        "outputs": [list(t.shape) for t in report.layers[0].outputs],
        "params": report.totals.params,
        "inner_params": sum(p.numel() for p in ddp.module.parameters()),
        "note": [note.severity, note.layer, note.message],
        "trained_note": [f.kind for f in trained.findings].count("ddp-batch"),
        "sync_kept": ddp.require_backward_grad_sync == sync,
        "after": _step(ddp, x),
        "twin": _step(twin, x),
    }


def test_ddp_reports_the_wrapped_model_and_the_job_s_batch(tmp_path: Any) -> None:
    results = run_ranks(_ddp_rank, WORLD, tmp_path, timeout=60)
    for rank, got in enumerate(results):
        assert got["model"] == "Net"
        assert got["layers"] == ["", "fc1", "bn", "fc2"]
        assert got["outputs"] == [[4, 3]]
        assert got["params"] == got["inner_params"] == 6 * 16 + 16 + 32 + 16 * 3 + 3
        severity, layer, message = got["note"]
        assert (severity, layer) == ("info", "")
        assert message.startswith(
            "DistributedDataParallel over 2 ranks: this rank's batch is 4, the job's is 8 "
            "(4 per rank × 2 ranks)"
        ), rank
        assert got["trained_note"] == 1
        assert got["sync_kept"]
        # the step after inspect is the step of a DDP never inspected, gradients all-reduced
        assert got["after"] == got["twin"]
    assert results[0]["after"] == results[1]["after"]  # the ranks' gradients were averaged
