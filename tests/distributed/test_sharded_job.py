"""``examples/sharded_job.py`` as a user runs it: ``torchrun`` with 4 gloo ranks (FSDP2 on
``dp`` x tensor parallel on ``tp``), in a real subprocess, bounded in time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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
