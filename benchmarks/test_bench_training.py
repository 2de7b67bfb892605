"""Training-step benchmarks: ``training.step.measure_step`` against a plain step.

* ``test_llama70b_step_time`` (benchmark): one ``measure_step`` with AdamW of a
  LLaMA-70B-shaped Hugging Face config (hidden 8192, MLP 28672, 80 layers, 64
  heads, 8 KV heads, built on meta), batch 8 x 4096 tokens, in full precision (a
  ready 4-D mask: meta tensors have no values for the mask building to read) and
  with ``amp="bf16"`` (fake CPU tensors, where autocast applies). The issue asks
  for under 30 s.
* ``test_llama70b_extra_rss``: an ordinary test, the extra peak RSS of that call
  over the RSS before it (``/proc/self/clear_refs``, ``VmHWM``); the issue asks for
  under 200 MB. Written to ``benchmarks/results/training.json``.
* ``test_step_time`` (benchmark, group per model): a plain
  forward + ``backward()`` + ``AdamW.step()`` against ``measure_step`` of the same
  step on the real CPU (GPT-2 small at 1 x 128, a ResNet-50 at 8 x 3 x 224 x 224).

Nothing here asserts a timing: the machine is shared and noisy. Run::

    python -m pytest benchmarks/test_bench_training.py -q -p no:cacheprovider -s \
        --benchmark-json=benchmarks/results/training-bench.json
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from procstat import can_reset_peak, status_kb
from torch import nn

from inspectnn.training.standalone import measure_step

try:  # rootdir on sys.path, tests/ a (namespace) package
    from tests import models as zoo
except ImportError:  # tests/ itself on sys.path (benchmarks/conftest.py puts it there)
    import models as zoo  # type: ignore[no-redef]

RESULTS = Path(__file__).resolve().parent / "results"
MB = 1024.0  # kB per MB
BATCH, TOKENS = 8, 4096


def _llama70b() -> nn.Module:
    config = transformers.LlamaConfig(
        hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
        num_attention_heads=64, num_key_value_heads=8, attn_implementation="eager",
    )  # fmt: skip
    with torch.device("meta"):
        return transformers.LlamaForCausalLM(config)


@pytest.fixture(scope="module")
def llama70b() -> nn.Module:
    return _llama70b()


def _step70b(model: nn.Module, amp: str | None) -> Callable[[], Any]:
    ids = torch.zeros(BATCH, TOKENS, dtype=torch.long, device="meta")
    kwargs: dict[str, Any] = {"use_cache": False}
    if amp is None:
        kwargs["attention_mask"] = torch.zeros(BATCH, 1, TOKENS, TOKENS, device="meta")
    return lambda: measure_step(model, (ids,), kwargs, optimizer="adamw", amp=amp)


def _figures(report: Any) -> dict[str, Any]:
    gib = 2.0**30
    return {
        "peak_gib": round(report.peak / gib, 1),
        "peak_phase": report.peak_phase,
        "peak_module": report.peak_module,
        "held_gib": {k: round(v / gib, 1) for k, v in report.to_dict()["held"].items()},
    }


@pytest.mark.parametrize("amp", [None, "bf16"])
def test_llama70b_step_time(benchmark: Any, llama70b: nn.Module, amp: str | None) -> None:
    benchmark.group = "llama70b-meta-adamw-step"
    run = _step70b(llama70b, amp)
    report, _ = benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    benchmark.extra_info.update(amp=amp, batch=BATCH, tokens=TOKENS, **_figures(report))
    print(f"\n[training] LLaMA-70B shape, meta, AdamW, amp={amp}: {_figures(report)}")


def test_llama70b_extra_rss() -> None:
    if not can_reset_peak():
        pytest.fail("this test needs /proc/self/clear_refs (Linux) to reset the peak RSS")
    rows: dict[str, Any] = {}
    for amp in (None, "bf16"):
        model = _llama70b()
        run = _step70b(model, amp)
        gc.collect()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = status_kb("VmRSS")
        start = time.perf_counter()
        report, _ = run()
        seconds = time.perf_counter() - start
        extra = (status_kb("VmHWM") - before) / MB
        rows[f"amp={amp}"] = {"seconds": round(seconds, 1), "extra_peak_rss_mb": round(extra, 1),
                              **_figures(report)}  # fmt: skip
        print(f"\n[training] LLaMA-70B shape, meta, AdamW, amp={amp}: {seconds:.1f} s, "
              f"extra peak RSS {extra:+.1f} MB")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "training.json").write_text(json.dumps(rows, indent=2) + "\n")
    assert all(row["extra_peak_rss_mb"] < 200 for row in rows.values()), rows


def _gpt2() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return zoo.GPT2Like(), torch.randint(0, 50257, (1, 128))


def _resnet50() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return zoo.ResNet50Like(), torch.randn(8, 3, 224, 224)


def _plain_step(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        opt = torch.optim.AdamW(model.parameters())
        out = model(x)
        out.float().sum().backward()
        opt.step()
        model.zero_grad(set_to_none=True)

    return step


@pytest.mark.parametrize("tool", ["plain", "measure_step"])
@pytest.mark.parametrize("make", [_gpt2, _resnet50], ids=["GPT2Like", "ResNet50Like"])
def test_step_time(benchmark: Any, make: Callable[[], tuple[nn.Module, torch.Tensor]],
                   tool: str) -> None:  # fmt: skip
    model, x = make()
    benchmark.group = f"training-step-{type(model).__name__}"
    benchmark.extra_info.update(tool=tool, input_shape=list(x.shape))
    if tool == "plain":
        fn: Callable[[], Any] = _plain_step(model, x)
    else:
        fn = lambda: measure_step(model, x, optimizer="adamw")  # noqa: E731
    benchmark.pedantic(fn, rounds=3, iterations=1, warmup_rounds=1)
