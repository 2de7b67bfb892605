"""The text of a diagnosis: how a message line is laid out, and the because/fix advice.

``_line`` (one ``  label:     text`` line), ``_describe`` (a layer as the message names
it), and the advice for the failures seen in practice: a Linear fed by a flatten of
the wrong image size, a model input missing its batch dimension, a device fix, ops
torch cannot run on meta or wants on the CPU, a ``cat``/``stack`` of tensors that do
not fit, a ``view`` that mixes the batch, a NumPy array or list given as input. Each
returns text or lines; ``checks/diagnose.py`` builds the error from them.

May import: ``inspectnn.checks.contracts``, ``inspectnn.checks.producers``,
``inspectnn.records`` and torch.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import torch

from inspectnn.checks.contracts import Violation, fmt_shape
from inspectnn.checks.producers import Producer, _first_tensor, find_producer
from inspectnn.records import LayerCall, OpCall, TensorMeta

if TYPE_CHECKING:
    from inspectnn.report import Report

__all__: list[str] = []


def _describe(rec: LayerCall) -> str:
    where = f"'{rec.label}'" if rec.name else "the root module"
    config = f"({rec.extra})" if rec.extra else ""
    return f"{where} ({rec.type}{config})"


def _line(label: str, text: str) -> str:
    return f"  {label + ':':<12}{text}"


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
