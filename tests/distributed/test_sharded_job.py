"""``examples/sharded_job.py`` as a user runs it: ``torchrun`` with 4 gloo ranks (FSDP2 on
``dp`` x tensor parallel on ``tp``), in a real subprocess, bounded in time; and its
``--simulate 0`` (one process, FSDP2 on fake shards under the fake process group), which
prints rank 0's table as the real job does."""

from __future__ import annotations

import subprocess
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@cache  # one real job for both tests
def _job() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "4",
         "--standalone", str(ROOT / "examples" / "sharded_job.py")],
        capture_output=True, text=True, timeout=180, cwd=ROOT,
    )  # fmt: skip


def test_the_4_rank_job_prints_rank_0_s_shards() -> None:
    proc = _job()
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert "Job: rank 0 of 4 · mesh dp=2 × tp=2 at (0, 0) · local shapes" in lines
    gate = next(line for line in lines if "0.gate (Linear)" in line)
    assert gate.split()[-3:] == ["80]", "S(2)", "10,240"] and "[2, 8, 80]" in gate
    # 94,464 parameters: a quarter of every projection, half of each norm (FSDP over dp)
    held = "Params: 94,464 (global) · this rank holds 23,680"
    assert any(line.startswith(held) for line in lines)
    # FSDP2's all-gather of each block's parameters (in its pre-forward hook: the
    # block's call), this rank's 23,680 shard elements in all; the row-parallel
    # attn.o and down all-reduce their [2, 8, 64] float32 partial sums (4 KB each)
    assert "Collectives: 2 all_gather_into_tensor (92.5 KB) · 4 all_reduce (16.0 KB)" in lines
    assert "unwaited collective" not in proc.stderr
    # report.gather(): rank 0 prints the job's view; every rank holds the same shapes
    assert "Job: 4 ranks · mesh dp=2 × tp=2 · params 94,464 (global)" in lines
    (row,) = [line for line in lines if line.startswith("0-3 ")]
    assert row.split()[:5] == ["0-3", "dp=*,", "tp=*", "23,680", "(92.5"]
    assert (
        "Rank 0 holds the most: 156.5 KB (parameters 92.5 KB, activations 64.0 KB) "
        "(so do ranks 1-3)."
    ) in lines
    assert sum(line.startswith("Job: 4 ranks") for line in lines) == 1  # rank 0 only


def test_simulate_0_prints_what_the_real_rank_0_prints() -> None:
    simulated = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "sharded_job.py"), "--simulate", "0"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert simulated.returncode == 0, simulated.stderr[-3000:]
    table = simulated.stdout.splitlines()
    assert table[-2].endswith("· device meta · mode eval")
    assert table[-1] == "Collectives: 2 all_gather_into_tensor (92.5 KB) · 4 all_reduce (16.0 KB)"
    real = _job()
    assert real.returncode == 0, real.stderr[-3000:]
    expected = real.stdout.splitlines()[: len(table)]
    assert expected[-2].endswith("· device cpu · mode eval")
    # every shape, placement, count, byte and collective alike; only the device differs
    assert [line.replace("device meta", "device cpu") for line in table] == expected


def readme_block(command: str) -> list[str]:
    """The lines of the README's console block that starts with ``$ command``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"```console\n$ {command}\n") + len(f"```console\n$ {command}\n")
    return text[start : text.index("```", start)].splitlines()


def test_the_readme_shows_what_the_4_rank_job_prints() -> None:
    proc = _job()
    assert proc.returncode == 0, proc.stderr[-3000:]
    shown = readme_block(
        "python -m torch.distributed.run --standalone --nproc-per-node 4 examples/sharded_job.py"
    )
    assert [line for line in proc.stdout.splitlines() if line.strip()] == shown
