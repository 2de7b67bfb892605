"""The plain-text memory report of one training step (``print(report.memory)``).

Pure functions of a :class:`~inspectnn.training.records.MemoryReport`: a headline
with the peak (how much, in which phase, in which module), the most live in each
phase, the bytes of each category held and live at the peak with their shares,
the modules that save most for backward (modules alike, such as the blocks of a
stack, as one row ``h.[0-11] (GPT2Block) x12``, much as the table folds a
stack), and the hotspots where activation checkpointing would free most. Sizes
come from ``renderers/columns.py``'s ``format_size`` (powers of 1024,
``KB``/``MB``/``GB``), in the table renderer's style: two spaces between
columns, box rules or ASCII, prose wrapped and module paths cut to
``max_width`` (a table is wider only where its figures alone are), and the same
text for the same report on any terminal.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from inspectnn.errors import InvalidInputError
from inspectnn.renderers.columns import format_size
from inspectnn.renderers.table import to_ascii
from inspectnn.training.records import (
    CATEGORIES,
    PHASES,
    WRAPPER_SHARE,
    MemoryReport,
    ModuleMemory,
    Phase,
)

__all__ = ["UNITS", "ModuleRow", "Units", "ranked", "render_memory"]

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
_INDEX = re.compile(r"(?<![^.])\d+(?![^.])")  # a path component that is a number
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
    """``["forward 1.2 GB", "backward 1.9 GB", ...]``: the most live in each phase."""
    most: dict[str, int] = {}
    for point in memory.timeline:
        most[point.phase] = max(most.get(point.phase, 0), point.total)
    parts = [f"{phase} {_size(most[phase], units)}" for phase in PHASES if phase in most]
    return parts


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


@dataclass(frozen=True, slots=True)
class ModuleRow:
    """One row of the module table: a module, or several alike (the blocks of a stack).

    Attributes:
        module: The first of them, in model order (its figures are each one's).
        name: Its path, or the paths of all with their differing indices in
            brackets (``"h.[0-11].attn"``).
        count: How many modules the row stands for.
    """

    module: ModuleMemory
    name: str
    count: int


def _figures(m: ModuleMemory) -> tuple[int, ...]:
    return (m.parameters, m.gradients, m.optimizer_state, m.activations,
            m.activations_total, m.checkpoint_saving)  # fmt: skip


def _ranges(values: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2,5"``."""
    runs: list[list[int]] = []
    for v in sorted(set(values)):
        if runs and v == runs[-1][-1] + 1:
            runs[-1].append(v)
        else:
            runs.append([v])
    return ",".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def _pattern(names: Sequence[str]) -> str:
    """The common path of ``names`` (which differ only in numeric components), each
    differing index as its set in brackets: ``["h.0.attn", "h.1.attn"]`` -> ``"h.[0-1].attn"``."""
    indices = [[int(i) for i in _INDEX.findall(n)] for n in names]
    columns = list(zip(*indices, strict=True))
    texts = iter(str(c[0]) if len(set(c)) == 1 else f"[{_ranges(c)}]" for c in columns)
    return _INDEX.sub(lambda _: next(texts), names[0])


def ranked(memory: MemoryReport) -> list[ModuleRow]:
    """The modules by activations saved for backward (most first, ties in model order).

    Modules alike (the same type and figures, paths that differ only in numeric
    components, as the blocks of a stack) are one row. The model itself (``""``)
    only when it is the only module: its total is the ``activations`` category.
    """
    modules = [m for m in memory.modules if m.name] or list(memory.modules)
    groups: dict[tuple[object, ...], list[ModuleMemory]] = {}
    for m in modules:
        groups.setdefault((_INDEX.sub("#", m.name), m.type, _figures(m)), []).append(m)
    rows = [ModuleRow(ms[0], _pattern([m.name for m in ms]), len(ms)) for ms in groups.values()]
    return sorted(rows, key=lambda r: -r.module.activations_total)


def _module_label(row: ModuleRow, width: int, more: str) -> str:
    """``"h.3.attn (GPT2Attention)"``, ``"h.[0-11] (GPT2Block) x12"``; a long path cut at
    its start to ``width``, keeping the type whole while there is room for a few
    characters of the path."""
    m = row.module
    kind = (f" ({m.type})" if row.name else m.type) + (f" x{row.count}" if row.count > 1 else "")
    text = row.name + kind
    if len(text) <= width:
        return text
    room = width - len(more) - len(kind)
    if room >= _MIN_PATH:
        return more + _tail(row.name, room) + kind
    return more + text[len(text) - (width - len(more)):]


def _tail(path: str, room: int) -> str:
    """The last components of ``path`` that fit in ``room``, or its last characters."""
    parts = path.split(".")
    k = 0
    while k < len(parts) and len(".".join(parts[-k - 1 :])) <= room:
        k += 1
    return ".".join(parts[-k:]) if k else path[-room:]


def _modules(
    memory: MemoryReport, top: int, units: Units, max_width: int, rule: str, more: str
) -> list[str]:
    """The ``top`` rows of modules by activations saved, each one's bytes by kind."""
    rows = ranked(memory)
    shown = rows[:top]
    if not shown:
        return []
    sizes = [[_size(v, units) for v in _figures(r.module)] for r in shown]
    others = sum(max(len(h), *(len(r[i]) for r in sizes)) + 2
                 for i, h in enumerate(_MODULE_HEADERS[1:]))  # fmt: skip
    width = max(_MIN_MODULE, max_width - others)
    cells = [[_module_label(r, width, more), *s] for r, s in zip(shown, sizes, strict=True)]
    covered, every = sum(r.count for r in shown), sum(r.count for r in rows)
    alike = "; xN: N modules alike, figures for each" if any(r.count > 1 for r in shown) else ""
    title = f"Modules saving most for backward ({covered} of {every}{alike})"
    return ["", *_wrap(title, max_width), *_table(_MODULE_HEADERS, cells, rule)]


def _hotspots(memory: MemoryReport, units: Units) -> list[str]:
    """The modules where ``torch.utils.checkpoint`` would free most, if any would free
    any; not the model, nor a module holding ``WRAPPER_SHARE`` of what it saves (a
    wrapper of it), as the ``activation-hotspot`` finding."""
    whole = max((m.activations_total for m in memory.modules), default=0)
    best = sorted((r for r in ranked(memory) if r.name and r.module.checkpoint_saving > 0
                   and r.module.activations_total < WRAPPER_SHARE * whole),
                  key=lambda r: -r.module.checkpoint_saving)[:HOTSPOTS]  # fmt: skip
    return [f"{r.name} {_size(r.module.checkpoint_saving, units)}"
            + (" each" if r.count > 1 else "") for r in best]  # fmt: skip


def _wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of ``width`` at most, broken at spaces, the later ones indented."""
    return textwrap.wrap(text, width, subsequent_indent="  ", break_on_hyphens=False)


def _listing(head: str, items: Sequence[str], width: int) -> list[str]:
    """``head`` then ``items`` joined by `` · ``, broken between items (the later lines
    indented), an item wider than a line broken at its spaces; nothing for no items."""
    if not items:
        return []
    lines = [head]
    for n, item in enumerate(items):
        piece = (" " if n == 0 else " · ") + item
        if len(lines[-1]) + len(piece) > width:
            lines.append("  " + item)
        else:
            lines[-1] += piece
    return [wrapped for line in lines for wrapped in _wrap(line, width)]


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
        top: How many rows of modules to list, by activations saved for backward
            (``0``: none); modules alike share a row.
        units: ``"auto"`` (each size in its own unit, as the table does) or one of
            ``"B"``, ``"KB"``, ``"MB"``, ``"GB"``, ``"TB"`` for every size (powers of 1024).
        max_width: The width in characters (at least 40): prose is wrapped and long
            module paths cut at their start (``"…"`` marks the cut); a table is wider
            only where its figures alone are.
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

    lines = [*_wrap(headline(memory, units), max_width),
             *_listing("Most live by phase:", _phase_peaks(memory, units), max_width), "",
             *_categories(memory, units, rule), *_wrap(_HELD_NOTE, max_width),
             *_modules(memory, top, units, max_width, rule, more)]  # fmt: skip
    hot = _hotspots(memory, units)
    lines += ["", *_listing("Hotspots (checkpointing would free):", hot, max_width)] if hot else []
    return "\n".join(to_ascii(line) for line in lines) if ascii else "\n".join(lines)
