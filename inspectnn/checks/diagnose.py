"""Turn a failed forward into an error that names the layer, the cause and the fix.

The message says, in this order: the layer (dotted path and configuration),
what it got, what it expected, the dimension at fault, where its input came
from (walking back through layers that keep the shape), and a concrete fix.

This module builds the error (``build_error``: which call is the cause, which error
class, the lines in order); the text of each line comes from ``checks/advice.py`` and
the walk back to what made the input from ``checks/producers.py``.

May import: ``inspectnn.checks.advice``, ``inspectnn.checks.contracts``,
``inspectnn.checks.origins``, ``inspectnn.checks.producers``, ``inspectnn.checks.rowwise``,
``inspectnn.errors`` and ``inspectnn.records``.
"""

from __future__ import annotations

import linecache
from typing import TYPE_CHECKING

import torch

from inspectnn.checks.advice import (
    _CPU_ONLY,
    _describe,
    _device_fix,
    _flatten_note,
    _join_advice,
    _line,
    _no_meta_kernel,
    _no_tensors,
    _not_tensor_fix,
    _reads_values,
    _reshape_advice,
    _unbatched,
)
from inspectnn.checks.contracts import Violation, fmt_shape
from inspectnn.checks.origins import Origin, device_origin, user_frames
from inspectnn.checks.producers import Producer, _first_tensor, find_producer
from inspectnn.checks.rowwise import rowwise_input
from inspectnn.errors import (
    DeviceMismatchError,
    DtypeMismatchError,
    ForwardError,
    ShapeMismatchError,
)
from inspectnn.records import LayerCall, OpCall, TensorMeta

if TYPE_CHECKING:
    from inspectnn.report import Report

__all__ = ["Producer", "build_error", "find_producer", "user_frame"]


_ERRORS = {"shape": ShapeMismatchError, "dtype": DtypeMismatchError, "device": DeviceMismatchError}


def build_error(
    report: Report,
    failed: int | None,
    violations: dict[int, Violation],
    failure: BaseException,
    home: str | None = None,
) -> ForwardError:
    """The error to raise for a failed forward.

    Args:
        report: The (partial) report.
        failed: Index of the innermost failing call, or None.
        violations: Contract violations by call index.
        failure: The original exception.
        home: The device of the model's own parameters (a fix never moves the model
            there, nor when the run was on another device); None when unknown.
    """
    cause = _root_violation(report, failed, violations)
    if cause is not None:
        rec = report.layers[cause]
        v = violations[cause]
        return _violation_error(report, rec, v, _input_meta(rec, v), failure, home)
    if failed is None:
        return _generic_error(report, None, failure)
    at = report.layers[failed]
    ops = [op for op in report.ops if op.failed and op.parent == at.index]
    found = _device_error(report, at, ops[-1] if ops else None, failure, home)
    if found is not None:
        return found
    if ops:
        return _op_error(report, at, ops[-1], failure)
    return _generic_error(report, at, failure)


def _root_violation(
    report: Report, failed: int | None, violations: dict[int, Violation]
) -> int | None:
    """The outermost call on the failing chain with a broken contract.

    A TransformerEncoderLayer given the wrong d_model breaks its own contract and
    then its self_attn's; the outer one is the cause and names the layer to fix.
    """
    found = None
    idx = failed
    while idx is not None and idx >= 0:
        rec = report.layers[idx]
        if idx != failed and not rec.failed:
            break
        if idx in violations:
            found = idx
        idx = rec.parent
    return found


def _input_meta(rec: LayerCall, v: Violation) -> TensorMeta | None:
    names = {"input": "[0]", "query": "[0]", "key": "[1]", "value": "[2]", "input1": "[0]",
             "input2": "[1]", "hx": "[1]", "h_0": "[1][0]", "c_0": "[1][1]"}  # fmt: skip
    path = names.get(v.arg, "[0]")
    for m in rec.inputs:
        if m.path == path or m.path == v.arg:
            return m
    return _first_tensor(rec.inputs)


def _violation_error(
    report: Report,
    rec: LayerCall,
    v: Violation,
    input_meta: TensorMeta | None,
    failure: BaseException,
    home: str | None,
) -> ForwardError:
    producer = find_producer(report, input_meta) if input_meta is not None else None
    fix = v.fix
    origin = None
    if v.kind == "device" and input_meta is not None:
        origin = device_origin(report, input_meta, failure, home)
        fix = origin.fix if origin is not None else _device_fix(v, rec, report.device, home)
    lines = [f"{_describe(rec)} cannot take its {v.arg}."]
    if input_meta is not None and input_meta.is_tensor:
        if v.kind == "shape":
            got = f"{v.got} ({input_meta.dtype}, {input_meta.device})"
        else:
            dims = fmt_shape(input_meta.shape or ())
            got = f"{input_meta.dtype} tensor {dims} on {input_meta.device}"
    else:
        got = v.got
    lines.append(_line("got", got))
    lines.append(_line("expected", f"{v.expected}: {v.rule}"))
    shape = input_meta.shape if input_meta is not None else None
    if v.dim is not None and shape is not None and v.dim < len(shape):
        lines.append(_line("at fault", f"dimension {v.dim} (size {shape[v.dim]})"))
    unbatched = _unbatched(report, rec) if v.kind == "shape" else None
    sharded = rowwise_input(report, rec, input_meta) if v.kind == "shape" else None
    name = _producer_name(producer)
    if sharded is not None:  # a tensor-parallel input hook made the input: say so
        lines += sharded.lines
        fix, name = sharded.fix, sharded.producer
    elif producer is not None:
        lines.append(_line("input from", producer.text))
        if unbatched is not None:
            lines.append(_line("because", unbatched[0]))
            fix = unbatched[1]
        elif rec.type == "Linear" and v.kind == "shape":
            want = int(v.expected.strip("[]").split(",")[-1])
            note = _flatten_note(report, producer, want)
            if note:
                lines.append(_line("because", note))
                if "need" in note:
                    fix = f"{fix}, or change the input size: {note.split('; ')[-1]}"
    if origin is not None:
        lines += _origin_lines(origin)
    if fix:
        lines.append(_line("fix", fix))
    cls = _ERRORS[v.kind]
    return cls(
        "\n".join(lines),
        layer=rec.name,
        expected=v.expected,
        got=v.got,
        producer=name,
        fix=fix,
        report=report,
    )


def _origin_lines(origin: Origin) -> list[str]:
    return [_line("made by", origin.made_by), _line("because", origin.because)]


def _device_error(
    report: Report,
    rec: LayerCall,
    op: OpCall | None,
    failure: BaseException,
    home: str | None,
) -> ForwardError | None:
    """A call that torch refused because one of its tensors is on another device than the
    run (no contract saw it: an op, or an LSTM's ``h_0``): which tensor, what made it, the fix."""
    if "device" not in str(failure).lower():
        return None
    inputs = op.inputs if op is not None else rec.inputs
    devices = {m.device for m in inputs if m.is_tensor}
    odd = next((m for m in inputs if m.is_tensor and m.device != report.device), None)
    if odd is None or len(devices) < 2:
        return None
    origin = device_origin(report, odd, failure, home, op)
    if origin is None:
        return None
    head = f"{op.name} in the forward of {_describe(rec)}" if op is not None else _describe(rec)
    arg = f" (argument {odd.path})" if odd.path else ""
    lines = [
        f"{head} got a tensor on {odd.device} in a run on {report.device}.",
        _line("got", f"{odd.dtype} tensor {fmt_shape(odd.shape or ())} on {odd.device}{arg}"),
        _line("expected", f"{report.device}: every tensor of the run is on {report.device}"),
        *_origin_lines(origin),
    ]
    where = user_frame(failure)
    if where:
        lines.append(_line("at", where))
    lines.append(_line("torch", f"{type(failure).__name__}: {str(failure).splitlines()[0]}"))
    lines.append(_line("fix", origin.fix))
    return DeviceMismatchError(
        "\n".join(lines),
        layer=rec.name,
        expected=report.device,
        got=str(odd.device),
        producer=origin.producer,
        fix=origin.fix,
        report=report,
    )


def _op_error(report: Report, rec: LayerCall, op: OpCall, failure: BaseException) -> ForwardError:
    shapes = ", ".join(m.short() if m.is_tensor else (m.value or "?") for m in op.inputs)
    lines = [
        f"{op.name} failed in the forward of {_describe(rec)}.",
        _line("got", f"{op.name}({shapes}{', ' + op.args if op.args else ''})"),
    ]
    first = _first_tensor(op.inputs)
    joined = _join_advice(report, op) if first is not None else []
    if joined:
        lines += joined[:-1]
    elif first is not None:
        lines.append(_line("input from", find_producer(report, first).text))
        if op.name.rsplit(".", 1)[-1] in {"view", "reshape"} and first.shape:
            lines += _reshape_advice(first.shape, op.args)
    where = user_frame(failure)
    if where:
        lines.append(_line("at", where))
    lines.append(_line("torch", f"{type(failure).__name__}: {str(failure).splitlines()[0]}"))
    no_kernel = _no_meta_kernel(report, op.name, failure)
    cpu_only = _CPU_ONLY.get(op.name.rsplit(".", 1)[-1])
    if cpu_only is not None and report.device != "cpu" and "CPU" in str(failure):
        lines += [
            _line("because", f"{op.name} takes {cpu_only[0]} on the CPU, and device="
                             f"'{report.device}' moved every tensor input there"),
            _line("fix", cpu_only[1]),
        ]  # fmt: skip
    elif report.device == "meta" and "Expected inputs of BF16 type" in str(failure):
        lines += [
            _line("because", f"torch {torch.__version__}'s meta kernel for {op.name} takes "
                             "bfloat16 only; its CPU and CUDA kernels take this dtype too"),
            _line("fix", "inspect with device='cpu' (the model is not moved, its tensors "
                         "are copied there for the call), or a bfloat16 copy of the model "
                         "on meta"),
        ]  # fmt: skip
    elif no_kernel:
        lines += no_kernel
    elif joined:
        lines.append(joined[-1])
    elif first is not None and first.device == "meta" and _reads_values(op, failure):
        lines.append(_line("fix", "the model reads tensor values here (data-dependent control "
                                  "flow), and meta tensors hold none: inspect with "
                                  "device='cpu' (the model is not moved), or leave out inputs "
                                  "read for their values, such as an attention_mask"))  # fmt: skip
    return ForwardError("\n".join(lines), layer=rec.name, report=report)


def _generic_error(report: Report, rec: LayerCall | None, failure: BaseException) -> ForwardError:
    text = str(failure).strip() or type(failure).__name__
    if rec is None:
        return ForwardError(
            f"The forward of {report.model} failed: {type(failure).__name__}: {text}",
            layer="",
            report=report,
        )
    got = ", ".join(m.short() for m in rec.inputs if m.is_tensor) or _no_tensors(rec)
    lines = [f"The forward failed in {_describe(rec)}, called with {got}."]
    first = _first_tensor(rec.inputs)
    if first is not None and first.source is not None:
        lines.append(_line("input from", find_producer(report, first).text))
    where = user_frame(failure)
    if where:
        lines.append(_line("at", where))
    lines.append(_line("torch", f"{type(failure).__name__}: {text}"))
    lines += _no_meta_kernel(report, f"an op in {rec.type}", failure)
    lines += _not_tensor_fix(text)
    return ForwardError("\n".join(lines), layer=rec.name, report=report)


def _producer_name(producer: Producer | None) -> str | None:
    if producer is None or (producer.layer is None and producer.op is None):
        return None
    return producer.name


def user_frame(exc: BaseException) -> str:
    """``file.py:42: the code line`` of the last traceback frame outside torch and inspectnn."""
    frames = user_frames(exc)
    if not frames:
        return ""
    frame, lineno = frames[0]
    name = frame.f_code.co_filename
    return f"{name}:{lineno}: {linecache.getline(name, lineno).strip()}"
