"""The training step's memory as text (``renderers/memory.py``) and as a picture
(``renderers/memory_plot.py``), from hand-made ``MemoryReport`` records."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from inspectnn.errors import DependencyError, InvalidInputError
from inspectnn.renderers.memory import render_memory
from inspectnn.renderers.memory_plot import COLOURS, plot_memory
from inspectnn.training.records import (
    CATEGORIES,
    MemoryPoint,
    MemoryReport,
    ModuleMemory,
    Phase,
)

ROOT = Path(__file__).resolve().parent.parent
KB = 1024
MB = 1024 * KB
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _point(phase: Phase, module: str, *, grads: int = 0, state: int = 0, saved: int = 0,
           temp: int = 0) -> MemoryPoint:  # fmt: skip
    """A moment of the step: 4 MB of parameters, 1 KB of buffers, 256 KB of input."""
    return MemoryPoint(phase, module, (4 * MB, KB, 256 * KB, grads, state, saved, temp))


SAVED = 2560 * KB  # what one block saves for backward: 512 KB its own, 2 MB its attention
HEAD = MB  # what the head saves


def _timeline(optimizer: bool, blocks: int = 2) -> tuple[MemoryPoint, ...]:
    """Forward saving 2.5 MB per block and 1 MB in the head, the loss, backward freeing
    them as gradients (2 MB per block) appear, then the optimizer's two moments."""
    points = [_point("forward", f"blocks.{i}", saved=SAVED * (i + 1), temp=MB)
              for i in range(blocks)]  # fmt: skip
    points.append(_point("forward", "head", saved=SAVED * blocks + HEAD, temp=MB))
    points.append(_point("loss", "", saved=SAVED * blocks + HEAD, temp=512 * KB))
    points.append(_point("backward", "head", saved=SAVED * blocks, temp=2 * MB))
    for i in reversed(range(blocks)):
        done = blocks - i
        points.append(_point("backward", f"blocks.{i}.attn", grads=2 * MB * done,
                             saved=SAVED * i, temp=3 * MB))  # fmt: skip
    if optimizer:
        points.append(_point("optimizer", "", grads=2 * MB * blocks, state=8 * MB,
                             temp=256 * KB))  # fmt: skip
    return tuple(points)


def _modules(optimizer: bool, blocks: int = 2) -> tuple[ModuleMemory, ...]:
    """The model; per block a Block holding 1 MB of parameters and an Attention inside
    it with 1 MB more (AdamW: twice that in state); a head without parameters."""
    state = 2 * MB if optimizer else 0
    out = [ModuleMemory("", "Net", 0, 0, 0, 0, SAVED * blocks + HEAD, 0)]
    for i in range(blocks):
        out.append(ModuleMemory(f"blocks.{i}", "Block", MB, MB, state, 512 * KB, SAVED,
                                2 * MB))  # fmt: skip
        out.append(ModuleMemory(f"blocks.{i}.attn", "Attention", MB, MB, state, 2 * MB,
                                2 * MB, 1536 * KB))  # fmt: skip
    out.append(ModuleMemory("head", "LogSoftmax", 0, 0, 0, HEAD, HEAD, 768 * KB))
    return tuple(out)


def _memory(
    *,
    optimizer: str | None = "AdamW",
    amp: str | None = None,
    timeline: tuple[MemoryPoint, ...] | None = None,
    modules: tuple[ModuleMemory, ...] | None = None,
) -> MemoryReport:
    """A step with ``held`` and the peak read off ``timeline`` (the first largest moment)."""
    points = _timeline(optimizer is not None) if timeline is None else timeline
    peak = max(points, key=lambda p: p.total)
    held = tuple(max(p.live[c] for p in points) for c in range(len(CATEGORIES)))
    return MemoryReport(
        device="cpu", optimizer=optimizer, amp=amp, held=held, peak=peak.total,
        peak_phase=peak.phase, peak_module=peak.module, at_peak=peak.live,
        timeline=points, modules=_modules(optimizer is not None) if modules is None else modules,
    )  # fmt: skip


EXPECTED = """\
One training step on cpu with AdamW: peak 16.5 MB during the optimizer step
Most live by phase: forward 11.3 MB · loss 10.8 MB · backward 11.8 MB · optimizer 16.5 MB

Category             Held   Share   At peak   Share
───────────────────────────────────────────────────
parameters         4.0 MB   15.8%    4.0 MB   24.2%
buffers            1.0 KB    0.0%    1.0 KB    0.0%
inputs           256.0 KB    1.0%  256.0 KB    1.5%
gradients          4.0 MB   15.8%    4.0 MB   24.2%
optimizer state    8.0 MB   31.7%    8.0 MB   48.5%
activations        6.0 MB   23.8%       0 B    0.0%
temporary          3.0 MB   11.9%  256.0 KB    1.5%
───────────────────────────────────────────────────
total             25.3 MB  100.0%   16.5 MB  100.0%
Held: gradients after backward, optimizer state after the step, activations at the end of the
  forward, temporary at its most.

Modules saving most for backward (5 of 5; xN: N modules alike, figures for each)
Module (type)                     Params   Grads  Optimizer  Act. own  Act. total  Ckpt saves
─────────────────────────────────────────────────────────────────────────────────────────────
blocks.[0-1] (Block) x2           1.0 MB  1.0 MB     2.0 MB  512.0 KB      2.5 MB      2.0 MB
blocks.[0-1].attn (Attention) x2  1.0 MB  1.0 MB     2.0 MB    2.0 MB      2.0 MB      1.5 MB
head (LogSoftmax)                    0 B     0 B        0 B    1.0 MB      1.0 MB    768.0 KB
─────────────────────────────────────────────────────────────────────────────────────────────

Hotspots (checkpointing would free): blocks.[0-1] 2.0 MB each · blocks.[0-1].attn 1.5 MB each
  head 768.0 KB
"""


# --- text ----------------------------------------------------------------------------------


def test_the_text_is_exactly_the_step_at_its_fixed_width() -> None:
    memory = _memory()
    text = render_memory(memory)
    assert text + "\n" == EXPECTED
    assert render_memory(memory) == text  # the same report, the same text
    assert max(len(line) for line in text.splitlines()) <= 100
    # the totals shown (25.3 MB held, 16.5 MB at the peak) are the hand-made ones
    assert sum(memory.held) == (4 + 4 + 8 + 6 + 3) * MB + KB + 256 * KB
    assert memory.held[CATEGORIES.index("activations")] == sum(
        m.activations for m in memory.modules)  # 2 x (512 KB + 2 MB) + 1 MB, saved once
    assert memory.peak == (4 + 4 + 8) * MB + KB + 2 * 256 * KB


def test_no_optimizer_says_so_and_holds_no_state() -> None:
    text = render_memory(_memory(optimizer=None))
    first, phases = text.splitlines()[:2]
    assert first == ("One forward and backward on cpu (no optimizer step): "
                     "peak 11.8 MB during backward (in blocks.1.attn)")  # fmt: skip
    assert phases == "Most live by phase: forward 11.3 MB · loss 10.8 MB · backward 11.8 MB"
    assert "optimizer state       0 B    0.0%       0 B    0.0%" in text
    row = "blocks.[0-1] (Block) x2           1.0 MB  1.0 MB        0 B  512.0 KB      2.5 MB"
    assert row in text


def test_autocast_is_in_the_headline() -> None:
    first = render_memory(_memory(amp="bfloat16")).splitlines()[0]
    assert first.startswith("One training step on cpu with AdamW, autocast bfloat16: peak")


def test_a_step_of_nothing_has_no_shares_and_no_hotspots() -> None:
    zero = MemoryPoint("forward", "", (0,) * len(CATEGORIES))
    only = ModuleMemory("", "Identity", 0, 0, 0, 0, 0, 0)
    text = render_memory(_memory(optimizer=None, timeline=(zero,), modules=(only,)))
    assert text.splitlines()[:2] == [
        "One forward and backward on cpu (no optimizer step): peak 0 B during forward",
        "Most live by phase: forward 0 B",
    ]
    assert "total             0 B      -      0 B      -" in text
    assert "Identity          0 B    0 B        0 B       0 B         0 B         0 B" in text
    assert "Hotspots" not in text


def test_one_module_and_one_moment() -> None:
    point = MemoryPoint("forward", "", (400, 0, 64, 0, 0, 128, 32))
    only = ModuleMemory("", "Linear", 400, 0, 0, 128, 128, 64)
    text = render_memory(_memory(optimizer=None, timeline=(point,), modules=(only,)))
    lines = text.splitlines()
    assert lines[0] == ("One forward and backward on cpu (no optimizer step): "
                        "peak 624 B during forward")  # 400 + 64 + 128 + 32
    assert "activations      128 B   20.5%    128 B   20.5%" in lines  # 128 of 624
    assert "Modules saving most for backward (1 of 1)" in lines
    row = next(line for line in lines if line.startswith("Linear"))
    assert row.split() == ["Linear", "400", "B", "0", "B", "0", "B", "128", "B", "128", "B", "64",
                           "B"]  # fmt: skip
    assert "Hotspots" not in text  # the model itself is no place to checkpoint


def test_long_module_names_are_cut_at_their_start_to_the_width() -> None:
    long = "encoder.layers.11.self_attention.query_key_value.lora_adapters.default"
    for kind, start in (("LoRALinear", "…fault (LoRALinear)"),
                        ("LoRALinearWithAVeryLongClassName", "…VeryLongClassName)")):  # fmt: skip
        modules = (ModuleMemory("", "Net", 0, 0, 0, 0, 6 * MB, 0),
                   ModuleMemory(long, kind, MB, MB, 0, 5 * MB, 5 * MB, 4 * MB))  # fmt: skip
        lines = render_memory(_memory(modules=modules), max_width=80).splitlines()
        assert max(len(line) for line in lines) <= 80
        row = next(line for line in lines if line.startswith("…"))
        assert row == f"{start}  1.0 MB  1.0 MB        0 B    5.0 MB      5.0 MB      4.0 MB"
        assert lines[-2:] == ["Hotspots (checkpointing would free):", f"  {long} 4.0 MB"]


def test_top_limits_the_rows_and_zero_shows_none() -> None:
    text = render_memory(_memory(), top=1)
    title = "Modules saving most for backward (2 of 5; xN: N modules alike, figures for each)"
    assert title in text
    assert "blocks.[0-1] (Block) x2" in text and "Attention" not in text
    assert "Module (type)" not in render_memory(_memory(), top=0)


def test_modules_alike_are_one_row_and_the_whole_model_is_no_hotspot() -> None:
    def block(name: str, saved: int = 3 * MB) -> ModuleMemory:
        return ModuleMemory(name, "Block", MB, MB, 0, 0, saved, saved - MB)

    modules = (ModuleMemory("", "Net", 0, 0, 0, 0, 40 * MB, 0),
               ModuleMemory("body", "Stack", 0, 0, 0, 0, 40 * MB, 39 * MB),
               *(block(f"body.{i}", 4 * MB if i == 3 else 3 * MB) for i in range(6)),
               *(block(f"body.{i}.experts.{j}", MB) for i in range(2) for j in range(4)),
               block("other.0"))  # fmt: skip
    text = render_memory(_memory(modules=modules))
    names = [line.split(" (")[0] for line in text.splitlines() if "(Block)" in line]
    assert names == ["body.3", "body.[0-2,4-5]", "other.0", "body.[0-1].experts.[0-3]"]
    assert "body.[0-2,4-5] (Block) x5" in text and "(Stack)" in text
    assert text.endswith("Hotspots (checkpointing would free): body.3 3.0 MB · body.[0-2,4-5] "
                         "2.0 MB each · other.0 2.0 MB")  # not body, which holds it all


def test_fixed_units_and_ascii() -> None:
    text = render_memory(_memory(), units="KB", ascii=True)
    assert text.isascii()
    assert "parameters        4,096.0 KB   15.8%   4,096.0 KB   24.2%" in text
    assert "-" * 20 in text and "|" in text.splitlines()[1]
    assert "buffers               1,024 B    0.0%" in render_memory(_memory(), units="B")


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"top": -1}, "top is how many modules"),
    ({"top": 2.5}, "top is how many modules"),
    ({"units": "GiB"}, "units is one of auto, B, KB, MB, GB, TB"),
    ({"max_width": 10}, "max_width is the text's width"),
])  # fmt: skip
def test_bad_arguments_say_what_to_pass(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(InvalidInputError, match=words):
        render_memory(_memory(), **kwargs)  # type: ignore[arg-type]


def test_a_report_that_is_no_memory_report_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="takes a MemoryReport"):
        render_memory({"peak": 1})  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="takes a MemoryReport"):
        plot_memory({"peak": 1}, "x.png")  # type: ignore[arg-type]


# --- picture -------------------------------------------------------------------------------


def _pixels(path: Path) -> Any:
    """The picture read back as an RGBA array (height, width, 4), values in 0..1."""
    from matplotlib.image import imread

    return imread(path)


def _share_of(pixels: Any, colour: str) -> float:
    """The share of the picture's pixels that are ``colour`` (``"#4c72b0"``)."""
    import numpy as np

    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)]) / 255
    return float((np.abs(pixels[..., :3] - rgb).max(axis=-1) < 2 / 255).mean())


def test_the_picture_is_a_png_of_the_step(tmp_path: Path) -> None:
    memory = _memory()
    out = plot_memory(memory, tmp_path / "step.png")
    assert out == tmp_path / "step.png"
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    pixels = _pixels(out)
    assert pixels.shape == (560, 1000, 4)
    # the stacked areas are there, each in its colour: the parameters lie under the whole
    # step, the optimizer state only in its last moment
    assert _share_of(pixels, COLOURS["parameters"]) > 0.05
    assert 0.002 < _share_of(pixels, COLOURS["optimizer_state"]) < _share_of(
        pixels, COLOURS["parameters"])
    again = _pixels(plot_memory(memory, tmp_path / "again.png"))
    assert abs(pixels - again).mean() < 1e-3  # the same report draws the same picture


@pytest.mark.parametrize("memory", [
    _memory(optimizer=None),
    _memory(timeline=(MemoryPoint("forward", "", (400, 0, 64, 0, 0, 128, 32)),)),
    _memory(timeline=(MemoryPoint("forward", "", (0,) * len(CATEGORIES)),)),
    _memory(amp="bfloat16", timeline=_timeline(True, blocks=400)),
    _memory(timeline=(MemoryPoint("backward", "encoder." * 30 + "attn", (1,) * 7),)),
], ids=["no-optimizer", "one-moment", "nothing", "many-moments", "long-name"])  # fmt: skip
def test_every_step_draws(memory: MemoryReport, tmp_path: Path) -> None:
    out = plot_memory(memory, str(tmp_path / "step.png"), title="A step")
    assert _pixels(out).shape == (560, 1000, 4)
    largest = CATEGORIES[memory.at_peak.index(max(memory.at_peak))]
    assert _share_of(_pixels(out), COLOURS[largest]) > (0.05 if memory.peak else 0.0)


def test_svg_and_pdf_too_and_a_name_without_a_format_is_refused(tmp_path: Path) -> None:
    assert plot_memory(_memory(), tmp_path / "step.svg").read_text().lstrip().startswith("<?xml")
    assert plot_memory(_memory(), tmp_path / "step.pdf").read_bytes()[:5] == b"%PDF-"
    with pytest.raises(InvalidInputError, match=r"end the name with one of \.png, \.svg, \.pdf"):
        plot_memory(_memory(), tmp_path / "step.txt")
    assert not (tmp_path / "step.txt").exists()


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``code`` run by a fresh interpreter on this checkout."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env}, timeout=300,
    )  # fmt: skip


def test_without_matplotlib_the_error_says_how_to_get_it(tmp_path: Path) -> None:
    done = _python(f"""
        import sys
        sys.modules["matplotlib"] = None  # as if it were not installed
        from inspectnn.errors import DependencyError
        from inspectnn.renderers.memory_plot import plot_memory
        from inspectnn.training.records import MemoryPoint, MemoryReport
        live = (1, 0, 0, 0, 0, 0, 0)
        memory = MemoryReport("cpu", None, None, live, 1, "forward", "", live,
                              (MemoryPoint("forward", "", live),), ())
        try:
            plot_memory(memory, {str(tmp_path / "step.png")!r})
        except DependencyError as err:
            print("DependencyError:", err)
    """)
    assert done.returncode == 0, done.stderr
    assert 'pip install "torch-inspectnn[plot]"' in done.stdout
    assert not (tmp_path / "step.png").exists()
    assert issubclass(DependencyError, RuntimeError)


def test_drawing_leaves_the_users_backend_and_figures_alone(tmp_path: Path) -> None:
    done = _python(f"""
        import matplotlib
        import matplotlib.pyplot as plt
        from inspectnn.renderers.memory_plot import plot_memory
        from inspectnn.training.records import MemoryPoint, MemoryReport
        mine = plt.figure()
        before = (matplotlib.get_backend(), plt.get_fignums(), dict(matplotlib.rcParams))
        live = (1, 0, 0, 0, 0, 0, 0)
        memory = MemoryReport("cpu", None, None, live, 1, "forward", "", live,
                              (MemoryPoint("forward", "", live),), ())
        plot_memory(memory, {str(tmp_path / "step.png")!r})
        after = (matplotlib.get_backend(), plt.get_fignums(), dict(matplotlib.rcParams))
        print(before[0], after[0], before[1], after[1], plt.gcf() is mine, before[2] == after[2])
    """, MPLBACKEND="svg")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["svg", "svg", "[1]", "[1]", "True", "True"]
    assert (tmp_path / "step.png").read_bytes()[:8] == PNG_SIGNATURE
