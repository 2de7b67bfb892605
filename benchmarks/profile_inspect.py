"""Profile ``inspectnn.inspect`` on one zoo model with cProfile.

Usage::

    python benchmarks/profile_inspect.py MODEL [N] [--plain] [--top K]
        [--diff | --sample | --phases]

MODEL is one of resnet50, gpt2, llama7b, llama70b, mlpstack, simplecnn, mymodel,
hf-gpt2, hf-bert, hf-vit (Hugging Face models built from default configs, no
download) or chain10k (10,001 modules: Sequential of 2,500 Linear/ReLU/Identity
blocks). The model
is built, warmed up (one plain forward and one inspect), then ``inspect`` (or,
with ``--plain``, the plain forward) runs N times under cProfile. Prints the
wall time per call, the top functions by own time, and every function from
inspectnn/ with its calls and own/cumulative time per inspect call. With
``--diff`` both are profiled and the functions are ranked by how much more own
time (per call) they take under inspect than in the plain forward: that shows
torch-side costs inspect causes (decompositions under its dispatch mode, garbage
collections) as well as inspectnn's own code.

cProfile's per-call overhead inflates Python-heavy code several-fold. ``--sample``
(needs ``pip install pyinstrument``; pure Python, no torch dependency) times
with pyinstrument's sampler instead and takes only the call counts from a short
cProfile run: per function, own and cumulative milliseconds per inspect call
(sampled, close to unprofiled speed), calls per inspect, and own microseconds
per call.

``--phases`` needs no profiler: it wraps a few of inspectnn's coarse functions
with timers (module attributes patched in this process only) and prints the
median milliseconds per inspect call spent in each phase next to a plain
forward timed in the same rounds: the hooked forward (its excess over plain is
the hook/op-recording cost), ``count_parameters``, the model facts the checks
need, ``Tracer.detach``, the garbage collection deferred to the end of the call,
and the rest; then, outside the inspect time, building the records, findings
and totals on the report's first use.
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


def _eval(model: torch.nn.Module) -> torch.nn.Module:
    return model.eval()


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
    if name == "mymodel":
        return zoo.MyModel().eval(), torch.randn(5, 2), {}
    if name == "hf-gpt2":
        from transformers import GPT2Config, GPT2LMHeadModel

        return _eval(GPT2LMHeadModel(GPT2Config())), torch.randint(0, 50257, (1, 128)), {}
    if name == "hf-bert":
        from transformers import BertConfig, BertModel

        return _eval(BertModel(BertConfig())), torch.randint(0, 30522, (1, 128)), {}
    if name == "hf-vit":
        from transformers import ViTConfig, ViTModel

        return _eval(ViTModel(ViTConfig())), torch.randn(1, 3, 224, 224), {}
    if name == "chain10k":
        blocks = (
            torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Identity())
            for _ in range(2500)
        )
        return torch.nn.Sequential(*blocks).eval(), torch.randn(4, 8), {}
    raise SystemExit(f"unknown model {name!r}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("n", nargs="?", type=int, default=10)
    ap.add_argument("--plain", action="store_true")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--diff", action="store_true")
    ap.add_argument("--sample", action="store_true")
    ap.add_argument("--phases", action="store_true")
    opts = ap.parse_args()
    model, x, kw = build(opts.model)

    def plain() -> Any:
        with torch.no_grad():
            return model(x)

    fn: Callable[[], Any] = plain if opts.plain else (lambda: inn.inspect(model, x, **kw))
    if opts.diff:
        diff(plain, lambda: inn.inspect(model, x, **kw), opts.n, opts.top)
        return
    if opts.sample:
        sample(fn, opts.n, opts.top)
        return
    if opts.phases:
        phases(plain, lambda: inn.inspect(model, x, **kw), opts.n)
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


def phases(plain: Callable[[], Any], inspect: Callable[[], Any], n: int) -> None:
    """Median ms per inspect call in each coarse phase (timers patched in), plain alongside."""
    import contextlib
    import gc
    import statistics

    from inspectnn import api, params
    from inspectnn.trace import tracer

    spent: dict[str, float] = {}

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*a: Any, **k: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - start

        return wrapper

    def timed_caller(*a: Any, **k: Any) -> Callable[[], Any]:
        return timed("hooked forward", orig_caller(*a, **k))

    @contextlib.contextmanager
    def gc_paused() -> Any:
        was = gc.isenabled()
        gc.disable()
        try:
            yield
        finally:
            if was:
                gc.enable()
                start = time.perf_counter()
                gc.collect(0)  # the young collection the next allocation would trigger
                spent["deferred gc (gen 0)"] = time.perf_counter() - start

    orig_caller = api._caller
    patches: list[tuple[Any, str, Any]] = [
        (api, "count_parameters", timed("count_parameters", params.count_parameters)),
        (api, "_caller", timed_caller),
        (api, "_Facts", timed("model facts (_Facts)", api._Facts)),
        (tracer.Tracer, "detach", timed("Tracer.detach", tracer.Tracer.detach)),
        (api, "_gc_paused", gc_paused),
    ]
    saved = [(obj, attr, getattr(obj, attr)) for obj, attr, _ in patches]
    for obj, attr, new in patches:
        setattr(obj, attr, new)
    rows: dict[str, list[float]] = {}
    try:
        plain(), inspect()
        for r in range(n):
            spent.clear()
            pair = [("plain forward", plain), ("inspect total", inspect)]
            report: Any = None
            for name, fn in pair if r % 2 == 0 else pair[::-1]:
                start = time.perf_counter()
                out = fn()
                spent[name] = time.perf_counter() - start
                if name == "inspect total":
                    report = out
            spent["rest of inspect"] = spent["inspect total"] - sum(
                v for k, v in spent.items() if k not in ("plain forward", "inspect total")
            )
            start = time.perf_counter()
            report.findings  # noqa: B018 - builds records, findings and totals
            spent["records on first use"] = time.perf_counter() - start
            for k, v in spent.items():
                rows.setdefault(k, []).append(v)
    finally:
        for obj, attr, old in saved:
            setattr(obj, attr, old)
    med = {k: statistics.median(v) * 1e3 for k, v in rows.items()}
    hooked, base = med.get("hooked forward", 0.0), med["plain forward"]
    print(f"median ms per call over {n} paired rounds (timers patched in):")
    for k in (
        "plain forward",
        "inspect total",
        "hooked forward",
        "count_parameters",
        "model facts (_Facts)",
        "Tracer.detach",
        "deferred gc (gen 0)",
        "rest of inspect",
        "records on first use",
    ):
        if k in med:
            print(f"  {k:<22} {med[k]:9.3f}")
    print(f"  hooked forward - plain {hooked - base:9.3f}  (hooks and op recording)")
    print(f"  inspect / plain        {med['inspect total'] / base:9.3f}")


def _short(file: str, line: int | None, func: str) -> str:
    if "site-packages/" in file:
        file = file.split("site-packages/")[1]
    elif "/inspectnn/" in file:
        file = "inspectnn/" + file.split("/inspectnn/")[1]
    else:
        file = Path(file).name if file else "?"
    return f"{file}:{line}({func})"


def sample(fn: Callable[[], Any], n: int, top: int, interval: float = 0.0002) -> None:
    """Sampled own/cumulative time per function (pyinstrument), exact call counts (cProfile)."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        raise SystemExit("--sample needs pyinstrument: pip install pyinstrument") from None
    fn()
    n_count = max(1, min(n, 20))
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n_count):
        fn()
    prof.disable()
    counts: dict[tuple[str, int], float] = {}
    for (file, line, _func), v in pstats.Stats(prof).stats.items():  # type: ignore[attr-defined]
        counts[(file, line)] = counts.get((file, line), 0.0) + v[1] / n_count
    t0 = time.perf_counter()
    for _ in range(3):
        fn()
    unprofiled = (time.perf_counter() - t0) / 3
    sampler = Profiler(interval=interval)
    t0 = time.perf_counter()
    sampler.start()
    for _ in range(n):
        fn()
    sampler.stop()
    sampled = (time.perf_counter() - t0) / n
    root = sampler.last_session.root_frame() if sampler.last_session else None
    own: dict[tuple[str, int | None, str], float] = {}
    cum: dict[tuple[str, int | None, str], float] = {}

    def walk(frame: Any, ancestors: frozenset[tuple[str, int | None, str]]) -> None:
        key = (frame.file_path or "", frame.line_no, frame.function or "")
        own[key] = own.get(key, 0.0) + frame.total_self_time
        if key not in ancestors:
            cum[key] = cum.get(key, 0.0) + frame.time
        for child in frame.children:
            if not child.is_synthetic:
                walk(child, ancestors | {key})

    if root is not None:
        walk(root, frozenset())
    print(f"ms/call: unprofiled {unprofiled * 1e3:.2f}, under the sampler {sampled * 1e3:.2f} "
          f"(N={n}, interval {interval * 1e6:.0f} us)")  # fmt: skip
    print(
        f"{'own ms':>8} {'cum ms':>8} {'calls':>8} {'own us/call':>11}  function (top by own time)"
    )

    def row(key: tuple[str, int | None, str]) -> str:
        calls = counts.get((key[0], key[1] or 0), 0.0)
        per = f"{own[key] / n / calls * 1e6:11.2f}" if calls else f"{'':>11}"
        return (f"{own[key] / n * 1e3:8.3f} {cum.get(key, 0.0) / n * 1e3:8.3f} {calls:8.0f} "
                f"{per}  {_short(*key)}")  # fmt: skip

    ranked = sorted(own, key=lambda k: -own[k])
    for key in ranked[:top]:
        print(row(key))
    print("inspectnn functions by own time, per inspect call:")
    for key in [k for k in ranked if "/inspectnn/" in k[0]][:top]:
        print(row(key))


if __name__ == "__main__":
    main()
