"""``device-memory``: this rank would not fit in the device memory given (``device_memory=``).

``inspect(..., device_memory="80GB")`` (and ``simulate``, which passes it through) sets
the limit; ``device_memory_bytes`` checks and parses it where ``inspect``'s arguments
are checked. With a training step the need is the step's peak (``report.memory``: its
categories at the peak); with a forward alone it is the parameters and buffers this
rank holds plus the forward's activations (``Totals.activation_bytes``: every leaf
layer's outputs, what a training forward keeps). The finding names the component that
dominates and what to do about it.

May import: ``inspectnn.errors``, ``inspectnn.records``, ``inspectnn.training.records``
and ``inspectnn.units``.
"""

from __future__ import annotations

from inspectnn.errors import InvalidInputError
from inspectnn.records import Finding, Totals
from inspectnn.training.records import CATEGORIES, MemoryReport
from inspectnn.units import format_size, parse_size

__all__ = ["device_memory_bytes", "device_memory_findings"]

_WORDS = {"optimizer_state": "optimizer state", "activations": "activations",
          "temporary": "temporaries"}  # fmt: skip

_FIXES = {
    "parameters": "shard the parameters over more ranks (a larger tensor-parallel size, or "
                  "FSDP's fully_shard over the data-parallel ranks), or keep them in bfloat16",
    "buffers": "make the large buffers smaller (a KV cache, a mask) or create them per call",
    "inputs": "give each rank a smaller batch (more gradient accumulation steps)",
    "gradients": "shard the gradients (FSDP's fully_shard reduce-scatters them) or shard the "
                 "parameters over more ranks",
    "optimizer_state": "shard the optimizer state (FSDP's fully_shard, or ZeRO) or use an "
                       "optimizer that keeps less (SGD with momentum keeps one copy, AdamW two)",
    "activations": "checkpoint the blocks that save most (torch.utils.checkpoint), give each "
                   "rank a smaller batch or sequence, or shard activations over tp (sequence "
                   "parallelism)",
    "temporary": "give each rank a smaller batch or sequence: the largest temporaries grow "
                 "with it",
}  # fmt: skip


def device_memory_bytes(value: object) -> int | None:
    """``device_memory=`` as bytes: an int of bytes, or a size such as ``"80GB"``; None stays.

    Raises:
        InvalidInputError: Anything else, saying what to pass.
    """
    if value is None:
        return None
    size = None
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str):
        size = parse_size(value)
    if size is None or size <= 0:
        raise InvalidInputError(
            f"device_memory must be the device's memory as a positive int of bytes or a size "
            f'such as "80GB", "40GiB" or "512MB" (powers of 1024); got {value!r}'
        )
    return size


def device_memory_findings(
    limit: int | None, totals: Totals, memory: MemoryReport | None, failed: bool
) -> list[Finding]:
    """An error when this rank needs more than ``limit`` bytes; nothing when it fits.

    Args:
        limit: ``device_memory=`` in bytes, or None (no check).
        totals: The report's totals (this rank's parameter and buffer bytes).
        memory: The training step's memory, or None for a forward alone.
        failed: The forward failed: its activations are partial, so only parameters
            and buffers are held against the limit.
    """
    if limit is None:
        return []
    if memory is not None:
        parts = dict(zip(CATEGORIES, memory.at_peak, strict=True))
        need = memory.peak
        where = f", in {memory.peak_module!r}" if memory.peak_module else ""
        what = f"at the training step's peak (in the {memory.peak_phase}{where})"
    else:
        parts = {"parameters": totals.param_bytes, "buffers": totals.buffer_bytes}
        what = "for its parameters and buffers"
        if not failed:
            parts["activations"] = totals.activation_bytes
            what = "for its parameters, buffers and the forward's activations"
        need = sum(parts.values())
    if need <= limit:
        return []
    ranked = sorted(((n, k) for k, n in parts.items() if n), reverse=True)
    shares = ", ".join(
        f"{_WORDS.get(k, k)} {format_size(n)} ({n / need:.0%})" for n, k in ranked[:4]
    )
    top = ranked[0][1]
    message = (
        f"This rank needs {format_size(need)} {what}, more than device_memory="
        f"{format_size(limit)} by {format_size(need - limit)}: {shares}. "
        f"{_WORDS.get(top, top).capitalize()} dominate{'s' if top == 'optimizer_state' else ''}."
    )
    return [Finding("device-memory", "error", "", message, _FIXES[top])]
