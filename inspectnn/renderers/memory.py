"""The plain-text memory report of one training step (``print(report.memory)``).

Pure functions of a :class:`~inspectnn.training.records.MemoryReport`: a headline
with the peak (how much, in which phase, in which module), the most live in each
phase, the bytes of each category held and live at the peak with their shares,
the modules that save most for backward, and the hotspots where activation
checkpointing would free most. Sizes come from ``renderers/columns.py``'s
``format_size`` (powers of 1024, ``KB``/``MB``/``GB``), in the table renderer's
style: two spaces between columns, box rules or ASCII, never wider than
``max_width``, and the same text for the same report on any terminal.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Literal

from inspectnn.errors import InvalidInputError
from inspectnn.renderers.columns import format_size
from inspectnn.renderers.table import to_ascii
from inspectnn.training.records import CATEGORIES, PHASES, MemoryReport, ModuleMemory, Phase

__all__ = ["UNITS", "Units", "render_memory"]

Units = Literal["auto", "B", "KB", "MB", "GB", "TB"]
UNITS: tuple[Units, ...] = ("auto", "B", "KB", "MB", "GB", "TB")
"""What ``units=`` takes: ``"auto"`` (each size in its own unit) or one unit for all."""

HOTSPOTS = 3
"""How many modules the hotspots line names."""

_LABELS = {c: c.replace("_", " ") for c in CATEGORIES}
_DURING: dict[Phase, str] = {"forward": "during forward", "loss": "during the loss",
                             "backward": "during backward",
                             "optimizer": "during the optimizer step"}  # fmt: skip
_HELD_NOTE = ("Held: gradients after backward, optimizer state after the step, activations "
              "at the end of the forward, temporary at its most.")
_MODULE_HEADERS = ("Module (type)", "Params", "Grads", "Optimizer", "Act. own", "Act. total",
                   "Ckpt saves")  # fmt: skip
_CATEGORY_HEADERS = ("Category", "Held", "Share", "At peak", "Share")
_MIN_MODULE = 16  # the module column is never cut below this
_MIN_WIDTH = 40
_MIN_PATH = 6  # the fewest characters of a cut path shown before its type


def _size(n: int, units: Units) -> str:
    """``n`` bytes in ``units``: ``format_size``'s own choice for ``"auto"``."""
    if units == "auto":
        return format_size(n)
    if units == "B":
        return f"{n:,} B"
    power = UNITS.index(units) - UNITS.index("B")
    return f"{n / 1024**power:,.1f} {units}"


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole > 0 else "-"


def _check(memory: object, top: object, units: object, max_width: object) -> None:
    """Raise InvalidInputError for an argument ``render_memory`` cannot take."""
    if not isinstance(memory, MemoryReport):
        raise InvalidInputError(
            f"render_memory takes a MemoryReport (report.memory of "
            f"inspect(..., backward=True)), not {type(memory).__name__}."
        )
    if type(top) is not int or top < 0:
        raise InvalidInputError(
            f"top is how many modules to list, an int >= 0, e.g. top=10 (got {top!r})."
        )
    if units not in UNITS:
        raise InvalidInputError(f"units is one of {', '.join(UNITS)} (got {units!r}).")
    if type(max_width) is not int or max_width < _MIN_WIDTH:
        raise InvalidInputError(
            f"max_width is the text's width in characters, at least {_MIN_WIDTH}, e.g. "
            f"max_width=100 (got {max_width!r})."
        )


def headline(memory: MemoryReport, units: Units = "auto") -> str:
    """``"One training step on cpu with AdamW: peak 1.9 GB during backward (in h.3.attn)"``."""
    if memory.optimizer is None:
        what = f"One forward and backward on {memory.device} (no optimizer step)"
    else:
        what = f"One training step on {memory.device} with {memory.optimizer}"
    if memory.amp is not None:
        what += f", autocast {memory.amp}"
    where = f" (in {memory.peak_module})" if memory.peak_module else ""
    return f"{what}: peak {_size(memory.peak, units)} {_DURING[memory.peak_phase]}{where}"


def _phase_peaks(memory: MemoryReport, units: Units) -> list[str]:
    """``"Most live: forward 1.2 GB · backward 1.9 GB"``, from the timeline (none if empty)."""
    most: dict[str, int] = {}
    for point in memory.timeline:
        most[point.phase] = max(most.get(point.phase, 0), point.total)
    parts = [f"{phase} {_size(most[phase], units)}" for phase in PHASES if phase in most]
    return ["Most live by phase: " + " · ".join(parts)] if parts else []


def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    rule_glyph: str,
    total: Sequence[str] | None = None,
) -> list[str]:
    """Header, rule, rows, rule (then ``total`` if given); the first column left-aligned."""
    every = [*rows, total] if total is not None else rows
    widths = [max([len(h)] + [len(r[i]) for r in every]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        cells = [v.rjust(w) if i else v.ljust(w)
                 for i, (v, w) in enumerate(zip(values, widths, strict=True))]  # fmt: skip
        return "  ".join(cells).rstrip()

    rule = rule_glyph * len(line(["x" * w for w in widths]))
    out = [line(headers), rule, *(line(r) for r in rows), rule]
    return out if total is None else [*out, line(total)]


def _categories(memory: MemoryReport, units: Units, rule: str) -> list[str]:
    """Held and at-peak bytes of each category, with their shares and totals."""
    held, at_peak = sum(memory.held), sum(memory.at_peak)
    rows = [[_LABELS[c], _size(h, units), _percent(h, held), _size(p, units),
             _percent(p, at_peak)]
            for c, h, p in zip(CATEGORIES, memory.held, memory.at_peak, strict=True)]  # fmt: skip
    total = ["total", _size(held, units), _percent(held, held), _size(at_peak, units),
             _percent(at_peak, at_peak)]  # fmt: skip
    return [*_table(_CATEGORY_HEADERS, rows, rule, total)]


def ranked(memory: MemoryReport) -> list[ModuleMemory]:
    """The modules by activations saved for backward (most first, ties in model order).

    The model itself (``""``) only when it is the only module: its total is the
    ``activations`` category already.
    """
    modules = [m for m in memory.modules if m.name] or list(memory.modules)
    order = {id(m): i for i, m in enumerate(modules)}
    return sorted(modules, key=lambda m: (-m.activations_total, order[id(m)]))


def _module_label(m: ModuleMemory, width: int, more: str) -> str:
    """``"h.3.attn (GPT2Attention)"``; a long path cut at its start to ``width``, keeping
    the type whole while there is room for a few characters of the path."""
    text = f"{m.name} ({m.type})" if m.name else m.type
    if len(text) <= width:
        return text
    kind = f" ({m.type})" if m.name else ""
    room = width - len(more) - len(kind)
    if room >= _MIN_PATH:
        return more + m.name[-room:] + kind
    return more + text[len(text) - (width - len(more)):]


def _modules(
    memory: MemoryReport, top: int, units: Units, max_width: int, rule: str, more: str
) -> list[str]:
    """The ``top`` modules by activations saved, each one's bytes by kind."""
    shown = ranked(memory)[:top]
    if not shown:
        return []
    sizes = [[_size(v, units) for v in (m.parameters, m.gradients, m.optimizer_state,
                                        m.activations, m.activations_total,
                                        m.checkpoint_saving)]
             for m in shown]  # fmt: skip
    others = sum(max(len(h), *(len(r[i]) for r in sizes)) + 2
                 for i, h in enumerate(_MODULE_HEADERS[1:]))  # fmt: skip
    width = max(_MIN_MODULE, max_width - others)
    rows = [[_module_label(m, width, more), *s] for m, s in zip(shown, sizes, strict=True)]
    ranked_of = len([m for m in memory.modules if m.name]) or len(memory.modules)
    title = f"Top {len(shown)} of {ranked_of} modules by activations saved for backward"
    return ["", title, *_table(_MODULE_HEADERS, rows, rule)]


def _hotspots(memory: MemoryReport, units: Units) -> list[str]:
    """The modules where ``torch.utils.checkpoint`` would free most, if any would free any."""
    best = sorted((m for m in ranked(memory) if m.name and m.checkpoint_saving > 0),
                  key=lambda m: -m.checkpoint_saving)[:HOTSPOTS]  # fmt: skip
    if not best:
        return []
    parts = [f"{m.name} {_size(m.checkpoint_saving, units)}" for m in best]
    return ["Hotspots (checkpointing each would free): " + " · ".join(parts)]


def render_memory(
    memory: MemoryReport,
    *,
    top: int = 10,
    units: Units = "auto",
    max_width: int = 100,
    ascii: bool = False,
) -> str:
    """Render one training step's memory as plain text.

    Args:
        memory: ``report.memory`` of ``inspect(..., backward=True)``.
        top: How many modules to list, by activations saved for backward
            (``0``: none).
        units: ``"auto"`` (each size in its own unit, as the table does) or one of
            ``"B"``, ``"KB"``, ``"MB"``, ``"GB"``, ``"TB"`` for every size (powers of 1024).
        max_width: No line is wider (at least 60): long module paths are cut at
            their start, and ``"…"`` marks the cut.
        ascii: ASCII only (``-`` rules, ``|`` and ``...``), for logs that cannot
            show box drawing.

    Returns:
        The headline with the peak, the most live in each phase, a table of the
        categories (held, and live at the peak, with shares), the top modules and
        the hotspots line.

    Raises:
        InvalidInputError: ``memory`` is no MemoryReport, or ``top``, ``units`` or
            ``max_width`` is out of range.
    """
    _check(memory, top, units, max_width)
    rule, more = ("-", "...") if ascii else ("─", "…")

    def prose(*paragraphs: str) -> list[str]:
        return [line for p in paragraphs for line in textwrap.wrap(
            to_ascii(p) if ascii else p, max_width, subsequent_indent="  ",
            break_on_hyphens=False)]  # fmt: skip

    lines = [*prose(headline(memory, units), *_phase_peaks(memory, units)), ""]
    lines += [*_categories(memory, units, rule), *prose(_HELD_NOTE)]
    lines += _modules(memory, top, units, max_width, rule, more)
    hot = _hotspots(memory, units)
    lines += ["", *prose(*hot)] if hot else []
    return "\n".join(to_ascii(line) for line in lines) if ascii else "\n".join(lines)
