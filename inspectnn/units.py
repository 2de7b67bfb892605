"""Plain unit formatters: counts, sizes in bytes or FLOPs, multiply-adds.

Pure functions of numbers, used by the renderers (re-exported by
``renderers/columns.py`` and ``renderers/table.py`` under the same names) and by
``inputs.py`` for its memory message; ``parse_size`` reads a size back (``device_memory=``).
Imports nothing from the project.

>>> format_count(1234567), format_size(1536), mult_adds_text(4_000_000)
('1,234,567', '1.5 KB', '2.0 MMACs')
"""

from __future__ import annotations

import re

__all__ = ["format_count", "format_size", "mult_adds_text", "parse_size"]


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


_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGTP]?)(?:i?B)?\s*", re.IGNORECASE)
_POWERS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5}


def parse_size(text: str) -> int | None:
    """Bytes from a size as ``format_size`` writes them, in powers of 1024; None if not one.

    ``"80GB"``, ``"80 GB"``, ``"80GiB"`` and ``"80G"`` are all 80 x 1024**3 bytes
    (the report writes 1024-based sizes as ``GB``); a bare number is bytes.

    >>> parse_size("80GB") == 80 * 1024**3, parse_size("1.5 KiB"), parse_size("lots")
    (True, 1536, None)
    """
    found = _SIZE.fullmatch(text)
    if found is None:
        return None
    return int(float(found[1]) * 1024 ** _POWERS[found[2].upper()])
