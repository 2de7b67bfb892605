"""inspectnn next to torchinfo, torchview and torchlens on real models, paired.

For every model all tools run in ONE process on the SAME model and input:

* ``plain``     - ``model(x)`` under ``torch.no_grad()`` (model in eval mode);
* ``inspectnn`` - ``inspectnn.inspect(model, x)`` (``device="meta"`` on meta);
* ``torchinfo`` - ``torchinfo.summary(model, input_data=x, verbose=0)``
  (``device="meta"`` on meta);
* ``torchview`` - ``torchview.draw_graph(model, input_data=x, graph_name=...,
  device="cpu" | "meta", save_graph=False)`` (default ``depth``);
* ``torchlens`` - ``torchlens.trace(model, x, capture=CaptureOptions(
  layers_to_save=None, unwrap_when_done=True))``: metadata only, no activation
  saved. ``unwrap_when_done`` puts torch's functions back after each call, so the
  other tools run on an unpatched torch (torchlens would otherwise leave them
  wrapped for the rest of the process); each torchlens call therefore pays its
  wrap/unwrap. On meta models torchlens refuses a default capture, so the
  refusal is recorded and ``structure_only=True`` (its meta contract) is timed.

Timing: after one warm-up call of each tool, every round times each tool once,
back to back, in an order rotated every round; the per-round ratio
``tool / plain`` (and ``tool / torchinfo``) is taken and the median over the
rounds reported. torchlens, 10-600x slower, runs only in the first
``slow_rounds`` rounds (0 or 1); its memory pair below, a plain forward and
torchlens timed back to back, counts as one more sample. A tool that raises in
warm-up is dropped for that model and its exception (type, message, raising
frame) recorded.

Memory: each tool once more on its own, right after a plain forward; each call
starts from ``gc.collect()`` + ``malloc_trim(0)`` with the peak reset through
``/proc/self/clear_refs``; ``extra_peak_mb`` is (tool's ``VmHWM`` - RSS before
it) - (plain's ``VmHWM`` - RSS before it).

Also: the LLaMA-7B / 70B-sized meta-device models, and a scaling test timing
``inspect`` on 2,500 / 5,000 / 10,000-module models.

Nothing here asserts a timing (the machine is shared and noisy); the tests
assert only that results were produced. Results go to
``benchmarks/results/tools.json``; run::

    python -m pytest benchmarks/test_bench_tools.py -p no:cacheprovider -s
    python benchmarks/summarize.py benchmarks/results/tools.json

``INSPECTNN_BENCH_ROUNDS=2`` multiplies every round count (default 1). On 2
shared cores the whole file took about 6 minutes with ``INSPECTNN_BENCH_ROUNDS=2``
in the last run, and 13 minutes with the default while the cores were busy.
``INSPECTNN_BENCH_THREADS=1`` sets ``torch.set_num_threads`` for these tests
(default: torch's own choice). On this machine another tenant often keeps one
of the two cores busy; a two-thread torch op then stalls waiting for it (a
ReLU on 64x16x28x28 takes 8 ms instead of 0.3 ms), so absolute times swing up
to 10x between runs. The ratios are taken within a round, which cancels most
of that, but not all.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import json
import os
import platform
import statistics
import subprocess
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import torchinfo
from procstat import can_reset_peak, status_kb, steal_s
from torch import nn

import inspectnn as inn

try:  # rootdir on sys.path, tests/ a (namespace) package
    from tests import models as zoo
except ImportError:  # tests/ itself on sys.path (benchmarks/conftest.py puts it there)
    import models as zoo  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
TOOLS_JSON = RESULTS / "tools.json"
TOOL_ORDER = ("plain", "inspectnn", "torchinfo", "torchview", "torchlens")
SLOW_TOOLS = {"torchlens"}
SCALE = float(os.environ.get("INSPECTNN_BENCH_ROUNDS", "1"))
THREADS = int(os.environ.get("INSPECTNN_BENCH_THREADS", "0"))  # 0: leave torch's default
MB = 1024.0  # kB per MB (VmHWM / VmRSS are in kB)


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


@dataclass
class Spec:
    """A benchmarked model: how to build it and its input, and the round counts."""

    name: str
    build: Callable[[], tuple[nn.Module, torch.Tensor]]
    rounds: int
    slow_rounds: int  # rounds that also time the SLOW_TOOLS (their memory pair adds one)
    meta: bool = False
    input_desc: str = ""


def _gpt2() -> tuple[nn.Module, torch.Tensor]:
    from transformers import GPT2Config, GPT2LMHeadModel

    return GPT2LMHeadModel(GPT2Config()), torch.randint(0, 50257, (1, 128))


def _bert() -> tuple[nn.Module, torch.Tensor]:
    from transformers import BertConfig, BertModel

    return BertModel(BertConfig()), torch.randint(0, 30522, (1, 128))


def _vit() -> tuple[nn.Module, torch.Tensor]:
    from transformers import ViTConfig, ViTModel

    return ViTModel(ViTConfig()), torch.randn(1, 3, 224, 224)


def _llama(**cfg: int) -> tuple[nn.Module, torch.Tensor]:
    with torch.device("meta"):
        model = zoo.LlamaLike(**cfg)
    return model, torch.randint(0, 32000, (1, 16), device="meta")


LLAMA_70B = dict(n_layers=80, dim=8192, n_heads=64, ffn_dim=28672, vocab=32000)

SPECS = [
    Spec("GPT2LMHeadModel", _gpt2, 8, 1, input_desc="input_ids 1x128"),
    Spec("BertModel", _bert, 10, 1, input_desc="input_ids 1x128"),
    Spec("ViTModel", _vit, 8, 1, input_desc="pixel_values 1x3x224x224"),
    Spec(
        "ResNet50Like",
        lambda: (zoo.ResNet50Like(), torch.randn(1, 3, 224, 224)),
        10,
        1,
        input_desc="1x3x224x224",
    ),
    Spec(
        "SimpleCNN",
        lambda: (zoo.SimpleCNN(), torch.randn(64, 1, 28, 28)),
        20,
        4,
        input_desc="64x1x28x28",
    ),
    Spec(
        "SimpleCNN-b1",
        lambda: (zoo.SimpleCNN(), torch.randn(1, 1, 28, 28)),
        60,
        4,
        input_desc="1x1x28x28",
    ),
    Spec("MyModel", lambda: (zoo.MyModel(), torch.randn(5, 2)), 60, 4, input_desc="5x2"),
    Spec(
        "softmax_mlp", lambda: (zoo.softmax_mlp(), torch.randn(1, 784)), 60, 4, input_desc="1x784"
    ),
    Spec("cnn32", lambda: (zoo.cnn32(), torch.randn(1, 3, 32, 32)), 60, 4, input_desc="1x3x32x32"),
    Spec(
        "ComplexModel", lambda: (zoo.ComplexModel(), torch.randn(4, 10)), 60, 4, input_desc="4x10"
    ),
    Spec(
        "MLPStack-400",
        lambda: (zoo.MLPStack(400), torch.randn(8, 16)),
        15,
        1,
        input_desc="8x16",
    ),
    Spec("LlamaLike-7B-meta", _llama, 8, 1, meta=True, input_desc="ids 1x16, meta"),
    Spec(
        "LlamaLike-70B-meta",
        lambda: _llama(**LLAMA_70B),
        4,
        0,
        meta=True,
        input_desc="ids 1x16, meta",
    ),
]


# ---------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------

Variants = list[tuple[str, Callable[[], Any]]]


def _tool_variants(spec: Spec, model: nn.Module, x: torch.Tensor) -> dict[str, Variants]:
    """Tool -> the ways to call it, tried in order at warm-up; the first that runs is timed."""
    meta_kw: dict[str, Any] = {"device": "meta"} if spec.meta else {}

    def plain() -> Any:
        with torch.no_grad():
            return model(x)

    tools: dict[str, Variants] = {
        "plain": [("model(x) under no_grad", plain)],
        "inspectnn": [
            (
                f"inspect(model, x{', device=meta' if spec.meta else ''})",
                lambda: inn.inspect(model, x, **meta_kw),
            )
        ],
        "torchinfo": [
            (
                f"summary(model, input_data=x, verbose=0{', device=meta' if spec.meta else ''})",
                lambda: torchinfo.summary(model, input_data=x, verbose=0, **meta_kw),
            )
        ],
    }
    try:
        import torchview

        device = "meta" if spec.meta else "cpu"
        tools["torchview"] = [
            (
                f"draw_graph(model, input_data=x, graph_name=..., device={device!r}, "
                "save_graph=False)",
                lambda: torchview.draw_graph(
                    model, input_data=x, graph_name=spec.name, device=device, save_graph=False
                ),
            )
        ]
    except ImportError as err:
        tools["torchview"] = [("import torchview", _raiser(err))]
    try:
        import torchlens
        from torchlens.options import CaptureOptions

        def tl(**extra: Any) -> Callable[[], Any]:
            opts = CaptureOptions(layers_to_save=None, unwrap_when_done=True, **extra)
            return lambda: torchlens.trace(model, x, capture=opts)

        tools["torchlens"] = [("trace(layers_to_save=None, unwrap_when_done=True)", tl())]
        if spec.meta:
            tools["torchlens"].append(
                (
                    "trace(layers_to_save=None, unwrap_when_done=True, structure_only=True)",
                    tl(structure_only=True),
                )
            )
    except ImportError as err:
        tools["torchlens"] = [("import torchlens", _raiser(err))]
    return tools


def _raiser(err: BaseException) -> Callable[[], Any]:
    def fn() -> Any:
        raise err

    return fn


def _describe(err: BaseException) -> dict[str, str]:
    """Type, message (first 600 characters) and the frame that raised."""
    frames = traceback.extract_tb(err.__traceback__)
    where = ""
    if frames:
        f = frames[-1]
        path = f.filename.split("site-packages/")[-1]
        where = f"{path}:{f.lineno} in {f.name}"
    message = str(err).strip()
    if len(message) > 600:
        message = message[:600] + " ..."
    return {"type": type(err).__name__, "message": message, "where": where}


# ---------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------


_LIBC_NAME = ctypes.util.find_library("c")
_LIBC = ctypes.CDLL(_LIBC_NAME) if _LIBC_NAME else None


def _settle() -> None:
    """Free what can be freed and hand glibc's free pages back to the OS."""
    gc.collect()
    if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)


def _peak_over_kb(fn: Callable[[], Any]) -> tuple[int, int, float]:
    """(RSS before ``fn``, its peak above that RSS, seconds) in kB."""
    _settle()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    before = status_kb("VmRSS")
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    peak = status_kb("VmHWM")
    del out
    return before, peak - before, seconds


def _round_count(n: int) -> int:
    return max(1, round(n * SCALE))


def _paired(
    runners: dict[str, Callable[[], Any]], rounds: int, slow_rounds: int
) -> list[dict[str, float]]:
    """Per round, tool -> seconds; tools back to back, order rotated every round.

    The SLOW_TOOLS run only in the first ``slow_rounds`` rounds; ratios are
    always taken between times of the same round. The objects that exist before
    the rounds (torch, transformers, the model) are moved out of the garbage
    collector's reach with ``gc.freeze()``: a collection set off by one tool's
    garbage then scans only young objects instead of costing a full pass
    (milliseconds in a process holding torch) in whichever call comes next. A
    ``gc.collect()`` before every call would be no better: it leaves the caches
    cold, which made a 40 µs forward take 400 µs.
    """
    gc.collect()
    gc.freeze()
    try:
        return _rounds(runners, rounds, slow_rounds)
    finally:
        gc.unfreeze()


def _rounds(
    runners: dict[str, Callable[[], Any]], rounds: int, slow_rounds: int
) -> list[dict[str, float]]:
    per_round: list[dict[str, float]] = []
    for r in range(rounds):
        active = [t for t in runners if t not in SLOW_TOOLS or r < slow_rounds]
        k = r % len(active)
        times: dict[str, float] = {}
        for tool in active[k:] + active[:k]:
            start = time.perf_counter()
            runners[tool]()
            times[tool] = time.perf_counter() - start
        per_round.append(times)
    return per_round


def _median_ratio(per_round: list[dict[str, float]], tool: str, ref: str) -> float | None:
    vals = [t[tool] / t[ref] for t in per_round if tool in t and ref in t and t[ref] > 0]
    return round(statistics.median(vals), 3) if vals else None


def _machine() -> dict[str, Any]:
    mem_gib = None
    try:
        with open("/proc/meminfo") as f:
            mem_gib = round(int(f.readline().split()[1]) / 1024**2, 1)
    except (OSError, ValueError, IndexError):
        pass
    versions: dict[str, str] = {"torch": torch.__version__, "python": platform.python_version()}
    for pkg in ("torchinfo", "torchview", "torchlens", "transformers", "inspectnn"):
        try:
            from importlib.metadata import version

            versions[pkg] = version(pkg)
        except Exception:  # not installed / no metadata
            versions[pkg] = "n/a"
    git: dict[str, Any] = {}
    try:
        git["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "inspectnn"], cwd=ROOT, capture_output=True,
            text=True, timeout=10,
        ).stdout  # fmt: skip
        git["inspectnn_uncommitted_changes"] = bool(dirty.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "mem_gib": mem_gib,
        "versions": versions,
        "git": git,
    }


def _store(key: str, name: str, row: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    try:
        data = json.loads(TOOLS_JSON.read_text())
    except (OSError, ValueError):
        data = {}
    data["machine"] = _machine()
    data.setdefault(key, {})[name] = row
    if key == "models":  # keep SPECS order whatever order the tests ran in
        order = {spec.name: i for i, spec in enumerate(SPECS)}
        data[key] = dict(sorted(data[key].items(), key=lambda kv: order.get(kv[0], 99)))
    TOOLS_JSON.write_text(json.dumps(data, indent=2) + "\n")


def _fmt(v: float | None, unit: str = "x") -> str:
    if v is None:
        return "-"
    return f"{v:.2f}{unit}" if unit else f"{v + 0.0:+.1f}"


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _threads() -> Any:
    """Apply INSPECTNN_BENCH_THREADS for the test, restore torch's setting after."""
    before = torch.get_num_threads()
    if THREADS > 0:
        torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_tools_paired(spec: Spec) -> None:
    """Paired, interleaved ratios to plain of every tool, plus extra peak RSS."""
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model, x = spec.build()
    model.eval()
    build_s = time.perf_counter() - t0
    variants = _tool_variants(spec, model, x)

    # Warm-up: the first variant of each tool that runs is kept; errors recorded.
    runners: dict[str, Callable[[], Any]] = {}
    used: dict[str, str] = {}
    errors: dict[str, list[dict[str, str]]] = {}
    first_call_s: dict[str, float] = {}
    for tool, options in variants.items():
        for label, fn in options:
            try:
                start = time.perf_counter()
                out = fn()
                first_call_s[tool] = round(time.perf_counter() - start, 3)
                del out
            except Exception as err:  # any failure of a tool is a result, not a test error
                errors.setdefault(tool, []).append({"call": label, **_describe(err)})
                continue
            runners[tool], used[tool] = fn, label
            break
    assert "plain" in runners, errors

    rounds = _round_count(spec.rounds)
    slow_rounds = min(rounds, round(spec.slow_rounds * SCALE))
    if not can_reset_peak():  # no memory pair to time them in
        slow_rounds = max(slow_rounds, 1)
    steal0, wall0 = steal_s(), time.perf_counter()
    per_round = _paired(runners, rounds, slow_rounds)
    wall = time.perf_counter() - wall0
    steal1 = steal_s()
    steal_pct = None
    if steal0 is not None and steal1 is not None and wall > 0:
        steal_pct = round(100 * (steal1 - steal0) / (wall * (os.cpu_count() or 1)), 1)

    # Memory: each tool alone, right after a plain forward.
    memory: dict[str, dict[str, float | None]] = {}
    if can_reset_peak():
        for tool in runners:
            if tool == "plain":
                continue
            _, p_over, p_s = _peak_over_kb(runners["plain"])
            t_before, t_over, t_s = _peak_over_kb(runners[tool])
            if tool in SLOW_TOOLS:  # back to back with a plain forward: one more paired sample
                per_round.append({"plain": p_s, tool: t_s})
            memory[tool] = {
                "extra_peak_mb": round((t_over - p_over) / MB, 1),
                "plain_peak_over_rss_mb": round(p_over / MB, 1),
                "tool_peak_over_rss_mb": round(t_over / MB, 1),
                "rss_before_mb": round(t_before / MB, 1),
                "ratio_in_memory_pair": round(t_s / p_s, 3) if p_s > 0 else None,
            }

    tools: dict[str, Any] = {}
    for tool in TOOL_ORDER:
        if tool not in variants:
            continue
        row: dict[str, Any] = {}
        if tool in runners:
            # the memory pairs (after the rounds) count only for the slow tools
            samples = per_round if tool in SLOW_TOOLS else per_round[:rounds]
            secs = [t[tool] for t in samples if tool in t]
            row.update(
                call=used[tool],
                rounds=len(secs),
                median_ratio_to_plain=_median_ratio(samples, tool, "plain"),
                median_ratio_to_torchinfo=_median_ratio(samples, tool, "torchinfo"),
                median_ms=round(statistics.median(secs) * 1e3, 2),
                min_ms=round(min(secs) * 1e3, 2),
                first_call_s=first_call_s.get(tool),
            )
            if tool in memory:
                row.update(memory[tool])
        if tool in errors:
            row["errors"] = errors[tool]
        tools[tool] = row
    result = {
        "input": spec.input_desc,
        "meta": spec.meta,
        "modules": sum(1 for _ in model.modules()),
        "params": sum(p.numel() for p in model.parameters()),
        "rounds": rounds,
        "slow_rounds": slow_rounds,
        "build_s": round(build_s, 2),
        "steal_pct": steal_pct,
        "tools": tools,
    }
    _store("models", spec.name, result)

    print(
        f"\n[tools] {spec.name} ({result['modules']} modules, {spec.input_desc}; "
        f"{rounds} rounds, steal {steal_pct}%)"
    )
    print(f"  {'tool':<10} {'x plain':>8} {'x tinfo':>8} {'med ms':>9} {'extra MB':>9}  error")
    for tool, row in tools.items():
        msg = "; ".join(f"{e['type']}: {e['message'][:70]}" for e in row.get("errors", []))
        if "median_ratio_to_plain" in row:
            extra = row.get("extra_peak_mb")
            print(
                f"  {tool:<10} {_fmt(row['median_ratio_to_plain']):>8} "
                f"{_fmt(row['median_ratio_to_torchinfo']):>8} {row['median_ms']:9.1f} "
                f"{_fmt(extra, ''):>9}  {msg}"
            )
        else:
            print(f"  {tool:<10} {'-':>8} {'-':>8} {'-':>9} {'-':>9}  {msg}")

    assert "inspectnn" in runners, errors.get("inspectnn")
    assert all(t["plain"] > 0 for t in per_round)
    assert all(row.get("rounds", 1) > 0 for row in tools.values())
    assert tools["inspectnn"]["median_ratio_to_plain"] is not None


def _chain(n_blocks: int) -> nn.Sequential:
    """``n_blocks`` blocks of ``Sequential(Linear(8, 8), ReLU(), Identity())``: 4n+1 modules."""
    return nn.Sequential(
        *(nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Identity()) for _ in range(n_blocks))
    )


SCALING_BLOCKS = (625, 1250, 2500)  # 2,501 / 5,001 / 10,001 modules


def test_scaling_module_count() -> None:
    """``inspect`` time per module at 2.5k / 5k / 10k modules (median of 3, paired with plain)."""
    rows: list[dict[str, Any]] = []
    x = torch.randn(4, 8)
    reps = _round_count(3)
    for n_blocks in SCALING_BLOCKS:
        torch.manual_seed(0)
        model = _chain(n_blocks).eval()
        n_modules = sum(1 for _ in model.modules())

        def plain(model: nn.Module = model) -> Any:
            with torch.no_grad():
                return model(x)

        plain()
        report = inn.inspect(model, x)  # warm-up
        n_layers = len(report.layers)
        del report
        t_plain: list[float] = []
        t_inspect: list[float] = []
        for r in range(reps):
            pair = [("plain", plain), ("inspect", lambda model=model: inn.inspect(model, x))]
            for name, fn in pair if r % 2 == 0 else pair[::-1]:
                start = time.perf_counter()
                fn()
                (t_plain if name == "plain" else t_inspect).append(time.perf_counter() - start)
        med_i, med_p = statistics.median(t_inspect), statistics.median(t_plain)
        rows.append(
            {
                "blocks": n_blocks,
                "modules": n_modules,
                "report_layers": n_layers,
                "reps": reps,
                "inspect_median_s": round(med_i, 4),
                "plain_median_s": round(med_p, 4),
                "inspect_us_per_module": round(med_i / n_modules * 1e6, 2),
                "overhead_us_per_module": round((med_i - med_p) / n_modules * 1e6, 2),
            }
        )
        del model
        gc.collect()
    base, top = rows[0], rows[-1]
    summary = {
        "model": "Sequential of n x Sequential(Linear(8, 8), ReLU(), Identity()), input 4x8",
        "sizes": rows,
        "per_module_ratio_largest_to_smallest": round(
            top["inspect_us_per_module"] / base["inspect_us_per_module"], 3
        ),
    }
    _store("scaling", "module_count", summary)
    print(f"\n[scaling] inspect time vs module count (median of {reps}):")
    for row in rows:
        print(
            f"  {row['modules']:>6} modules: inspect {row['inspect_median_s'] * 1e3:8.1f} ms, "
            f"{row['inspect_us_per_module']:6.1f} us/module (plain "
            f"{row['plain_median_s'] * 1e3:.1f} ms)"
        )
    print(
        f"  per-module time, {top['modules']} vs {base['modules']} modules: "
        f"{summary['per_module_ratio_largest_to_smallest']}x"
    )
    assert top["modules"] >= 10_000
    assert top["inspect_us_per_module"] > 0
