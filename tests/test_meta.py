"""The meta device: any model size, no memory, same shapes as a real forward."""

from __future__ import annotations

import os

import models as zoo
import torch

import inspectnn as inn


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/self/status")


def test_meta_shapes_equal_cpu_shapes() -> None:
    model, x = zoo.SimpleCNN(), torch.randn(4, 1, 28, 28)
    cpu = inn.inspect(model, x)
    meta = inn.inspect(model, x, device="meta")
    assert [(r.name, [m.shape for m in r.outputs]) for r in meta.layers] == [
        (r.name, [m.shape for m in r.outputs]) for r in cpu.layers
    ]
    assert {m.device for r in meta.layers for m in r.outputs} == {"meta"}
    assert meta.totals.params == cpu.totals.params
    assert meta.totals.flops == cpu.totals.flops
    assert next(model.parameters()).device.type == "cpu"


def test_device_cpu_and_torch_device_accepted() -> None:
    model, x = zoo.MyModel(), torch.randn(5, 2)
    assert inn.inspect(model, x, device="cpu").device == "cpu"
    assert inn.inspect(model, x, device=torch.device("cpu")).device == "cpu"


def test_llama_7b_on_meta_with_little_memory() -> None:
    with torch.device("meta"):
        model = zoo.LlamaLike()
    ids = torch.randint(0, 32000, (1, 16), device="meta")
    with open("/proc/self/clear_refs", "w") as f:  # reset the peak-RSS mark (Linux)
        f.write("5")
    base = _rss_kib("VmRSS")
    report = inn.inspect(model, ids, device="meta")
    extra_mib = (_rss_kib("VmHWM") - base) / 1024
    assert report.totals.params == 6_738_415_616
    assert report.outputs[0].shape == (1, 16, 32000)
    assert len([r for r in report.layers if r.type == "LlamaDecoderLayer"]) == 32
    assert report.totals.flops > 2 * 6_000_000_000 * 16  # ~2 FLOPs per parameter per token
    assert extra_mib < 50, f"inspect on meta raised peak RSS by {extra_mib:.1f} MiB"
    print(f"7B meta inspect: extra peak RSS {extra_mib:.1f} MiB (pid {os.getpid()})")


def test_llama_7b_on_meta_from_input_size() -> None:
    with torch.device("meta"):
        model = zoo.LlamaLike(n_layers=2)
    report = inn.inspect(model, input_size=(1, 8), dtypes="long", device="meta")
    assert report.outputs[0].shape == (1, 8, 32000)
