"""Turn a failed forward into an error that names the layer, the cause and the fix.

The message says, in this order: the layer (dotted path and configuration),
what it got, what it expected, the dimension at fault, where its input came
from (walking back through layers that keep the shape), and a concrete fix.
"""

from __future__ import annotations

import linecache
import math
import re
from dataclasses import dataclass

import torch

from inspectnn.checks.contracts import Violation, fmt_shape
from inspectnn.checks.origins import Origin, device_origin, lookup, user_frames
from inspectnn.errors import (
    DeviceMismatchError,
    DtypeMismatchError,
    ForwardError,
    ShapeMismatchError,
)
from inspectnn.records import LayerCall, OpCall, Report, TensorMeta, parse_source

__all__ = ["Producer", "build_error", "find_producer", "user_frame"]

_ERRORS = {"shape": ShapeMismatchError, "dtype": DtypeMismatchError, "device": DeviceMismatchError}


@dataclass(frozen=True, slots=True)
class Producer:
    """What made a tensor: a layer call, an op, or a model input."""

    name: str  # dotted path, op name, or "the model input"
    text: str  # e.g. "classifier.0 (Flatten): [1, 16, 16, 16] -> [1, 4096]"
    layer: LayerCall | None = None
    op: OpCall | None = None


def _output_of(node: LayerCall | OpCall, source: str | None) -> TensorMeta | None:
    """The output of ``node`` that ``source`` names (its first tensor by default)."""
    parsed = parse_source(source)
    pos = parsed[2] if parsed is not None else 0
    if pos < len(node.outputs) and node.outputs[pos].is_tensor:
        return node.outputs[pos]
    return _first_tensor(node.outputs)


def _first_tensor(metas: tuple[TensorMeta, ...]) -> TensorMeta | None:
    return next((m for m in metas if m.is_tensor), None)


def find_producer(report: Report, meta: TensorMeta) -> Producer:
    """Walk back from an input to the last layer or op that changed its shape.

    Layers and ops whose first output has the shape of their first input
    (activations, dropout, norms) are stepped over; a container is replaced by
    what made its output inside it.
    """
    node = lookup(report, meta.source)
    via = meta.source
    stepped: list[str] = []  # shape-keeping layers and ops walked back through
    for _ in range(64):
        if node is None:
            break
        if isinstance(node, LayerCall):
            inner = _output_of(node, via)
            if inner is not None and inner.source is not None and inner.source != via:
                deeper = lookup(report, inner.source)
                if deeper is not None and deeper is not node:
                    node, via = deeper, inner.source
                    continue
        src, out = _first_tensor(node.inputs), _first_tensor(node.outputs)
        if src is None or out is None or src.shape != out.shape or src.source is None:
            break
        previous = lookup(report, src.source)
        if previous is None:
            break
        stepped.append(_node_name(node))
        node, via = previous, src.source
    from_input = (via or "").startswith("inputs[")
    via = f", then through {', '.join(reversed(stepped))}" if stepped else ""
    if node is None and from_input:
        text = f"the model input {fmt_shape(meta.shape or ())}{via}"
        return Producer("the model input", text)
    if node is None:  # no traced call made it: the module's own state, or made outside torch
        what = "a tensor the module holds (a buffer, parameter or attribute)"
        return Producer(what, f"{what} {fmt_shape(meta.shape or ())}{via}")
    src, out = _first_tensor(node.inputs), _first_tensor(node.outputs)
    arrow = f"{fmt_shape(src.shape or ())} -> " if src is not None else ""
    shape = fmt_shape(out.shape or ()) if out is not None else "?"
    if isinstance(node, LayerCall):
        name = node.label if node.name else node.type
        return Producer(name, f"{name} ({node.type}): {arrow}{shape}{via}", layer=node)
    where = f" in {node.module or 'the root module'}"
    return Producer(node.name, f"{node.name}{where}: {arrow}{shape}{via}", op=node)


def _node_name(node: LayerCall | OpCall) -> str:
    if isinstance(node, LayerCall):
        return f"{node.label or '(root)'} ({node.type})"
    return node.name


def _flatten_note(report: Report, producer: Producer, want: int) -> str:
    """For a Linear fed by a flatten: how the features arise and what input would fit."""
    node = producer.layer or producer.op
    if node is None:
        return ""
    is_flat = (producer.layer is not None and producer.layer.type == "Flatten") or (
        producer.op is not None
        and producer.op.name.rsplit(".", 1)[-1] in {"view", "reshape", "flatten"}
    )
    src = _first_tensor(node.inputs)
    if not is_flat or src is None or src.shape is None or len(src.shape) != 4:
        return ""
    _, c, h, w = src.shape
    got = c * h * w
    note = f"{c}*{h}*{w} = {got} features"
    model_in = _first_tensor(report.layers[0].inputs) if report.layers else None
    if model_in is None or model_in.shape is None or len(model_in.shape) != 4:
        return note
    _, _, h0, w0 = model_in.shape
    if 0 in (c, h, w) or h0 % h or w0 % w or h0 // h != w0 // w or want % c:
        return note
    scale, area = h0 // h, want // c
    side = math.isqrt(area)
    if side * side != area or h != w:
        return note
    return (
        f"the input is {h0}x{w0}, which gives {note} after the layers before it; "
        f"{want} features need {side * scale}x{side * scale} input"
    )


_SPATIAL = re.compile(r"(?:Conv|ConvTranspose|MaxPool|AvgPool|LPPool)([123])d")


def _unbatched(report: Report, rec: LayerCall) -> tuple[str, str] | None:
    """(because, fix) when the model input reached a conv or pool one dimension short.

    ``Conv2d`` takes an unbatched ``[C, H, W]`` as one image, so a ``[1, 28, 28]`` that
    lacks its batch dimension runs until a layer that needs it (a Flatten then merges the
    channels into the batch and the Linear after it fails): the fix is the input's
    ``x.unsqueeze(0)``, not the failing layer. None when no such layer ran before ``rec``.
    """
    for call in report.layers[: rec.index]:
        kind = _SPATIAL.fullmatch(call.type)
        x = _first_tensor(call.inputs)
        if kind is None or x is None or x.shape is None or x.source is None:
            continue
        if not x.source.startswith("inputs[") or len(x.shape) != int(kind[1]) + 1:
            continue
        batched = fmt_shape((1, *x.shape))
        why = (
            f"the model input {fmt_shape(x.shape)} has no batch dimension: "
            f"'{call.label}' ({call.type}) takes a {len(x.shape)}-D input as one unbatched "
            f"sample and the layers after it were written for {len(x.shape) + 1}-D "
            "(batch first)"
        )
        return why, f"add the batch dimension to the input: x.unsqueeze(0), giving {batched}"
    return None


def _describe(rec: LayerCall) -> str:
    where = f"'{rec.label}'" if rec.name else "the root module"
    config = f"({rec.extra})" if rec.extra else ""
    return f"{where} ({rec.type}{config})"


def _line(label: str, text: str) -> str:
    return f"  {label + ':':<12}{text}"


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
    if producer is not None:
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
        producer=producer.name
        if producer is not None and (producer.layer or producer.op)
        else None,
        fix=fix,
        report=report,
    )


def _device_fix(v: Violation, rec: LayerCall, run: str, home: str | None) -> str:
    """The contract's fix, plus moving the model where that would help: never to where the
    model already is (then the layer is the odd one), nor when inspect ran the model on
    another device than its own."""
    if home is None or home != run:
        return v.fix
    if home == v.got and v.expected == "meta":  # .to() cannot copy out of meta: no data
        return (f"{v.fix}, or materialise '{rec.label}' on {v.got}, where the rest of the "
                f"model is: its {v.param or 'parameters'} on meta holds no data, so .to() cannot "
                "copy it; "
                f"call .to_empty(device='{v.got}') on it, then reset_parameters() or load its "
                "weights")  # fmt: skip
    if home == v.got:
        return f"{v.fix}, or move '{rec.label}' to {v.got}, where the rest of the model is"
    return f"{v.fix}, or the model with model.to('{v.got}')"


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


_CPU_ONLY = {
    "_pack_padded_sequence": (
        "its lengths",
        "pass the lengths as a Python list (lengths.tolist()), which inspect does not move "
        "and pack_padded_sequence accepts",
    ),
}
"""Ops with an argument torch wants on the CPU whatever the device: (the argument, fix)."""

_NO_META_KERNEL = ("Meta kernel", "Meta tensors", "register_meta function", "copy out of meta")
"""torch's words (2.13) for an op it cannot run on meta: ``torch.unique``, ``masked_select``,
``bincount``, ``ctc_loss`` have no meta kernel; ``nonzero`` (and boolean indexing,
``torch.where(mask)``, ``argwhere``) refuses, its output shape depending on the values;
``.cpu()``, ``.to("cpu")``, ``.numpy()`` would copy data that a meta tensor does not hold."""


def _no_meta_kernel(report: Report, name: str, failure: BaseException) -> list[str]:
    """``because`` and ``fix`` lines for an op that torch cannot run on meta; [] otherwise."""
    text = str(failure)
    sized = "without output_size" in text  # repeat_interleave with tensor repeats
    if report.device != "meta" or not (sized or isinstance(failure, NotImplementedError)):
        return []
    layout = re.search(r"from the '(\w*)Meta' backend", text)  # SparseMeta, QuantizedMeta
    if not sized and not layout and not any(words in text for words in _NO_META_KERNEL):
        return []
    aten = re.search(r"aten::[\w.]+", text)
    what = f"{name} ({aten[0]})" if aten is not None and aten[0] not in name else name
    if "copy out of meta" in text:
        why = f"{what} copies the tensor's data off meta, and meta tensors hold no data"
    elif "nonzero" in text or sized:
        which = "the repeat counts" if sized else "the positions of its non-zero elements"
        why = (f"{what} makes an output whose shape depends on the tensor's values "
               f"({which}), and meta tensors hold no values")
    elif layout is not None and layout[1]:
        why = (f"{what} has no meta kernel for {layout[1].lower()} tensors in torch "
               f"{torch.__version__}: it cannot run on meta")
    else:
        why = f"{what} has no meta kernel in torch {torch.__version__}: it cannot run on meta"
    fix = ("inspect with device='cpu' (or the device the model is on): the model is not "
           "moved, its tensors are copied there for the call")  # fmt: skip
    return [_line("because", why), _line("fix", fix)]


def _reads_values(op: OpCall, failure: BaseException) -> bool:
    reads = {"__bool__", "item", "tolist", "__int__", "__float__", "__index__", "nonzero"}
    return op.name.rsplit(".", 1)[-1] in reads or "meta tensors" in str(failure)


_JOINS = {"cat": False, "concat": False, "concatenate": False, "stack": True}
"""Ops that join tensors along ``dim``; True where they add the dimension (all sizes agree)."""


def _join_advice(report: Report, op: OpCall) -> list[str]:
    """For a ``torch.cat``/``stack`` of tensors that do not fit: each input and its producer,
    the dimension that disagrees, and the fix (its last line); [] for any other op."""
    stacks = _JOINS.get(op.name.rsplit(".", 1)[-1])
    parts = [m for m in op.inputs if m.is_tensor]
    shapes = [m.shape or () for m in parts]
    if stacks is None or len(parts) < 2:
        return []
    found = re.search(r"(?:dim=|axis=|^)(-?\d+)", op.args)
    rank = len(shapes[0])
    dim = int(found[1]) if found is not None else 0
    dim = dim % rank if rank else 0
    lines = [
        _line(f"input {i}", f"{fmt_shape(m.shape)} from {find_producer(report, m).text}")
        for i, m in enumerate(parts)
    ]
    ranks = {len(shape) for shape in shapes}
    if len(ranks) > 1:
        why = f"the inputs have different numbers of dimensions ({sorted(ranks)})"
        lines.append(_line("because", why))
        lines.append(_line("fix", "give every input the same number of dimensions "
                                  "(unsqueeze or flatten the odd one) before joining"))  # fmt: skip
        return lines
    odd = [d for d in range(rank) if (stacks or d != dim) and len({x[d] for x in shapes}) > 1]
    if not odd:
        return []
    bad = odd[0]
    sizes = ", ".join(str(x[bad]) for x in shapes)
    rule = "every dimension" if stacks else f"every dimension but dim={dim}"
    lines.append(_line("at fault", f"dimension {bad}: sizes {sizes} ({op.name} needs {rule} "
                                   "to agree)"))  # fmt: skip
    same = _same_padding(report, parts, None if stacks else dim)
    if same:
        fix = f"make dimension {bad} agree before {op.name}: {same}"
    else:
        fix = (f"make dimension {bad} agree before {op.name}: change the layers that make the "
               "inputs (a conv's padding or stride, a pool's kernel) so their outputs match, or "
               f"resize one to the other (F.interpolate(..., size=...), or crop)")  # fmt: skip
    if not stacks and odd == [bad] and len({x[dim] for x in shapes}) == 1:
        fix += f"; or join along dimension {bad} if that is what was meant"
    lines.append(_line("fix", fix))
    return lines


_CONV = re.compile(r"Conv[123]d")


def _same_padding(report: Report, parts: list[TensorMeta], dim: int | None) -> str:
    """``"give 'up' padding='same': nn.Conv2d(...)"`` when stride-1 convs that shrink their
    input made the odd inputs and keeping their size makes every input fit; "" otherwise."""
    fixed: list[tuple[int, ...]] = []
    changes: list[str] = []
    for m in parts:
        layer = find_producer(report, m).layer
        src = _first_tensor(layer.inputs) if layer is not None else None
        shape = m.shape or ()
        if layer is None or src is None or src.shape is None or not _CONV.fullmatch(layer.type):
            fixed.append(shape)
            continue
        n = int(layer.type[-2])
        stride = re.search(r"stride=\(([\d, ]+)\)", layer.extra)
        if stride is None or {s.strip() for s in stride[1].split(",") if s.strip()} != {"1"}:
            fixed.append(shape)
            continue
        kept = (*shape[: len(shape) - n], *src.shape[len(src.shape) - n :])
        if kept != shape:
            config = re.sub(r", padding=\([\d, ]+\)", "", layer.extra)
            changes.append(f"'{layer.label}' nn.{layer.type}({config}, padding='same')")
        fixed.append(kept)
    agree = {tuple(d for i, d in enumerate(x) if i != dim) for x in fixed}
    if not changes or len(agree) != 1:
        return ""
    return f"make {' and '.join(changes)} (padding='same' keeps a stride-1 conv's size)"


def _reshape_advice(shape: tuple[int, ...], args: str) -> list[str]:
    n = shape[0]
    total = math.prod(shape)
    flat = total // n if n else 0
    return [
        _line("because", f"{fmt_shape(shape)} holds {total} values = {n} x {flat}; "
                         f"the shape ({args}) does not fit them"),
        _line("fix", f"flatten per sample with x.flatten(1) or x.view(x.size(0), -1), which "
                     f"gives [{n}, {flat}] here, and make the next layer take {flat} features "
                     "(or give the model the input size the shape was written for)"),
    ]  # fmt: skip


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


def _no_tensors(rec: LayerCall) -> str:
    """``"no tensors"``, naming what the call got instead (``<ndarray>``, a list ...)."""
    given = [m.value for m in rec.inputs if m.value is not None and m.value.startswith("<")]
    return f"no tensors (got {', '.join(given)})" if given else "no tensors"


_NOT_TENSOR = {
    "numpy.ndarray": "convert the NumPy array to a tensor first: torch.from_numpy(x).float() "
                     "(or torch.as_tensor(x, dtype=torch.float32))",
    "list": "convert the list to a tensor first: torch.tensor(x, dtype=torch.float32) "
            "(or torch.as_tensor(x))",
    "tuple": "convert the tuple to a tensor first: torch.tensor(x, dtype=torch.float32)",
}  # fmt: skip
"""torch's ``must be Tensor, not X`` for the common non-tensor inputs: the fix."""


def _not_tensor_fix(text: str) -> list[str]:
    """``because`` and ``fix`` lines for a layer given a NumPy array or a list; [] otherwise."""
    # F.linear says "must be Tensor, not X"; conv2d and others "got (X, Parameter, ...)"
    found = re.search(r"must be Tensor, not ([\w.]+)", text) or re.search(
        r"received an invalid combination of arguments - got \(([\w.]+)", text
    )
    if found is None or found[1] not in _NOT_TENSOR:
        return []
    why = f"torch layers take torch tensors, and the input is a {found[1]}"
    return [_line("because", why), _line("fix", _NOT_TENSOR[found[1]])]


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
