"""Run a function on N real ranks: gloo on CPU, one process each, bounded in time.

``run_ranks(work, world, tmp_path)`` spawns ``world`` processes
(``torch.multiprocessing.spawn``), joins them into one gloo process group through a
file store in ``tmp_path`` (no port to pick, no port to collide), calls
``work(rank, world)`` on each and returns each rank's JSON-able result, in rank
order, written by the rank to ``tmp_path/rank<r>.json``. A rank that raises fails the
call with its traceback; ranks still running after ``timeout`` seconds are killed and
the call fails, so a hang fails the test instead of hanging CI (the process group's
own timeout makes a collective that waits for a dead rank raise first).

``work`` must be a module-level function of an importable module (a test file): the
spawned processes import it by name. Gloo binds to the address the host name resolves
to; on a machine where that is not a usable interface, set ``GLOO_SOCKET_IFNAME``
(``lo`` on Linux) before the test runs.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch.distributed as dist
import torch.multiprocessing as mp

TIMEOUT = 120.0
"""Seconds a whole run may take, start-up included, before its ranks are killed."""

Work = Callable[[int, int], Any]


def _rank_main(rank: int, work: Work, world: int, folder: str, timeout: float) -> None:
    """One spawned rank: join the group, run ``work``, write its result, leave."""
    store = f"file://{os.path.join(folder, 'store')}"
    dist.init_process_group(
        "gloo", init_method=store, rank=rank, world_size=world,
        timeout=timedelta(seconds=timeout),
    )  # fmt: skip
    try:
        try:
            result = work(rank, world)
        except BaseException:
            # Written before this rank leaves the group, so before any other rank
            # fails on its absence: the error the caller sees is this one.
            Path(folder, f"rank{rank}.error").write_text(traceback.format_exc(), encoding="utf-8")
            raise
        dist.barrier()  # no rank leaves while another still needs it
    finally:
        dist.destroy_process_group()
    Path(folder, f"rank{rank}.json").write_text(json.dumps(result), encoding="utf-8")


def run_ranks(work: Work, world: int, tmp_path: Path, timeout: float = TIMEOUT) -> list[Any]:
    """Each rank's ``work(rank, world)``, run in ``world`` gloo processes on CPU.

    Args:
        work: A module-level function returning a JSON-able value.
        world: The number of ranks.
        tmp_path: An empty folder for the file store and the results.
        timeout: Seconds before the ranks still running are killed.

    Returns:
        The results, in rank order.
    """
    context = mp.spawn(
        _rank_main, args=(work, world, str(tmp_path), timeout), nprocs=world, join=False
    )
    deadline = time.monotonic() + timeout
    while not _joined(context, tmp_path, max(0.0, deadline - time.monotonic())):
        if time.monotonic() >= deadline:
            for process in context.processes:
                if process.is_alive():
                    process.kill()
                process.join()
            raise TimeoutError(f"{world} ranks still running after {timeout:.0f} s: killed")
    results = [tmp_path / f"rank{r}.json" for r in range(world)]
    return [json.loads(path.read_text(encoding="utf-8")) for path in results]


def _joined(context: mp.ProcessContext, folder: Path, timeout: float) -> bool:
    """``context.join``, a failure re-raised with the traceback of the rank whose work raised.

    When one rank's ``work`` raises, the others fail too, on its absence (a collective
    reset by peer), and torch reports whichever process it saw die first.
    """
    try:
        return bool(context.join(timeout=timeout))
    except mp.ProcessRaisedException as failed:
        causes = sorted(folder.glob("rank*.error"))
        if not causes:
            raise
        text = "\n".join(f"{path.stem}:\n{path.read_text(encoding='utf-8')}" for path in causes)
        raise RuntimeError(f"work raised on {len(causes)} rank(s):\n{text}") from failed
