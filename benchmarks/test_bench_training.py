"""Training-step benchmarks: ``inspect(..., backward=True, optimizer="adamw")`` vs a plain step.

* ``test_paired_step_ratio`` (ordinary test, one per model): the issue's speed check.
  A plain training step (forward, the same loss, ``backward()``, a fresh
  ``AdamW``'s ``step()``, ``zero_grad``), ``inspect(model, x, backward=True,
  optimizer="adamw")`` and a plain forward + ``backward()`` without the optimizer
  step, on the same model and input, run back to back in every round (who goes
  first rotates), each timed in CPU time of the process (all threads) and in wall
  time; the ratios are taken per round. Written to
  ``benchmarks/results/training.json`` (``paired``): the median ratio, the
  smallest, and the ratio of the two minima. The issue asks for at most 1.3x of
  the plain step. inspect runs the optimizer's step on meta shadows of the
  parameters (``training/optim.py``: no arithmetic, no state allocated), so the
  ratio to the plain forward + backward is the one that shows the cost of the
  tracing and of the memory and gradient bookkeeping.
  Models: Hugging Face GPT-2 small (``GPT2LMHeadModel(GPT2Config())``, 1 x 128
  tokens), BERT-base (``BertModel(BertConfig())``, 1 x 128), ViT-base
  (``ViTModel(ViTConfig())``, 1 x 3 x 224 x 224) and ``tests/models.py``'s
  ``ResNet50Like`` (1 x 3 x 224 x 224), all on the CPU, in train mode.
* ``test_step_time`` (benchmark, group per model): the plain step and inspect under
  pytest-benchmark (3 rounds after a warm-up), for its tables and JSON.
* ``test_llama70b_inspect_time`` (benchmark): one ``inspect`` with AdamW of a
  LLaMA-70B-shaped Hugging Face config (hidden 8192, MLP 28672, 80 layers, 64
  heads, 8 KV heads, vocabulary 32000, built under ``torch.device("meta")``),
  ``input_size=(8, 4096)`` long, ``device="meta"``. The issue asks for under 30 s.
* ``test_llama70b_extra_rss`` (ordinary test): the same call in a fresh Python
  process (so nothing this process has loaded or cached counts or hides), twice:
  the first call of the process (it pays inspectnn's lazy imports) and a second.
  For each: wall and CPU seconds, and the extra peak RSS over the RSS just before
  the call (``/proc/self/clear_refs`` resets ``VmHWM``). Written to
  ``training.json`` (``llama70b_meta``); the issue asks for under 200 MB.

Nothing here asserts a timing: the machine is shared and noisy. Run::

    python -m pytest benchmarks/test_bench_training.py -q -p no:cacheprovider -s \
        --benchmark-json=benchmarks/results/training-bench.json
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from procstat import can_reset_peak, status_kb
from torch import nn

import inspectnn as inn
from inspectnn.training.step import compute_loss

try:  # rootdir on sys.path, tests/ a (namespace) package
    from tests import models as zoo
except ImportError:  # tests/ itself on sys.path (benchmarks/conftest.py puts it there)
    import models as zoo  # type: ignore[no-redef]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
MB = 1024.0  # kB per MB (VmHWM / VmRSS are in kB)
GIB = 2.0**30
BATCH, TOKENS = 8, 4096
RSS_BOUND_MB = 200.0  # the bound
PAIRED_ROUNDS = 6


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


def _gpt2() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config())
    return model, torch.randint(0, 50257, (1, 128))


def _bert() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return transformers.BertModel(transformers.BertConfig()), torch.randint(0, 30522, (1, 128))


def _vit() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return transformers.ViTModel(transformers.ViTConfig()), torch.randn(1, 3, 224, 224)


def _resnet50() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return zoo.ResNet50Like(), torch.randn(1, 3, 224, 224)


MODELS: dict[str, Callable[[], tuple[nn.Module, torch.Tensor]]] = {
    "GPT2-small": _gpt2, "BERT-base": _bert, "ViT-base": _vit, "ResNet50Like": _resnet50,
}  # fmt: skip


def llama70b() -> nn.Module:
    """The LLaMA-70B-shaped Hugging Face model, on meta (no memory)."""
    config = transformers.LlamaConfig(
        hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
        num_attention_heads=64, num_key_value_heads=8, vocab_size=32000,
    )  # fmt: skip
    with torch.device("meta"):
        return transformers.LlamaForCausalLM(config)


def inspect70b(model: nn.Module) -> inn.Report:
    """The issue's call: one AdamW step of a batch of 8 x 4096 tokens, on meta."""
    return inn.inspect(model, input_size=(BATCH, TOKENS), dtypes="long", device="meta",
                       backward=True, optimizer="adamw")  # fmt: skip


def _figures(report: inn.Report) -> dict[str, Any]:
    memory = report.memory
    assert memory is not None  # backward=True always gives one
    return {
        "peak_gib": round(memory.peak / GIB, 1),
        "peak_phase": memory.peak_phase,
        "peak_module": memory.peak_module,
        "held_gib": {k: round(v / GIB, 1) for k, v in memory.to_dict()["held"].items()},
        "at_peak_gib": {k: round(v / GIB, 1) for k, v in memory.to_dict()["at_peak"].items()},
    }


# ---------------------------------------------------------------------------
# The two calls compared
# ---------------------------------------------------------------------------


def _plain_step(model: nn.Module, x: torch.Tensor, *, step: bool = True) -> Callable[[], None]:
    """Forward, the loss inspect uses by default (the output's sum), backward, and (with
    ``step``) a fresh AdamW's step; the gradients set to None at the end."""

    def run() -> None:
        opt = torch.optim.AdamW(model.parameters())
        compute_loss(model(x), None, None).backward()  # type: ignore[no-untyped-call]
        if step:
            opt.step()
        opt.zero_grad(set_to_none=True)

    return run


def _inspect_step(model: nn.Module, x: torch.Tensor) -> Callable[[], inn.Report]:
    return lambda: inn.inspect(model, x, backward=True, optimizer="adamw")


def _results(key: str, name: str, row: dict[str, Any]) -> None:
    """Put ``row`` at ``training.json[key][name]``, keeping the rest of the file."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "training.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    data.setdefault(key, {})[name] = row
    path.write_text(json.dumps(data, indent=2) + "\n")


@pytest.mark.parametrize("name", list(MODELS))
def test_paired_step_ratio(name: str) -> None:
    model, x = MODELS[name]()
    model.train()
    calls = {"plain": _plain_step(model, x), "inspect": _inspect_step(model, x),
             "forward_backward": _plain_step(model, x, step=False)}  # fmt: skip
    tools = list(calls)
    for fn in calls.values():
        fn()  # warm-up: lazy imports, the allocator's first growth
    cpu: dict[str, list[float]] = {tool: [] for tool in tools}
    wall: dict[str, list[float]] = {tool: [] for tool in tools}
    for r in range(PAIRED_ROUNDS):
        for tool in tools[r % 3 :] + tools[: r % 3]:  # who goes first rotates
            c0, w0 = time.process_time(), time.perf_counter()
            calls[tool]()
            cpu[tool].append(time.process_time() - c0)
            wall[tool].append(time.perf_counter() - w0)
    assert not any(p.grad is not None for p in model.parameters())  # the plain step cleaned up

    def ratios(times: dict[str, list[float]], base: str) -> dict[str, float]:
        per_round = [i / p for i, p in zip(times["inspect"], times[base], strict=True)]
        return {"median": round(statistics.median(per_round), 3),
                "min": round(min(per_round), 3),
                "of_minima": round(min(times["inspect"]) / min(times[base]), 3)}  # fmt: skip

    row: dict[str, Any] = {
        "input_shape": list(x.shape),
        "rounds": PAIRED_ROUNDS,
        "torch_threads": torch.get_num_threads(),
        "cpu_ratio": ratios(cpu, "plain"),
        "wall_ratio": ratios(wall, "plain"),
        "cpu_ratio_to_forward_backward": ratios(cpu, "forward_backward"),
        "min_cpu_s": {k: round(min(v), 3) for k, v in cpu.items()},
        "min_wall_s": {k: round(min(v), 3) for k, v in wall.items()},
    }
    _results("paired", name, row)
    print(f"\n[training] {name}: inspect/plain step CPU time median {row['cpu_ratio']['median']}x "
          f"(of minima {row['cpu_ratio']['of_minima']}x), wall median "
          f"{row['wall_ratio']['median']}x; inspect/plain forward+backward CPU median "
          f"{row['cpu_ratio_to_forward_backward']['median']}x; minima {row['min_cpu_s']} CPU s")
    assert all(v > 0 for times in (cpu, wall) for vals in times.values() for v in vals)


@pytest.mark.parametrize("tool", ["plain", "inspect"])
@pytest.mark.parametrize("name", list(MODELS))
def test_step_time(benchmark: Any, name: str, tool: str) -> None:
    model, x = MODELS[name]()
    model.train()
    benchmark.group = f"training-step-{name}"
    benchmark.extra_info.update(tool=tool, input_shape=list(x.shape))
    fn = _plain_step(model, x) if tool == "plain" else _inspect_step(model, x)
    benchmark.pedantic(fn, rounds=3, iterations=1, warmup_rounds=1)


# ---------------------------------------------------------------------------
# LLaMA-70B shape on meta
# ---------------------------------------------------------------------------


def test_llama70b_inspect_time(benchmark: Any) -> None:
    model = llama70b()
    benchmark.group = "llama70b-meta-adamw-step"
    report = benchmark.pedantic(lambda: inspect70b(model), rounds=1, iterations=1,
                                warmup_rounds=0)  # fmt: skip
    benchmark.extra_info.update(batch=BATCH, tokens=TOKENS, **_figures(report))
    print(f"\n[training] LLaMA-70B shape, meta, AdamW: {_figures(report)}")


def rss_child() -> dict[str, Any]:
    """In a fresh process: two ``inspect70b`` calls, each with its time and extra peak RSS."""
    model = llama70b()
    rows: dict[str, Any] = {}
    for call in ("first", "second"):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM := VmRSS
        before = status_kb("VmRSS")
        c0, w0 = time.process_time(), time.perf_counter()
        report = inspect70b(model)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        extra = (status_kb("VmHWM") - before) / MB
        rows[call] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                      "extra_peak_rss_mb": round(extra, 1), "rss_before_mb": round(before / MB, 1),
                      **_figures(report)}  # fmt: skip
        del report
    return rows


def test_llama70b_extra_rss() -> None:
    if not can_reset_peak():
        pytest.fail("this test needs /proc/self/clear_refs (Linux) to reset the peak RSS")
    code = "import json, test_bench_training as b; print(json.dumps(b.rss_child()))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)])}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    rows["input"] = f"input_size=({BATCH}, {TOKENS}), dtypes='long', device='meta'"
    _results("llama70b_meta", "adamw", rows)
    for call in ("first", "second"):
        row = rows[call]
        print(f"\n[training] LLaMA-70B shape, meta, AdamW, {call} call of a process: "
              f"{row['wall_s']} s wall, {row['cpu_s']} s CPU, extra peak RSS "
              f"{row['extra_peak_rss_mb']:+.1f} MB; peak {row['peak_gib']} GiB")  # fmt: skip
    assert all(rows[c]["extra_peak_rss_mb"] < RSS_BOUND_MB for c in ("first", "second")), rows


def _tp_plan(layers: int) -> dict[str, Any]:
    """Megatron-style tensor parallelism for a Hugging Face LLaMA: q, k, v, gate and up
    split by output features, o and down by input features."""
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel

    plan: dict[str, Any] = {}
    for i in range(layers):
        at = f"model.layers.{i}."
        for name in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                     "mlp.gate_proj", "mlp.up_proj"):  # fmt: skip
            plan[at + name] = ColwiseParallel()
        for name in ("self_attn.o_proj", "mlp.down_proj"):
            plan[at + name] = RowwiseParallel()
    return plan


def test_llama70b_simulated_rank_of_dp64_tp8() -> None:
    """Rank 5 of a 512-rank job (dp=64 x tp=8), one AdamW step of 1 x 4096 tokens per data-
    parallel rank, simulated in this process on torch's fake process group (issue: < 1 min)."""
    from torch.distributed.tensor.parallel import parallelize_module

    def build(mesh: Any) -> nn.Module:
        model = llama70b()
        return parallelize_module(model, mesh["tp"], _tp_plan(80))

    ids = torch.zeros(1, TOKENS, dtype=torch.long, device="meta")
    c0, w0 = time.process_time(), time.perf_counter()
    report = inn.simulate(build, ids, mesh={"dp": 64, "tp": 8}, rank=5, optimizer="adamw")
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    row = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "params": report.totals.params,
           "local_params": report.totals.local_params, **_figures(report)}  # fmt: skip
    _results("llama70b_simulated", "dp64_tp8_rank5", row)
    print(f"\n[training] LLaMA-70B, rank 5 of dp=64 x tp=8, simulated: {row}")
