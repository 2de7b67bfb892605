"""``tests/distributed/ranks.py``: results come back in rank order; a hang or a raise fails."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch.distributed as dist
from ranks import run_ranks


def _who(rank: int, world: int) -> list[int]:
    return [rank, world, dist.get_rank(), dist.get_world_size()]


def _hang(rank: int, world: int) -> None:
    time.sleep(600)


def _fail_on_1(rank: int, world: int) -> int:
    if rank == 1:
        raise ValueError("rank 1 broke")
    return rank


def test_each_rank_is_in_one_gloo_group_and_answers_in_rank_order(tmp_path: Path) -> None:
    assert run_ranks(_who, 2, tmp_path) == [[0, 2, 0, 2], [1, 2, 1, 2]]


def test_ranks_that_hang_are_killed_at_the_timeout(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="2 ranks still running after 6 s"):
        run_ranks(_hang, 2, tmp_path, timeout=6)
    assert time.monotonic() - start < 20


def test_a_rank_that_raises_fails_the_run_with_its_error(tmp_path: Path) -> None:
    cause = r"(?s)on 1 rank\(s\):\nrank1:\n.*ValueError: rank 1 broke"
    with pytest.raises(RuntimeError, match=cause):
        run_ranks(_fail_on_1, 2, tmp_path, timeout=30)
