"""State the traced model does not own or does not show: unregistered modules, buffer
writes, tensor attributes written in place.

* A module kept in a plain Python list, dict or attribute is not a submodule: it
  runs, but it is not traced, its parameters are not counted, ``.to()`` and
  ``device=`` do not move them, and ``state_dict`` leaves them out. The op
  recorder sees its ops use parameters the model does not have.
* A buffer written by ``forward`` (a running counter, a cache) changes the model's
  state on every call; in eval mode that is rarely meant.
* A tensor attribute (neither parameter nor buffer) written in place by
  ``forward`` cannot be saved and put back: the model keeps what the run wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from inspectnn.errors import DeviceMismatchError, ForwardError
from inspectnn.records import Finding, LayerCall, OpCall

__all__ = ["buffer_findings", "unregistered_cause", "unregistered_findings", "written_findings"]

_FIX = (
    "Hold the modules in nn.ModuleList (or nn.ModuleDict, or assign each as an attribute), "
    "e.g. self.blocks = nn.ModuleList([...]): then they are part of the model, counted, "
    "traced, moved by .to() and saved in state_dict."
)


def _what(entry: Sequence[Any], ops: Sequence[OpCall]) -> tuple[str, str]:
    """``(who, where it ran)`` texts for one unregistered-parameter entry."""
    holder, kind, shape, _, module, op_index, _ = entry
    shape_text = "x".join(str(d) for d in shape) or "scalar"
    op = f"{ops[op_index].name} (ops[{op_index}])" if op_index < len(ops) else "an op"
    if holder:
        who = f"{holder} ({kind})"
    else:
        who = f"a parameter [{shape_text}] that no module of the model holds"
    return who, f"{op} in the forward of {module or 'the root module'}"


def unregistered_findings(
    entries: Sequence[Sequence[Any]], ops: Sequence[OpCall]
) -> list[Finding]:
    """One warning per module that ran without being registered in the model.

    Args:
        entries: The tracer's ``unregistered`` values: ``[holder path, holder type,
            shape, device, module, op index, failed]`` per foreign parameter.
        ops: The report's ops (to name the op that used it).
    """
    out: list[Finding] = []
    seen: set[str] = set()
    for entry in entries:
        holder = entry[0]
        if holder and holder in seen:
            continue
        seen.add(holder)
        who, where = _what(entry, ops)
        if holder:
            message = (
                f"{who} ran ({where}) but is not a submodule of the model: it is held in a "
                "plain Python container or attribute, so it has no row of its own (its calls "
                "show only as ops), its parameters are not counted, and .to(), device= and "
                "state_dict leave it out."
            )
        else:
            message = (
                f"{where} used {who}: a module held outside the model, or a parameter made "
                "during forward. It is not counted, not moved by .to() or device=, and not "
                "in state_dict."
            )
        out.append(Finding("unregistered-module", "warning", entry[4], message, _FIX))
    return out


def unregistered_cause(
    error: ForwardError, entries: Sequence[Sequence[Any]], ops: Sequence[OpCall], device: str
) -> ForwardError:
    """``error`` explained by an unregistered module whose parameter stayed on another device.

    Returns ``error`` itself when no failed op used such a parameter on another
    device than the forward's.
    """
    want = device.split(":")[0]
    for entry in entries:
        got, failed = entry[3], entry[6]
        if not failed or got.split(":")[0] == want:
            continue
        who, where = _what(entry, ops)
        message = (
            f"{where} failed because {who} is not registered in the model: inspect ran the "
            f"model's own tensors on {device}, and this module's parameter "
            f"[{', '.join(str(d) for d in entry[2])}] stayed on {got}.\n"
            f"  fix:        {_FIX}\n{error}"
        )
        return DeviceMismatchError(
            message,
            layer=error.layer,
            expected=device,
            got=got,
            producer=entry[0] or None,
            fix=_FIX,
            report=error.report,
        )
    return error


def buffer_findings(
    layers: Sequence[LayerCall], writes: dict[int, tuple[tuple[str, ...], bool]]
) -> list[Finding]:
    """A warning per module that wrote a buffer while in eval mode.

    In training mode buffer writes are expected (BatchNorm's running statistics)
    and only listed in ``LayerCall.buffers_written``. In eval mode a write means
    the forward changes the model's state on each call: a step counter, a cache.

    Args:
        layers: The traced calls.
        writes: Call index -> (buffer names written, the module was training).
    """
    out: list[Finding] = []
    seen: set[str] = set()
    for idx, (names, training) in sorted(writes.items()):
        rec = layers[idx]
        if training or rec.name in seen:
            continue
        seen.add(rec.name)
        full = ", ".join(f"{rec.name}.{n}" if rec.name else n for n in names)
        out.append(
            Finding(
                "buffer-write",
                "warning",
                rec.name,
                f"{rec.label} ({rec.type}) wrote its buffers {full} during an eval-mode "
                "forward: every call changes the model's state (inspect restored it).",
                "If the state should only change in training, guard the write with "
                "`if self.training:`; if it is a cache, clear or reset it between uses.",
            )
        )
    return out


def written_findings(paths: Sequence[str]) -> list[Finding]:
    """A warning per tensor attribute the forward wrote in place.

    Args:
        paths: ``"module path.attribute"`` of each plain tensor attribute (not a
            parameter or buffer) whose values the forward changed.
    """
    out: list[Finding] = []
    for path in paths:
        layer, _, attr = path.rpartition(".")
        out.append(
            Finding(
                "attribute-written",
                "warning",
                layer,
                f"The forward wrote the tensor attribute {path} in place. It is not a parameter "
                "or a buffer, so inspect did not save its values and cannot put them back: the "
                "model now holds what this run wrote.",
                f"Make it a buffer (self.register_buffer({attr!r}, tensor, persistent=False)): "
                "inspect restores buffers bit for bit.",
            )
        )
    return out
