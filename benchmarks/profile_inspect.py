"""Profile ``inspectnn.inspect`` on one zoo model with cProfile.

Usage::

    python benchmarks/profile_inspect.py MODEL [N] [--plain] [--top K] [--diff]

MODEL is one of resnet50, gpt2, llama7b, llama70b, mlpstack, simplecnn. The model
is built, warmed up (one plain forward and one inspect), then ``inspect`` (or,
with ``--plain``, the plain forward) runs N times under cProfile. Prints the
wall time per call, the top functions by own time, and every function from
inspectnn/ with its calls and own/cumulative time per inspect call. With
``--diff`` both are profiled and the functions are ranked by how much more own
time (per call) they take under inspect than in the plain forward: that shows
torch-side costs inspect causes (decompositions under its dispatch mode, garbage
collections) as well as inspectnn's own code.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
for p in (str(ROOT), str(ROOT / "tests")):
    if p not in sys.path:
        sys.path.insert(0, p)

import inspectnn as inn  # noqa: E402

try:
    from tests import models as zoo
except ImportError:
    import models as zoo  # type: ignore[no-redef]


def build(name: str) -> tuple[torch.nn.Module, torch.Tensor, dict[str, Any]]:
    torch.manual_seed(0)
    if name == "resnet50":
        return zoo.ResNet50Like().eval(), torch.randn(1, 3, 224, 224), {}
    if name == "gpt2":
        return zoo.GPT2Like().eval(), torch.randint(0, 50257, (1, 128)), {}
    if name in ("llama7b", "llama70b"):
        cfg = {} if name == "llama7b" else dict(n_layers=80, dim=8192, n_heads=64, ffn_dim=28672)
        with torch.device("meta"):
            model = zoo.LlamaLike(**cfg)
        x = torch.randint(0, 32000, (1, 16), device="meta")
        return model.eval(), x, {"device": "meta"}
    if name == "mlpstack":
        return zoo.MLPStack(n_blocks=400, width=16).eval(), torch.randn(8, 16), {}
    if name == "simplecnn":
        return zoo.SimpleCNN().eval(), torch.randn(64, 1, 28, 28), {}
    raise SystemExit(f"unknown model {name!r}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("n", nargs="?", type=int, default=10)
    ap.add_argument("--plain", action="store_true")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--diff", action="store_true")
    opts = ap.parse_args()
    model, x, kw = build(opts.model)

    def plain() -> Any:
        with torch.no_grad():
            return model(x)

    fn: Callable[[], Any] = plain if opts.plain else (lambda: inn.inspect(model, x, **kw))
    if opts.diff:
        diff(plain, lambda: inn.inspect(model, x, **kw), opts.n, opts.top)
        return
    plain()
    inn.inspect(model, x, **kw)
    t0 = time.perf_counter()
    for _ in range(3):
        fn()
    per = (time.perf_counter() - t0) / 3
    print(
        f"{opts.model} {'plain' if opts.plain else 'inspect'}: {per * 1e3:.1f} ms/call unprofiled"
    )

    prof = cProfile.Profile()
    prof.enable()
    for _ in range(opts.n):
        fn()
    prof.disable()
    stats = pstats.Stats(prof)
    stats.sort_stats("tottime").print_stats(opts.top)

    n = opts.n
    rows = []
    for (file, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if "/inspectnn/" in file:
            rows.append((tt, ct, nc, f"{Path(file).name}:{line}({func})"))
    rows.sort(reverse=True)
    print(f"inspectnn functions, per inspect call (N={n}):")
    print(f"{'own ms':>8} {'cum ms':>8} {'calls':>8} {'us/call':>8}  function")
    for tt, ct, nc, where in rows[:30]:
        print(f"{tt / n * 1e3:8.2f} {ct / n * 1e3:8.2f} {nc // n:8d} {tt / nc * 1e6:8.2f}  {where}")


def _profile(fn: Callable[[], Any], n: int) -> tuple[float, dict[Any, tuple[int, float]]]:
    fn()
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    for _ in range(n):
        fn()
    prof.disable()
    wall = (time.perf_counter() - t0) / n
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    return wall, {k: (v[1], v[2]) for k, v in stats.items()}


def diff(plain: Callable[[], Any], inspect: Callable[[], Any], n: int, top: int) -> None:
    wall_p, prof_p = _profile(plain, n)
    wall_i, prof_i = _profile(inspect, n)
    print(
        f"profiled ms/call: plain {wall_p * 1e3:.1f}, inspect {wall_i * 1e3:.1f}, "
        f"difference {(wall_i - wall_p) * 1e3:+.1f}"
    )
    rows = []
    for key in set(prof_p) | set(prof_i):
        nc_i, tt_i = prof_i.get(key, (0, 0.0))
        nc_p, tt_p = prof_p.get(key, (0, 0.0))
        file, line, func = key
        where = f"{Path(file).name}:{line}({func})" if line else func
        if "site-packages/torch" in file:
            where = "torch/" + file.split("site-packages/torch/")[1] + f":{line}({func})"
        rows.append(((tt_i - tt_p) / n, (nc_i - nc_p) // n, tt_i / n, where))
    rows.sort(reverse=True)
    print("own time added by inspect, per call (profiled):")
    print(f"{'+own ms':>8} {'+calls':>7} {'own ms':>8}  function")
    for d, dc, tt, where in rows[:top]:
        print(f"{d * 1e3:8.2f} {dc:7d} {tt * 1e3:8.2f}  {where}")


if __name__ == "__main__":
    main()
