"""``examples/llama70b_job.py``: a 512-rank LLaMA-70B-shaped job (FSDP2 x TP) simulated in
one process, run as a user runs it; the README shows what it prints (issue 16)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_shows_what_the_512_rank_simulation_prints() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "llama70b_job.py")],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    head = "```console\n$ python examples/llama70b_job.py\n"
    start = text.index(head) + len(head)
    shown = text[start : text.index("```", start)].splitlines()
    printed = done.stdout.splitlines()
    assert printed[: len(shown)] == shown  # the module rows after it are left out there
    assert "Every rank would run out of device_memory=80.0 GB" in done.stdout
