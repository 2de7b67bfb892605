"""The picture of one training step's memory: live bytes over the step, by category.

``plot_memory(report.memory, "step.png")`` draws a stacked area of the bytes live
in each category (parameters at the bottom, temporaries on top, in ``CATEGORIES``
order with fixed colours) at each moment of the step, on shaded bands for the
forward, the loss, the backward and the optimizer step, with the peak marked by
its size, phase and module.

Why matplotlib and not Graphviz, which inspectnn already uses for diagrams:
Graphviz lays out nodes and edges, a graph; this picture is a quantity over time
(an area chart with an axis in bytes, bands and an annotation), which Graphviz
has no primitives for. matplotlib draws it directly, writes PNG, SVG and PDF
with no program outside Python, and is installed wherever notebooks are. It is
an optional extra (``pip install "torch-inspectnn[plot]"``), imported only when a
plot is asked for, so the rest of inspectnn never needs it. The figure is drawn
on a ``matplotlib.figure.Figure`` with the Agg canvas, never through ``pyplot``:
the user's backend, current figure and open figures are left as they were.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

from inspectnn.errors import DependencyError, InvalidInputError
from inspectnn.renderers.columns import format_size
from inspectnn.training.records import CATEGORIES, PHASES, MemoryPoint, MemoryReport

__all__ = ["COLOURS", "FORMATS", "plot_memory"]

COLOURS: dict[str, str] = {
    "parameters": "#4c72b0",
    "buffers": "#8172b3",
    "inputs": "#937860",
    "gradients": "#dd8452",
    "optimizer_state": "#c44e52",
    "activations": "#55a868",
    "temporary": "#a0a0a0",
}
"""Each category's colour, the same in every picture."""

FORMATS = (".png", ".svg", ".pdf")
"""The file endings ``plot_memory`` writes."""

_BANDS: dict[str, str] = {"forward": "#eef3fb", "loss": "#fbf3e6", "backward": "#f7ecec",
                          "optimizer": "#eef6ee"}  # fmt: skip
_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")
_SIZE = (10.0, 5.6)  # inches, at 100 dpi: 1000 x 560 pixels
_DPI = 100
_NARROW = 0.06  # a phase band narrower than this share of the step is labelled sideways
_EDGE = 0.015  # and its name no nearer the frame than this share of the step
_NOTE = 40  # the peak's module path, cut at its start to this many characters


def _matplotlib() -> tuple[Any, Any]:
    """matplotlib's ``Figure`` and Agg ``FigureCanvasAgg``, or a DependencyError saying how."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise DependencyError(
            'plot_memory needs matplotlib, an optional extra: pip install "torch-inspectnn[plot]" '
            "(or pip install matplotlib)."
        ) from err
    return Figure, FigureCanvasAgg


def _unit(peak: int) -> tuple[str, float]:
    """The unit (powers of 1024) the y axis is labelled in, and its size in bytes."""
    power = 0
    while power < len(_UNITS) - 1 and peak >= 1024 ** (power + 1):
        power += 1
    return _UNITS[power], float(1024**power)


def _points(memory: MemoryReport) -> tuple[MemoryPoint, ...]:
    """The timeline, or the peak alone for a report with none."""
    if memory.timeline:
        return memory.timeline
    return (MemoryPoint(memory.peak_phase, memory.peak_module, memory.at_peak),)


def _phase_runs(points: Sequence[MemoryPoint]) -> list[tuple[str, int, int]]:
    """Consecutive points of one phase: ``[(phase, first, end), ...]``."""
    runs: list[tuple[str, int, int]] = []
    for i, point in enumerate(points):
        if runs and runs[-1][0] == point.phase:
            runs[-1] = (point.phase, runs[-1][1], i + 1)
        else:
            runs.append((point.phase, i, i + 1))
    return runs


def _title(memory: MemoryReport) -> str:
    parts = [memory.device, memory.optimizer or "no optimizer step"]
    if memory.amp:
        parts.append(f"autocast {memory.amp}")
    return f"Memory of one training step ({', '.join(parts)})"


def _draw(fig: Any, memory: MemoryReport, title: str) -> None:
    """Stacked areas, phase bands, the peak and the legend on ``fig``."""
    points = _points(memory)
    most = max(memory.peak, *(p.total for p in points))
    unit, scale = _unit(most)
    x = list(range(len(points) + 1))  # point i is live over [i, i + 1)
    ys = [[p.live[c] / scale for p in points] for c in range(len(CATEGORIES))]
    ys = [y + y[-1:] for y in ys]
    ax = fig.add_subplot()
    areas = ax.stackplot(x, ys, colors=[COLOURS[c] for c in CATEGORIES], step="post",
                         linewidth=0)  # fmt: skip
    top = most / scale or 1.0
    ax.set_xlim(0, len(points))
    ax.set_ylim(0, top * 1.3)
    shown = _phase_bands(ax, points, top)
    _mark_peak(ax, memory, points, scale)
    ax.set_xticks([])
    ax.set_xlabel("step progress: " + " → ".join(shown))
    ax.set_ylabel(f"live memory ({unit})")
    ax.set_title(title, fontsize=11)
    ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    labels = [f"{c.replace('_', ' ')} ({format_size(h)})"
              for c, h in zip(CATEGORIES, memory.held, strict=True)]  # fmt: skip
    ax.legend(areas[::-1], labels[::-1], loc="upper left", bbox_to_anchor=(1.01, 1.0),
              fontsize=8, frameon=False, title="held", title_fontsize=8)  # fmt: skip


def _phase_bands(ax: Any, points: Sequence[MemoryPoint], top: float) -> list[str]:
    """A shaded band under each run of one phase, named at its top; the phases shown."""
    runs = _phase_runs(points)
    for phase, first, end in runs:
        ax.axvspan(first, end, color=_BANDS[phase], zorder=0, linewidth=0)
        narrow = end - first < _NARROW * len(points)  # a few moments: the name on its side
        edge = _EDGE * len(points)  # a sideways name kept off the frame
        middle = min(max((first + end) / 2, edge), len(points) - edge)
        ax.text(middle, top * 1.27, phase, ha="center", va="top", fontsize=9,
                color="#444444", rotation=90 if narrow else 0)  # fmt: skip
    return [p for p in PHASES if any(run[0] == p for run in runs)]


def _mark_peak(
    ax: Any, memory: MemoryReport, points: Sequence[MemoryPoint], scale: float
) -> None:
    """A dashed line at the peak and a note: its size, phase and module."""
    at = max(range(len(points)), key=lambda i: points[i].total)
    y = memory.peak / scale
    ax.axhline(y, color="#333333", linewidth=0.8, linestyle="--")
    module = memory.peak_module
    module = module if len(module) <= _NOTE else "…" + module[1 - _NOTE :]
    where = f" in {module}" if module else ""
    note = f"peak {format_size(memory.peak)}\n{memory.peak_phase}{where}"
    left = at + 0.5 > len(points) / 2
    ax.annotate(note, xy=(at + 0.5, y), xytext=(-12 if left else 12, 14),
                textcoords="offset points", ha="right" if left else "left", va="bottom",
                fontsize=9, arrowprops={"arrowstyle": "->", "color": "#333333"},
                bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": "#999999"})  # fmt: skip


def plot_memory(
    memory: MemoryReport, path: str | PathLike[str], *, title: str | None = None
) -> Path:
    """Draw ``memory`` as live bytes by category over the step and write it to ``path``.

    Args:
        memory: ``report.memory`` of ``inspect(..., backward=True)``.
        path: The file to write, ending ``.png`` (or ``.svg``, ``.pdf``).
        title: The picture's title; by default the device, the optimizer and autocast.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        InvalidInputError: ``memory`` is no MemoryReport or ``path`` ends otherwise.
        DependencyError: matplotlib is not installed (``pip install "torch-inspectnn[plot]"``).
    """
    if not isinstance(memory, MemoryReport):
        raise InvalidInputError(
            f"plot_memory takes a MemoryReport (report.memory of "
            f"inspect(..., backward=True)), not {type(memory).__name__}."
        )
    out = Path(path)
    if out.suffix.lower() not in FORMATS:
        raise InvalidInputError(
            f"cannot tell the format of {str(path)!r}: end the name with one of "
            f"{', '.join(FORMATS)}."
        )
    figure, canvas = _matplotlib()
    fig = figure(figsize=_SIZE, dpi=_DPI, layout="constrained")
    canvas(fig)
    _draw(fig, memory, _title(memory) if title is None else title)
    fig.savefig(out, format=out.suffix.lower()[1:], dpi=_DPI, metadata=_metadata(out))
    return out


def _metadata(out: Path) -> dict[str, Any]:
    """No creation date or version in the file, so one report gives the same file."""
    suffix = out.suffix.lower()
    if suffix == ".png":
        return {"Software": None}
    if suffix == ".svg":
        return {"Date": None, "Creator": None}
    return {"CreationDate": None, "Creator": None, "Producer": None}
