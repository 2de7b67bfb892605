"""Where a tensor on the wrong device came from, and the change that puts it right.

A run on ``meta`` (or on a GPU) fails when one tensor stayed on the CPU: one created
in ``forward`` without ``device=`` (``torch.zeros(1, b, h)`` as an LSTM's ``h_0``),
one held in a plain attribute instead of a buffer, or the output of a module kept
outside the model's registered submodules. The recorded ops say which op made it and
on which device; the failure's traceback says on which line of the user's code.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from inspectnn.records import LayerCall, OpCall, TensorMeta, parse_source

if TYPE_CHECKING:
    from inspectnn.report import Report

__all__ = ["Origin", "device_origin", "lookup", "user_frames"]

_TORCH_DIR = str(Path(torch.__file__ or "torch").resolve().parent)
_OWN_DIR = str(Path(__file__).resolve().parent.parent)


@dataclass(frozen=True, slots=True)
class Origin:
    """What made a tensor that is on another device than the run.

    Attributes:
        made_by: The op, layer or value that made it, with the user's line when known.
        because: Why it is on that device.
        fix: The change that puts it on the run's device.
        producer: Op name or dotted layer path, None for a model input or an attribute.
    """

    made_by: str
    because: str
    fix: str
    producer: str | None = None


def user_frames(exc: BaseException) -> list[tuple[FrameType, int]]:
    """``(frame, line)`` of each traceback frame outside torch and inspectnn, innermost first."""
    found: list[tuple[FrameType, int]] = []
    tb = exc.__traceback__
    while tb is not None:
        name = str(Path(tb.tb_frame.f_code.co_filename).resolve())
        if not (name.startswith(_TORCH_DIR) or name.startswith(_OWN_DIR)):
            found.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    return found[::-1]


def lookup(report: Report, source: str | None) -> LayerCall | OpCall | None:
    """The layer call or op that ``source`` names; None for a model input or no source."""
    parsed = parse_source(source)
    if parsed is None or parsed[0] == "inputs":
        return None
    return report.layers[parsed[1]] if parsed[0] == "layers" else report.ops[parsed[1]]


def _maker(report: Report, meta: TensorMeta) -> LayerCall | OpCall | None:
    """The call that first put ``meta``'s tensor on its device: walking back through every
    call that got a tensor on that device (a ``.float()`` of it, a layer it went through)."""
    node = lookup(report, meta.source)
    via = meta.source
    for _ in range(256):
        if node is None:
            return None
        if isinstance(node, LayerCall):  # a container: what made its output inside it
            parsed = parse_source(via)
            pos = parsed[2] if parsed is not None else 0
            inner = node.outputs[pos].source if pos < len(node.outputs) else None
            deeper = lookup(report, inner)
            if deeper is not None and deeper is not node:
                node, via = deeper, inner
                continue
        same = [m for m in node.inputs if m.is_tensor and m.device == meta.device and m.source]
        if not same or parse_source(same[0].source) is None:
            return node
        via = same[0].source
        node = lookup(report, via)
        if node is None:  # a model input on that device
            return None
    return node


def _call_end(line: str, start: int) -> int | None:
    """Index of the ``)`` closing the call whose ``(`` is at ``start``; None if not on the line."""
    depth = 0
    for i in range(start, len(line)):
        if line[i] in "([{":
            depth += 1
        elif line[i] in ")]}":
            depth -= 1
            if depth == 0:
                return i
    return None


def _tensor_name(frame: FrameType, device: str) -> str:
    """A tensor argument of the frame's function that is on the run's device, else ``x``."""
    code = frame.f_code
    names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    for name in (*names, *frame.f_locals):
        value = frame.f_locals.get(name)
        if isinstance(value, Tensor) and str(value.device) == device:
            return name
    return "x"


def _with_device(line: str, name: str, var: str) -> str | None:
    """``line`` with ``device=var.device`` added to its call of ``name``, or None."""
    found = re.search(rf"\b{re.escape(name)}\(", line)
    if found is None:
        return None
    end = _call_end(line, found.end() - 1)
    if end is None:
        return None
    empty = not line[found.end() : end].strip()
    return f"{line[:end]}{'' if empty else ', '}device={var}.device{line[end:]}"


def _made_at(failure: BaseException, name: str, device: str) -> list[tuple[str, str | None]]:
    """``("file.py:7: h = torch.zeros(1, b, 3)", the line with device=)`` for each line of
    the innermost user function calling ``name`` without ``device=``, up to where it failed."""
    for frame, lineno in user_frames(failure):
        try:
            lines, start = inspect.getsourcelines(frame.f_code)
        except (OSError, TypeError):
            continue
        var = _tensor_name(frame, device)
        hits: list[tuple[str, str | None]] = []
        for i, line in enumerate(lines[: max(lineno - start + 1, 0)]):
            code = line.strip()
            if re.search(rf"\b{re.escape(name)}\(", code) and "device=" not in code:
                where = f"{frame.f_code.co_filename}:{start + i}: {code}"
                hits.append((where, _with_device(code, name, var)))
        if hits:
            return hits
    return []


_UNREGISTERED = (
    "hold the module in an nn.ModuleList or nn.ModuleDict (or assign it as an attribute of "
    "a module), so that its parameters are registered and move with the model"
)


def device_origin(
    report: Report,
    meta: TensorMeta,
    failure: BaseException,
    home: str | None,
    op: OpCall | None = None,
) -> Origin | None:
    """Why the tensor ``meta`` is not on the run's device (``report.device``), and the fix.

    Args:
        report: The partial report.
        meta: The tensor on the wrong device, as an input of the failing call.
        failure: The exception, for the user's lines.
        home: The device the model's own parameters are on (None: unknown).
        op: The failing op that got ``meta``, if an op failed.
    """
    run, odd = report.device, meta.device
    if odd is None or odd == run:
        return None
    moved = home is not None and home != run  # inspect ran the model's tensors on `run`
    node = _maker(report, meta)
    if isinstance(node, OpCall):
        return _op_origin(node, failure, run, odd, home if moved else None)
    if isinstance(node, LayerCall):
        name = f"'{node.label}' ({node.type})" if node.name else f"the root module ({node.type})"
        because = f"its parameters are on {odd}"
        if moved:
            because += (
                f": inspect runs the model's registered parameters on {run}, and a module "
                "held in a plain list, dict or non-module attribute is not registered"
            )
            fix = _UNREGISTERED
        else:
            fix = f"move it to {run} with the rest of the model: .to('{run}')"
        return Origin(f"{name}, whose output is on {odd}", because, fix, node.label or node.type)
    if op is not None and op.name.startswith("F.") and meta.path not in ("", "[0]"):
        return Origin(
            f"a weight of the module whose {op.name} failed, on {odd}",
            f"inspect runs the model's registered parameters on {run}; a module held in a "
            f"plain list, dict or non-module attribute is not registered: its weights stay "
            f"on {odd}",
            _UNREGISTERED,
        )
    if parse_source(meta.source) is not None:  # a model input
        fix = f"move the input with x.to('{run}')"
        if not moved and home is not None:  # the run is on the model's own device
            fix += f", or the model with model.to('{odd}')"
        return Origin(f"the model input, on {odd}", "the input was passed there", fix)
    return Origin(
        f"a tensor on {odd} that no recorded op made: a plain attribute of a module, or a "
        "constant",
        f"a tensor assigned as a plain attribute (self.mask = torch.ones(...)) is not a buffer, "
        f"so it is not moved with the model's tensors to {run}",
        "register it as a buffer so that it moves with the model: "
        "self.register_buffer('mask', torch.ones(...), persistent=False)",
    )


def _op_origin(op: OpCall, failure: BaseException, run: str, odd: str, home: str | None) -> Origin:
    """The origin when an op made the tensor: a factory, or a move such as ``.cpu()``."""
    where = op.module or "the root module"
    short = op.name.rsplit(".", 1)[-1]
    other = f"; or inspect with device='{home}', where the model is" if home == odd else ""
    if any(m.is_tensor for m in op.inputs):
        return Origin(
            f"{op.name}({op.args}) in the forward of {where}",
            f"it moves the tensor to {odd}",
            f"keep the tensor on its device (drop the move to {odd}){other}",
            op.name,
        )
    lines = _made_at(failure, short, run)
    call = f"{op.name}({op.args})" if op.args else f"{op.name}()"
    made_by = f"{call} in the forward of {where}"
    if lines:
        made_by += ", at " + "; and at ".join(at for at, _ in lines)
    fixed = [new for _, new in lines if new is not None]
    if fixed and len(fixed) == len(lines):
        fix = f"create {'it' if len(fixed) == 1 else 'each'} on the input's device: "
        fix += "; ".join(fixed)
    else:
        fix = f"pass device=x.device to {op.name} (x: a tensor the forward got)"
    because = (
        f"a tensor created in forward without device= is made on {odd} (torch's default "
        f"device), whatever device the model runs on; this run is on {run}"
    )
    return Origin(made_by, because, fix + other, op.name)
