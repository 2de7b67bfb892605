"""``JobReport``'s text: one row per kind of rank, then what differs (``job_table``).

Ranks with the same figures share a row, named by their ranks (``0-6``) and, when they
fill a block of the mesh, by their place in it (``dp=*, tp=7``). Below the table: the
ranks whose layer outputs are not rank 0's shapes, the parameters whose shards differ
(which ranks hold smaller or empty ones), the rank that needs the most memory and,
with ``device_memory``, the rank that would run out first.

May import: ``distributed/job.py`` and ``inspectnn.units``.
"""

from __future__ import annotations

from collections.abc import Sequence

from inspectnn.distributed.job import JobReport, RankSummary, ranks_text
from inspectnn.units import format_count, format_size

__all__ = ["job_table"]

_ROWS = 16
"""Kinds of rank shown as rows before the rest are counted."""
_LISTED = 6
"""Layers, cuts and kinds of rank listed under the table before "and N more"."""


def _who(group: Sequence[RankSummary]) -> str:
    ranks = [r.rank for r in group]
    return f"rank {ranks[0]}" if len(ranks) == 1 else f"ranks {ranks_text(ranks)}"


def _head(job: JobReport) -> str:
    text = f"Job: {job.world_size} rank{'s' if job.world_size != 1 else ''}"
    if job.mesh_shape:
        names = job.mesh_dim_names or tuple(f"dim{i}" for i in range(len(job.mesh_shape)))
        text += " · mesh " + " × ".join(
            f"{n}={s}" for n, s in zip(names, job.mesh_shape, strict=True))  # fmt: skip
    text += f" · params {format_count(job.params)} (global)"
    done = sorted({r.like for r in job.ranks})
    several = "s" if len(done) > 1 else ""
    if len(job.ranks) < job.world_size:
        text += f" · rank{several} {ranks_text(done)} only"
    if job.simulated and len(done) < len(job.ranks):
        text += (f" · simulated: rank{several} {ranks_text(done)}, each standing for the ranks "
                 "that hold the same shards")  # fmt: skip
    elif job.simulated:
        text += " · simulated"
    return text


def _rows(job: JobReport, groups: list[list[RankSummary]]) -> list[list[str]]:
    peak = any(r.peak is not None for r in job.ranks)
    errors = any(r.error for r in job.ranks)
    mesh = bool(job.mesh_shape)
    head = ["Ranks", *(["Mesh"] if mesh else []), "Params held", "Activations", "FLOPs",
            "Step peak" if peak else "Memory", "Layers ≠ rank 0",
            *(["Error"] if errors else [])]  # fmt: skip
    rows = [head]
    for group in groups[:_ROWS]:
        r = group[0]
        rows.append([
            ranks_text([g.rank for g in group]), *([job.where(group)] if mesh else []),
            f"{format_count(r.local_params)} ({format_size(r.param_bytes)})",
            format_size(r.activation_bytes), format_size(r.flops, "FLOPs"), format_size(r.need),
            str(len(r.differs)) if r.differs else "-", *([r.error or ""] if errors else []),
        ])  # fmt: skip
    return rows


def _grid(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    numeric = {i for i, name in enumerate(rows[0]) if name not in ("Ranks", "Mesh", "Error")}
    lines = [
        "  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                  for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()
        for row in rows
    ]  # fmt: skip
    rule = "─" * max(len(line) for line in lines)
    return [lines[0], rule, *lines[1:], rule]


def _differ_lines(groups: list[list[RankSummary]]) -> list[str]:
    out = []
    differing = [g for g in groups if g[0].differs]
    for group in differing[:_LISTED]:
        diffs = group[0].differs
        shown = "; ".join(d.describe() for d in diffs[:_LISTED])
        more = f"; and {len(diffs) - _LISTED} more layers" if len(diffs) > _LISTED else ""
        out.append(f"  {_who(group)}: {shown}{more}")
    if len(differing) > _LISTED:
        out.append(f"  and {len(differing) - _LISTED} more kinds of rank")
    return ["Output shapes not rank 0's:", *out] if out else []


def _uneven_lines(job: JobReport) -> list[str]:
    out = []
    for cut in job.uneven[:_LISTED]:
        line = f"  {cut.describe()}"
        if cut.empty:
            line += f"; empty on rank{'s' if len(cut.empty) > 1 else ''} {ranks_text(cut.empty)}"
        out.append(line)
    if len(job.uneven) > _LISTED:
        out.append(f"  and {len(job.uneven) - _LISTED} more cuts")
    return ["Shards not alike on every rank:", *out] if out else []


def _parts(r: RankSummary) -> str:
    parts = [("parameters", r.param_bytes), ("buffers", r.buffer_bytes)]
    if r.error is None:
        parts.append(("activations", r.activation_bytes))
    shown = ", ".join(f"{name} {format_size(n)}" for name, n in parts if n)
    if r.peak is not None:
        return "at the training step's peak"
    return shown or "nothing"


def _memory_lines(job: JobReport) -> list[str]:
    big = job.largest
    alike = [r.rank for r in job.ranks if r.need == big.need and r.rank != big.rank]
    also = (f" (so do{'' if len(alike) > 1 else 'es'} rank{'s' if len(alike) > 1 else ''} "
            f"{ranks_text(alike)})" if alike else "")  # fmt: skip
    out = [f"Rank {big.rank} holds the most: {format_size(big.need)} ({_parts(big)}){also}."]
    if job.device_memory is not None:
        limit = format_size(job.device_memory)
        first = job.first_out_of_memory
        if first is None:
            out.append(f"Every rank fits in device_memory={limit} "
                       f"({format_size(job.device_memory - big.need)} to spare on rank "
                       f"{big.rank}).")  # fmt: skip
        elif len({r.need for r in job.ranks}) == 1:
            out.append(f"Every rank would run out of device_memory={limit}: each needs "
                       f"{format_size(first.need)}, {format_size(first.need - job.device_memory)} "
                       "more.")  # fmt: skip
        else:
            over = job.out_of_memory
            out.append(
                f"Rank {first.rank} would run out of device_memory={limit} first: it needs "
                f"{format_size(first.need)}, {format_size(first.need - job.device_memory)} "
                f"more; {len(over)} of {job.world_size} ranks do not fit "
                f"({ranks_text([r.rank for r in over])})."
            )
    return out


def job_table(job: JobReport) -> str:
    """``job`` as text: the head line, the per-rank table and what differs."""
    groups = job.groups()
    lines = [_head(job), *_grid(_rows(job, groups))]
    if len(groups) > _ROWS:
        rest = sum(len(g) for g in groups[_ROWS:])
        lines.append(f"... and {len(groups) - _ROWS} more kinds of rank ({rest} ranks)")
    lines += _differ_lines(groups) + _uneven_lines(job) + _memory_lines(job)
    return "\n".join(lines)
