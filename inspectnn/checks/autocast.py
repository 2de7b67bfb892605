"""``torch.autocast`` blocks in a forward run on meta: a finding, since they do nothing there.

torch has no autocast for the meta device: inside ``with torch.autocast("cpu",
dtype=torch.bfloat16)`` a meta ``Linear`` still computes in float32, where on the CPU it
computes in bfloat16. The dtypes (and activation sizes) of a meta run are then silently
not the ones of a real run. The trace cannot see autocast being entered, so the check
reads the ``forward`` source of the modules that ran, and only on meta.
"""

from __future__ import annotations

import inspect
import linecache
import re
from collections.abc import Sequence

from torch import nn

from inspectnn.records import Finding

__all__ = ["autocast_findings"]

_CALL = re.compile(r"\bautocast\(")
_DTYPE = re.compile(r"dtype\s*=\s*(?:torch\.)?(\w+)")


def _sites(cls: type, files: dict[str, bool]) -> list[tuple[str, str]]:
    """``(file:line: code, dtype or "")`` of each enabled autocast in ``cls.forward``.

    ``files`` caches whether a source file mentions autocast at all (most do not).
    """
    forward = getattr(cls, "forward", None)
    code = getattr(forward, "__code__", None)
    if code is None:
        return []
    name = code.co_filename
    if name not in files:
        files[name] = any("autocast" in line for line in linecache.getlines(name))
    if not files[name]:
        return []
    try:
        lines, start = inspect.getsourcelines(forward)  # type: ignore[arg-type]
    except (OSError, TypeError):
        return []
    found = []
    for i, line in enumerate(lines):
        if not _CALL.search(line) or line.lstrip().startswith("#"):
            continue
        call = " ".join(part.strip() for part in lines[i : i + 4])  # the call, if it wraps
        if re.search(r"enabled\s*=\s*False", call):
            continue  # turns autocast off: the same on every device
        dtype = _DTYPE.search(call[_CALL.search(call).start() :])  # type: ignore[union-attr]
        found.append((f"{code.co_filename}:{start + i}: {line.strip()}", dtype[1] if dtype else ""))
    return found


def autocast_findings(modules: Sequence[tuple[str, nn.Module]], called: set[int]) -> list[Finding]:
    """One finding per module class whose ``forward`` enters ``torch.autocast``, for a meta run.

    Args:
        modules: ``(dotted name, module)`` of every module, each once.
        called: ``id`` of every module that ran.
    """
    out: list[Finding] = []
    seen: set[type] = set()
    files: dict[str, bool] = {}
    for name, module in modules:
        cls = type(module)
        if id(module) not in called or cls in seen or cls.__module__.startswith("torch."):
            continue
        seen.add(cls)
        for where, dtype in _sites(cls, files):
            low = dtype or "its lower precision (bfloat16 on CPU, float16 on CUDA by default)"
            out.append(
                Finding(
                    "autocast-on-meta",
                    "warning",
                    name,
                    f"{name or 'the root module'} ({cls.__name__}) enters torch.autocast at "
                    f"{where}. torch has no autocast on meta, so the layers inside ran in "
                    f"float32 here, where on a real device they run in {low}: the dtypes and "
                    "activation sizes shown for them are float32's.",
                    "Inspect with device='cpu' (or the device the model runs on) to see "
                    "autocast's dtypes; the model is not moved.",
                )
            )
    return out
