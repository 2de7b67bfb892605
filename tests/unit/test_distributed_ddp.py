"""``distributed/ddp.py``: what is unwrapped; ``checks/modes.py``'s ``ddp-batch`` finding."""

from __future__ import annotations

import torch
from torch import nn

from inspectnn.checks.modes import ddp_finding
from inspectnn.distributed.ddp import unwrap_ddp


def test_the_batch_is_the_first_batched_input_s_dimension_0_times_the_world() -> None:
    found = ddp_finding(8, (torch.zeros(()), {"ids": torch.zeros(6, 128)}), {"mask": None})
    assert (found.kind, found.severity, found.layer) == ("ddp-batch", "info", "")
    assert found.message.startswith(
        "DistributedDataParallel over 8 ranks: this rank's batch is 6, the job's is 48 "
        "(6 per rank × 8 ranks)."
    )


def test_one_rank_and_no_batched_input_say_so() -> None:
    found = ddp_finding(1, (), {"x": torch.zeros(())})
    assert found.message.startswith(
        "DistributedDataParallel over 1 rank: this rank's batch size is unknown"
    )
    assert found.fix == "Pass a batched input to see this rank's batch and the job's."


def test_a_model_that_is_not_ddp_is_left_alone() -> None:
    model = nn.Linear(2, 2)
    assert unwrap_ddp(model) == (model, None)
