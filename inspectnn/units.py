"""Plain unit formatters: counts, sizes in bytes or FLOPs, multiply-adds.

Pure functions of numbers, used by the renderers (re-exported by
``renderers/columns.py`` and ``renderers/table.py`` under the same names) and by
``inputs.py`` for its memory message. Imports nothing from the project.

>>> format_count(1234567), format_size(1536), mult_adds_text(4_000_000)
('1,234,567', '1.5 KB', '2.0 MMACs')
"""

from __future__ import annotations

__all__ = ["format_count", "format_size", "mult_adds_text"]


def format_count(n: int) -> str:
    """``1234567`` -> ``"1,234,567"``."""
    return f"{n:,}"


def format_size(n: float, unit: str = "B") -> str:
    """``1536`` -> ``"1.5 KB"`` (powers of 1000 for FLOPs, 1024 for bytes)."""
    base = 1024.0 if unit == "B" else 1000.0
    for prefix in ("", "K", "M", "G", "T", "P"):
        if abs(n) < base or prefix == "P":
            return f"{n:.0f} {prefix}{unit}" if prefix == "" else f"{n:.1f} {prefix}{unit}"
        n /= base
    return f"{n:.1f} {unit}"  # pragma: no cover


def mult_adds_text(flops: int) -> str:
    """Multiply-adds from FLOPs: every counted op is a product (FLOPs = 2 x mult-adds)."""
    return format_size(flops // 2, "MACs") if flops else "0"
