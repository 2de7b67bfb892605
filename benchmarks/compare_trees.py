"""Paired benchmark of inspectnn.inspect, old tree vs new tree, interleaved subprocesses.

python benchmarks/compare_trees.py OLD_ROOT NEW_ROOT [rounds]   (driver)
python benchmarks/compare_trees.py --worker     (one round: PYTHONPATH selects the tree)

OLD_ROOT is an older tree, e.g. ``git archive f9bab98 | tar -x -C /tmp/old``. Each round
runs both trees in fresh processes, alternately, with one torch thread, and takes the
minimum CPU time per process; the ratios are medians over rounds (CPU time, not wall
time, because this shared machine's load swings wall-clock ratios by 2x). The issue-14
restructure's run is benchmarks/results/restructure_paired.txt.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

REPS = {"gpt2-4": 7, "mlp-400": 11, "cnn": 21}
if os.environ.get("ONLY"):
    REPS = {k: v for k, v in REPS.items() if k in os.environ["ONLY"].split(",")}
CLOCK = time.thread_time  # CPU time of this thread: less hit by other processes than wall time


def models():
    import torch
    from torch import nn

    torch.manual_seed(0)
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt = GPT2LMHeadModel(GPT2Config(n_layer=4)).eval()
    mlp = nn.Sequential(*[nn.Sequential(nn.Linear(32, 32), nn.ReLU()) for _ in range(400)]).eval()
    cnn = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 16 * 16, 10),
    ).eval()
    return {
        "gpt2-4": (gpt, torch.randint(0, 50257, (1, 64))),
        "mlp-400": (mlp, torch.randn(8, 32)),
        "cnn": (cnn, torch.randn(8, 3, 32, 32)),
    }


def worker() -> None:
    import gc

    import torch

    torch.set_num_threads(1)
    import inspectnn

    out = {"file": inspectnn.__file__}
    for name, (model, x) in models().items():
        if name not in REPS:
            continue
        for _ in range(3):
            _ = inspectnn.inspect(model, x).layers
        ins, build = [], []
        for _ in range(REPS[name]):
            gc.collect()
            t0 = CLOCK()
            r = inspectnn.inspect(model, x)
            t1 = CLOCK()
            _ = r.layers
            t2 = CLOCK()
            ins.append(t1 - t0)
            build.append(t2 - t1)
        out[name] = {"inspect": min(ins), "build": min(build),
                     "total": min([a + b for a, b in zip(ins, build, strict=True)])}
    print(json.dumps(out))


def run(root: str) -> dict:
    env = dict(os.environ, PYTHONPATH=root, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, __file__, "--worker"], env=env, cwd="/tmp",
                         capture_output=True, text=True, check=True)
    data = json.loads(res.stdout.strip().splitlines()[-1])
    assert data["file"].startswith(root), (data["file"], root)
    return data


def main() -> None:
    old, new = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 7
    results: dict[str, list[dict]] = {"old": [], "new": []}
    for r in range(rounds):
        order = [("old", old), ("new", new)] if r % 2 == 0 else [("new", new), ("old", old)]
        for label, root in order:
            results[label].append(run(root))
        print(f"round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    print(f"{'model':10} {'metric':8} {'old ms':>9} {'new ms':>9} {'new/old':>8}  per-round ratios")
    for name in REPS:
        for metric in ("inspect", "build", "total"):
            o = [d[name][metric] for d in results["old"]]
            n = [d[name][metric] for d in results["new"]]
            ratios = [b / a for a, b in zip(o, n, strict=True)]
            print(f"{name:10} {metric:8} {statistics.median(o) * 1e3:9.2f} "
                  f"{statistics.median(n) * 1e3:9.2f} {statistics.median(ratios):8.3f}  "
                  + " ".join(f"{x:.3f}" for x in ratios))


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        worker()
    else:
        main()
